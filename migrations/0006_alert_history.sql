-- Alert history (docs/ALERTS.md): one row per state change of one alert, as
-- the live evaluator decides it. The wall and GET /api/v1/alerts read it,
-- and the scheduler scores read the changes of rules with
-- `action: blacklist` from it (docs/SCORES.md, "Blacklist").
--
--   at           the minute evaluated (its start), when the change happened
--   rule         rule name
--   fingerprint  hash of rule name and labels (alert.Fingerprint), stable
--                across restarts
--   labels       the group's dimension values plus the rule's severity and
--                labels
--   state        pending | firing | inactive | resolved
--   value        the group's metric at `at`; NULL without a row
--   users        the group's sample count (users, requests or samples) at
--                `at`; NULL without a row
--   action       the rule's action ('' or 'blacklist')
--   annotations  the rule's rendered annotations
--   diagnosis    the finer groups that explain a firing alert, as JSON
--                (alert.Diagnosis); '' when none
--   version      grows with every evaluation of the minute: a minute
--                evaluated again when it became final replaces its rows
--                (a change that no longer happens is written with
--                retracted = 1)
--   retracted    1 when a later evaluation of the minute found no change
--   written_at   insert time
--
-- Rows are kept 400 days, like the day rollups.
--
-- Alert state (docs/ALERTS.md, "Live"): the live evaluator's state, like
-- Prometheus's ALERTS_FOR_STATE, so that a restarted evaluator (or the
-- other instance taking over) neither fires a firing alert again nor
-- forgets a pending `for`. One logical row per evaluator (its leader
-- group); a new row is written after each evaluation step and after the
-- notifications were handed to delivery.
--
--   evaluator    the evaluator's name (alert.leader.group_id)
--   version      grows with every write; readers take argMax(state, version)
--   state        the live evaluator's state as JSON (alert/live: the
--                alert.State after the last final minute and after the last
--                minute evaluated, the decisions of the minutes not yet
--                final, the alerts last handed to delivery)
--   written_at   insert time
--
-- No TTL: merges keep the newest row of an evaluator, and an evaluator
-- stopped for weeks must still find its state.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "alert_history"}} {{.OnCluster}}
(
    at DateTime('UTC'),
    rule LowCardinality(String),
    fingerprint String,
    labels Map(LowCardinality(String), String),
    state LowCardinality(String),
    value Nullable(Float64),
    users Nullable(Int64),
    action LowCardinality(String),
    annotations Map(LowCardinality(String), String),
    diagnosis String,
    version UInt64,
    retracted UInt8 DEFAULT 0,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
ORDER BY (rule, fingerprint, at)
TTL at + INTERVAL 400 DAY
COMMENT 'alert state changes per rule, fingerprint and minute; read with FINAL and retracted = 0';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS alert_history {{.OnCluster}} AS alert_history_local
ENGINE = {{.Distributed "alert_history_local" "rule" "fingerprint"}};
{{- end}}

CREATE TABLE IF NOT EXISTS {{.Table "alert_state"}} {{.OnCluster}}
(
    evaluator String,
    version UInt64,
    state String,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
ORDER BY evaluator
COMMENT 'live alert evaluator state; read argMax(state, version) per evaluator';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS alert_state {{.OnCluster}} AS alert_state_local
ENGINE = {{.Distributed "alert_state_local" "evaluator"}};
{{- end}}

-- +goose Down
{{if .Cluster -}}
DROP TABLE IF EXISTS alert_state {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "alert_state"}} {{.OnCluster}} SYNC;
{{if .Cluster -}}
DROP TABLE IF EXISTS alert_history {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "alert_history"}} {{.OnCluster}} SYNC;
