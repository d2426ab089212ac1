-- One-minute aggregate tables written by the aggregator (issue 4).
--
-- Row model. One row per (window_start, grouping, dims, topic, kafka_partition):
-- the partial aggregate of one Kafka partition for one grouping key in one
-- one-minute event-time window. Client topics are keyed by user_id, so users
-- are disjoint across partitions and the query-time sum over partitions is
-- exact, including distinct users. Every column is a raw sum, count, min or
-- histogram; rates, means and quantiles are derived at query time (views in
-- 0002), and a rate whose denominator is 0 is NULL.
--
-- Crash replay. ReplacingMergeTree(version): re-inserting a row with the same
-- sorting key REPLACES it (the highest version wins; equal versions keep the
-- last inserted), so a replay after a crash cannot double count. version is
-- derived from the Kafka offsets the row includes, so a later provisional row
-- and the final row supersede earlier ones. Readers must use FINAL (or
-- argMax by version) before summing across partitions; the views do.
--
-- Key columns (shared by every table here):
--   window_start     start of the window [t, t+60s), UTC
--   grouping         grouping-set name: the dimension names joined by ','
--                    in the configured order, e.g. 'province,isp'; '' = total
--   dims             dimension name -> value ('unknown' when missing);
--                    exactly the names listed in grouping
--   dims_key         MATERIALIZED from grouping and dims: the JSON array of
--                    the values in grouping order, e.g. '["guangdong","telecom"]'
--                    ('[]' for the total). Computed by the server so a
--                    re-inserted row always gets the same key; never insert it.
--   topic            source Kafka topic
--   kafka_partition  source Kafka partition
--   version          ReplacingMergeTree version (from offsets, see above)
--   final            0 = provisional (window still open), 1 = window closed
--   written_at       insert time; used to measure freshness
--
-- ORDER BY (grouping, window_start, dims_key, topic, kafka_partition): the
-- readers (war room, alerts, scheduler) ask for "all keys of one grouping
-- over the last minutes", which this order serves with a narrow primary-key
-- range; per-key history over long spans is served by the hourly/daily
-- rollups (a later migration). The key contains every identity column, which
-- is what makes replacement exact.
--
-- Retention: TTL window_start + 30 days on every minute table, applied by
-- dropping whole parts (ttl_only_drop_parts) of the daily partitions. Change it
-- with a new migration: ALTER TABLE client_minute MODIFY TTL window_start + INTERVAL 7 DAY.
--
-- Histograms (*_hist, Map(Int32, UInt64): bucket index -> count) are
-- DDSketch-style logarithmic histograms with relative accuracy alpha = 0.01:
--   gamma = (1 + alpha) / (1 - alpha) = 1.01 / 0.99
--   index(v) = ceil(ln(v) / ln(gamma))    for v > 0 (bucket (gamma^(i-1), gamma^i])
--   index(0) = -2147483648 (min Int32)    a dedicated bucket that sorts first
--   value(i) = 2 * gamma^i / (gamma + 1)  representative, relative error <= 1 %
--   value(-2147483648) = 0
-- Values are >= 0 (ms). Histograms merge exactly across partitions and
-- windows with sumMap(). A *_ms_sum column covers exactly the values counted
-- in its *_ms_hist, so the mean is sum / (total count of the histogram).

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "client_minute"}} {{.OnCluster}}
(
    window_start DateTime('UTC'),
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64,
    final UInt8,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),

    users UInt64 COMMENT 'distinct user_id with any pull-side event',
    stutter_users UInt64 COMMENT 'users with >= 1 stall (duration_ms >= 2000)',
    stutter_users_video UInt64 COMMENT 'users with >= 1 video stall',
    stutter_users_audio UInt64 COMMENT 'users with >= 1 audio stall',
    stalls UInt64,
    stall_ms UInt64 COMMENT 'sum of duration_ms of the stalls counted in stalls',
    samples UInt64 COMMENT 'heartbeats',
    stalled_samples UInt64 COMMENT 'heartbeats with stalled = true',
    plays UInt64 COMMENT 'play_start events (pull-connect attempts)',
    plays_ok UInt64 COMMENT 'play_start with ok = true',
    pull_connect_ms_sum UInt64,
    pull_connect_ms_hist Map(Int32, UInt64) COMMENT 'log-bucket histogram, alpha 0.01, see 0001_minute_tables.sql',
    first_frames UInt64,
    first_frame_ms_sum UInt64,
    first_frame_ms_hist Map(Int32, UInt64) COMMENT 'log-bucket histogram, alpha 0.01, see 0001_minute_tables.sql',
    fast_opens UInt64 COMMENT 'first_frame events with first_frame_ms <= 1000',
    video_buffer_ms_sum UInt64,
    video_buffer_samples UInt64,
    audio_buffer_ms_sum UInt64,
    audio_buffer_samples UInt64,
    play_errors UInt64 COMMENT 'play_end with reason = error',
    dns_lookups UInt64,
    dns_hits UInt64 COMMENT 'dns with cache_hit = true',
    pushes UInt64 COMMENT 'push_start events (push-connect attempts)',
    pushes_ok UInt64,
    push_connect_ms_sum UInt64,
    push_connect_ms_hist Map(Int32, UInt64) COMMENT 'log-bucket histogram, alpha 0.01, see 0001_minute_tables.sql',
    push_ends UInt64,
    push_drops UInt64 COMMENT 'push_end with dropped = true',
    relays UInt64,
    relays_failed UInt64,
    relay_ms_sum UInt64,
    relay_ms_hist Map(Int32, UInt64) COMMENT 'log-bucket histogram, alpha 0.01, see 0001_minute_tables.sql'
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'client events, one-minute partial aggregates per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "cdn_minute"}} {{.OnCluster}}
(
    window_start DateTime('UTC'),
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64,
    final UInt8,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),

    requests UInt64,
    bytes UInt64,
    errors_4xx UInt64 COMMENT 'requests with 400 <= status <= 499',
    errors_5xx UInt64 COMMENT 'requests with 500 <= status <= 599',
    ttfb_ms_sum UInt64,
    ttfb_ms_hist Map(Int32, UInt64) COMMENT 'log-bucket histogram, alpha 0.01, see 0001_minute_tables.sql'
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'CDN events, one-minute partial aggregates per Kafka partition; read with FINAL';

-- Origin minimums are stored per row and combined with min() at query time,
-- which is exact; rows with samples = 0 (no_data) are left out of the min.
CREATE TABLE IF NOT EXISTS {{.Table "origin_minute"}} {{.OnCluster}}
(
    window_start DateTime('UTC'),
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64,
    final UInt8,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),

    samples UInt64 COMMENT 'origin_stats events',
    fps_sum Float64,
    fps_min Float64 COMMENT 'ignored when samples = 0',
    bitrate_kbps_sum Float64,
    bitrate_kbps_min Float64 COMMENT 'ignored when samples = 0',
    rtt_ms_sum Float64,
    no_data UInt8 COMMENT '1 = stream seen in the last N minutes but silent in this window (samples = 0)'
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'origin events, one-minute partial aggregates per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "late_events"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'the window the late events belonged to',
    source LowCardinality(String) COMMENT 'client, cdn or origin',
    topic LowCardinality(String),
    kafka_partition UInt32,
    count UInt64 COMMENT 'events that arrived after the allowed lateness, cumulative for this row',
    version UInt64,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (source, window_start, topic, kafka_partition)
TTL window_start + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'events dropped from their window for lateness, per window and partition; read with FINAL';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS client_minute {{.OnCluster}} AS client_minute_local
ENGINE = {{.Distributed "client_minute_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS cdn_minute {{.OnCluster}} AS cdn_minute_local
ENGINE = {{.Distributed "cdn_minute_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS origin_minute {{.OnCluster}} AS origin_minute_local
ENGINE = {{.Distributed "origin_minute_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS late_events {{.OnCluster}} AS late_events_local
ENGINE = {{.Distributed "late_events_local" "topic" "kafka_partition"}};
{{- end}}

-- +goose Down
{{if .Cluster -}}
DROP TABLE IF EXISTS late_events {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS origin_minute {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS cdn_minute {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS client_minute {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "late_events"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "origin_minute"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "cdn_minute"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "client_minute"}} {{.OnCluster}} SYNC;
