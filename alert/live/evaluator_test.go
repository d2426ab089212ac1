package live

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func catalog(t testing.TB) *query.Catalog {
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return query.NewCatalog(plan)
}

// rules: stutter above 0.08 per vendor × province × isp, min_users 25,
// with the given for (keep_firing_for 0).
func rules(t testing.TB, forDur string) *alert.Rules {
	rs, err := alert.ParseRules("rules.yaml", []byte(fmt.Sprintf(`
- name: stutter
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  above: 0.08
  min_users: 25
  for: %s
  severity: critical
  annotations: {summary: "{{ .Labels.vendor }} {{ .Value | pct }}"}
`, forDur)), catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// fakeWatermarks: every minute ending at or before complete is complete,
// at or before final final.
type fakeWatermarks struct{ complete, final time.Time }

func (f *fakeWatermarks) Progress(_ context.Context, sources []string) (map[string]Progress, error) {
	out := map[string]Progress{}
	for _, s := range sources {
		out[s] = Progress{Complete: f.complete, Final: f.final}
	}
	return out, nil
}

// fakeRows holds per minute the stutter rate and users of cdn-b ×
// guangdong × telecom (a missing minute: no row) and whether it is final.
type fakeRows struct {
	rate  map[time.Time]float64
	users map[time.Time]float64
	final map[time.Time]bool
	reads map[time.Time]int // reads of the rule's set at a minute
}

func newFakeRows() *fakeRows {
	return &fakeRows{rate: map[time.Time]float64{}, users: map[time.Time]float64{}, final: map[time.Time]bool{}, reads: map[time.Time]int{}}
}

func (f *fakeRows) set(m int, users, rate float64) {
	f.users[at(m)], f.rate[at(m)] = users, rate
}

func (f *fakeRows) Rows(_ context.Context, source string, set query.GroupingSet, metrics []string, from, to time.Time, filter alert.Labels) ([]alert.Row, bool, error) {
	if set.Name != "vendor,province,isp" {
		return nil, true, nil
	}
	final := true
	var out []alert.Row
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		if to.Sub(from) == time.Minute {
			f.reads[m]++
		}
		final = final && f.final[m]
		u, ok := f.users[m]
		if !ok {
			continue
		}
		out = append(out, alert.Row{Minute: m, Source: source,
			Dims: alert.Labels{{Name: "vendor", Value: "cdn-b"}, {Name: "province", Value: "guangdong"}, {Name: "isp", Value: "telecom"}},
			Metrics: map[string]alert.Value{"users": {V: u, Valid: true}, "stutter_users": {V: u * f.rate[m], Valid: true},
				"stutter_rate_uv": {V: f.rate[m], Valid: true}}})
	}
	return out, final, nil
}

// fakeStore keeps the saved states and the history rows.
type fakeStore struct {
	saved   []*State
	history []HistoryRow
}

func (s *fakeStore) LoadState(context.Context) (*State, error) {
	if len(s.saved) == 0 {
		return nil, nil
	}
	return cloneState(s.saved[len(s.saved)-1]), nil
}

func (s *fakeStore) SaveState(_ context.Context, st *State) error {
	st.Saves++
	s.saved = append(s.saved, cloneState(st))
	return nil
}

func (s *fakeStore) WriteHistory(_ context.Context, rows []HistoryRow) error {
	s.history = append(s.history, rows...)
	return nil
}

// hist renders the history as "minute:state[:retracted]@version".
func (s *fakeStore) hist() []string {
	var out []string
	for _, h := range s.history {
		r := ""
		if h.Retracted {
			r = ":retracted"
		}
		out = append(out, fmt.Sprintf("%d:%s%s@%d", int(h.At.Sub(t0)/time.Minute), h.State, r, h.Version))
	}
	return out
}

type fakeSink struct{ got [][]notify.Alert }

func (s *fakeSink) Submit(_ context.Context, as []notify.Alert) error {
	s.got = append(s.got, slices.Clone(as))
	return nil
}

// sent renders each Submit as "status@evaluated(starts)" joined by ",".
func (s *fakeSink) sent() []string {
	var out []string
	for _, as := range s.got {
		var parts []string
		for _, a := range as {
			parts = append(parts, fmt.Sprintf("%s@%d(%d)", a.Status, int(a.EvaluatedAt.Sub(t0)/time.Minute), int(a.StartsAt.Sub(t0)/time.Minute)))
		}
		out = append(out, strings.Join(parts, ","))
	}
	return out
}

type harness struct {
	wm    *fakeWatermarks
	rows  *fakeRows
	store *fakeStore
	sink  *fakeSink
	rs    *alert.Rules
	ev    *Evaluator
}

func newHarness(t *testing.T, rs *alert.Rules) *harness {
	h := &harness{wm: &fakeWatermarks{}, rows: newFakeRows(), store: &fakeStore{}, sink: &fakeSink{}, rs: rs}
	h.restart(t)
	return h
}

// restart replaces the evaluator by a new one on the same store, as a
// restarted process (or the other instance) would.
func (h *harness) restart(t *testing.T) {
	t.Helper()
	cfg := DefaultConfig()
	h.ev = NewEvaluator(cfg, h.rs, Deps{Watermarks: h.wm, Rows: h.rows, Store: h.store, Sink: h.sink,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), Now: func() time.Time { return h.wm.complete }})
	if err := h.ev.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// advance moves the watermarks so that minutes up to complete are
// complete and up to final are final (-1: none), then ticks.
func (h *harness) advance(t *testing.T, complete, final int) int {
	t.Helper()
	h.wm.complete, h.wm.final = at(complete+1), at(final+1)
	for m := range h.rows.users {
		if !m.After(at(final)) {
			h.rows.final[m] = true
		}
	}
	n, err := h.ev.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// A complete minute is evaluated once; ticks without new minutes do
// nothing; with no `for`, the first minute evaluated is the newest complete
// one.
func TestCompleteMinuteEvaluatedOnce(t *testing.T) {
	h := newHarness(t, rules(t, "0"))
	h.rows.set(5, 30, 0.2)
	if n := h.advance(t, 5, -1); n != 1 {
		t.Fatalf("first tick: %d steps, want 1 (minute 5 only: no state yet)", n)
	}
	for range 3 {
		if n := h.advance(t, 5, -1); n != 0 {
			t.Fatalf("tick without a new minute: %d steps", n)
		}
	}
	if h.rows.reads[at(5)] != 1 || h.rows.reads[at(4)] != 0 {
		t.Errorf("reads: minute 5 %d (want 1), minute 4 %d (want 0)", h.rows.reads[at(5)], h.rows.reads[at(4)])
	}
	// for 0: firing at the first minute that holds (30 users ≥ 25, 0.2 > 0.08).
	eq(t, "history", h.store.hist(), []string{"5:firing@1"})
	eq(t, "sink", h.sink.sent(), []string{"firing@5(5)"})
	a := h.sink.got[0][0]
	if a.Labels["alertname"] != "stutter" || a.Labels["vendor"] != "cdn-b" || a.Annotations["summary"] != "cdn-b 20.0%" || a.Value == nil || *a.Value != 0.2 {
		t.Errorf("notification: %+v", a)
	}
}

// A minute evaluated complete is evaluated again when final; unchanged
// rows change nothing and send nothing; the final minute leaves the
// provisional list.
func TestFinalMinuteReEvaluated(t *testing.T) {
	h := newHarness(t, rules(t, "0"))
	h.rows.set(0, 30, 0.2)
	h.advance(t, 0, -1)
	if got := len(h.ev.Snapshot().Minutes); got != 1 {
		t.Fatalf("%d provisional minutes after a complete one, want 1", got)
	}
	if n := h.advance(t, 0, 0); n != 1 {
		t.Fatalf("final tick: %d steps, want 1", n)
	}
	if h.rows.reads[at(0)] != 2 {
		t.Errorf("minute 0 read %d times, want 2 (complete, final)", h.rows.reads[at(0)])
	}
	st := h.ev.Snapshot()
	if len(st.Minutes) != 0 || !st.Final.Evaluated.Equal(at(0)) {
		t.Errorf("after final: %d provisional minutes, final evaluated %s", len(st.Minutes), st.Final.Evaluated)
	}
	eq(t, "history", h.store.hist(), []string{"0:firing@1"})
	eq(t, "sink", h.sink.sent(), []string{"firing@0(0)"})
}

// Final rows that no longer hold retract the firing decision (a history
// row with retracted = 1 and a higher version) and resolve the alert at
// delivery; the later minute evaluated on the old decision is evaluated
// again too.
func TestFlipWritesRetraction(t *testing.T) {
	h := newHarness(t, rules(t, "0"))
	h.rows.set(0, 30, 0.2)
	h.rows.set(1, 30, 0.02)
	h.advance(t, 0, -1) // firing at 0
	h.advance(t, 1, -1) // resolved at 1
	eq(t, "history before final", h.store.hist(), []string{"0:firing@1", "1:resolved@2"})
	// Late events: minute 0 ends with 40 users of which 2 stuttered (0.05).
	h.rows.set(0, 40, 0.05)
	h.advance(t, 1, 0)
	eq(t, "history", h.store.hist(), []string{"0:firing@1", "1:resolved@2", "0:firing:retracted@3", "1:resolved:retracted@3"})
	// Firing was handed over at 0; at 1 it resolved.
	eq(t, "sink", h.sink.sent(), []string{"firing@0(0)", "resolved@1(0)"})
	if st := h.ev.Snapshot(); len(st.current().Alerts) != 0 || len(st.Minutes) != 1 {
		t.Errorf("state after the flip: %+v", st)
	}
}

// The other way: a minute complete without the condition, final with it,
// fires then (delivery gets the firing at the re-evaluation).
func TestFlipToFiring(t *testing.T) {
	h := newHarness(t, rules(t, "0"))
	h.rows.set(0, 20, 0.2) // 20 users < 25: does not hold
	h.advance(t, 0, -1)
	h.rows.set(0, 30, 0.2)
	h.advance(t, 0, 0)
	eq(t, "history", h.store.hist(), []string{"0:firing@2"})
	eq(t, "sink", h.sink.sent(), []string{"firing@0(0)"})
}

// A restarted evaluator keeps a pending `for` (fires on time, not later)
// and does not fire a firing alert again; delivery still gets the firing
// alert each minute with its original start.
func TestRestartKeepsPendingAndDoesNotRefire(t *testing.T) {
	h := newHarness(t, rules(t, "2m"))
	for m := range 6 {
		h.rows.set(m, 30, 0.2)
	}
	h.advance(t, 0, -1) // minutes −2 to 0 (the first start's look-back): pending at 0
	h.advance(t, 1, -1)
	h.restart(t)
	h.advance(t, 2, -1) // held 0..2: firing at 2 (a forgotten pending would be pending at 2)
	h.restart(t)
	h.advance(t, 3, -1)
	h.restart(t)
	h.advance(t, 4, -1)
	eq(t, "history", h.store.hist(), []string{"0:pending@3", "2:firing@5"})
	eq(t, "sink", h.sink.sent(), []string{"firing@2(2)", "firing@3(2)", "firing@4(2)"})
}

// Minutes missed while no evaluator ran are caught up in order. (The
// first tick evaluates minutes −2 to 0: the look-back of the first start,
// saves 1 to 3.)
func TestCatchUpInOrder(t *testing.T) {
	h := newHarness(t, rules(t, "2m"))
	for m := range 6 {
		h.rows.set(m, 30, 0.2)
	}
	h.advance(t, 0, -1)
	h.restart(t)
	if n := h.advance(t, 4, -1); n != 4 {
		t.Fatalf("catch-up: %d steps, want 4 (minutes 1-4)", n)
	}
	eq(t, "history", h.store.hist(), []string{"0:pending@3", "2:firing@5"})
	eq(t, "sink", h.sink.sent(), []string{"firing@2(2)", "firing@3(2)", "firing@4(2)"})
}

// A crash after the state with its outbox was saved and before the Sink
// took it: the next term hands the same alerts over first.
func TestOutboxHandedOverAfterCrash(t *testing.T) {
	h := newHarness(t, rules(t, "0"))
	h.rows.set(0, 30, 0.2)
	failing := &failSink{}
	h.ev.d.Sink = failing
	h.wm.complete = at(1)
	if _, err := h.ev.Tick(context.Background()); err == nil {
		t.Fatal("a failing sink is an error")
	}
	if st := h.store.saved[len(h.store.saved)-1]; len(st.Outbox) != 1 {
		t.Fatalf("saved outbox: %d alerts, want 1", len(st.Outbox))
	}
	h.restart(t) // the fake sink again
	eq(t, "sink", h.sink.sent(), []string{"firing@0(0)"})
	if st := h.store.saved[len(h.store.saved)-1]; len(st.Outbox) != 0 {
		t.Errorf("outbox not cleared after hand-over: %d", len(st.Outbox))
	}
}

type failSink struct{}

func (failSink) Submit(context.Context, []notify.Alert) error { return fmt.Errorf("outbox full") }

// An alert firing only by keep_firing_for keeps the value (and the
// annotations rendered from it) of the last minute its condition held, as
// Prometheus does: on-call never reads a healthy value under a firing
// title. Minute 0: 20 % over 30 users, fires; minutes 1 and 2: 1 % over
// 40, does not hold, still firing (keep_firing_for 2m) and shows 20 % over
// 30; minute 3: resolved, repeating the last firing notification's
// annotations (as Alertmanager's resolved notifications do).
func TestKeepFiringShowsTheValueThatFired(t *testing.T) {
	rs, err := alert.ParseRules("rules.yaml", []byte(`
- name: stutter
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  above: 0.08
  min_users: 25
  keep_firing_for: 2m
  severity: critical
  annotations: {summary: "{{ .Labels.vendor }} {{ .Value | pct }} over {{ .Users }}"}
`), catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rs)
	h.rows.set(0, 30, 0.2)
	for m := 1; m <= 3; m++ {
		h.rows.set(m, 40, 0.01)
	}
	var got []string
	for m := 0; m <= 3; m++ {
		h.advance(t, m, m)
		for _, a := range h.sink.got[len(h.sink.got)-1] {
			got = append(got, fmt.Sprintf("%d %s %s", m, a.Status, a.Annotations["summary"]))
		}
	}
	eq(t, "notifications", got, []string{
		"0 firing cdn-b 20.0% over 30",
		"1 firing cdn-b 20.0% over 30",
		"2 firing cdn-b 20.0% over 30",
		"3 resolved cdn-b 20.0% over 30",
	})
}

// The first start (no saved state) looks back the rules' longest `for`:
// a condition that has held since minute 1 fires at minute 3 with `for:
// 2m` (pending at 1, held 1..3), as it would have had an evaluator run all
// along, not at minute 5. Minute 0 did not hold (20 users < 25) and is not
// read (3 − 2m = 1).
func TestFirstStartLooksBackTheLongestFor(t *testing.T) {
	h := newHarness(t, rules(t, "2m"))
	h.rows.set(0, 20, 0.2)
	for m := 1; m <= 3; m++ {
		h.rows.set(m, 30, 0.2)
	}
	if n := h.advance(t, 3, -1); n != 3 {
		t.Fatalf("first tick: %d steps, want 3 (minutes 1-3)", n)
	}
	if h.rows.reads[at(0)] != 0 {
		t.Errorf("minute 0 read %d times, want 0 (before the look-back)", h.rows.reads[at(0)])
	}
	eq(t, "history", h.store.hist(), []string{"1:pending@1", "3:firing@3"})
	eq(t, "sink", h.sink.sent(), []string{"firing@3(3)"})
}
