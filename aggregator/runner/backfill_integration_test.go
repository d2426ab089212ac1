package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/schemas"
)

// backfillInput is a hand-made file starting at S (an :56 minute, so that
// its minutes straddle an hour). With client lateness 1m:
//
//	S+0:01 u1 heartbeat s1; S+0:02 u2 heartbeat s1 stalled; S+0:30 u2 stall 3000 ms on s1
//	S+0:10 origin sample s1/primary (no origin event after: no_data rows follow)
//	S+4:10 u1 heartbeat s1; S+4:20 u3 heartbeat on stream3
//	S+0:40 u3 heartbeat: its window closed when S+4:20 moved the watermark to S+3:20: late
//
// By hand, client totals: minute S users 2, stutter_users 1, samples 2,
// stalled_samples 1, stalls 1, stall_ms 3000; minute S+4 users 2, samples 2,
// nothing stalled; one late client event in minute S. Origin s1/primary:
// S samples 1; S+1..S+4 no_data (within origin_no_data_minutes = 5; the
// input ends with minute S+4).
func backfillInput(t *testing.T, s time.Time, stream3 string) string {
	t.Helper()
	at := func(d time.Duration) int64 { return s.Add(d).UnixMilli() }
	lines := []string{
		fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u1","stream_id":"s1","stalled":false}`, at(1*time.Second)),
		fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u2","stream_id":"s1","stalled":true}`, at(2*time.Second)),
		fmt.Sprintf(`{"v":1,"type":"origin_stats","ts":%d,"stream_id":"s1","node":"o1","line":"primary","bitrate_kbps":3000,"fps":30,"rtt_ms":12}`, at(10*time.Second)),
		fmt.Sprintf(`{"v":1,"type":"stall","ts":%d,"user_id":"u2","stream_id":"s1","duration_ms":3000,"media":"video"}`, at(30*time.Second)),
		fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u1","stream_id":"s1","stalled":false}`, at(4*time.Minute+10*time.Second)),
		fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u3","stream_id":%q,"stalled":false}`, at(4*time.Minute+20*time.Second), stream3),
		fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u3","stream_id":"s1","stalled":false}`, at(40*time.Second)),
	}
	p := filepath.Join(t.TempDir(), "hour.ndjson")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type backfillEnv struct {
	ch  *testenv.ClickHouseEnv
	cfg runner.Config
	s   time.Time
}

func newBackfillEnv(t *testing.T, ctx context.Context) *backfillEnv {
	t.Helper()
	ch := testenv.ClickHouse(t)
	if err := e2e.Migrate(ctx, ch.DSN); err != nil {
		t.Fatal(err)
	}
	cfg := runner.DefaultConfig()
	cfg.ClickHouse = ch.Config()
	if ch.HTTP == "" {
		cfg.Insert.Mode = runner.InsertNative
	}
	cfg.Aggregator.Lateness.Client = time.Minute
	// Well inside the minute tables' 30-day TTL, which drops older rows.
	return &backfillEnv{ch: ch, cfg: cfg, s: runner.RecentStart(time.Now())}
}

func (e *backfillEnv) run(ctx context.Context, file string, replace bool) (*runner.BackfillReport, error) {
	return runner.Backfill(ctx, runner.BackfillOptions{Offline: aggregator.OfflineOptions{Inputs: []string{file}}, Config: &e.cfg, Replace: replace})
}

// query returns the rows of q, each rendered by ClickHouse as one string.
func (e *backfillEnv) query(t *testing.T, ctx context.Context, q string) []string {
	t.Helper()
	rows, err := e.ch.Conn.Query(ctx, "SELECT toString(tuple(*)) FROM ("+q+")")
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// viewDump is every view's and late_events' content, written_at aside.
func (e *backfillEnv) viewDump(t *testing.T, ctx context.Context) string {
	t.Helper()
	var b strings.Builder
	for _, src := range []string{"client", "cdn", "origin"} {
		for _, p := range []string{"minute", "hour", "day"} {
			v := src + "_" + p + "_metrics"
			for _, r := range e.query(t, ctx, "SELECT * EXCEPT (written_at) FROM "+v+" ORDER BY window_start, grouping, dims_key") {
				b.WriteString(v + " " + r + "\n")
			}
		}
	}
	for _, r := range e.query(t, ctx, "SELECT window_start, source, sum(count) FROM late_events FINAL GROUP BY window_start, source ORDER BY ALL") {
		b.WriteString("late " + r + "\n")
	}
	return b.String()
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func equalRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// checkBackfill compares the views with the values computed by hand for
// backfillInput (see there); stream3 is the stream of u3 in minute S+4.
func (e *backfillEnv) checkBackfill(t *testing.T, ctx context.Context, stream3 string) {
	t.Helper()
	s, m4 := e.s, e.s.Add(4*time.Minute)
	h0, h1 := s.Truncate(time.Hour), m4.Truncate(time.Hour)
	// Client totals: users, stutter_users, samples, stalled_samples, stalls, stall_ms, partial_rows, final.
	equalRows(t, "client minute totals", e.query(t, ctx, "SELECT window_start, users, stutter_users, samples, stalled_samples, stalls, stall_ms, partial_rows, final "+
		"FROM client_minute_metrics WHERE grouping = '' ORDER BY window_start"), []string{
		fmt.Sprintf("('%s',2,1,2,1,1,3000,1,1)", ts(s)),
		fmt.Sprintf("('%s',2,0,2,0,0,0,1,1)", ts(m4)),
	})
	// Per stream in minute S+4: u1 on s1, u3 on stream3.
	want := []string{fmt.Sprintf("('[\"%s\"]',1,1)", "s1"), fmt.Sprintf("('[\"%s\"]',1,1)", stream3)}
	if stream3 == "s1" {
		want = []string{`('["s1"]',2,2)`}
	} else if stream3 < "s1" {
		want[0], want[1] = want[1], want[0]
	}
	equalRows(t, "client minute S+4 per stream", e.query(t, ctx, "SELECT dims_key, users, samples FROM client_minute_metrics "+
		"WHERE grouping = 'stream_id' AND window_start = toDateTime('"+ts(m4)+"', 'UTC') ORDER BY dims_key"), want)
	equalRows(t, "late events", e.query(t, ctx, "SELECT window_start, source, sum(count) FROM late_events FINAL GROUP BY window_start, source"),
		[]string{fmt.Sprintf("('%s','client',1)", ts(s))})
	// Origin: data at S, no_data S+1..S+4.
	var origin []string
	for i := range 5 {
		if i == 0 {
			origin = append(origin, fmt.Sprintf("('%s',1,0)", ts(s)))
		} else {
			origin = append(origin, fmt.Sprintf("('%s',0,1)", ts(s.Add(time.Duration(i)*time.Minute))))
		}
	}
	equalRows(t, "origin minutes", e.query(t, ctx, "SELECT window_start, samples, no_data FROM origin_minute_metrics "+
		"WHERE grouping = 'stream_id,line' AND dims_key = '[\"s1\",\"primary\"]' ORDER BY window_start"), origin)

	// Hours: S's hour holds minute S (client) and S..S+3 (origin, S+1..S+3
	// no_data); the next hour minute S+4.
	equalRows(t, "client hour totals", e.query(t, ctx, "SELECT window_start, user_minutes, stutter_user_minutes, samples, stalled_samples, stall_ms, partial_rows "+
		"FROM client_hour_metrics WHERE grouping = '' ORDER BY window_start"), []string{
		fmt.Sprintf("('%s',2,1,2,1,3000,1)", ts(h0)),
		fmt.Sprintf("('%s',2,0,2,0,0,1)", ts(h1)),
	})
	equalRows(t, "origin hours", e.query(t, ctx, "SELECT window_start, data_minutes, no_data_minutes, samples FROM origin_hour_metrics "+
		"WHERE grouping = 'stream_id,line' ORDER BY window_start"), []string{
		fmt.Sprintf("('%s',1,3,1)", ts(h0)),
		fmt.Sprintf("('%s',0,1,0)", ts(h1)),
	})
	// Days: the two hours are on one day unless S is 23:56.
	d0, d1 := s.Truncate(24*time.Hour), m4.Truncate(24*time.Hour)
	wantDays := []string{fmt.Sprintf("('%s',4,1,4,1,3000)", ts(d0))}
	if d0 != d1 {
		wantDays = []string{fmt.Sprintf("('%s',2,1,2,1,3000)", ts(d0)), fmt.Sprintf("('%s',2,0,2,0,0)", ts(d1))}
	}
	equalRows(t, "client day totals", e.query(t, ctx, "SELECT window_start, user_minutes, stutter_user_minutes, samples, stalled_samples, stall_ms "+
		"FROM client_day_metrics WHERE grouping = '' ORDER BY window_start"), wantDays)
	wantOriginDays := []string{fmt.Sprintf("('%s',1,4)", ts(d0))}
	if d0 != d1 {
		wantOriginDays = []string{fmt.Sprintf("('%s',1,3)", ts(d0)), fmt.Sprintf("('%s',0,1)", ts(d1))}
	}
	equalRows(t, "origin days", e.query(t, ctx, "SELECT window_start, data_minutes, no_data_minutes FROM origin_day_metrics "+
		"WHERE grouping = 'stream_id,line' ORDER BY window_start"), wantOriginDays)
	// Every row is the backfill's (topic backfill:<source>, partition 0).
	for _, tb := range []string{"client_minute", "origin_minute", "client_hour", "client_day", "origin_hour", "origin_day", "late_events"} {
		equalRows(t, tb+" topics", e.query(t, ctx, "SELECT DISTINCT topic, kafka_partition FROM "+tb+" FINAL"),
			[]string{fmt.Sprintf("('%s',0)", runner.BackfillTopic(map[bool]schemas.Source{true: schemas.SourceOrigin, false: schemas.SourceClient}[strings.HasPrefix(tb, "origin")]))})
	}
}

// A hand-made hour file lands in the minute tables, late_events and the
// hour/day rollups with the values computed by hand; running it again
// leaves every view as it was; a changed file replaces the earlier run's
// rows, including keys it no longer has.
func TestBackfillWritesOfflineRowsIdempotently(t *testing.T) {
	ctx := context.Background()
	e := newBackfillEnv(t, ctx)
	file := backfillInput(t, e.s, "s3")
	rep, err := e.run(ctx, file, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Minutes[schemas.SourceClient] != 2 || rep.Minutes[schemas.SourceOrigin] != 5 || rep.Stats.Stats.Late != 1 {
		t.Fatalf("report %+v: want 2 client minutes, 5 origin minutes, 1 late event", rep)
	}
	e.checkBackfill(t, ctx, "s3")
	first := e.viewDump(t, ctx)

	rep2, err := e.run(ctx, file, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Version <= rep.Version {
		t.Errorf("second run's version %d is not above the first's %d", rep2.Version, rep.Version)
	}
	if len(rep2.Stale) != 0 {
		t.Errorf("a re-run of the same file found stale rows: %v", rep2.Stale)
	}
	e.checkBackfill(t, ctx, "s3")
	if second := e.viewDump(t, ctx); second != first {
		t.Errorf("views differ after the second run:\nfirst:\n%s\nsecond:\n%s", first, second)
	}

	// The vendor redelivers the hour with u3 on s1: stream s3 must vanish
	// from the minute and the hour tables, not linger from the first run.
	rep3, err := e.run(ctx, backfillInput(t, e.s, "s1"), false)
	if err != nil {
		t.Fatal(err)
	}
	if rep3.Stale["client_minute"] == 0 {
		t.Errorf("the changed file's run reports no stale client rows: %v", rep3.Stale)
	}
	e.checkBackfill(t, ctx, "s1")
	for _, v := range []string{"client_minute_metrics", "client_hour_metrics", "client_day_metrics"} {
		equalRows(t, v+" s3 rows", e.query(t, ctx, "SELECT window_start FROM "+v+" WHERE grouping = 'stream_id' AND dims_key = '[\"s3\"]'"), nil)
	}
}

// Minutes for which rows of the streaming aggregator exist are refused,
// naming them and --replace, with nothing written; with --replace the
// backfill's rows replace them, rollups included.
func TestBackfillRefusesStreamingMinutesUnlessReplace(t *testing.T) {
	ctx := context.Background()
	e := newBackfillEnv(t, ctx)
	m4 := e.s.Add(4 * time.Minute)
	h1 := m4.Truncate(time.Hour)
	// What a streaming runner would have written for minute S+4 on
	// partition 3 of its client topic: a final total row and its hour row,
	// and a late counter.
	for _, q := range []string{
		"INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, samples) VALUES (toDateTime('" + ts(m4) + "', 'UTC'), '', map(), 'qoscope.client', 3, 41, 1, 7, 9)",
		"INSERT INTO client_hour (window_start, grouping, dims, topic, kafka_partition, version, minutes, user_minutes, samples) VALUES (toDateTime('" + ts(h1) + "', 'UTC'), '', map(), 'qoscope.client', 3, 41, 1, 7, 9)",
		"INSERT INTO late_events (window_start, source, topic, kafka_partition, count, version) VALUES (toDateTime('" + ts(m4) + "', 'UTC'), 'client', 'qoscope.client', 3, 5, 41)",
	} {
		if err := e.ch.Conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before := e.viewDump(t, ctx)
	file := backfillInput(t, e.s, "s3")

	_, err := e.run(ctx, file, false)
	var owned *runner.OwnedMinutesError
	if !errors.As(err, &owned) {
		t.Fatalf("want an OwnedMinutesError, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "client "+m4.UTC().Format(time.RFC3339)) || !strings.Contains(msg, "--replace") || !strings.Contains(msg, "qoscope.client") {
		t.Errorf("error %q does not name the minute %s, the topic and --replace", msg, m4.UTC().Format(time.RFC3339))
	}
	if got := owned.Minutes[schemas.SourceClient]; len(got) != 1 || got[0] != m4.Unix() {
		t.Errorf("owned client minutes %v, want [%d]", got, m4.Unix())
	}
	if after := e.viewDump(t, ctx); after != before {
		t.Errorf("a refused backfill changed the views:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	rep, err := e.run(ctx, file, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replaced[schemas.SourceClient] != 1 {
		t.Errorf("replaced client minutes = %d, want 1", rep.Replaced[schemas.SourceClient])
	}
	// The backfill's values, exactly as without streaming rows: minute S+4
	// users 2 (not 7 + 2), hour user_minutes 2, no streaming late count.
	e.checkBackfill(t, ctx, "s3")
	for _, tb := range []string{"client_minute", "client_hour", "client_day", "late_events"} {
		equalRows(t, tb+" streaming rows left", e.query(t, ctx, "SELECT topic FROM "+tb+" FINAL WHERE topic = 'qoscope.client'"), nil)
	}
}
