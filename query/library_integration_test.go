package query

import (
	"context"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
)

// The rows below are inserted into the tables directly, as the runner
// writes them (one partial row per window, grouping, key, topic and Kafka
// partition, replaced by version); every expected number is computed by
// hand in the comments from the definitions in docs/METRICS.md.

type fixture struct {
	env *testenv.ClickHouseEnv
	q   *Querier
	ctx context.Context
}

func newFixture(t *testing.T, now time.Time, opts Options) *fixture {
	t.Helper()
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	opts.Now = func() time.Time { return now }
	return &fixture{env: env, q: NewQuerier(env.Conn, defaultCatalog(t), opts), ctx: ctx}
}

func (f *fixture) exec(t *testing.T, sql string) {
	t.Helper()
	if err := f.env.Conn.Exec(f.ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// gamma and bucketValue are the histogram contract of docs/METRICS.md
// ("Quantiles"): bucket i represents 2γ^i/(γ+1).
var gamma = 1.01 / 0.99

func bucketValue(i int) float64 { return 2 * math.Pow(gamma, float64(i)) / (gamma + 1) }

func near(got *float64, want float64) bool {
	return got != nil && math.Abs(*got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func fmtp(v *float64) any {
	if v == nil {
		return "null"
	}
	return *v
}

// Every view's columns, per source and period, are exactly the catalogue's:
// key columns, each metric's column and the raw columns it derives from.
func TestViewColumnsMatchCatalogue(t *testing.T) {
	f := newFixture(t, time.Now(), Options{})
	for _, si := range f.q.Catalog().Sources() {
		for _, p := range periods {
			want := []string{"window_start", "grouping", "dims_key", "dims", "partial_rows", "written_at"}
			if p == PeriodMinute {
				want = append(want, "final")
			}
			for _, m := range si.Metrics {
				if !m.Has(p) {
					continue
				}
				for _, c := range append(m.Inputs(p), m.Column(p)) {
					if !slices.Contains(want, c) {
						want = append(want, c)
					}
				}
			}
			rows, err := f.env.Conn.Query(f.ctx, "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = ?", si.Views[p])
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				got = append(got, n)
			}
			rows.Close()
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: view columns\n %q\ncatalogue\n %q", si.Views[p], got, want)
			}
		}
	}
}

func TestSeries(t *testing.T) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	f := newFixture(t, now, Options{})
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			users, stutter_users, first_frames, first_frame_ms_hist) VALUES
		('2026-11-23 12:00:00', 'province', map('province','guangdong'), 'c', 0, 10, 1, 10, 2, 0, map()),
		('2026-11-23 12:00:00', 'province', map('province','guangdong'), 'c', 1, 10, 1, 30, 1, 0, map()),
		-- an older version of partition 1: replaced, never added
		('2026-11-23 12:00:00', 'province', map('province','guangdong'), 'c', 1, 4, 0, 999, 999, 0, map()),
		('2026-11-23 12:00:00', 'province', map('province','beijing'), 'c', 0, 10, 1, 5, 5, 0, map()),
		('2026-11-23 12:01:00', 'province', map('province','guangdong'), 'c', 0, 12, 1, 20, 0, 0, map()),
		('2026-11-23 12:01:00', 'province', map('province','guangdong'), 'c', 1, 12, 0, 20, 4, 0, map()),
		('2026-11-23 12:00:00', '', map(), 'c', 0, 10, 1, 45, 8, 8, map(-2147483648, 5, 100, 3)),
		('2026-11-23 12:01:00', '', map(), 'c', 0, 12, 1, 40, 4, 2, map(100, 1, 200, 1)),
		('2026-11-23 12:01:00', '', map(), 'c', 1, 12, 0, 0, 0, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 10, 1, 8, 2, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','unicom'), 'c', 0, 10, 1, 9, 9, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','beijing','isp','telecom'), 'c', 0, 10, 1, 4, 1, 0, map())`)
	from := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

	// 1m by province. guangdong 12:00: (2+1)/(10+30) = 0.075, both rows
	// final; 12:01: 4/40 = 0.1, partition 1 provisional. beijing 5/5 = 1.
	s, err := f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "stutter_rate_uv", GroupBy: []string{"province"},
		From: from, To: from.Add(5 * time.Minute), Step: Step1m})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "stutter_rate_uv" || len(s.Groups) != 2 {
		t.Fatalf("series: %+v", s)
	}
	g := map[string]SeriesGroup{}
	for _, x := range s.Groups {
		g[x.Dims["province"]] = x
	}
	gd := g["guangdong"].Points
	if len(gd) != 2 || !gd[0].Time.Equal(from) || !near(gd[0].Value, 0.075) || !gd[0].Final || !near(gd[1].Value, 0.1) || gd[1].Final {
		t.Errorf("guangdong 1m: %+v (values %v %v)", gd, fmtp(gd[0].Value), fmtp(gd[len(gd)-1].Value))
	}
	if bj := g["beijing"].Points; len(bj) != 1 || !near(bj[0].Value, 1) || !bj[0].Final {
		t.Errorf("beijing 1m: %+v", bj)
	}
	// Each rate says what it is over: guangdong 10+30 = 40 users at 12:00,
	// 20+20 = 40 at 12:01 (the replaced version's 999 not among them);
	// beijing's 100 % is over 5 users.
	if s.NUnit != "users" || !near(gd[0].N, 40) || !near(gd[1].N, 40) || !near(g["beijing"].Points[0].N, 5) {
		t.Errorf("1m bases: n_unit %q, guangdong %v %v, beijing %v; want users, 40, 40, 5", s.NUnit, fmtp(gd[0].N), fmtp(gd[1].N), fmtp(g["beijing"].Points[0].N))
	}

	// 5m: guangdong (3+4)/(40+40) = 0.0875, not final (12:01 provisional).
	// users over the bucket: 40+40 = 80, named users_sum_of_minutes.
	s, err = f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "stutter_rate_uv", GroupBy: []string{"province"},
		Filters: nil, From: from, To: from.Add(5 * time.Minute), Step: Step5m})
	if err != nil {
		t.Fatal(err)
	}
	if s.NUnit != "user-minutes" {
		t.Errorf("5m rate over %q, want user-minutes (a sum of per-minute users)", s.NUnit)
	}
	for _, x := range s.Groups {
		if x.Dims["province"] == "guangdong" && (len(x.Points) != 1 || !near(x.Points[0].Value, 0.0875) || x.Points[0].Final || !near(x.Points[0].N, 80)) {
			t.Errorf("guangdong 5m: %+v (n %v, want 80)", x.Points, fmtp(x.Points[0].N))
		}
		if x.Dims["province"] == "beijing" && (len(x.Points) != 1 || !near(x.Points[0].Value, 1) || !x.Points[0].Final) {
			t.Errorf("beijing 5m (its only row final, 12:05 + 10m lateness ≤ 14:00): %+v", x.Points)
		}
	}
	s, err = f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "users", GroupBy: []string{"province"},
		From: from, To: from.Add(5 * time.Minute), Step: Step5m})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "users_sum_of_minutes" {
		t.Errorf("users over 5m named %q, want users_sum_of_minutes", s.Name)
	}
	if s.NUnit != "" || s.Groups[0].Points[0].N != nil {
		t.Errorf("a count is over nothing: n_unit %q, n %v", s.NUnit, fmtp(s.Groups[0].Points[0].N))
	}
	for _, x := range s.Groups {
		if x.Dims["province"] == "guangdong" && !near(x.Points[0].Value, 80) {
			t.Errorf("guangdong users over 5m = %v, want 80", fmtp(x.Points[0].Value))
		}
	}

	// Quantiles from merged histograms. Total 12:00: zero bucket 5,
	// bucket 100: 3 (n = 8, p90 rank ⌈7.2⌉ = 8 → bucket 100); 12:01:
	// buckets 100 and 200 once (n = 2, rank ⌈1.8⌉ = 2 → bucket 200).
	// Over 5m: 5, 4, 1 (n = 10): p90 rank 9 → bucket 100; p50 rank 5 → 0;
	// p99 rank ⌈9.9⌉ = 10 → bucket 200.
	for _, c := range []struct {
		metric string
		step   Step
		want   []float64
	}{
		{"first_frame_ms_p90", Step1m, []float64{bucketValue(100), bucketValue(200)}},
		{"first_frame_ms_p90", Step5m, []float64{bucketValue(100)}},
		{"first_frame_ms_p50", Step5m, []float64{0}},
		{"first_frame_ms_p99", Step5m, []float64{bucketValue(200)}},
	} {
		s, err := f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: c.metric, From: from, To: from.Add(5 * time.Minute), Step: c.step})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Groups) != 1 || len(s.Groups[0].Points) != len(c.want) {
			t.Fatalf("%s %s: %+v", c.metric, c.step, s.Groups)
		}
		for i, w := range c.want {
			if v := s.Groups[0].Points[i].Value; v == nil || math.Abs(*v-w) > 1e-6*math.Max(1, w) {
				t.Errorf("%s %s point %d = %v, want %v", c.metric, c.step, i, fmtp(v), w)
			}
		}
		// Over the histogram's samples: 8 and 2 per minute, 10 over 5m.
		wantN := map[Step][]float64{Step1m: {8, 2}, Step5m: {10}}[c.step]
		for i, w := range wantN {
			if n := s.Groups[0].Points[i].N; s.NUnit != "samples" || !near(n, w) {
				t.Errorf("%s %s point %d over %v %s, want %v samples", c.metric, c.step, i, fmtp(n), s.NUnit, w)
			}
		}
	}

	// A filter narrows the province,isp set: telecom only, by province.
	s, err = f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "stutter_rate_uv", GroupBy: []string{"province"},
		Filters: []Filter{{Dim: "isp", Value: "telecom"}}, From: from, To: from.Add(time.Minute), Step: Step1m})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, x := range s.Groups {
		got[x.Dims["province"]] = *x.Points[0].Value
	}
	if len(got) != 2 || got["guangdong"] != 0.25 || got["beijing"] != 0.25 {
		t.Errorf("telecom by province = %v, want guangdong 2/8, beijing 1/4", got)
	}
	// A quote in a filter value finds nothing instead of breaking the SQL.
	s, err = f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "users", GroupBy: []string{"province"},
		Filters: []Filter{{Dim: "isp", Value: "telecom' OR 1=1 --"}}, From: from, To: from.Add(time.Minute), Step: Step1m})
	if err != nil || len(s.Groups) != 0 {
		t.Errorf("injection-shaped filter: %+v, %v", s, err)
	}

	// 1h from the hourly rollup: hour 12:00 total, partitions 0 and 1:
	// (10+20)/(100+50) = 0.2, users_sum_of_minutes 150; not final, since
	// minute 12:01 has a provisional row. Hour 10:00 has no minute rows
	// left and ended more than the 10m lateness before 14:00: final.
	f.exec(t, `INSERT INTO client_hour (window_start, grouping, dims, topic, kafka_partition, version, minutes,
			user_minutes, stutter_user_minutes) VALUES
		('2026-11-23 12:00:00', '', map(), 'c', 0, 12, 2, 100, 10),
		('2026-11-23 12:00:00', '', map(), 'c', 1, 10, 1, 50, 20),
		('2026-11-23 10:00:00', '', map(), 'c', 0, 5, 60, 60, 6)`)
	s, err = f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "stutter_rate_uv", From: from.Add(-2 * time.Hour), To: from.Add(time.Hour), Step: Step1h})
	if err != nil {
		t.Fatal(err)
	}
	if pts := s.Groups[0].Points; len(pts) != 2 || !near(pts[0].Value, 0.1) || !pts[0].Final || !near(pts[1].Value, 0.2) || pts[1].Final {
		t.Errorf("1h: %+v", pts)
	}
	s, err = f.q.Series(f.ctx, SeriesRequest{Source: "client", Metric: "users", From: from, To: from.Add(time.Hour), Step: Step1h})
	if err != nil || s.Name != "users_sum_of_minutes" || !near(s.Groups[0].Points[0].Value, 150) {
		t.Errorf("1h users: %+v, %v", s, err)
	}
}

func TestBreakdown(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, at.Add(5*time.Minute), Options{})
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			users, stutter_users, stalls) VALUES
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 10, 1, 30, 6, 9),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 1, 10, 0, 10, 4, 1),
		('2026-11-23 12:00:00', 'province,isp', map('province','beijing','isp','unicom'), 'c', 0, 10, 1, 10, 1, 2),
		('2026-11-23 12:00:00', 'province,isp', map('province','tibet','isp','mobile'), 'c', 0, 10, 1, 2, 0, 0),
		('2026-11-23 11:59:00', 'province,isp', map('province','hubei','isp','mobile'), 'c', 0, 10, 1, 50, 0, 0)`)
	// guangdong/telecom: 40 users, zero stutter (40−10)/40 = 0.75, stalls
	// 10, not final; beijing/unicom: 10 users, 0.9; tibet: 2 users, under
	// min_users 5; hubei is another minute.
	b, err := f.q.Breakdown(f.ctx, BreakdownRequest{Source: "client", Metric: "zero_stutter_rate", Extra: []string{"stalls"},
		By: []string{"province", "isp"}, At: at, Sort: "users", MinUsers: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Rows) != 2 || b.Volume != "users" {
		t.Fatalf("by users: %+v", b)
	}
	r0, r1 := b.Rows[0], b.Rows[1]
	if r0.Dims["province"] != "guangdong" || r0.Dims["isp"] != "telecom" || !near(r0.Volume, 40) || !near(r0.Value, 0.75) || r0.Final || !near(r0.Extra["stalls"], 10) {
		t.Errorf("first by users: %+v", r0)
	}
	if r1.Dims["province"] != "beijing" || !near(r1.Value, 0.9) || !r1.Final {
		t.Errorf("second by users: %+v", r1)
	}
	b, err = f.q.Breakdown(f.ctx, BreakdownRequest{Source: "client", Metric: "zero_stutter_rate", By: []string{"province", "isp"}, At: at})
	if err != nil {
		t.Fatal(err)
	}
	// By value, highest first: tibet 1.0, beijing 0.9, guangdong 0.75.
	var order []string
	for _, r := range b.Rows {
		order = append(order, r.Dims["province"])
	}
	if !slices.Equal(order, []string{"tibet", "beijing", "guangdong"}) {
		t.Errorf("by value: %v", order)
	}
	b, err = f.q.Breakdown(f.ctx, BreakdownRequest{Source: "client", Metric: "zero_stutter_rate", By: []string{"province", "isp"}, At: at, Order: "asc", Limit: 1})
	if err != nil || len(b.Rows) != 1 || b.Rows[0].Dims["province"] != "guangdong" {
		t.Errorf("asc limit 1: %+v, %v", b, err)
	}
	// Newest minute when At is zero: 12:00 (hubei's 11:59 is older).
	b, err = f.q.Breakdown(f.ctx, BreakdownRequest{Source: "client", Metric: "users", By: []string{"province", "isp"}})
	if err != nil || !b.At.Equal(at) || len(b.Rows) != 3 {
		t.Errorf("newest minute: %+v, %v", b, err)
	}
}

func TestHistory(t *testing.T) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	f := newFixture(t, now, Options{})
	// Push connect rate: today 90/100, yesterday 80/100, a week ago 60/100.
	// Pull: today 10 plays, 7 ok → failure rate PV 0.3.
	// Roles today: host video buffer 3000 ms over 3 heartbeats, cohost
	// 1000 over 1 → on-mic mean 4000/4 = 1000; audience 2 of 10 heartbeats
	// stalled → off-mic PV 0.2, 5 video stutter user-minutes of 100 → 0.05.
	f.exec(t, `INSERT INTO client_day (window_start, grouping, dims, topic, kafka_partition, version, minutes,
			pushes, pushes_ok, plays, plays_ok, video_buffer_ms_sum, video_buffer_samples, samples, stalled_samples,
			user_minutes, stutter_user_minutes_video) VALUES
		('2026-11-23 00:00:00', '', map(), 'c', 0, 9, 840, 60, 50, 10, 7, 0, 0, 0, 0, 0, 0),
		('2026-11-23 00:00:00', '', map(), 'c', 1, 9, 840, 40, 40, 0, 0, 0, 0, 0, 0, 0, 0),
		('2026-11-22 00:00:00', '', map(), 'c', 0, 8, 1440, 100, 80, 0, 0, 0, 0, 0, 0, 0, 0),
		('2026-11-16 00:00:00', '', map(), 'c', 0, 7, 1440, 100, 60, 0, 0, 0, 0, 0, 0, 0, 0),
		('2026-11-23 00:00:00', 'role', map('role','host'), 'c', 0, 9, 840, 0, 0, 0, 0, 3000, 3, 0, 0, 0, 0),
		('2026-11-23 00:00:00', 'role', map('role','cohost'), 'c', 0, 9, 840, 0, 0, 0, 0, 1000, 1, 0, 0, 0, 0),
		('2026-11-23 00:00:00', 'role', map('role','audience'), 'c', 0, 9, 840, 0, 0, 0, 0, 0, 0, 10, 2, 100, 5)`)
	h, err := f.q.History(f.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Columns) != 19 || len(h.Days) != 2 {
		t.Fatalf("history: %d columns, %d days", len(h.Columns), len(h.Days))
	}
	today, yday := h.Days[0], h.Days[1]
	if !today.Day.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) || today.Final || !yday.Final {
		t.Errorf("days: today %v final %v, yesterday %v final %v", today.Day, today.Final, yday.Day, yday.Final)
	}
	c := today.Cells["all.push_connect_rate"]
	if !near(c.Value, 0.9) || !near(c.DayAgo, 0.8) || !near(c.WeekAgo, 0.6) || !near(c.DoD, 0.125) || !near(c.WoW, 0.5) {
		t.Errorf("push_connect_rate today: %v %v %v %v %v", fmtp(c.Value), fmtp(c.DayAgo), fmtp(c.WeekAgo), fmtp(c.DoD), fmtp(c.WoW))
	}
	if c := yday.Cells["all.push_connect_rate"]; !near(c.Value, 0.8) || c.DayAgo != nil || c.DoD != nil {
		t.Errorf("push_connect_rate yesterday: %+v", c)
	}
	for key, want := range map[string]float64{
		"all.pull_fail_rate_pv":         0.3,
		"all.pull_connect_rate":         0.7,
		"on_mic.video_buffer_ms_avg":    1000,
		"off_mic.stutter_rate_pv":       0.2,
		"off_mic.stutter_rate_uv_video": 0.05,
	} {
		if v := today.Cells[key].Value; !near(v, want) {
			t.Errorf("%s = %v, want %v", key, fmtp(v), want)
		}
	}
	if v := today.Cells["on_mic.stutter_rate_pv"].Value; v != nil {
		t.Errorf("on_mic.stutter_rate_pv = %v, want null (no heartbeats)", *v)
	}
}

func TestStreams(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, at.Add(2*time.Minute), Options{Streams: StreamOptions{
		Default:       Thresholds{MinFPS: 15, MinBitrateKbps: 500},
		PerStream:     map[string]Thresholds{"s1": {MinFPS: 15, MinBitrateKbps: 2500}},
		PerQuality:    map[string]Thresholds{"720p": {MinFPS: 8, MinBitrateKbps: 1000}},
		StreamQuality: map[string]string{"s2": "720p"},
	}})
	// s1: 25 fps, 2000 kbit/s: below its own 2500 → low_bitrate.
	// s2: 10 fps, 1500 kbit/s: its tier 720p wants 8 and 1000 → ok.
	// s3: 30 fps, 300 kbit/s: default 500 → low_bitrate.
	// s5: 10 fps, 3000 kbit/s → low_fps.  s4: no_data.
	f.exec(t, `INSERT INTO origin_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum, no_data) VALUES
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s1','line','primary'), 'o', 0, 5, 1, 2, 50, 24, 4000, 1900, 80, 0),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s2','line','primary'), 'o', 0, 5, 1, 2, 20, 9, 3000, 1400, 60, 0),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s3','line','backup'), 'o', 0, 5, 1, 1, 30, 30, 300, 300, 10, 0),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s4','line','primary'), 'o', 0, 5, 1, 0, 0, inf, 0, inf, 0, 1),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s5','line','primary'), 'o', 0, 5, 0, 1, 10, 10, 3000, 3000, 5, 0)`)
	s, err := f.q.Streams(f.ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.At.Equal(at) || len(s.Cards) != 5 {
		t.Fatalf("streams: %+v", s)
	}
	want := map[string]string{"s1": StatusLowBitrate, "s2": StatusOK, "s3": StatusLowBitrate, "s4": StatusNoData, "s5": StatusLowFPS}
	for _, c := range s.Cards {
		if c.Status != want[c.StreamID] {
			t.Errorf("%s: status %s, want %s (%+v)", c.StreamID, c.Status, want[c.StreamID], c)
		}
	}
	s1 := s.Cards[0]
	if s1.StreamID != "s1" || !near(s1.FPS, 25) || !near(s1.BitrateKbps, 2000) || !near(s1.RTTMS, 40) || !near(s1.FPSMin, 24) || !s1.Final {
		t.Errorf("s1 card: %+v", s1)
	}
	if s.Cards[1].Quality != "720p" || s.Cards[1].Thresholds.MinBitrateKbps != 1000 {
		t.Errorf("s2 tier: %+v", s.Cards[1])
	}
	if s.Cards[3].FPS != nil || s.Cards[3].FPSMin != nil {
		t.Errorf("s4 no_data card has values: %+v", s.Cards[3])
	}
}

func TestLatest(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 3, 0, 0, time.UTC)
	f := newFixture(t, now, Options{})
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users, plays, plays_ok, written_at) VALUES
		('2026-11-23 12:00:00', '', map(), 'c', 0, 10, 1, 100, 50, 10, 10, '2026-11-23 12:01:05'),
		('2026-11-23 12:01:00', '', map(), 'c', 0, 12, 0, 30, 3, 4, 3, '2026-11-23 12:02:30'),
		('2026-11-23 12:01:00', '', map(), 'c', 1, 12, 0, 10, 1, 0, 0, '2026-11-23 12:02:40')`)
	// 7,500,000 bytes in one minute: 7.5e6 · 8 / 60 / 1e6 = 1 Mbit/s.
	f.exec(t, `INSERT INTO cdn_minute (window_start, grouping, dims, topic, kafka_partition, version, final, requests, bytes, errors_5xx, written_at) VALUES
		('2026-11-23 12:00:00', '', map(), 'd', 0, 10, 1, 100, 7500000, 5, '2026-11-23 12:01:10')`)
	l, err := f.q.Latest(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Headlines) != 2 {
		t.Fatalf("latest: %+v", l)
	}
	c, d := l.Headlines[0], l.Headlines[1]
	// Client 12:01: 40 users, 4/40 = 0.1, zero stutter 0.9, 3/4 connects;
	// its newest row was written at 12:02:40, 20 s before now.
	if c.Source != "client" || !c.Window.Equal(now.Add(-3*time.Minute+time.Minute)) || c.Final || c.AgeSeconds != 20 ||
		!near(c.Values["users"], 40) || !near(c.Values["stutter_rate_uv"], 0.1) || !near(c.Values["zero_stutter_rate"], 0.9) ||
		!near(c.Values["pull_connect_rate"], 0.75) || c.Values["first_frame_ms_p90"] != nil {
		t.Errorf("client headline: %+v", c)
	}
	if d.Source != "cdn" || !near(d.Values["bandwidth_mbps"], 1) || !near(d.Values["errors_5xx_rate"], 0.05) || !d.Final || d.AgeSeconds != 110 {
		t.Errorf("cdn headline: %+v", d)
	}
}

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 3, 0, 0, time.UTC)
	f := newFixture(t, now, Options{})
	fr, err := f.q.Freshness(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fr.Rows != 0 {
		t.Errorf("empty tables: %+v", fr)
	}
	// Two recent rows (client, cdn) and one older than the 1h lookback,
	// whose later written_at must not count.
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, written_at) VALUES
		('2026-11-23 12:01:00', '', map(), 'c', 0, 1, 0, '2026-11-23 12:02:10.250'),
		('2026-11-23 10:00:00', '', map(), 'c', 0, 1, 1, '2026-11-23 12:02:59.000')`)
	f.exec(t, `INSERT INTO cdn_minute (window_start, grouping, dims, topic, kafka_partition, version, final, written_at) VALUES
		('2026-11-23 12:00:00', '', map(), 'd', 0, 1, 0, '2026-11-23 12:02:30.500')`)
	fr, err = f.q.Freshness(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 23, 12, 2, 30, 500e6, time.UTC); fr.Rows != 2 || !fr.LastWrite.Equal(want) {
		t.Errorf("freshness = %+v, want 2 rows, last write %v", fr, want)
	}
}
