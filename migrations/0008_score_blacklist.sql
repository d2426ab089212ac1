-- Scheduler blacklist audit (docs/SCORES.md, "Blacklist"): one row per
-- change of the live blacklist. The operator's switches
-- (POST /api/v1/admin/blacklist) are written by the handler and are also
-- the operator entries' store: an operator entry is on when the newest
-- operator row of its vendor, province and isp says on. The snapshot loop
-- writes the changes it applies from alerts and the blacklist file, and
-- the entries it refuses (the last eligible vendor of a region).
--
--   at        when: the request's time (operator) or the snapshot's minute
--             (loop), so that two servers writing the same change of the
--             same minute write the same key and FINAL keeps one
--   vendor, province, isp   the entry's key
--   source    operator | alert | file
--   action    on | off | refused
--   reason    the operator's reason, or the alert rule / file reason
--   by        the admin token's name (never its secret), alert:<rule>, or file
--   detail    what the snapshot made of it (e.g. not blacklisted: last
--             eligible vendor of P/I)
--   written_at insert time; the newest row of a key wins
--
-- Rows are kept 400 days, like alert_history.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "score_blacklist_audit"}} {{.OnCluster}}
(
    at DateTime64(3, 'UTC'),
    vendor LowCardinality(String),
    province LowCardinality(String),
    isp LowCardinality(String),
    source LowCardinality(String),
    action LowCardinality(String),
    reason String,
    by String,
    detail String,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "written_at"}}
ORDER BY (vendor, province, isp, source, by, at, action)
TTL toDateTime(at) + INTERVAL 400 DAY
COMMENT 'scheduler blacklist changes (operator switches, alert and file entries applied or refused); read with FINAL';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS score_blacklist_audit {{.OnCluster}} AS score_blacklist_audit_local
ENGINE = {{.Distributed "score_blacklist_audit_local" "vendor" "province"}};
{{- end}}

-- +goose Down
{{if .Cluster -}}
DROP TABLE IF EXISTS score_blacklist_audit {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "score_blacklist_audit"}} {{.OnCluster}} SYNC;
