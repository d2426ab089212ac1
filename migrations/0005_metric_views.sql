-- The metric views of every source and period (minute, hour, day) from one
-- template per source, replacing the copies of 0002 (minute) and 0004 (hour,
-- day) with the same definitions: internal/migrate's
-- TestViewTemplateMatchesHandWritten checks that this file renders each of
-- those views statement for statement. The column list of every view is
-- the metric catalogue's (query/catalog.go; TestViewColumnsMatchCatalogue
-- checks it on a real server).
--
-- What differs by period is one parameter (PeriodData in
-- internal/migrate/template.go): the table read (<source>_<period>), the
-- length of the period (bandwidth is a mean over it), and the minute-only
-- columns: the final flag, distinct users (rollups carry user-minutes,
-- which are not distinct users, so they keep their own names) and origin
-- no_data (rollups count data_minutes and no_data_minutes instead).
--
-- To change a view: copy the templates into a new migration, edit them
-- there and re-create the views; applied files are never edited.
-- Definitions of the derivations: 0002_minute_views.sql and
-- docs/METRICS.md ("Rules shared by every metric").

{{define "hist_functions" -}}
WITH
    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count
{{- end}}

{{define "hist_metrics" -}}
    sum(t.{{.}}_sum) AS {{.}}_sum,
    sumMap(t.{{.}}_hist) AS {{.}}_hist,
    if(hist_count({{.}}_hist) = 0, NULL, {{.}}_sum / hist_count({{.}}_hist)) AS {{.}}_avg,
    hist_quantile({{.}}_hist, 50) AS {{.}}_p50,
    hist_quantile({{.}}_hist, 90) AS {{.}}_p90,
    hist_quantile({{.}}_hist, 99) AS {{.}}_p99
{{- end}}

{{define "key_columns" -}}
    window_start,
    grouping,
    dims_key,
    any(t.dims) AS dims,
    count() AS partial_rows,
{{- if .Minute}}
    min(t.final) AS final,
{{- end}}
    max(t.written_at) AS written_at,
{{- end}}

{{define "client_metrics" -}}
CREATE OR REPLACE VIEW client_{{.Name}}_metrics {{.OnCluster}} AS
{{template "hist_functions"}}
SELECT
{{template "key_columns" .}}
{{if .Minute}}
    sum(t.users) AS users,
    sum(t.stutter_users) AS stutter_users,
    sum(t.stutter_users_video) AS stutter_users_video,
    sum(t.stutter_users_audio) AS stutter_users_audio,
    if(users = 0, NULL, stutter_users / users) AS stutter_rate_uv,
    if(users = 0, NULL, (toInt64(users) - toInt64(stutter_users)) / users) AS zero_stutter_rate,
    if(users = 0, NULL, stutter_users_video / users) AS stutter_rate_uv_video,
    if(users = 0, NULL, stutter_users_audio / users) AS stutter_rate_uv_audio,
{{- else}}
    sum(t.user_minutes) AS user_minutes,
    sum(t.stutter_user_minutes) AS stutter_user_minutes,
    sum(t.stutter_user_minutes_video) AS stutter_user_minutes_video,
    sum(t.stutter_user_minutes_audio) AS stutter_user_minutes_audio,
    if(user_minutes = 0, NULL, stutter_user_minutes / user_minutes) AS stutter_rate_uv,
    if(user_minutes = 0, NULL, (toInt64(user_minutes) - toInt64(stutter_user_minutes)) / user_minutes) AS zero_stutter_rate,
    if(user_minutes = 0, NULL, stutter_user_minutes_video / user_minutes) AS stutter_rate_uv_video,
    if(user_minutes = 0, NULL, stutter_user_minutes_audio / user_minutes) AS stutter_rate_uv_audio,
{{- end}}
    sum(t.stalls) AS stalls,
    sum(t.stall_ms) AS stall_ms,
    sum(t.samples) AS samples,
    sum(t.stalled_samples) AS stalled_samples,
    if(samples = 0, NULL, stalled_samples / samples) AS stutter_rate_pv,

    sum(t.plays) AS plays,
    sum(t.plays_ok) AS plays_ok,
    if(plays = 0, NULL, plays_ok / plays) AS pull_connect_rate,
{{template "hist_metrics" "pull_connect_ms"}},

    sum(t.first_frames) AS first_frames,
{{template "hist_metrics" "first_frame_ms"}},
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
{{template "hist_metrics" "push_connect_ms"}},
    sum(t.push_ends) AS push_ends,
    sum(t.push_drops) AS push_drops,
    if(push_ends = 0, NULL, push_drops / push_ends) AS push_drop_rate,

    sum(t.relays) AS relays,
    sum(t.relays_failed) AS relays_failed,
    if(relays = 0, NULL, relays_failed / relays) AS relay_fail_rate,
{{template "hist_metrics" "relay_ms"}}
FROM client_{{.Name}} AS t FINAL
GROUP BY window_start, grouping, dims_key;
{{- end}}

{{define "cdn_metrics" -}}
CREATE OR REPLACE VIEW cdn_{{.Name}}_metrics {{.OnCluster}} AS
{{template "hist_functions"}}
SELECT
{{template "key_columns" .}}

    sum(t.requests) AS requests,
    sum(t.bytes) AS bytes,
    bytes * 8 / {{.Seconds}} / 1000000 AS bandwidth_mbps,
    sum(t.errors_4xx) AS errors_4xx,
    sum(t.errors_5xx) AS errors_5xx,
    if(requests = 0, NULL, errors_4xx / requests) AS errors_4xx_rate,
    if(requests = 0, NULL, errors_5xx / requests) AS errors_5xx_rate,
{{template "hist_metrics" "ttfb_ms"}}
FROM cdn_{{.Name}} AS t FINAL
GROUP BY window_start, grouping, dims_key;
{{- end}}

{{define "origin_metrics" -}}
CREATE OR REPLACE VIEW origin_{{.Name}}_metrics {{.OnCluster}} AS
SELECT
{{template "key_columns" .}}
{{if .Minute}}
    sum(t.samples) AS samples,
    min(t.no_data) AS no_data,
{{- else}}
    sum(t.data_minutes) AS data_minutes,
    sum(t.no_data_minutes) AS no_data_minutes,
    sum(t.samples) AS samples,
{{- end}}
    sum(t.fps_sum) AS fps_sum,
    if(samples = 0, NULL, fps_sum / samples) AS fps_avg,
    if(samples = 0, NULL, minIf(t.fps_min, t.samples > 0)) AS fps_min,
    sum(t.bitrate_kbps_sum) AS bitrate_kbps_sum,
    if(samples = 0, NULL, bitrate_kbps_sum / samples) AS bitrate_kbps_avg,
    if(samples = 0, NULL, minIf(t.bitrate_kbps_min, t.samples > 0)) AS bitrate_kbps_min,
    sum(t.rtt_ms_sum) AS rtt_ms_sum,
    if(samples = 0, NULL, rtt_ms_sum / samples) AS rtt_ms_avg
FROM origin_{{.Name}} AS t FINAL
GROUP BY window_start, grouping, dims_key;
{{- end}}

{{define "all_views" -}}
{{template "client_metrics" .Period "minute"}}

{{template "cdn_metrics" .Period "minute"}}

{{template "origin_metrics" .Period "minute"}}

{{template "client_metrics" .Period "hour"}}

{{template "cdn_metrics" .Period "hour"}}

{{template "origin_metrics" .Period "hour"}}

{{template "client_metrics" .Period "day"}}

{{template "cdn_metrics" .Period "day"}}

{{template "origin_metrics" .Period "day"}}
{{- end}}

-- +goose NO TRANSACTION
-- +goose Up
{{template "all_views" .}}

-- +goose Down
-- The views of 0002 and 0004 are exactly what the templates render, so
-- undoing this migration is re-creating the same views (the Down of 0004
-- and 0002 then drops them).
{{template "all_views" .}}
