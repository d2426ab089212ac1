package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/qoscope/qoscope/query"
)

// DatasourceUID is the uid of the ClickHouse data source in
// provisioning/datasources/qoscope.yaml; every panel and variable names it.
const DatasourceUID = "qoscope-clickhouse"

// DatasourceType is the grafana-clickhouse-datasource plugin's id.
const DatasourceType = "grafana-clickhouse-datasource"

// Plugin query formats (its backend's sqlutil format option).
const (
	formatTimeSeries = 0
	formatTable      = 1
)

type obj = map[string]any

type builder struct {
	cat *query.Catalog
	err error
}

// Build renders every dashboard from the metric catalogue: file name (in
// dashboards/) → JSON. The files are generated so that every metric and
// column a panel reads comes from the catalogue; edit this file and run
// `go test ./dashboards/grafana -run TestDashboardFilesUpToDate -update`.
func Build(cat *query.Catalog) (map[string][]byte, error) {
	b := &builder{cat: cat}
	out := map[string][]byte{}
	for name, d := range map[string]obj{
		"headline.json": b.headline(),
		"regions.json":  b.regions(),
		"vendors.json":  b.vendors(),
		"streams.json":  b.streams(),
		"alerts.json":   b.alerts(),
	} {
		if b.err != nil {
			return nil, b.err
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("cannot encode %s: %w", name, err)
		}
		out[name] = buf.Bytes()
	}
	return out, nil
}

func (b *builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func datasource() obj { return obj{"type": DatasourceType, "uid": DatasourceUID} }

// layout places panels left to right, wrapping at Grafana's 24 columns.
type layout struct{ x, y, rowH int }

func (l *layout) place(w, h int) obj {
	if l.x+w > 24 {
		l.x, l.y, l.rowH = 0, l.y+l.rowH, 0
	}
	p := obj{"x": l.x, "y": l.y, "w": w, "h": h}
	l.x += w
	l.rowH = max(l.rowH, h)
	return p
}

func target(sql string, format int) obj {
	qt := "table"
	if format == formatTimeSeries {
		qt = "timeseries"
	}
	return obj{
		"datasource": datasource(),
		"editorType": "sql",
		"format":     format,
		"queryType":  qt,
		"rawSql":     sql,
		"refId":      "A",
	}
}

// field is one column a panel shows, by name: the test checks every such
// name is a column the query returns.
type field struct {
	Name    string
	Display string
	Unit    string
}

func overrides(fields []field) []any {
	var out []any
	for _, f := range fields {
		var props []any
		if f.Display != "" {
			props = append(props, obj{"id": "displayName", "value": f.Display})
		}
		if f.Unit != "" {
			props = append(props, obj{"id": "unit", "value": f.Unit})
		}
		out = append(out, obj{"matcher": obj{"id": "byName", "options": f.Name}, "properties": props})
	}
	return out
}

// unitOf maps a catalogue unit to a Grafana unit.
func (b *builder) unitOf(source, metric string) string {
	m, err := b.cat.Metric(source, metric)
	if err != nil {
		b.fail(err)
		return ""
	}
	switch m.Unit {
	case "ratio":
		return "percentunit"
	case "ms":
		return "ms"
	case "kbit/s":
		return "Kbits"
	case "Mbit/s":
		return "Mbits"
	case "users":
		return "short"
	}
	return "none"
}

func (b *builder) fieldsOf(source string, metrics ...string) []field {
	var fs []field
	for _, m := range metrics {
		fs = append(fs, field{Name: m, Unit: b.unitOf(source, m)})
	}
	return fs
}

func (b *builder) panel(kind, title, desc string, pos obj, sql string, format int, fields []field) obj {
	return obj{
		"type":        kind,
		"title":       title,
		"description": desc,
		"datasource":  datasource(),
		"gridPos":     pos,
		"targets":     []any{target(sql, format)},
		"fieldConfig": obj{"defaults": obj{}, "overrides": overrides(fields)},
		"options":     obj{},
	}
}

func (b *builder) query(q seriesQuery) string {
	s, err := b.sql(q)
	if err != nil {
		b.fail(err)
	}
	return s
}

// timeseries is one panel of metrics over time; with keys in sel.By, one
// line per key (named by the keys' labels).
func (b *builder) timeseries(title, desc string, pos obj, sel selection, metrics ...string) obj {
	p := b.panel("timeseries", title, desc, pos, b.query(seriesQuery{Sel: sel, Metrics: metrics, Time: true}), formatTimeSeries, b.fieldsOf(sel.Source, metrics...))
	p["interval"] = "1m"
	if len(sel.By) > 0 {
		name := ""
		for i, d := range sel.By {
			if i > 0 {
				name += " / "
			}
			name += "${__field.labels." + d + "}"
		}
		if len(metrics) > 1 {
			name = "${__field.name} " + name
		}
		for _, o := range p["fieldConfig"].(obj)["overrides"].([]any) {
			o := o.(obj)
			o["properties"] = append(o["properties"].([]any), obj{"id": "displayName", "value": name})
		}
	}
	p["options"] = obj{"legend": obj{"displayMode": "table", "placement": "bottom", "calcs": []any{"lastNotNull", "max"}}, "tooltip": obj{"mode": "multi", "sort": "desc"}}
	return p
}

// stat shows the newest minute of one total metric with a sparkline of the
// last hour (minute view only: the newest minute may be provisional).
func (b *builder) stat(title string, pos obj, sel selection, metric string) obj {
	p := b.panel("stat", title, "Newest minute in the time range that has ended (the minute in progress is left out; the one shown may still be provisional, docs/METRICS.md \"Late data\"); sparkline: its last 60 minutes.",
		pos, b.query(seriesQuery{Sel: sel, Metrics: []string{metric}, Latest: 60}), formatTimeSeries, b.fieldsOf(sel.Source, metric))
	p["options"] = obj{
		"reduceOptions": obj{"calcs": []any{"lastNotNull"}, "fields": "", "values": false},
		"graphMode":     "area", "colorMode": "value", "textMode": "value",
	}
	return p
}

func (b *builder) table(title, desc string, pos obj, sql string, fields []field) obj {
	p := b.panel("table", title, desc, pos, sql, formatTable, fields)
	p["options"] = obj{"showHeader": true, "cellHeight": "sm"}
	return p
}

// heat colours a field's cells from green (0) to red.
func heat(p obj, name string) {
	fc := p["fieldConfig"].(obj)
	fc["overrides"] = append(fc["overrides"].([]any), obj{
		"matcher": obj{"id": "byName", "options": name},
		"properties": []any{
			obj{"id": "custom.cellOptions", "value": obj{"type": "color-background"}},
			obj{"id": "color", "value": obj{"mode": "continuous-GrYlRd"}},
		},
	})
}

func variable(name, label, sql string) obj {
	return obj{
		"type":       "query",
		"name":       name,
		"label":      label,
		"datasource": datasource(),
		"definition": sql,
		"query":      sql,
		"refresh":    2, // on time range change: the values seen in the range
		"multi":      true,
		"includeAll": true,
		"current":    obj{"selected": true, "text": []any{"All"}, "value": []any{"$__all"}},
		"options":    []any{},
		"sort":       1,
		"hide":       0,
		"regex":      "",
	}
}

func (b *builder) regionVariables() []any {
	var out []any
	for _, v := range []struct {
		f        filterVar
		label    string
		grouping string
	}{{varVendor, "Vendor", "vendor"}, {varProvince, "Province", "province"}, {varISP, "ISP", "isp"}} {
		sql, err := b.variableQuery("client", v.f, v.grouping)
		if err != nil {
			b.fail(err)
		}
		out = append(out, variable(v.f.Var, v.label, sql))
	}
	return out
}

func dashboard(uid, title, desc string, from string, vars []any, panels []any) obj {
	for i, p := range panels {
		p.(obj)["id"] = i + 1
	}
	return obj{
		"uid":                  uid,
		"title":                title,
		"description":          desc,
		"tags":                 []any{"qoscope"},
		"editable":             true,
		"graphTooltip":         1,
		"schemaVersion":        39,
		"version":              1,
		"timezone":             "utc",
		"refresh":              "1m",
		"time":                 obj{"from": from, "to": "now"},
		"fiscalYearStartMonth": 0,
		"liveNow":              false,
		"links": []any{obj{
			"type": "dashboards", "tags": []any{"qoscope"}, "asDropdown": true, "title": "qoscope", "includeVars": true, "keepTime": true,
		}},
		"annotations": obj{"list": []any{}},
		"templating":  obj{"list": vars},
		"panels":      panels,
	}
}

const regionNote = " With several values of a variable selected, rows of those keys are summed: a user seen in two keys in one minute counts in both."

func (b *builder) headline() obj {
	sel := selection{Source: "client", Filters: regionVars}
	var l layout
	var panels []any
	for _, s := range []struct{ title, metric string }{
		{"Users", "users"}, {"Stutter rate (UV)", "stutter_rate_uv"}, {"Zero-stutter rate", "zero_stutter_rate"},
		{"First frame p50", "first_frame_ms_p50"}, {"First frame p90", "first_frame_ms_p90"}, {"First frame p99", "first_frame_ms_p99"},
		{"Fast open (≤ 1 s)", "fast_open_rate"}, {"Pull connect", "pull_connect_rate"}, {"Push connect", "push_connect_rate"},
		{"Push drop", "push_drop_rate"},
	} {
		panels = append(panels, b.stat(s.title, l.place(3, 4), sel, s.metric))
	}
	long := " Over 2 days the hourly rollups are read, over 62 days the daily ones (docs/METRICS.md); rates are recomputed from summed numerators and denominators." + regionNote
	l.place(24, 0)
	panels = append(panels,
		b.timeseries("Users (mean per minute)", "Distinct users per minute; a point of several minutes is their mean (a sum of per-minute users is not a number of users). The current hour or day of a rollup holds its final minutes only."+long, l.place(12, 8), sel, "users"),
		b.timeseries("Stutter rate (UV) and zero-stutter rate", "stutter users / users (≥ 1 stall ≥ 2 s in the minute); over several minutes stutter user-minutes / user-minutes."+long, l.place(12, 8), sel, "stutter_rate_uv", "zero_stutter_rate"),
		b.timeseries("First-frame time", "Nearest-rank quantiles of the merged histograms (≤ 1 % relative error)."+long, l.place(12, 8), sel, "first_frame_ms_p50", "first_frame_ms_p90", "first_frame_ms_p99"),
		b.timeseries("Fast open (first frame ≤ 1 s)", "Share of first frames within 1000 ms."+long, l.place(12, 8), sel, "fast_open_rate"),
		b.timeseries("Pull and push connect rate", "Successful connects / attempts."+long, l.place(12, 8), sel, "pull_connect_rate", "push_connect_rate"),
		b.timeseries("Push drop rate", "Pushes ended by disconnection / pushes ended."+long, l.place(12, 8), sel, "push_drop_rate"),
	)
	return dashboard("qoscope-headline", "qoscope — headline", "The war room's headline metrics (docs/METRICS.md) from the client views.", "now-6h", b.regionVariables(), panels)
}

func (b *builder) regions() obj {
	sel := selection{Source: "client", By: []string{"province", "isp"}, Filters: regionVars}
	metrics := []string{"users", "stutter_rate_uv", "zero_stutter_rate", "fast_open_rate", "first_frame_ms_p90", "pull_connect_rate"}
	var l layout
	desc := "Over the time range, per province × ISP, ranked by users (mean per minute)." + regionNote
	table := b.table("Province × ISP", desc, l.place(24, 10),
		b.query(seriesQuery{Sel: sel, Metrics: metrics, OrderBy: "users DESC", Limit: 500}),
		append([]field{{Name: "province", Display: "Province"}, {Name: "isp", Display: "ISP"}}, b.fieldsOf("client", metrics...)...))
	heat(table, "stutter_rate_uv")
	grid := b.table("Stutter rate (UV): province × ISP", "One row per province, one column per ISP, coloured by stutter rate."+regionNote, l.place(12, 12),
		b.query(seriesQuery{Sel: sel, Metrics: []string{"stutter_rate_uv"}, Limit: 2000}),
		[]field{{Name: "province"}, {Name: "isp"}, {Name: "stutter_rate_uv"}})
	grid["transformations"] = []any{obj{"id": "groupingToMatrix", "options": obj{"rowField": "province", "columnField": "isp", "valueField": "stutter_rate_uv", "emptyValue": "null"}}}
	fc := grid["fieldConfig"].(obj)
	fc["defaults"] = obj{"unit": "percentunit", "color": obj{"mode": "continuous-GrYlRd"}, "custom": obj{"cellOptions": obj{"type": "color-background"}}}
	bars := b.panel("barchart", "Stutter rate (UV) of the 20 largest province × ISP", "Ranked by users."+regionNote, l.place(12, 12),
		b.query(seriesQuery{Sel: sel, Metrics: []string{"users", "stutter_rate_uv"}, OrderBy: "users DESC", Limit: 20}), formatTable,
		append([]field{{Name: "province"}, {Name: "isp"}}, b.fieldsOf("client", "users", "stutter_rate_uv")...))
	bars["transformations"] = []any{
		obj{"id": "calculateField", "options": obj{"mode": "reduceRow", "alias": "region", "reduce": obj{"reducer": "allValues"}, "include": []any{"province", "isp"}, "replaceFields": false}},
		obj{"id": "organize", "options": obj{"excludeByName": obj{"province": true, "isp": true, "users": true}, "indexByName": obj{"region": 0, "stutter_rate_uv": 1}}},
	}
	bars["options"] = obj{"orientation": "horizontal", "xField": "region", "showValue": "auto", "legend": obj{"showLegend": false}}
	return dashboard("qoscope-regions", "qoscope — province × ISP", "Regions ranked by users with their stutter and start-up metrics.", "now-1h", b.regionVariables(),
		[]any{table, grid, bars})
}

func (b *builder) vendors() obj {
	byVendor := selection{Source: "client", By: []string{"vendor"}, Filters: regionVars}
	cdnByVendor := selection{Source: "cdn", By: []string{"vendor"}, Filters: regionVars}
	full := selection{Source: "client", By: []string{"vendor", "province", "isp"}, Filters: regionVars}
	var l layout
	note := " Province and ISP restrict the rows to those regions (vendor × province × ISP rows summed)." + regionNote
	panels := []any{
		b.timeseries("Stutter rate (UV) per vendor", "Client stutter users / users per vendor."+note, l.place(12, 8), byVendor, "stutter_rate_uv"),
		b.timeseries("First frame p90 per vendor", "Nearest-rank p90 of the merged first-frame histograms."+note, l.place(12, 8), byVendor, "first_frame_ms_p90"),
		b.timeseries("Fast open per vendor", "First frames ≤ 1 s / first frames."+note, l.place(12, 8), byVendor, "fast_open_rate"),
		b.timeseries("Pull connect rate per vendor", "Successful pull connects / attempts."+note, l.place(12, 8), byVendor, "pull_connect_rate"),
		b.timeseries("CDN 5xx rate per vendor", "CDN log lines with status 5xx / requests."+note, l.place(12, 8), cdnByVendor, "errors_5xx_rate"),
		b.timeseries("CDN time to first byte p90 per vendor", "From the CDN logs."+note, l.place(12, 8), cdnByVendor, "ttfb_ms_p90"),
	}
	metrics := []string{"users", "stutter_rate_uv", "fast_open_rate", "first_frame_ms_p90", "pull_connect_rate"}
	t := b.table("Vendor × province × ISP", "Over the time range, every vendor in every region, ranked by users (mean per minute)."+regionNote, l.place(24, 10),
		b.query(seriesQuery{Sel: full, Metrics: metrics, OrderBy: "users DESC", Limit: 1000}),
		append([]field{{Name: "vendor", Display: "Vendor"}, {Name: "province", Display: "Province"}, {Name: "isp", Display: "ISP"}}, b.fieldsOf("client", metrics...)...))
	heat(t, "stutter_rate_uv")
	m := b.table("Stutter rate (UV): region × vendor", "One row per province / ISP, one column per vendor: the vendors compared in each region."+regionNote, l.place(24, 12),
		b.query(seriesQuery{Sel: full, Metrics: []string{"stutter_rate_uv"}, Limit: 5000}),
		[]field{{Name: "vendor"}, {Name: "province"}, {Name: "isp"}, {Name: "stutter_rate_uv"}})
	m["transformations"] = []any{
		obj{"id": "calculateField", "options": obj{"mode": "reduceRow", "alias": "region", "reduce": obj{"reducer": "allValues"}, "include": []any{"province", "isp"}, "replaceFields": false}},
		obj{"id": "groupingToMatrix", "options": obj{"rowField": "region", "columnField": "vendor", "valueField": "stutter_rate_uv", "emptyValue": "null"}},
	}
	m["fieldConfig"].(obj)["defaults"] = obj{"unit": "percentunit", "color": obj{"mode": "continuous-GrYlRd"}, "custom": obj{"cellOptions": obj{"type": "color-background"}}}
	panels = append(panels, t, m)
	return dashboard("qoscope-vendors", "qoscope — vendors", "CDN vendors compared, overall and per region, from the client and CDN views.", "now-6h", b.regionVariables(), panels)
}

func (b *builder) streams() obj {
	origin := selection{Source: "origin", By: []string{"stream_id", "line"}, Filters: []filterVar{varStream}}
	client := selection{Source: "client", By: []string{"stream_id"}, Filters: []filterVar{varStream}}
	var l layout
	desc := " One line per stream × line (primary/backup)."
	si, err := b.cat.Source("origin")
	if err != nil {
		b.fail(err)
		return nil
	}
	latestSQL := fmt.Sprintf(`SELECT
    dims['stream_id'] AS stream_id,
    dims['line'] AS line,
    window_start,
    final,
    no_data,
    fps_avg,
    fps_min,
    bitrate_kbps_avg,
    bitrate_kbps_min,
    rtt_ms_avg
FROM %s
WHERE grouping = 'stream_id,line'
  AND window_start = (SELECT max(window_start) FROM %s WHERE grouping = 'stream_id,line' AND $__timeFilter(window_start) AND window_start < toStartOfMinute(now()))
  AND %s
ORDER BY no_data DESC, bitrate_kbps_avg ASC`, si.Views[query.PeriodMinute], si.Views[query.PeriodMinute], filterConds("dims", origin.Filters)[0])
	latest := b.table("Upstream, newest minute", "Per stream × line in the newest ended minute of the range: no_data = 1 is the war room's N/A (seen in the last minutes, silent in this one); final = 0 while the minute may still change.", l.place(24, 9), latestSQL,
		append([]field{{Name: "stream_id", Display: "Stream"}, {Name: "line", Display: "Line"}, {Name: "window_start", Display: "Minute"}, {Name: "final"}, {Name: "no_data"}},
			b.fieldsOf("origin", "fps_avg", "fps_min", "bitrate_kbps_avg", "bitrate_kbps_min", "rtt_ms_avg")...))
	panels := []any{
		latest,
		b.timeseries("Upstream frame rate", "Mean reported fps."+desc, l.place(12, 8), origin, "fps_avg"),
		b.timeseries("Upstream bitrate", "Mean reported bitrate."+desc, l.place(12, 8), origin, "bitrate_kbps_avg"),
		b.timeseries("Upstream RTT", "Mean round-trip time."+desc, l.place(12, 8), origin, "rtt_ms_avg"),
		b.timeseries("Viewer stutter rate (UV) per stream", "Client stutter users / users per stream.", l.place(12, 8), client, "stutter_rate_uv"),
	}
	worst := b.table("Worst streams for viewers", "Over the time range, streams with the highest stutter rate among those with users.", l.place(24, 9),
		b.query(seriesQuery{Sel: client, Metrics: []string{"users", "stutter_rate_uv", "first_frame_ms_p90", "fast_open_rate"}, OrderBy: "stutter_rate_uv DESC NULLS LAST, users DESC", Limit: 50}),
		append([]field{{Name: "stream_id", Display: "Stream"}}, b.fieldsOf("client", "users", "stutter_rate_uv", "first_frame_ms_p90", "fast_open_rate")...))
	heat(worst, "stutter_rate_uv")
	panels = append(panels, worst)
	sv, err := b.variableQuery("origin", varStream, "stream_id,line")
	if err != nil {
		b.fail(err)
	}
	return dashboard("qoscope-streams", "qoscope — streams", "Upstream (origin) frame rate, bitrate and RTT per stream × line, and what viewers of each stream see.", "now-1h",
		[]any{variable("stream", "Stream", sv)}, panels)
}

// alertFilter restricts alert_history rows to the selected rules and to
// the vendor/province/isp labels of the region variables.
func alertFilter() string {
	conds := []string{"$__conditionalAll(rule IN (${rule:singlequote}), $rule)"}
	conds = append(conds, filterConds("labels", regionVars)...)
	return "retracted = 0\n  AND $__timeFilter(at)\n  AND " + joinAnd(conds)
}

func joinAnd(c []string) string {
	s := ""
	for i, x := range c {
		if i > 0 {
			s += "\n  AND "
		}
		s += x
	}
	return s
}

func (b *builder) alerts() obj {
	var l layout
	// alert_history is read with FINAL and retracted = 0
	// (migrations/0006_alert_history.sql): a re-evaluated minute replaces
	// its rows, and a change that no longer happens is retracted.
	changes := `SELECT
    at,
    rule,
    state,
    labels['severity'] AS severity,
    labels['vendor'] AS vendor,
    labels['province'] AS province,
    labels['isp'] AS isp,
    value,
    users,
    action,
    annotations['summary'] AS summary,
    toJSONString(labels) AS all_labels,
    diagnosis
FROM alert_history FINAL
WHERE ` + alertFilter() + `
ORDER BY at DESC, rule
LIMIT 1000`
	firing := `SELECT
    $__timeInterval(at) AS time,
    rule,
    countIf(state = 'firing') AS firing_changes
FROM alert_history FINAL
WHERE ` + alertFilter() + `
GROUP BY time, rule
ORDER BY time, rule`
	active := `SELECT
    rule,
    fingerprint,
    argMax(state, at) AS last_state,
    max(at) AS since,
    argMax(value, at) AS last_value,
    argMax(toJSONString(labels), at) AS last_labels
FROM alert_history FINAL
WHERE ` + alertFilter() + `
GROUP BY rule, fingerprint
HAVING last_state IN ('pending', 'firing')
ORDER BY since DESC`
	t := b.table("Alert state changes", "Every change (pending, firing, inactive, resolved) in the time range, newest first, with the rule's summary and the diagnosis JSON (docs/ALERTS.md).", l.place(24, 12), changes,
		[]field{{Name: "at", Display: "Minute"}, {Name: "rule"}, {Name: "state"}, {Name: "severity"}, {Name: "vendor"}, {Name: "province"}, {Name: "isp"},
			{Name: "value"}, {Name: "users"}, {Name: "action"}, {Name: "summary"}, {Name: "all_labels", Display: "labels"}, {Name: "diagnosis"}})
	a := b.table("Pending or firing at the end of the range", "Per alert (rule and fingerprint) its last change in the range, when that is pending or firing.", l.place(12, 8), active,
		[]field{{Name: "rule"}, {Name: "fingerprint"}, {Name: "last_state", Display: "state"}, {Name: "since"}, {Name: "last_value", Display: "value"}, {Name: "last_labels", Display: "labels"}})
	f := b.panel("timeseries", "Firing changes per rule", "Changes to firing per rule and interval.", l.place(12, 8), firing, formatTimeSeries,
		[]field{{Name: "firing_changes", Display: "${__field.labels.rule}"}})
	f["options"] = obj{"legend": obj{"displayMode": "list", "placement": "bottom"}}
	f["fieldConfig"].(obj)["defaults"] = obj{"custom": obj{"drawStyle": "bars", "stacking": obj{"mode": "normal"}}}
	rv := `SELECT DISTINCT rule
FROM alert_history FINAL
WHERE retracted = 0 AND $__timeFilter(at)
ORDER BY rule`
	vars := append([]any{variable("rule", "Rule", rv)}, b.regionVariables()...)
	return dashboard("qoscope-alerts", "qoscope — alerts history", "Alert state changes from alert_history (FINAL, retracted = 0).", "now-24h", vars, []any{t, a, f})
}
