-- Views that present the one-minute tables under the public metric names
-- (issue 4): per (window_start, grouping, dims_key) they take the surviving
-- version of every partial row (FINAL), sum across topics and Kafka
-- partitions, and derive rates, means and quantiles.
--
--   * A rate or mean whose denominator is 0 is NULL, never 0.
--   * <name>_p50/_p90/_p99: nearest rank on the merged histogram. The p-quantile
--     of n values is the value at rank ceil(p*n), computed in integers as
--     intDiv(n*P + 99, 100) for P = 50, 90, 99 so that no float rounding
--     moves the rank; the result is the representative value of the first
--     bucket whose cumulative count reaches the rank (relative error <= 1 %,
--     see 0001_minute_tables.sql for the bucket function). NULL when n = 0.
--   * <name>_avg for a histogram metric = <name>_sum / (histogram count).
--   * partial_rows = rows summed (topics x partitions that saw the key);
--     final = 1 when every one of those rows is final.
--   * The merged histograms are returned too, for quantiles the views do not
--     name and for merging further (e.g. over several minutes) in the caller.
--
-- Filters on window_start, grouping and dims_key are pushed below FINAL and
-- GROUP BY by the server, so selecting a few minutes of one grouping stays
-- cheap. Hourly and daily rollups get their own tables and views later.

-- +goose NO TRANSACTION
-- +goose Up
CREATE OR REPLACE VIEW client_minute_metrics {{.OnCluster}} AS
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
    min(t.final) AS final,
    max(t.written_at) AS written_at,

    sum(t.users) AS users,
    sum(t.stutter_users) AS stutter_users,
    sum(t.stutter_users_video) AS stutter_users_video,
    sum(t.stutter_users_audio) AS stutter_users_audio,
    if(users = 0, NULL, stutter_users / users) AS stutter_rate_uv,
    if(users = 0, NULL, (toInt64(users) - toInt64(stutter_users)) / users) AS zero_stutter_rate,
    if(users = 0, NULL, stutter_users_video / users) AS stutter_rate_uv_video,
    if(users = 0, NULL, stutter_users_audio / users) AS stutter_rate_uv_audio,
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
FROM client_minute AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW cdn_minute_metrics {{.OnCluster}} AS
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
    min(t.final) AS final,
    max(t.written_at) AS written_at,

    sum(t.requests) AS requests,
    sum(t.bytes) AS bytes,
    bytes * 8 / 60 / 1000000 AS bandwidth_mbps,
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
FROM cdn_minute AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW origin_minute_metrics {{.OnCluster}} AS
SELECT
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
    min(t.final) AS final,
    max(t.written_at) AS written_at,

    sum(t.samples) AS samples,
    min(t.no_data) AS no_data,
    sum(t.fps_sum) AS fps_sum,
    if(samples = 0, NULL, fps_sum / samples) AS fps_avg,
    if(samples = 0, NULL, minIf(t.fps_min, t.samples > 0)) AS fps_min,
    sum(t.bitrate_kbps_sum) AS bitrate_kbps_sum,
    if(samples = 0, NULL, bitrate_kbps_sum / samples) AS bitrate_kbps_avg,
    if(samples = 0, NULL, minIf(t.bitrate_kbps_min, t.samples > 0)) AS bitrate_kbps_min,
    sum(t.rtt_ms_sum) AS rtt_ms_sum,
    if(samples = 0, NULL, rtt_ms_sum / samples) AS rtt_ms_avg
FROM origin_minute AS t FINAL
GROUP BY window_start, grouping, dims_key;

CREATE OR REPLACE VIEW late_events_metrics {{.OnCluster}} AS
SELECT
    window_start,
    source,
    sum(t.count) AS late_events,
    max(t.written_at) AS written_at
FROM late_events AS t FINAL
GROUP BY window_start, source;

-- +goose Down
DROP VIEW IF EXISTS late_events_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS origin_minute_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS cdn_minute_metrics {{.OnCluster}} SYNC;
DROP VIEW IF EXISTS client_minute_metrics {{.OnCluster}} SYNC;
