package runner_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/testenv"
)

// long reports whether the long variants run (QOSCOPE_LONG=1): 1M events
// instead of about 150k.
func long() bool { return os.Getenv("QOSCOPE_LONG") == "1" }

// fixture is one test's servers, topics, database and generated events,
// already produced to Kafka, with the offline mode's expected rows.
type fixture struct {
	k      *testenv.KafkaEnv
	ch     *testenv.ClickHouseEnv
	lines  [][]byte
	ends   map[string]map[int]int64
	want   e2e.Rows
	group  string
	events int
}

// testLogger writes the runners' log to the test log only on failure.
func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// newFixture generates users×d of events (qoscope gen, seed), creates the
// topics (partitions each) and the database, and produces the events.
// produce=false leaves producing to the test.
func newFixture(t *testing.T, ctx context.Context, seed uint64, users int, d time.Duration, partitions int) *fixture {
	t.Helper()
	ch := testenv.ClickHouse(t)
	if err := e2e.Migrate(ctx, ch.DSN); err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, ctx, ch, seed, users, d, partitions)
}

// newFixtureOn is newFixture with a database that is already migrated.
func newFixtureOn(t *testing.T, ctx context.Context, ch *testenv.ClickHouseEnv, seed uint64, users int, d time.Duration, partitions int) *fixture {
	t.Helper()
	f := &fixture{
		k:  testenv.Kafka(t, testenv.WithPartitions(partitions)),
		ch: ch,
	}
	f.group = f.k.GroupID("agg")
	// origin-silent: a stream stops reporting for minutes (origin no_data
	// rows); every 997th event arrives at the end (late events).
	lines, err := e2e.Generate(ctx, e2e.GenSpec{Seed: seed, Users: users, Start: runner.RecentStart(time.Now()), Duration: d,
		Scenario: "origin-silent", LateEvery: 997}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.lines, f.events = lines, len(lines)
	return f
}

func (f *fixture) produce(t *testing.T, ctx context.Context, lines [][]byte) {
	t.Helper()
	if _, err := e2e.Produce(ctx, f.k.Config(), lines); err != nil {
		t.Fatal(err)
	}
}

// expect reads the topics back and computes the offline mode's rows.
func (f *fixture) expect(t *testing.T, ctx context.Context) {
	t.Helper()
	kc := f.k.Config()
	parts, err := e2e.ReadBack(ctx, kc, kc.Topics.Client, kc.Topics.CDN, kc.Topics.Origin)
	if err != nil {
		t.Fatal(err)
	}
	f.ends = map[string]map[int]int64{}
	for _, p := range parts {
		if f.ends[p.Topic] == nil {
			f.ends[p.Topic] = map[int]int64{}
		}
		f.ends[p.Topic][p.Partition] = p.End
	}
	f.want, err = e2e.Expected(ctx, parts, aggregator.AllLateness(e2e.TestLateness), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) config(t *testing.T, mode string) runner.Config {
	c := e2e.TestConfig(f.k.Config(), f.ch.Config(), f.ch.HTTP, f.group)
	if mode != "" {
		c.Insert.Mode = mode
	}
	if c.Insert.Mode == runner.InsertArrowHTTP && f.ch.HTTP == "" {
		t.Fatalf("insert mode %s needs %s", runner.InsertArrowHTTP, testenv.EnvClickHouseHTTP)
	}
	return c
}

// check waits until every offset is committed, then compares the views
// with the offline rows.
func (f *fixture) check(t *testing.T, ctx context.Context, fail <-chan error) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e2e.WaitCommitted(wctx, f.k.Config(), f.group, f.ends, fail); err != nil {
		t.Fatal(err)
	}
	f.compare(t, ctx)
}

func (f *fixture) compare(t *testing.T, ctx context.Context) {
	t.Helper()
	got, nonFinal, err := e2e.ViewRows(ctx, f.ch.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if nonFinal != 0 {
		t.Errorf("%d rows are not final after every offset was committed", nonFinal)
	}
	if diffs := e2e.Compare(got, f.want, 20); len(diffs) > 0 {
		t.Fatalf("ClickHouse differs from the offline mode (%d rows expected, %d in the views):\n%s",
			len(f.want), len(got), strings.Join(diffs, "\n"))
	}
	late, noData := 0, 0
	for k, ms := range f.want {
		if k.Source == "late" {
			late++
		}
		if v := ms["no_data"]; v != nil && *v == 1 {
			noData++
		}
	}
	if late == 0 || noData == 0 {
		t.Errorf("expected rows hold %d late-event rows and %d origin no_data rows: the test would prove less", late, noData)
	}
	t.Logf("%d events: %d rows equal to the offline mode's (%d late-event rows, %d no_data rows)", f.events, len(f.want), late, noData)
}

func eventCount() (users int, d time.Duration) {
	if long() {
		return 5200, 11 * time.Minute // ≈ 1.0M events
	}
	return 750, 9 * time.Minute // ≈ 120k events
}

// Two runners in one group consume the generated events; once everything
// is committed the views equal the offline mode's output, row for row and
// metric for metric.
func TestTwoInstancesEqualOffline(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	users, d := eventCount()
	f := newFixture(t, ctx, 7, users, d, 3)
	start := time.Now()
	f.produce(t, ctx, f.lines)
	f.expect(t, ctx)
	t.Logf("produced and expected %d events in %s", f.events, time.Since(start).Round(time.Millisecond))

	cfg := f.config(t, "")
	fail := make(chan error, 2)
	var ins []*e2e.Instance
	// Each instance's flush points in order: Flushed (what wakes
	// all-in-one's alert evaluator) must come right after the checkpoints
	// were written, on every flush.
	seqs := make([]*flushSeq, 2)
	start = time.Now()
	for i := range 2 {
		seqs[i] = &flushSeq{}
		in, err := e2e.Start(ctx, cfg, runner.Deps{Logger: testLogger(t), CrashHook: seqs[i].add, Flushed: func() { seqs[i].add("flushed") }})
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
		go func() {
			if err := in.Err(); err != nil {
				fail <- err
			}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e2e.WaitCommitted(wctx, f.k.Config(), f.group, f.ends, fail); err != nil {
		t.Fatal(err)
	}
	t.Logf("consumed and committed in %s", time.Since(start).Round(time.Millisecond))
	var assigned, dl float64
	for _, in := range ins {
		t.Logf("instance: consumed %v, rows written %v, partitions %v", in.Metric("qoscope_aggregator_events_consumed_total"),
			in.Metric("qoscope_aggregator_rows_written_total"), in.Metric("qoscope_aggregator_assigned_partitions"))
		assigned += in.Metric("qoscope_aggregator_assigned_partitions")
		dl += in.Metric("qoscope_aggregator_deadlettered_total")
	}
	if assigned != 9 {
		t.Errorf("the instances hold %v partitions, want all 9", assigned)
	}
	if dl != 0 {
		t.Errorf("%v dead letters from valid events", dl)
	}
	for _, in := range ins {
		if in.Metric("qoscope_aggregator_assigned_partitions") == 0 {
			t.Error("one instance got no partition: the test did not use two")
		}
	}
	for _, in := range ins {
		if err := in.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	f.compare(t, ctx)
	checkRollups(t, ctx, f.ch)
	for i, sq := range seqs {
		sq.check(t, i)
	}
}

// flushSeq records the points of a runner's flushes (Deps.CrashHook and
// Deps.Flushed).
type flushSeq struct {
	mu  sync.Mutex
	seq []string
}

func (s *flushSeq) add(point string) { s.mu.Lock(); s.seq = append(s.seq, point); s.mu.Unlock() }

// check: at least one flush was reported, each "flushed" right after an
// "after-checkpoint", and every "after-checkpoint" followed by one.
func (s *flushSeq) check(t *testing.T, instance int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	flushed := 0
	for j, p := range s.seq {
		switch p {
		case "flushed":
			flushed++
			if j == 0 || s.seq[j-1] != "after-checkpoint" {
				t.Errorf("instance %d: Flushed called at point %d not right after the checkpoints (%v)", instance, j, s.seq[max(0, j-3):j+1])
			}
		case "after-checkpoint":
			if j+1 >= len(s.seq) || s.seq[j+1] != "flushed" {
				t.Errorf("instance %d: a flush wrote its checkpoints without calling Flushed", instance)
			}
		}
	}
	if flushed == 0 {
		t.Errorf("instance %d: Flushed never called", instance)
	}
}

// startInstance starts a runner; its unexpected end is reported on fail.
func startInstance(t *testing.T, ctx context.Context, cfg runner.Config, fail chan<- error) *e2e.Instance {
	t.Helper()
	in, err := e2e.Start(ctx, cfg, runner.Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := in.Err(); err != nil {
			fail <- err
		}
	}()
	return in
}

func waitFor(t *testing.T, ctx context.Context, what string, fail <-chan error, cond func() bool) {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case err := <-fail:
			t.Fatalf("waiting for %s: a runner stopped: %v", what, err)
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The stream keeps flowing while the group changes: A consumes alone, B
// joins mid-stream, A leaves mid-stream, B consumes the rest and leaves,
// and C (the only one with the idle rule, so the open windows stay open
// until then) takes over every partition from the checkpoints and closes
// the last windows. The result is still exactly the offline mode's.
func TestRebalanceJoinAndLeaveMidStream(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newFixture(t, ctx, 11, 500, 8*time.Minute, 3)
	third := len(f.lines) / 3
	cfg := f.config(t, runner.InsertNative)
	cfg.IdleAfter = 0
	fail := make(chan error, 3)

	f.produce(t, ctx, f.lines[:third])
	a := startInstance(t, ctx, cfg, fail)
	waitFor(t, ctx, "A to consume the first third", fail, func() bool {
		return a.Metric("qoscope_aggregator_events_consumed_total") >= float64(third)
	})

	f.produce(t, ctx, f.lines[third:2*third])
	b := startInstance(t, ctx, cfg, fail)
	waitFor(t, ctx, "B to get partitions", fail, func() bool {
		return b.Metric("qoscope_aggregator_assigned_partitions") > 0 && a.Metric("qoscope_aggregator_assigned_partitions") < 9
	})
	aBefore := a.Metric("qoscope_aggregator_events_consumed_total")

	f.produce(t, ctx, f.lines[2*third:])
	if err := a.Stop(); err != nil {
		t.Fatalf("A: %v", err)
	}
	t.Logf("A consumed %v events, %v of them after B joined", a.Metric("qoscope_aggregator_events_consumed_total"),
		a.Metric("qoscope_aggregator_events_consumed_total")-aBefore)
	waitFor(t, ctx, "B to take every partition", fail, func() bool {
		return b.Metric("qoscope_aggregator_assigned_partitions") == 9
	})
	f.expect(t, ctx)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := e2e.WaitCheckpointed(wctx, f.ch.Conn, f.group, f.ends, fail); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("B: %v", err)
	}
	cfg.IdleAfter = time.Second
	c := startInstance(t, ctx, cfg, fail)
	f.check(t, ctx, fail)
	if err := c.Stop(); err != nil {
		t.Fatalf("C: %v", err)
	}
	if g := b.Metric("qoscope_aggregator_group_generations_total"); g < 2 {
		t.Errorf("B saw %v generations; A's leaving should have started a second", g)
	}
}
