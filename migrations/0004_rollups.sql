-- Hourly and daily rollups of the one-minute tables, for history views
-- (issue 4), with their metric views.
--
-- Fed by the aggregator, not by materialized views. A minute row is written
-- several times (provisional rows every few seconds, then the final row, and
-- again after a crash replay); a materialized view on the minute table would
-- add every one of those versions. Instead, whenever a flush wrote final
-- minute rows, the runner recomputes, inside ClickHouse, the rollup rows of
-- the hours (and then days) those minutes belong to, for the Kafka partitions
-- of that flush only:
--
--   INSERT INTO client_hour (...)
--   SELECT toStartOfHour(window_start), grouping, any(dims), topic,
--          kafka_partition, max(version), count(), sum(users), ... sumMap(..)
--   FROM client_minute FINAL
--   WHERE window_start in that hour AND final = 1 AND topic = ? AND
--         kafka_partition IN (?)
--   GROUP BY ..., dims_key, topic, kafka_partition
--
-- and the same from *_hour FINAL into *_day. A rollup row is thus the
-- cumulative sum of every FINAL minute of its period on one partition;
-- version = the largest minute version summed, which grows as more minutes
-- of the period become final, so ReplacingMergeTree(version) keeps the most
-- complete row, and a replay re-computes the same row with the same version.
-- The sort key matches the minute tables: (grouping, window_start, dims_key,
-- topic, kafka_partition), window_start being the start of the hour or day.
--
-- Distinct users cannot be summed over minutes: the rollups carry
-- user_minutes (the sum of each minute's distinct users) and
-- stutter_user_minutes, and the views' stutter_rate_uv is
-- stutter_user_minutes / user_minutes, the per-minute UV stutter rate
-- weighted by users; user_minutes / 60 is the mean concurrent users of an
-- hour. Every other column sums (histograms with sumMap) exactly as in
-- 0001_minute_tables.sql; origin minimums are taken over minutes with
-- samples (+inf when there were none), and data_minutes/no_data_minutes count
-- the minutes with samples and the no_data minutes.
--
-- Retention: 400 days on every rollup table (whole parts dropped). Change it
-- per table, e.g.
--   ALTER TABLE client_hour MODIFY TTL window_start + INTERVAL 90 DAY;
--   ALTER TABLE client_day MODIFY TTL window_start + INTERVAL 3 YEAR;
-- (on a cluster: ALTER TABLE client_hour_local ON CLUSTER '...' MODIFY TTL ...).
-- The minute tables keep 30 days (0001).

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "client_hour"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'start of the hour (UTC)',
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64 COMMENT 'max version of the rows summed',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    minutes UInt32 COMMENT 'final minute rows summed',

    user_minutes UInt64 COMMENT 'sum over the final minutes of users (distinct per minute, so not distinct per period)',
    stutter_user_minutes UInt64 COMMENT 'sum over the final minutes of stutter_users',
    stutter_user_minutes_video UInt64,
    stutter_user_minutes_audio UInt64,
    stalls UInt64,
    stall_ms UInt64,
    samples UInt64,
    stalled_samples UInt64,
    plays UInt64,
    plays_ok UInt64,
    pull_connect_ms_sum UInt64,
    pull_connect_ms_hist Map(Int32, UInt64),
    first_frames UInt64,
    first_frame_ms_sum UInt64,
    first_frame_ms_hist Map(Int32, UInt64),
    fast_opens UInt64,
    video_buffer_ms_sum UInt64,
    video_buffer_samples UInt64,
    audio_buffer_ms_sum UInt64,
    audio_buffer_samples UInt64,
    play_errors UInt64,
    dns_lookups UInt64,
    dns_hits UInt64,
    pushes UInt64,
    pushes_ok UInt64,
    push_connect_ms_sum UInt64,
    push_connect_ms_hist Map(Int32, UInt64),
    push_ends UInt64,
    push_drops UInt64,
    relays UInt64,
    relays_failed UInt64,
    relay_ms_sum UInt64,
    relay_ms_hist Map(Int32, UInt64)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMM(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'client hourly rollup of the final minute rows per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "client_day"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'start of the day (UTC)',
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64 COMMENT 'max version of the rows summed',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    minutes UInt32 COMMENT 'final minute rows summed',

    user_minutes UInt64 COMMENT 'sum over the final minutes of users (distinct per minute, so not distinct per period)',
    stutter_user_minutes UInt64 COMMENT 'sum over the final minutes of stutter_users',
    stutter_user_minutes_video UInt64,
    stutter_user_minutes_audio UInt64,
    stalls UInt64,
    stall_ms UInt64,
    samples UInt64,
    stalled_samples UInt64,
    plays UInt64,
    plays_ok UInt64,
    pull_connect_ms_sum UInt64,
    pull_connect_ms_hist Map(Int32, UInt64),
    first_frames UInt64,
    first_frame_ms_sum UInt64,
    first_frame_ms_hist Map(Int32, UInt64),
    fast_opens UInt64,
    video_buffer_ms_sum UInt64,
    video_buffer_samples UInt64,
    audio_buffer_ms_sum UInt64,
    audio_buffer_samples UInt64,
    play_errors UInt64,
    dns_lookups UInt64,
    dns_hits UInt64,
    pushes UInt64,
    pushes_ok UInt64,
    push_connect_ms_sum UInt64,
    push_connect_ms_hist Map(Int32, UInt64),
    push_ends UInt64,
    push_drops UInt64,
    relays UInt64,
    relays_failed UInt64,
    relay_ms_sum UInt64,
    relay_ms_hist Map(Int32, UInt64)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYear(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'client daily rollup of the final minute rows per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "cdn_hour"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'start of the hour (UTC)',
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64 COMMENT 'max version of the rows summed',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    minutes UInt32 COMMENT 'final minute rows summed',

    requests UInt64,
    bytes UInt64,
    errors_4xx UInt64,
    errors_5xx UInt64,
    ttfb_ms_sum UInt64,
    ttfb_ms_hist Map(Int32, UInt64)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMM(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'cdn hourly rollup of the final minute rows per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "cdn_day"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'start of the day (UTC)',
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64 COMMENT 'max version of the rows summed',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    minutes UInt32 COMMENT 'final minute rows summed',

    requests UInt64,
    bytes UInt64,
    errors_4xx UInt64,
    errors_5xx UInt64,
    ttfb_ms_sum UInt64,
    ttfb_ms_hist Map(Int32, UInt64)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYear(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'cdn daily rollup of the final minute rows per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "origin_hour"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'start of the hour (UTC)',
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64 COMMENT 'max version of the rows summed',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    minutes UInt32 COMMENT 'final minute rows summed',

    data_minutes UInt32 COMMENT 'final minutes with samples > 0',
    no_data_minutes UInt32 COMMENT 'final minutes that were no_data rows',
    samples UInt64,
    fps_sum Float64,
    fps_min Float64 COMMENT '+inf when samples = 0',
    bitrate_kbps_sum Float64,
    bitrate_kbps_min Float64 COMMENT '+inf when samples = 0',
    rtt_ms_sum Float64
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYYYYMM(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'origin hourly rollup of the final minute rows per Kafka partition; read with FINAL';

CREATE TABLE IF NOT EXISTS {{.Table "origin_day"}} {{.OnCluster}}
(
    window_start DateTime('UTC') COMMENT 'start of the day (UTC)',
    grouping LowCardinality(String),
    dims Map(LowCardinality(String), String),
    dims_key String MATERIALIZED toJSONString(arrayMap(k -> dims[k], arrayFilter(k -> k != '', splitByChar(',', grouping)))),
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64 COMMENT 'max version of the rows summed',
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    minutes UInt32 COMMENT 'final minute rows summed',

    data_minutes UInt32 COMMENT 'final minutes with samples > 0',
    no_data_minutes UInt32 COMMENT 'final minutes that were no_data rows',
    samples UInt64,
    fps_sum Float64,
    fps_min Float64 COMMENT '+inf when samples = 0',
    bitrate_kbps_sum Float64,
    bitrate_kbps_min Float64 COMMENT '+inf when samples = 0',
    rtt_ms_sum Float64
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
PARTITION BY toYear(window_start)
ORDER BY (grouping, window_start, dims_key, topic, kafka_partition)
TTL window_start + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'origin daily rollup of the final minute rows per Kafka partition; read with FINAL';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS client_hour {{.OnCluster}} AS client_hour_local
ENGINE = {{.Distributed "client_hour_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS client_day {{.OnCluster}} AS client_day_local
ENGINE = {{.Distributed "client_day_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS cdn_hour {{.OnCluster}} AS cdn_hour_local
ENGINE = {{.Distributed "cdn_hour_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS cdn_day {{.OnCluster}} AS cdn_day_local
ENGINE = {{.Distributed "cdn_day_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS origin_hour {{.OnCluster}} AS origin_hour_local
ENGINE = {{.Distributed "origin_hour_local" "topic" "kafka_partition"}};

CREATE TABLE IF NOT EXISTS origin_day {{.OnCluster}} AS origin_day_local
ENGINE = {{.Distributed "origin_day_local" "topic" "kafka_partition"}};
{{- end}}

CREATE OR REPLACE VIEW client_hour_metrics {{.OnCluster}} AS
WITH
    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    max(t.written_at) AS written_at,

    sum(t.user_minutes) AS user_minutes,
    sum(t.stutter_user_minutes) AS stutter_user_minutes,
    sum(t.stutter_user_minutes_video) AS stutter_user_minutes_video,
    sum(t.stutter_user_minutes_audio) AS stutter_user_minutes_audio,
    if(user_minutes = 0, NULL, stutter_user_minutes / user_minutes) AS stutter_rate_uv,
    if(user_minutes = 0, NULL, (toInt64(user_minutes) - toInt64(stutter_user_minutes)) / user_minutes) AS zero_stutter_rate,
    if(user_minutes = 0, NULL, stutter_user_minutes_video / user_minutes) AS stutter_rate_uv_video,
    if(user_minutes = 0, NULL, stutter_user_minutes_audio / user_minutes) AS stutter_rate_uv_audio,
    sum(t.stalls) AS stalls,
    sum(t.stall_ms) AS stall_ms,
    sum(t.samples) AS samples,
    sum(t.stalled_samples) AS stalled_samples,
    if(samples = 0, NULL, stalled_samples / samples) AS stutter_rate_pv,

    sum(t.plays) AS plays,
    sum(t.plays_ok) AS plays_ok,
    if(plays = 0, NULL, plays_ok / plays) AS pull_connect_rate,
    sum(t.pull_connect_ms_sum) AS pull_connect_ms_sum,
    sumMap(t.pull_connect_ms_hist) AS pull_connect_ms_hist,
    if(hist_count(pull_connect_ms_hist) = 0, NULL, pull_connect_ms_sum / hist_count(pull_connect_ms_hist)) AS pull_connect_ms_avg,
    hist_quantile(pull_connect_ms_hist, 50) AS pull_connect_ms_p50,
    hist_quantile(pull_connect_ms_hist, 90) AS pull_connect_ms_p90,
    hist_quantile(pull_connect_ms_hist, 99) AS pull_connect_ms_p99,

    sum(t.first_frames) AS first_frames,
    sum(t.first_frame_ms_sum) AS first_frame_ms_sum,
    sumMap(t.first_frame_ms_hist) AS first_frame_ms_hist,
    if(hist_count(first_frame_ms_hist) = 0, NULL, first_frame_ms_sum / hist_count(first_frame_ms_hist)) AS first_frame_ms_avg,
    hist_quantile(first_frame_ms_hist, 50) AS first_frame_ms_p50,
    hist_quantile(first_frame_ms_hist, 90) AS first_frame_ms_p90,
    hist_quantile(first_frame_ms_hist, 99) AS first_frame_ms_p99,
    sum(t.fast_opens) AS fast_opens,
    if(first_frames = 0, NULL, fast_opens / first_frames) AS fast_open_rate,

    sum(t.video_buffer_ms_sum) AS video_buffer_ms_sum,
    sum(t.video_buffer_samples) AS video_buffer_samples,
    if(video_buffer_samples = 0, NULL, video_buffer_ms_sum / video_buffer_samples) AS video_buffer_ms_avg,
    sum(t.audio_buffer_ms_sum) AS audio_buffer_ms_sum,
    sum(t.audio_buffer_samples) AS audio_buffer_samples,
    if(audio_buffer_samples = 0, NULL, audio_buffer_ms_sum / audio_buffer_samples) AS audio_buffer_ms_avg,

    sum(t.play_errors) AS play_errors,
    sum(t.dns_lookups) AS dns_lookups,
    sum(t.dns_hits) AS dns_hits,
    if(dns_lookups = 0, NULL, dns_hits / dns_lookups) AS dns_hit_rate,

    sum(t.pushes) AS pushes,
    sum(t.pushes_ok) AS pushes_ok,
    if(pushes = 0, NULL, pushes_ok / pushes) AS push_connect_rate,
    sum(t.push_connect_ms_sum) AS push_connect_ms_sum,
    sumMap(t.push_connect_ms_hist) AS push_connect_ms_hist,
    if(hist_count(push_connect_ms_hist) = 0, NULL, push_connect_ms_sum / hist_count(push_connect_ms_hist)) AS push_connect_ms_avg,
    hist_quantile(push_connect_ms_hist, 50) AS push_connect_ms_p50,
    hist_quantile(push_connect_ms_hist, 90) AS push_connect_ms_p90,
    hist_quantile(push_connect_ms_hist, 99) AS push_connect_ms_p99,
    sum(t.push_ends) AS push_ends,
    sum(t.push_drops) AS push_drops,
    if(push_ends = 0, NULL, push_drops / push_ends) AS push_drop_rate,

    sum(t.relays) AS relays,
    sum(t.relays_failed) AS relays_failed,
    if(relays = 0, NULL, relays_failed / relays) AS relay_fail_rate,
    sum(t.relay_ms_sum) AS relay_ms_sum,
    sumMap(t.relay_ms_hist) AS relay_ms_hist,
    if(hist_count(relay_ms_hist) = 0, NULL, relay_ms_sum / hist_count(relay_ms_hist)) AS relay_ms_avg,
    hist_quantile(relay_ms_hist, 50) AS relay_ms_p50,
    hist_quantile(relay_ms_hist, 90) AS relay_ms_p90,
    hist_quantile(relay_ms_hist, 99) AS relay_ms_p99
FROM client_hour AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW cdn_hour_metrics {{.OnCluster}} AS
WITH
    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    max(t.written_at) AS written_at,

    sum(t.requests) AS requests,
    sum(t.bytes) AS bytes,
    bytes * 8 / 3600 / 1000000 AS bandwidth_mbps,
    sum(t.errors_4xx) AS errors_4xx,
    sum(t.errors_5xx) AS errors_5xx,
    if(requests = 0, NULL, errors_4xx / requests) AS errors_4xx_rate,
    if(requests = 0, NULL, errors_5xx / requests) AS errors_5xx_rate,
    sum(t.ttfb_ms_sum) AS ttfb_ms_sum,
    sumMap(t.ttfb_ms_hist) AS ttfb_ms_hist,
    if(hist_count(ttfb_ms_hist) = 0, NULL, ttfb_ms_sum / hist_count(ttfb_ms_hist)) AS ttfb_ms_avg,
    hist_quantile(ttfb_ms_hist, 50) AS ttfb_ms_p50,
    hist_quantile(ttfb_ms_hist, 90) AS ttfb_ms_p90,
    hist_quantile(ttfb_ms_hist, 99) AS ttfb_ms_p99
FROM cdn_hour AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW origin_hour_metrics {{.OnCluster}} AS
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    max(t.written_at) AS written_at,

    sum(t.data_minutes) AS data_minutes,
    sum(t.no_data_minutes) AS no_data_minutes,
    sum(t.samples) AS samples,
    sum(t.fps_sum) AS fps_sum,
    if(samples = 0, NULL, fps_sum / samples) AS fps_avg,
    if(samples = 0, NULL, minIf(t.fps_min, t.samples > 0)) AS fps_min,
    sum(t.bitrate_kbps_sum) AS bitrate_kbps_sum,
    if(samples = 0, NULL, bitrate_kbps_sum / samples) AS bitrate_kbps_avg,
    if(samples = 0, NULL, minIf(t.bitrate_kbps_min, t.samples > 0)) AS bitrate_kbps_min,
    sum(t.rtt_ms_sum) AS rtt_ms_sum,
    if(samples = 0, NULL, rtt_ms_sum / samples) AS rtt_ms_avg
FROM origin_hour AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW client_day_metrics {{.OnCluster}} AS
WITH
    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    max(t.written_at) AS written_at,

    sum(t.user_minutes) AS user_minutes,
    sum(t.stutter_user_minutes) AS stutter_user_minutes,
    sum(t.stutter_user_minutes_video) AS stutter_user_minutes_video,
    sum(t.stutter_user_minutes_audio) AS stutter_user_minutes_audio,
    if(user_minutes = 0, NULL, stutter_user_minutes / user_minutes) AS stutter_rate_uv,
    if(user_minutes = 0, NULL, (toInt64(user_minutes) - toInt64(stutter_user_minutes)) / user_minutes) AS zero_stutter_rate,
    if(user_minutes = 0, NULL, stutter_user_minutes_video / user_minutes) AS stutter_rate_uv_video,
    if(user_minutes = 0, NULL, stutter_user_minutes_audio / user_minutes) AS stutter_rate_uv_audio,
    sum(t.stalls) AS stalls,
    sum(t.stall_ms) AS stall_ms,
    sum(t.samples) AS samples,
    sum(t.stalled_samples) AS stalled_samples,
    if(samples = 0, NULL, stalled_samples / samples) AS stutter_rate_pv,

    sum(t.plays) AS plays,
    sum(t.plays_ok) AS plays_ok,
    if(plays = 0, NULL, plays_ok / plays) AS pull_connect_rate,
    sum(t.pull_connect_ms_sum) AS pull_connect_ms_sum,
    sumMap(t.pull_connect_ms_hist) AS pull_connect_ms_hist,
    if(hist_count(pull_connect_ms_hist) = 0, NULL, pull_connect_ms_sum / hist_count(pull_connect_ms_hist)) AS pull_connect_ms_avg,
    hist_quantile(pull_connect_ms_hist, 50) AS pull_connect_ms_p50,
    hist_quantile(pull_connect_ms_hist, 90) AS pull_connect_ms_p90,
    hist_quantile(pull_connect_ms_hist, 99) AS pull_connect_ms_p99,

    sum(t.first_frames) AS first_frames,
    sum(t.first_frame_ms_sum) AS first_frame_ms_sum,
    sumMap(t.first_frame_ms_hist) AS first_frame_ms_hist,
    if(hist_count(first_frame_ms_hist) = 0, NULL, first_frame_ms_sum / hist_count(first_frame_ms_hist)) AS first_frame_ms_avg,
    hist_quantile(first_frame_ms_hist, 50) AS first_frame_ms_p50,
    hist_quantile(first_frame_ms_hist, 90) AS first_frame_ms_p90,
    hist_quantile(first_frame_ms_hist, 99) AS first_frame_ms_p99,
    sum(t.fast_opens) AS fast_opens,
    if(first_frames = 0, NULL, fast_opens / first_frames) AS fast_open_rate,

    sum(t.video_buffer_ms_sum) AS video_buffer_ms_sum,
    sum(t.video_buffer_samples) AS video_buffer_samples,
    if(video_buffer_samples = 0, NULL, video_buffer_ms_sum / video_buffer_samples) AS video_buffer_ms_avg,
    sum(t.audio_buffer_ms_sum) AS audio_buffer_ms_sum,
    sum(t.audio_buffer_samples) AS audio_buffer_samples,
    if(audio_buffer_samples = 0, NULL, audio_buffer_ms_sum / audio_buffer_samples) AS audio_buffer_ms_avg,

    sum(t.play_errors) AS play_errors,
    sum(t.dns_lookups) AS dns_lookups,
    sum(t.dns_hits) AS dns_hits,
    if(dns_lookups = 0, NULL, dns_hits / dns_lookups) AS dns_hit_rate,

    sum(t.pushes) AS pushes,
    sum(t.pushes_ok) AS pushes_ok,
    if(pushes = 0, NULL, pushes_ok / pushes) AS push_connect_rate,
    sum(t.push_connect_ms_sum) AS push_connect_ms_sum,
    sumMap(t.push_connect_ms_hist) AS push_connect_ms_hist,
    if(hist_count(push_connect_ms_hist) = 0, NULL, push_connect_ms_sum / hist_count(push_connect_ms_hist)) AS push_connect_ms_avg,
    hist_quantile(push_connect_ms_hist, 50) AS push_connect_ms_p50,
    hist_quantile(push_connect_ms_hist, 90) AS push_connect_ms_p90,
    hist_quantile(push_connect_ms_hist, 99) AS push_connect_ms_p99,
    sum(t.push_ends) AS push_ends,
    sum(t.push_drops) AS push_drops,
    if(push_ends = 0, NULL, push_drops / push_ends) AS push_drop_rate,

    sum(t.relays) AS relays,
    sum(t.relays_failed) AS relays_failed,
    if(relays = 0, NULL, relays_failed / relays) AS relay_fail_rate,
    sum(t.relay_ms_sum) AS relay_ms_sum,
    sumMap(t.relay_ms_hist) AS relay_ms_hist,
    if(hist_count(relay_ms_hist) = 0, NULL, relay_ms_sum / hist_count(relay_ms_hist)) AS relay_ms_avg,
    hist_quantile(relay_ms_hist, 50) AS relay_ms_p50,
    hist_quantile(relay_ms_hist, 90) AS relay_ms_p90,
    hist_quantile(relay_ms_hist, 99) AS relay_ms_p99
FROM client_day AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW cdn_day_metrics {{.OnCluster}} AS
WITH
    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    max(t.written_at) AS written_at,

    sum(t.requests) AS requests,
    sum(t.bytes) AS bytes,
    bytes * 8 / 86400 / 1000000 AS bandwidth_mbps,
    sum(t.errors_4xx) AS errors_4xx,
    sum(t.errors_5xx) AS errors_5xx,
    if(requests = 0, NULL, errors_4xx / requests) AS errors_4xx_rate,
    if(requests = 0, NULL, errors_5xx / requests) AS errors_5xx_rate,
    sum(t.ttfb_ms_sum) AS ttfb_ms_sum,
    sumMap(t.ttfb_ms_hist) AS ttfb_ms_hist,
    if(hist_count(ttfb_ms_hist) = 0, NULL, ttfb_ms_sum / hist_count(ttfb_ms_hist)) AS ttfb_ms_avg,
    hist_quantile(ttfb_ms_hist, 50) AS ttfb_ms_p50,
    hist_quantile(ttfb_ms_hist, 90) AS ttfb_ms_p90,
    hist_quantile(ttfb_ms_hist, 99) AS ttfb_ms_p99
FROM cdn_day AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW origin_day_metrics {{.OnCluster}} AS
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    max(t.written_at) AS written_at,

    sum(t.data_minutes) AS data_minutes,
    sum(t.no_data_minutes) AS no_data_minutes,
    sum(t.samples) AS samples,
    sum(t.fps_sum) AS fps_sum,
    if(samples = 0, NULL, fps_sum / samples) AS fps_avg,
    if(samples = 0, NULL, minIf(t.fps_min, t.samples > 0)) AS fps_min,
    sum(t.bitrate_kbps_sum) AS bitrate_kbps_sum,
    if(samples = 0, NULL, bitrate_kbps_sum / samples) AS bitrate_kbps_avg,
    if(samples = 0, NULL, minIf(t.bitrate_kbps_min, t.samples > 0)) AS bitrate_kbps_min,
    sum(t.rtt_ms_sum) AS rtt_ms_sum,
    if(samples = 0, NULL, rtt_ms_sum / samples) AS rtt_ms_avg
FROM origin_day AS t FINAL
GROUP BY window_start, grouping, dims_key;

-- +goose Down
DROP VIEW IF EXISTS origin_day_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS origin_hour_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS cdn_day_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS cdn_hour_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS client_day_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS client_hour_metrics {{.OnCluster}} SYNC;
{{if .Cluster -}}
DROP TABLE IF EXISTS origin_day {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS origin_hour {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS cdn_day {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS cdn_hour {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS client_day {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS client_hour {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "origin_day"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "origin_hour"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "cdn_day"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "cdn_hour"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "client_day"}} {{.OnCluster}} SYNC;
DROP TABLE IF EXISTS {{.Table "client_hour"}} {{.OnCluster}} SYNC;
