package grafana

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/query"
)

// The rows: every grouping set of the catalogue gets the same few keys in
// the minute, hour and day tables, at times each of the three ranges
// below reads (6 h: minute views, 30 d: hourly rollups, 180 d: daily
// rollups; sql.go's thresholds). A vendor with a quote in its name checks
// the variables' quoting.
var (
	fixtureTo  = time.Date(2026, 11, 23, 12, 10, 0, 0, time.UTC)
	dimValues  = map[string][]string{"vendor": {"alpha", "o'cdn"}, "province": {"guangdong", "beijing"}, "isp": {"telecom"}, "stream_id": {"s1", "s2"}, "line": {"primary", "backup"}}
	fixtureRng = []time.Duration{6 * time.Hour, 30 * 24 * time.Hour, 180 * 24 * time.Hour}
)

func valuesOf(dim string) []string {
	if v, ok := dimValues[dim]; ok {
		return v
	}
	return []string{"x"}
}

// keys is the cartesian product of the dimensions' fixture values.
func keys(dims []string) []map[string]string {
	out := []map[string]string{{}}
	for _, d := range dims {
		var next []map[string]string
		for _, k := range out {
			for _, v := range valuesOf(d) {
				n := map[string]string{d: v}
				for a, b := range k {
					n[a] = b
				}
				next = append(next, n)
			}
		}
		out = next
	}
	return out
}

func mapLiteral(k map[string]string) string {
	var parts []string
	ks := make([]string, 0, len(k))
	for d := range k {
		ks = append(ks, d)
	}
	slices.Sort(ks)
	for _, d := range ks {
		parts = append(parts, quote(d), quote(k[d]))
	}
	return "map(" + strings.Join(parts, ", ") + ")"
}

// Per source and period: the columns set and their values. Minute client
// rows: 100 users, 10 stutter users (stutter rate 0.1), 50 first frames
// all in bucket 700 (≈ 1098 ms), 40 fast opens.
var fixtureColumns = map[string]map[query.Period]string{
	"client": {
		query.PeriodMinute: "final, users, stutter_users, first_frames, first_frame_ms_sum, first_frame_ms_hist, fast_opens, plays, plays_ok, pushes, pushes_ok, push_ends, push_drops|1, 100, 10, 50, 55000, map(700, 50), 40, 60, 57, 10, 9, 8, 2",
		query.PeriodHour:   "minutes, user_minutes, stutter_user_minutes, first_frames, first_frame_ms_sum, first_frame_ms_hist, fast_opens, plays, plays_ok, pushes, pushes_ok, push_ends, push_drops|60, 6000, 600, 3000, 3300000, map(700, 3000), 2400, 3600, 3420, 600, 540, 480, 120",
		query.PeriodDay:    "minutes, user_minutes, stutter_user_minutes, first_frames, first_frame_ms_sum, first_frame_ms_hist, fast_opens, plays, plays_ok, pushes, pushes_ok, push_ends, push_drops|1440, 144000, 14400, 72000, 79200000, map(700, 72000), 57600, 86400, 82080, 14400, 12960, 11520, 2880",
	},
	"cdn": {
		query.PeriodMinute: "final, requests, bytes, errors_4xx, errors_5xx, ttfb_ms_sum, ttfb_ms_hist|1, 1000, 7500000, 10, 5, 50000, map(400, 1000)",
		query.PeriodHour:   "minutes, requests, bytes, errors_4xx, errors_5xx, ttfb_ms_sum, ttfb_ms_hist|60, 60000, 450000000, 600, 300, 3000000, map(400, 60000)",
		query.PeriodDay:    "minutes, requests, bytes, errors_4xx, errors_5xx, ttfb_ms_sum, ttfb_ms_hist|1440, 1440000, 10800000000, 14400, 7200, 72000000, map(400, 1440000)",
	},
	"origin": {
		query.PeriodMinute: "final, samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum, no_data|1, 2, 50, 24, 4000, 1900, 80, 0",
		query.PeriodHour:   "minutes, data_minutes, no_data_minutes, samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum|60, 60, 0, 120, 3000, 24, 240000, 1900, 4800",
		query.PeriodDay:    "minutes, data_minutes, no_data_minutes, samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum|1440, 1440, 0, 2880, 72000, 24, 5760000, 1900, 115200",
	},
}

func loadFixture(t *testing.T, ctx context.Context, env *testenv.ClickHouseEnv, cat *query.Catalog) {
	t.Helper()
	at := map[query.Period][]string{
		query.PeriodMinute: {"2026-11-23 12:00:00", "2026-11-23 12:01:00"},
		query.PeriodHour:   {"2026-11-23 11:00:00"},
		query.PeriodDay:    {"2026-11-22 00:00:00"},
	}
	for _, si := range cat.Sources() {
		for p, table := range si.Tables {
			cv := strings.SplitN(fixtureColumns[si.Name][p], "|", 2)
			var rows []string
			for _, ts := range at[p] {
				for _, gs := range si.GroupingSets {
					for _, k := range keys(gs.Dims) {
						rows = append(rows, fmt.Sprintf("('%s', %s, %s, 'topic', 0, 1, %s)", ts, quote(gs.Name), mapLiteral(k), cv[1]))
					}
				}
			}
			sql := fmt.Sprintf("INSERT INTO %s (window_start, grouping, dims, topic, kafka_partition, version, %s) VALUES %s", table, cv[0], strings.Join(rows, ",\n"))
			if err := env.Conn.Exec(ctx, sql); err != nil {
				t.Fatalf("cannot load %s: %v", table, err)
			}
		}
	}
	// Alert history: a firing change, a retracted one (never shown) and a
	// pending one.
	if err := env.Conn.Exec(ctx, `INSERT INTO alert_history (at, rule, fingerprint, labels, state, value, users, action, annotations, diagnosis, version, retracted) VALUES
		('2026-11-23 12:00:00', 'vendor_stutter', 'fp1', map('vendor','alpha','province','guangdong','isp','telecom','severity','page'), 'firing', 0.2, 100, 'blacklist', map('summary','alpha stutter 20.0%'), '[]', 1, 0),
		('2026-11-23 12:01:00', 'vendor_stutter', 'fp2', map('vendor','o''cdn','province','beijing','isp','telecom','severity','page'), 'firing', 0.3, 50, '', map(), '', 1, 1),
		('2026-11-23 12:02:00', 'first_frame', 'fp3', map('province','beijing','severity','warn'), 'pending', NULL, NULL, '', map(), '', 1, 0)`); err != nil {
		t.Fatal(err)
	}
}

// run executes sql and returns its column names and rows as strings.
func run(ctx context.Context, env *testenv.ClickHouseEnv, sql string) ([]string, [][]string, error) {
	cols, err := columnsOf(ctx, env, sql)
	if err != nil {
		return nil, nil, err
	}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = fmt.Sprintf("toString(`%s`)", c)
	}
	rows, err := env.Conn.Query(ctx, fmt.Sprintf("SELECT %s FROM (\n%s\n)", strings.Join(exprs, ", "), sql))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]*string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = *v
			}
		}
		out = append(out, row)
	}
	return cols, out, rows.Err()
}

func columnsOf(ctx context.Context, env *testenv.ClickHouseEnv, sql string) ([]string, error) {
	rows, err := env.Conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := rows.Columns()
	for rows.Next() {
	}
	return cols, rows.Err()
}

// Every panel's and variable's SQL of every dashboard, with the plugin's
// macros and the variables expanded (macros_test.go), runs on a migrated
// database holding the fixture rows, for each of the three ranges and for
// several variable selections, and returns rows with the columns the
// panel names. A column renamed in a view fails here.
func TestDashboardSQL(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cat := defaultCatalog(t)
	loadFixture(t, ctx, env, cat)

	executed := 0
	for name, d := range loadDashboards(t) {
		for _, rng := range fixtureRng {
			from := fixtureTo.Add(-rng)
			// The variables' options, all on "All" (their queries use no
			// variables).
			opts := map[string][]string{}
			all := map[string]varState{}
			for _, v := range d.Templating.List {
				all[v.Name] = varState{All: true}
			}
			for _, v := range d.Templating.List {
				e := &expansion{From: from, To: fixtureTo, Interval: grafanaInterval(from, fixtureTo, 0), Vars: all}
				sql, err := e.expand(v.Query)
				if err != nil {
					t.Fatalf("%s variable %s: %v", name, v.Name, err)
				}
				_, rows, err := run(ctx, env, sql)
				executed++
				if err != nil {
					t.Fatalf("%s variable %s over %v: %v\n%s", name, v.Name, rng, err, sql)
				}
				for _, r := range rows {
					opts[v.Name] = append(opts[v.Name], r[0])
				}
				if len(opts[v.Name]) == 0 {
					t.Errorf("%s variable %s over %v: no values", name, v.Name, rng)
				}
			}
			// Selections: every variable All; every one restricted to all
			// its options as a list (the multi-value, quoted path); over
			// the first range also each restricted to its first option
			// alone.
			type sel struct {
				name string
				vars map[string]varState
			}
			allState := map[string]varState{}
			listState := map[string]varState{}
			for n, o := range opts {
				allState[n] = varState{All: true, Options: o}
				listState[n] = varState{Values: o}
			}
			sels := []sel{{"all", allState}, {"lists", listState}}
			for n, o := range opts {
				if rng != fixtureRng[0] {
					break // one range is enough for the grouping-set choices
				}
				one := map[string]varState{}
				for m, s := range allState {
					one[m] = s
				}
				one[n] = varState{Values: o[:1]}
				sels = append(sels, sel{n + "=" + o[0], one})
			}
			for _, p := range d.Panels {
				minIv := time.Duration(0)
				if p.Interval == "1m" {
					minIv = time.Minute
				}
				want := p.expectedColumns()
				for _, tg := range p.Targets {
					for _, s := range sels {
						e := &expansion{From: from, To: fixtureTo, Interval: grafanaInterval(from, fixtureTo, minIv), Vars: s.vars}
						where := fmt.Sprintf("%s panel %q, range %v, variables %s", name, p.Title, rng, s.name)
						sql, err := e.expand(tg.RawSQL)
						if err != nil {
							t.Errorf("%s: %v", where, err)
							continue
						}
						cols, rows, err := run(ctx, env, sql)
						executed++
						if err != nil {
							t.Errorf("%s: %v\n%s", where, err, sql)
							continue
						}
						for _, c := range want {
							if !slices.Contains(cols, c) {
								t.Errorf("%s: no column %q (it returns %v)", where, c, cols)
							}
						}
						if len(rows) == 0 {
							t.Errorf("%s: no rows", where)
						}
					}
				}
			}
		}
	}
	if executed < 300 {
		t.Errorf("only %d queries executed", executed)
	}
}

// A few panels' numbers, by hand from the fixture rows, at each period:
// the grouping set the variables pick and the merge over rows are right.
func TestDashboardValues(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cat := defaultCatalog(t)
	loadFixture(t, ctx, env, cat)
	ds := loadDashboards(t)
	panel := func(file, title string) string {
		for _, p := range ds["dashboards/"+file].Panels {
			if p.Title == title {
				return p.Targets[0].RawSQL
			}
		}
		t.Fatalf("%s has no panel %q", file, title)
		return ""
	}
	vendors := []string{"alpha", "o'cdn"}
	provinces := []string{"guangdong", "beijing"}
	isps := []string{"telecom"}
	allVars := map[string]varState{
		"vendor":   {All: true, Options: vendors},
		"province": {All: true, Options: provinces},
		"isp":      {All: true, Options: isps},
	}
	with := func(name string, vals ...string) map[string]varState {
		m := map[string]varState{}
		for k, v := range allVars {
			m[k] = v
		}
		m[name] = varState{Values: vals}
		return m
	}
	for _, c := range []struct {
		file, title string
		rng         time.Duration
		vars        map[string]varState
		col         string
		want        []float64
	}{
		// Total grouping, minutes 12:00 and 12:01 at 1m: 10/100 each.
		{"headline.json", "Stutter rate (UV) and zero-stutter rate", 6 * time.Hour, allVars, "stutter_rate_uv", []float64{0.1, 0.1}},
		{"headline.json", "Stutter rate (UV) and zero-stutter rate", 6 * time.Hour, allVars, "zero_stutter_rate", []float64{0.9, 0.9}},
		// Users: 100 per minute; over 30 d one hourly row of 6000
		// user-minutes = 100 per minute; over 180 d one daily row
		// 144000 / 1440 = 100.
		{"headline.json", "Users (mean per minute)", 6 * time.Hour, allVars, "users", []float64{100, 100}},
		{"headline.json", "Users (mean per minute)", 30 * 24 * time.Hour, allVars, "users", []float64{100}},
		{"headline.json", "Users (mean per minute)", 180 * 24 * time.Hour, allVars, "users", []float64{100}},
		// Two provinces selected: rows of grouping 'province' for both,
		// summed: 200 users per minute.
		{"headline.json", "Users (mean per minute)", 6 * time.Hour, with("province", provinces...), "users", []float64{200, 200}},
		// One vendor: grouping 'vendor', one key: 100. Vendor and
		// province: 'vendor,province,isp' rows of o'cdn × guangdong ×
		// telecom: 100.
		{"headline.json", "Users (mean per minute)", 6 * time.Hour, with("vendor", "o'cdn"), "users", []float64{100, 100}},
		// First frames all in bucket 700: 2·γ^700/(γ+1).
		{"headline.json", "First-frame time", 30 * 24 * time.Hour, allVars, "first_frame_ms_p90", []float64{2 * math.Pow(1.01/0.99, 700) / (1.01/0.99 + 1)}},
		// Fast open 40/50 = 0.8; pull connect 57/60 = 0.95; push drop 2/8.
		{"headline.json", "Fast open (first frame ≤ 1 s)", 6 * time.Hour, allVars, "fast_open_rate", []float64{0.8, 0.8}},
		{"headline.json", "Push drop rate", 180 * 24 * time.Hour, allVars, "push_drop_rate", []float64{0.25}},
		// Streams: fps 50/2 = 25 per stream × line, 4 lines × 2 minutes.
		{"streams.json", "Upstream frame rate", 6 * time.Hour, map[string]varState{"stream": {All: true, Options: []string{"s1", "s2"}}}, "fps_avg", []float64{25, 25, 25, 25, 25, 25, 25, 25}},
		// CDN 5xx: 5/1000 per vendor, two vendors, two minutes.
		{"vendors.json", "CDN 5xx rate per vendor", 6 * time.Hour, allVars, "errors_5xx_rate", []float64{0.005, 0.005, 0.005, 0.005}},
	} {
		from := fixtureTo.Add(-c.rng)
		e := &expansion{From: from, To: fixtureTo, Interval: grafanaInterval(from, fixtureTo, time.Minute), Vars: c.vars}
		sql, err := e.expand(panel(c.file, c.title))
		if err != nil {
			t.Fatal(err)
		}
		cols, rows, err := run(ctx, env, sql)
		if err != nil {
			t.Fatalf("%s %q: %v", c.file, c.title, err)
		}
		i := slices.Index(cols, c.col)
		if i < 0 || len(rows) != len(c.want) {
			t.Errorf("%s %q over %v: column %s in %v, %d rows %v, want %v", c.file, c.title, c.rng, c.col, cols, len(rows), rows, c.want)
			continue
		}
		for j, r := range rows {
			var got float64
			if _, err := fmt.Sscan(r[i], &got); err != nil || math.Abs(got-c.want[j]) > 1e-9*math.Max(1, c.want[j]) {
				t.Errorf("%s %q over %v row %d: %s = %s, want %v", c.file, c.title, c.rng, j, c.col, r[i], c.want[j])
			}
		}
	}
}

// The stat panels show the newest minute that ended: the minute in
// progress (its rows grow every few seconds) is left out, by ClickHouse's
// clock. Users: 100 in the minute before now, 7 so far in this one.
func TestStatLeavesOutTheMinuteInProgress(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := env.Conn.Exec(ctx, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users)
		SELECT toStartOfMinute(now()) - INTERVAL 1 MINUTE, '', map(), 'c', 0, 1, 0, 100
		UNION ALL SELECT toStartOfMinute(now()), '', map(), 'c', 0, 1, 0, 7`); err != nil {
		t.Fatal(err)
	}
	var sql string
	for _, p := range loadDashboards(t)["dashboards/headline.json"].Panels {
		if p.Title == "Users" && p.Type == "stat" {
			sql = p.Targets[0].RawSQL
		}
	}
	if sql == "" {
		t.Fatal("headline.json has no Users stat")
	}
	now := time.Now().UTC().Add(time.Minute) // a range that surely covers the minute in progress
	e := &expansion{From: now.Add(-time.Hour), To: now, Interval: grafanaInterval(now.Add(-time.Hour), now, time.Minute),
		Vars: map[string]varState{"vendor": {All: true}, "province": {All: true}, "isp": {All: true}}}
	q, err := e.expand(sql)
	if err != nil {
		t.Fatal(err)
	}
	cols, rows, err := run(ctx, env, q)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(cols, "users")
	if i < 0 || len(rows) == 0 || rows[len(rows)-1][i] != "100" {
		t.Errorf("the stat's last point should be the ended minute's 100 users: columns %v rows %v", cols, rows)
	}
}
