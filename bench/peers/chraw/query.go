package chraw

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/schemas"
)

// Query is the SQL of one source's metrics with what is needed to turn its
// result rows into offline-format rows.
type Query struct {
	Source string // client, cdn, origin
	SQL    string
	// Sets are the grouping sets in configured order; DimCols the union of
	// their dimensions, in first-appearance order, selected as d_<name>.
	Sets    [][]string
	DimCols []string
	// Metrics are the metric columns after window_ms and the dims, in
	// output order; Bool marks boolean ones (no_data).
	Metrics []MetricCol
	// Args are the values bound to the SQL's ? placeholders (none for the
	// whole-table queries).
	Args []any
}

// MetricCol is one metric column of a query result.
type MetricCol struct {
	Name string
	Bool bool
}

// Settings that every query needs: exact counting must not spill into
// approximate paths, and GROUPING SETS fill the dimensions a set does not
// group by with ” (never a value: missing ones are already 'unknown').
var querySettings = " SETTINGS group_by_use_nulls = 0"

// checkSets validates grouping sets against the event dimensions: only
// those names ever reach SQL.
func checkSets(source string, sets [][]string) error {
	for i, set := range sets {
		seen := map[string]bool{}
		for _, d := range set {
			f, ok := schemas.ParseField(d)
			if !ok || f == schemas.FieldUserID || f == schemas.FieldSessionID {
				return fmt.Errorf("grouping_sets.%s[%d]: %q is not a dimension", source, i, d)
			}
			if seen[d] {
				return fmt.Errorf("grouping_sets.%s[%d]: %q listed twice", source, i, d)
			}
			seen[d] = true
		}
	}
	return nil
}

func dimCols(sets [][]string) []string {
	var cols []string
	for _, set := range sets {
		for _, d := range set {
			if !slices.Contains(cols, d) {
				cols = append(cols, d)
			}
		}
	}
	return cols
}

// inner selects one source's events with the window and the dimensions
// (missing → 'unknown') of every grouping set.
func inner(db, table, where string, dims []string, extra ...string) string {
	var b strings.Builder
	b.WriteString("SELECT toInt64(intDiv(toUnixTimestamp64Milli(ts), 60000) * 60000) AS window_ms")
	for _, d := range dims {
		fmt.Fprintf(&b, ", if(empty(%[1]s), 'unknown', toString(%[1]s)) AS d_%[1]s", d)
	}
	for _, e := range extra {
		b.WriteString(", ")
		b.WriteString(e)
	}
	fmt.Fprintf(&b, " FROM `%s`.`%s` WHERE %s", db, table, where)
	return b.String()
}

func groupingSets(sets [][]string) string {
	parts := make([]string, len(sets))
	for i, set := range sets {
		cols := []string{"window_ms"}
		for _, d := range set {
			cols = append(cols, "d_"+d)
		}
		parts[i] = "(" + strings.Join(cols, ", ") + ")"
	}
	return "GROUPING SETS (" + strings.Join(parts, ", ") + ")"
}

func dimSelect(dims []string) string {
	var b strings.Builder
	for _, d := range dims {
		fmt.Fprintf(&b, ", d_%s", d)
	}
	return b.String()
}

// quantiles returns the outer expressions <name>_p50/_p90/_p99 and _avg
// from the inner columns <name>_v (the values) and <name>_sum: the
// p-quantile is the value at rank ⌈p·n⌉ of the sorted values, the rank
// computed in integers as intDiv(n·P + 99, 100), null when n = 0.
func quantiles(name string) []string {
	out := []string{fmt.Sprintf("arraySort(%[1]s_v) AS %[1]s_sorted", name)}
	for _, p := range []int{50, 90, 99} {
		out = append(out, fmt.Sprintf(
			"if(empty(%[1]s_sorted), NULL, toFloat64(%[1]s_sorted[intDiv(length(%[1]s_sorted) * %[2]d + 99, 100)])) AS %[1]s_p%[2]d", name, p))
	}
	out = append(out, fmt.Sprintf("if(empty(%[1]s_v), NULL, %[1]s_sum / length(%[1]s_v)) AS %[1]s_avg", name))
	return out
}

func quantileNames(name string) []MetricCol {
	return []MetricCol{{Name: name + "_p50"}, {Name: name + "_p90"}, {Name: name + "_p99"}, {Name: name + "_avg"}}
}

func rate(name, num, den string) string {
	return fmt.Sprintf("if(%[3]s = 0, NULL, %[2]s / %[3]s) AS %[1]s", name, num, den)
}

func names(ns ...string) []MetricCol {
	out := make([]MetricCol, len(ns))
	for i, n := range ns {
		out[i] = MetricCol{Name: n}
	}
	return out
}

// ClientQuery computes the client metrics of docs/METRICS.md for every grouping set.
// Attribution follows from grouping each event by its own dimension values:
// a user counts in a key if one of their pull-side events carries the key
// (uniqExactIf over pull-side events), is a stutter user of it if one of
// their stalls of ≥ 2000 ms carries it, and counts follow their own event.
func ClientQuery(db, table string, sets [][]string) (Query, error) {
	return clientQuery(db, table, "type <= 'dns'", sets)
}

// ClientWindowQuery is ClientQuery over the one-minute window that starts
// at windowMS (Unix ms) only, with its bounds bound as parameters: what a
// dashboard on this peer runs to show one window.
func ClientWindowQuery(db, table string, sets [][]string, windowMS int64) (Query, error) {
	if err := CheckIdent("database", db); err != nil {
		return Query{}, err
	}
	if err := CheckIdent("table", table); err != nil {
		return Query{}, err
	}
	// The raw table is ordered by (type, ts): the bounds select one range.
	q, err := clientQuery(db, table, "type <= 'dns' AND ts >= fromUnixTimestamp64Milli(?) AND ts < fromUnixTimestamp64Milli(?)", sets)
	if err != nil {
		return Query{}, err
	}
	q.SQL += querySettings
	q.Args = []any{windowMS, windowMS + aggregator.WindowMS}
	return q, nil
}

func clientQuery(db, table, where string, sets [][]string) (Query, error) {
	if err := checkSets("client", sets); err != nil {
		return Query{}, err
	}
	dims := dimCols(sets)
	src := inner(db, table, where, dims,
		"user_id", "type", "ok", "connect_ms", "first_frame_ms", "duration_ms", "media",
		"video_buffer_ms", "audio_buffer_ms", "stalled", "reason", "dropped", "cache_hit",
		"type IN ('play_start', 'first_frame', 'stall', 'heartbeat', 'play_end') AS pull",
		"type = 'stall' AND duration_ms >= "+strconv.Itoa(schemas.StallThresholdMS)+" AS is_stall")
	agg := []string{
		"uniqExactIf(user_id, pull) AS users",
		"uniqExactIf(user_id, is_stall) AS stutter_users",
		"uniqExactIf(user_id, is_stall AND media = 'video') AS stutter_users_video",
		"uniqExactIf(user_id, is_stall AND media = 'audio') AS stutter_users_audio",
		"countIf(is_stall) AS stalls",
		"sumIf(duration_ms, is_stall) AS stall_ms",
		"countIf(type = 'heartbeat') AS samples",
		"countIf(type = 'heartbeat' AND stalled) AS stalled_samples",
		"countIf(type = 'play_start') AS plays",
		"countIf(type = 'play_start' AND ok) AS plays_ok",
		"groupArrayIf(connect_ms, type = 'play_start' AND ok) AS pull_connect_ms_v",
		"sumIf(connect_ms, type = 'play_start' AND ok) AS pull_connect_ms_sum",
		"countIf(type = 'first_frame') AS first_frames",
		"groupArrayIf(first_frame_ms, type = 'first_frame') AS first_frame_ms_v",
		"sumIf(first_frame_ms, type = 'first_frame') AS first_frame_ms_sum",
		"countIf(type = 'first_frame' AND first_frame_ms <= 1000) AS fast_opens",
		// sumIf/countIf skip NULLs: only heartbeats carrying a buffer count.
		"sumIf(video_buffer_ms, type = 'heartbeat') AS video_buffer_ms_sum",
		"countIf(type = 'heartbeat' AND video_buffer_ms IS NOT NULL) AS video_buffer_samples",
		"sumIf(audio_buffer_ms, type = 'heartbeat') AS audio_buffer_ms_sum",
		"countIf(type = 'heartbeat' AND audio_buffer_ms IS NOT NULL) AS audio_buffer_samples",
		"countIf(type = 'play_end' AND reason = 'error') AS play_errors",
		"countIf(type = 'dns') AS dns_lookups",
		"countIf(type = 'dns' AND cache_hit) AS dns_hits",
		"countIf(type = 'push_start') AS pushes",
		"countIf(type = 'push_start' AND ok) AS pushes_ok",
		"groupArrayIf(connect_ms, type = 'push_start' AND ok) AS push_connect_ms_v",
		"sumIf(connect_ms, type = 'push_start' AND ok) AS push_connect_ms_sum",
		"countIf(type = 'push_end') AS push_ends",
		"countIf(type = 'push_end' AND dropped) AS push_drops",
		"countIf(type = 'relay') AS relays",
		"countIf(type = 'relay' AND NOT ok) AS relays_failed",
		"groupArrayIf(duration_ms, type = 'relay' AND ok) AS relay_ms_v",
		"sumIf(duration_ms, type = 'relay' AND ok) AS relay_ms_sum",
	}
	var out []string
	var metrics []MetricCol
	add := func(exprs []string, ms []MetricCol) {
		out = append(out, exprs...)
		metrics = append(metrics, ms...)
	}
	add([]string{"users", "stutter_users", "stutter_users_video", "stutter_users_audio",
		rate("stutter_rate_uv", "stutter_users", "users"),
		rate("zero_stutter_rate", "(users - stutter_users)", "users"),
		"stalls", "stall_ms", "samples", "stalled_samples",
		rate("stutter_rate_pv", "stalled_samples", "samples"),
		"plays", "plays_ok", rate("pull_connect_rate", "plays_ok", "plays")},
		names("users", "stutter_users", "stutter_users_video", "stutter_users_audio", "stutter_rate_uv",
			"zero_stutter_rate", "stalls", "stall_ms", "samples", "stalled_samples", "stutter_rate_pv",
			"plays", "plays_ok", "pull_connect_rate"))
	add(quantiles("pull_connect_ms"), quantileNames("pull_connect_ms"))
	add([]string{"first_frames"}, names("first_frames"))
	add(quantiles("first_frame_ms"), quantileNames("first_frame_ms"))
	add([]string{
		rate("fast_open_rate", "fast_opens", "first_frames"),
		rate("video_buffer_ms_avg", "video_buffer_ms_sum", "video_buffer_samples"),
		rate("audio_buffer_ms_avg", "audio_buffer_ms_sum", "audio_buffer_samples"),
		"play_errors", "dns_lookups", rate("dns_hit_rate", "dns_hits", "dns_lookups"),
		"pushes", "pushes_ok", rate("push_connect_rate", "pushes_ok", "pushes")},
		names("fast_open_rate", "video_buffer_ms_avg", "audio_buffer_ms_avg", "play_errors",
			"dns_lookups", "dns_hit_rate", "pushes", "pushes_ok", "push_connect_rate"))
	add(quantiles("push_connect_ms"), quantileNames("push_connect_ms"))
	add([]string{"push_ends", "push_drops", rate("push_drop_rate", "push_drops", "push_ends"),
		"relays", "relays_failed", rate("relay_fail_rate", "relays_failed", "relays")},
		names("push_ends", "push_drops", "push_drop_rate", "relays", "relays_failed", "relay_fail_rate"))
	add(quantiles("relay_ms"), quantileNames("relay_ms"))

	sql := outerSQL(dims, out, metrics, agg, src, sets)
	return Query{Source: "client", SQL: sql, Sets: sets, DimCols: dims, Metrics: metrics}, nil
}

// outerSQL assembles SELECT window_ms, dims, metrics FROM (aggregation).
// Helper columns of the outer SELECT (e.g. *_sorted) are computed but only
// the metric columns are returned, in order.
func outerSQL(dims []string, outer []string, metrics []MetricCol, agg []string, src string, sets [][]string) string {
	var b strings.Builder
	b.WriteString("SELECT window_ms")
	b.WriteString(dimSelect(dims))
	for _, m := range metrics {
		b.WriteString(", ")
		b.WriteString(m.Name)
	}
	b.WriteString(" FROM (SELECT *")
	for _, e := range outer {
		if strings.Contains(e, " AS ") {
			b.WriteString(", ")
			b.WriteString(e)
		}
	}
	b.WriteString(" FROM (SELECT window_ms")
	b.WriteString(dimSelect(dims))
	for _, a := range agg {
		b.WriteString(", ")
		b.WriteString(a)
	}
	b.WriteString(" FROM (")
	b.WriteString(src)
	b.WriteString(") GROUP BY ")
	b.WriteString(groupingSets(sets))
	b.WriteString("))")
	return b.String()
}

// CDNQuery computes the CDN metrics for every grouping set.
func CDNQuery(db, table string, sets [][]string) (Query, error) {
	if err := checkSets("cdn", sets); err != nil {
		return Query{}, err
	}
	dims := dimCols(sets)
	src := inner(db, table, "type = 'cdn_request'", dims, "status", "bytes", "ttfb_ms")
	agg := []string{
		"count() AS requests",
		"sum(bytes) AS bytes",
		"countIf(status BETWEEN 400 AND 499) AS errors_4xx",
		"countIf(status BETWEEN 500 AND 599) AS errors_5xx",
		"groupArray(ttfb_ms) AS ttfb_ms_v",
		"sum(ttfb_ms) AS ttfb_ms_sum",
	}
	outer := []string{
		"requests", "bytes", "bytes * 8 / 60 / 1000000 AS bandwidth_mbps",
		"errors_4xx", rate("errors_4xx_rate", "errors_4xx", "requests"),
		"errors_5xx", rate("errors_5xx_rate", "errors_5xx", "requests"),
	}
	metrics := names("requests", "bytes", "bandwidth_mbps", "errors_4xx", "errors_4xx_rate", "errors_5xx", "errors_5xx_rate")
	outer = append(outer, quantiles("ttfb_ms")...)
	metrics = append(metrics, quantileNames("ttfb_ms")...)
	sql := outerSQL(dims, outer, metrics, agg, src, sets)
	return Query{Source: "cdn", SQL: sql, Sets: sets, DimCols: dims, Metrics: metrics}, nil
}

// OriginQuery computes the origin metrics for every grouping set, and the
// no_data rows: a key seen in one of the noDataN windows before W and
// silent in W gets a row with no_data = true and every other metric null,
// for every W up to the window of the newest event of any source (the end
// of the input, as in qoscope's offline mode).
func OriginQuery(db, table string, sets [][]string, noDataN int) (Query, error) {
	if err := checkSets("origin", sets); err != nil {
		return Query{}, err
	}
	if noDataN < 1 || noDataN > 60 {
		return Query{}, fmt.Errorf("origin_no_data_minutes: %d is not between 1 and 60", noDataN)
	}
	dims := dimCols(sets)
	src := inner(db, table, "type = 'origin_stats'", dims, "fps", "bitrate_kbps", "rtt_ms")
	metrics := []MetricCol{{Name: "no_data", Bool: true}}
	metrics = append(metrics, names("samples", "fps_avg", "fps_min", "bitrate_kbps_avg", "bitrate_kbps_min", "rtt_ms_avg")...)

	var b strings.Builder
	fmt.Fprintf(&b, "WITH origin_events AS (%s), ", src)
	fmt.Fprintf(&b, "(SELECT toInt64(intDiv(toUnixTimestamp64Milli(max(ts)), 60000) * 60000) FROM `%s`.`%s`) AS last_window ", db, table)
	b.WriteString("SELECT window_ms")
	b.WriteString(dimSelect(dims))
	b.WriteString(", false AS no_data, toNullable(count()) AS samples, toNullable(avg(fps)) AS fps_avg, toNullable(min(fps)) AS fps_min," +
		" toNullable(avg(bitrate_kbps)) AS bitrate_kbps_avg, toNullable(min(bitrate_kbps)) AS bitrate_kbps_min," +
		" toNullable(avg(rtt_ms)) AS rtt_ms_avg FROM origin_events GROUP BY ")
	b.WriteString(groupingSets(sets))
	for _, set := range sets {
		// One branch per grouping set: the window after each window a key
		// was seen in, up to noDataN later, minus the windows it was seen in.
		keyCols := []string{"window_ms"}
		for _, d := range set {
			keyCols = append(keyCols, "d_"+d)
		}
		keys := strings.Join(keyCols[1:], ", ")
		sep := ""
		if keys != "" {
			sep = ", "
		}
		b.WriteString(" UNION ALL SELECT w AS window_ms")
		for _, d := range dims {
			if slices.Contains(set, d) {
				fmt.Fprintf(&b, ", d_%s", d)
			} else {
				fmt.Fprintf(&b, ", '' AS d_%s", d)
			}
		}
		b.WriteString(", true AS no_data, NULL AS samples, NULL AS fps_avg, NULL AS fps_min, NULL AS bitrate_kbps_avg," +
			" NULL AS bitrate_kbps_min, NULL AS rtt_ms_avg")
		fmt.Fprintf(&b, " FROM (SELECT DISTINCT window_ms + 60000 * k AS w%s%s FROM (SELECT DISTINCT %s FROM origin_events)"+
			" ARRAY JOIN range(1, %d) AS k)", sep, keys, strings.Join(keyCols, ", "), noDataN+1)
		fmt.Fprintf(&b, " WHERE w <= last_window AND (w%s%s) NOT IN (SELECT %s FROM origin_events)", sep, keys, strings.Join(keyCols, ", "))
	}
	return Query{Source: "origin", SQL: b.String(), Sets: sets, DimCols: dims, Metrics: metrics}, nil
}

// Queries builds the three source queries for grouping sets gs (defaults
// from aggregator.DefaultGroupingSets), skipping a source without sets.
func Queries(db, table string, gs aggregator.GroupingSets, noDataN int) ([]Query, error) {
	if err := CheckIdent("database", db); err != nil {
		return nil, err
	}
	if err := CheckIdent("table", table); err != nil {
		return nil, err
	}
	var qs []Query
	if len(gs.Client) > 0 {
		q, err := ClientQuery(db, table, gs.Client)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	if len(gs.CDN) > 0 {
		q, err := CDNQuery(db, table, gs.CDN)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	if len(gs.Origin) > 0 {
		q, err := OriginQuery(db, table, gs.Origin, noDataN)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	for i := range qs {
		qs[i].SQL += querySettings
	}
	return qs, nil
}
