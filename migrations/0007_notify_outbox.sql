-- Notification delivery (docs/ALERTS.md, "Delivery"): the durable outbox
-- that lets a restarted or second `qoscope serve` go on where the first
-- stopped, and the silences. Every table is a ReplacingMergeTree read with
-- FINAL: a row is never updated, a newer version of it is inserted.
--
-- notify_alerts: the alerts the evaluator handed over (notify.Alert as
-- JSON), the newest version per fingerprint. Submit returns once its rows
-- are here.
--   fingerprint  alert.Fingerprint
--   status       firing | resolved
--   alert        notify.Alert as JSON
--   version      the submit time in nanoseconds (a later submit wins)
--
-- notify_notifications: one row per notification and state.
--   key          the idempotency key: SHA-256 of receiver, group key, each
--                alert's fingerprint and status, and seq; sent with the
--                notification so a receiver can drop a repeat
--   receiver     the configured receiver's name
--   group_key    the receiver's group (its group_by labels' values)
--   seq          the group's notification number, from 1
--   state        enqueued | sent | failed | skipped
--   alerts       the alerts of the notification (notify.Alert JSON array)
--   created_at   when the group decided to notify
--   error        the last error of a failed notification
--   version      1 enqueued, 2 a final state (sent, failed, skipped)
--
-- notify_silences: one row per silence and change (an expired silence
-- keeps its row with ends_at at the expiry).
--   id           UUID
--   matchers     JSON array of {"name","op","value"} (op = != =~ !~)
--   starts_at, ends_at   the silence is active in [starts_at, ends_at)
--   created_by   the admin token's name
--   comment      why (required)
--   version      the change time in nanoseconds
--
-- Rows are kept 30 days after their last write.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "notify_alerts"}} {{.OnCluster}}
(
    fingerprint String,
    status LowCardinality(String),
    alert String,
    version UInt64,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
ORDER BY fingerprint
TTL toDateTime(written_at) + INTERVAL 30 DAY
COMMENT 'alerts handed to delivery, newest per fingerprint; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "notify_notifications"}} {{.OnCluster}}
(
    key String,
    receiver LowCardinality(String),
    group_key String,
    seq UInt64,
    state LowCardinality(String),
    alerts String,
    created_at DateTime64(3, 'UTC'),
    error String,
    version UInt64,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
ORDER BY (receiver, group_key, key)
TTL toDateTime(written_at) + INTERVAL 30 DAY
COMMENT 'notification outbox: enqueued, then sent, failed or skipped; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "notify_silences"}} {{.OnCluster}}
(
    id String,
    matchers String,
    starts_at DateTime64(3, 'UTC'),
    ends_at DateTime64(3, 'UTC'),
    created_by String,
    comment String,
    version UInt64,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
ORDER BY id
TTL toDateTime(ends_at) + INTERVAL 30 DAY
COMMENT 'alert silences by label matchers; read with FINAL';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS notify_alerts {{.OnCluster}} AS notify_alerts_local
ENGINE = {{.Distributed "notify_alerts_local" "fingerprint"}};

CREATE TABLE IF NOT EXISTS notify_notifications {{.OnCluster}} AS notify_notifications_local
ENGINE = {{.Distributed "notify_notifications_local" "receiver" "group_key"}};

CREATE TABLE IF NOT EXISTS notify_silences {{.OnCluster}} AS notify_silences_local
ENGINE = {{.Distributed "notify_silences_local" "id"}};
{{- end}}

-- +goose Down
{{if .Cluster -}}
DROP TABLE IF EXISTS notify_silences {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS notify_notifications {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS notify_alerts {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "notify_silences"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "notify_notifications"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "notify_alerts"}} {{.OnCluster}} SYNC;
