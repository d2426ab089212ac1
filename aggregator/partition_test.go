package aggregator

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

const t0 = 1795435200000 // 2026-11-23T12:00:00Z

func mustPlan(t testing.TB, mod func(*Config)) *Plan {
	t.Helper()
	c := DefaultConfig()
	// The hand-computed cases of this package assume 2 minutes of allowed
	// lateness for every source (TestDefaultLateness covers the defaults).
	c.Lateness = AllLateness(2 * time.Minute)
	if mod != nil {
		mod(&c)
	}
	p, err := NewPlan(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hb(ts int64, user, province string) schemas.Event {
	return schemas.Event{V: 1, Type: schemas.TypeHeartbeat, TS: ts, UserID: user, StreamID: "s1", Province: province}
}

// stored is what a ReplacingMergeTree keeps: per row key, the row with the
// highest version (the last inserted among equals).
type stored map[string]Row

func rowKey(r *Row) string {
	var b strings.Builder
	b.WriteString(time.UnixMilli(r.WindowStart).UTC().Format(time.RFC3339))
	b.WriteString("|" + r.Source.String() + "|" + r.Grouping)
	for _, d := range r.Dims {
		b.WriteString("|" + d.Value)
	}
	return b.String()
}

func (s stored) insert(rows []Row) {
	for _, r := range rows {
		k := rowKey(&r)
		if old, ok := s[k]; !ok || r.Version >= old.Version {
			s[k] = r
		}
	}
}

type storedLate map[lateKey]LateRow

func (s storedLate) insert(rows []LateRow) {
	for _, r := range rows {
		k := lateKey{r.WindowStart, route.Index(r.Source)}
		if old, ok := s[k]; !ok || r.Version >= old.Version {
			s[k] = r
		}
	}
}

func metricsOf(r Row) []Metric { return r.Metrics(nil) }

// A crash at any Drain, followed by Restore of the last durable checkpoint
// and a replay from its Resume offset, must leave the stored tables exactly
// as the run without a crash, even when rows written after the checkpoint
// are re-inserted by the replay.
func TestCrashReplayIsExact(t *testing.T) {
	plan := mustPlan(t, func(c *Config) {
		c.GroupingSets.Origin = [][]string{{"stream_id", "line"}, {}}
	})
	g := newGenerator(genOptions{seed: 11, start: t0, users: 200, streams: 10, eventsPerMin: 400, lateFrac: 0.1,
		maxLagMS: 200_000, switchFrac: 0.1, missingFrac: 0.05, cdnFrac: 0, originFrac: 0.3, originStreams: 5, dupFrac: 0.05})
	events := make([]schemas.Event, 3000)
	for i := range events {
		g.next(&events[i])
	}
	rng := rand.New(rand.NewPCG(1, 1))
	// drainAt[i]: Drain after event i; identical in every run.
	drainAt := make([]bool, len(events))
	for i := range drainAt {
		drainAt[i] = rng.IntN(40) == 0
	}

	run := func(p *Partition, from int, tbl stored, late storedLate, upTo int, onDrain func(i int, b Batch)) {
		for i := from; i < upTo; i++ {
			p.Add(int64(i), &events[i])
			if drainAt[i] {
				b := p.Drain()
				tbl.insert(b.Final)
				late.insert(b.Late)
				tbl.insert(p.Snapshot())
				if onDrain != nil {
					onDrain(i, b)
				}
			}
		}
	}
	finish := func(p *Partition, tbl stored, late storedLate) {
		p.CloseAll()
		b := p.Drain()
		tbl.insert(b.Final)
		late.insert(b.Late)
	}

	wantT, wantL := stored{}, storedLate{}
	ref := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	run(ref, 0, wantT, wantL, len(events), nil)
	finish(ref, wantT, wantL)
	if ref.Stats().Late == 0 {
		t.Fatal("the stream has no late events; the test would prove less")
	}

	for trial := range 8 {
		crashAt := 300 + rng.IntN(len(events)-600)
		gotT, gotL := stored{}, storedLate{}
		var cp Checkpoint
		var cpJSON []byte
		p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
		// The checkpoint is durable only as of the last Drain before the
		// crash; rows of later drains were written too (the crash hit
		// between the row insert and the checkpoint write).
		run(p, 0, gotT, gotL, crashAt, func(i int, b Batch) {
			if rng.IntN(3) > 0 || cpJSON == nil {
				cpJSON, _ = json.Marshal(b.Checkpoint)
			}
		})
		if cpJSON == nil {
			continue
		}
		if err := json.Unmarshal(cpJSON, &cp); err != nil {
			t.Fatal(err)
		}
		q := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
		if err := q.Restore(cp); err != nil {
			t.Fatal(err)
		}
		if cp.Resume > cp.Next || cp.Resume < 0 {
			t.Fatalf("checkpoint resume %d next %d", cp.Resume, cp.Next)
		}
		if trial%2 == 1 && cp.Next-cp.Resume > 1 {
			// A second crash while the first replay is still short of the
			// restored Next, after checkpoints taken during the replay.
			crash2 := int(cp.Resume) + 1 + rng.IntN(int(cp.Next-cp.Resume-1))
			cp2 := cp
			run(q, int(cp.Resume), gotT, gotL, crash2, func(i int, b Batch) { cp2 = b.Checkpoint })
			q = NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
			if err := q.Restore(cp2); err != nil {
				t.Fatal(err)
			}
			cp = cp2
		}
		run(q, int(cp.Resume), gotT, gotL, len(events), nil)
		finish(q, gotT, gotL)

		if len(gotT) != len(wantT) {
			t.Fatalf("trial %d (crash at %d, resume %d): %d rows, want %d", trial, crashAt, cp.Resume, len(gotT), len(wantT))
		}
		for k, w := range wantT {
			g, ok := gotT[k]
			if !ok || !g.Final || g.Version != w.Version || !reflect.DeepEqual(metricsOf(g), metricsOf(w)) {
				t.Fatalf("trial %d (crash at %d): row %s differs:\n got %+v\nwant %+v", trial, crashAt, k, metricsOf(g), metricsOf(w))
			}
		}
		if !reflect.DeepEqual(gotL, wantL) {
			t.Fatalf("trial %d: late rows %v, want %v", trial, gotL, wantL)
		}
	}
}

func TestOutcomesAndVersions(t *testing.T) {
	plan := mustPlan(t, nil) // lateness 2m
	p := NewPartition(plan, PartitionID{"client", 7}, schemas.SourceClient)
	add := func(off int64, e schemas.Event, want Outcome) {
		t.Helper()
		if got := p.Add(off, &e); got != want {
			t.Fatalf("offset %d: %v, want %v", off, got, want)
		}
	}
	add(0, hb(t0+5_000, "a", "x"), Applied)
	add(1, hb(t0+60_000+1, "b", "x"), Applied)
	// Watermark = 12:03:00 − 2m = 12:01:00: closes [12:00, 12:01) only.
	add(2, hb(t0+3*60_000, "c", "x"), Applied)
	if !p.Pending() {
		t.Fatal("window 12:00 should be closed")
	}
	add(3, hb(t0+59_999, "d", "x"), Late)    // 12:00 closed
	add(4, hb(t0+60_000, "e", "x"), Applied) // 12:01 still open
	add(5, schemas.Event{V: 1, Type: schemas.TypeUnknown, TS: t0}, Rejected)
	if s := p.Stats(); s.Applied != 4 || s.Late != 1 || s.Rejected != 1 {
		t.Fatalf("stats %+v", s)
	}
	snap := p.Snapshot()
	b := p.Drain()
	if len(b.Final) == 0 || len(b.Late) != 1 || b.Late[0].Count != 1 || b.Late[0].WindowStart != t0 {
		t.Fatalf("drain: %d final, late %+v", len(b.Final), b.Late)
	}
	var finalV, provV uint64
	for _, r := range b.Final {
		if r.WindowStart != t0 || !r.Final {
			t.Fatalf("final row %+v", r)
		}
		finalV = r.Version
	}
	for _, r := range snap {
		if r.WindowStart == t0 || r.Final {
			t.Fatalf("snapshot must hold only open windows: %+v", r)
		}
		provV = r.Version
	}
	// Window 12:00 closed at offset 2; the snapshot was taken at offset 5.
	if finalV != versionOf(2, true) || provV != versionOf(5, false) {
		t.Fatalf("versions final %d provisional %d", finalV, provV)
	}
	if versionOf(5, false) >= versionOf(5, true) || versionOf(4, true) >= versionOf(5, false) {
		t.Fatal("version order")
	}
	// Resume must point at the oldest event of a still-open window: offset 1.
	if b.Checkpoint.Resume != 1 || b.Checkpoint.Next != 6 {
		t.Fatalf("checkpoint %+v", b.Checkpoint)
	}
	// Idle advance closes windows without events.
	p.Advance(t0 + 10*60_000)
	b = p.Drain()
	if len(b.Final) == 0 || b.Final[0].Version != versionOf(5, true) {
		t.Fatalf("advance: %+v", b.Final)
	}
	if got := p.Add(6, ptr(hb(t0+3*60_000, "f", "x"))); got != Late {
		t.Fatalf("after advance: %v", got)
	}
}

func ptr(e schemas.Event) *schemas.Event { return &e }

func TestTooLateBeyondHorizon(t *testing.T) {
	plan := mustPlan(t, func(c *Config) { c.LateHorizon = 10 * time.Minute })
	p := NewPartition(plan, PartitionID{"cdn", 0}, schemas.SourceCDN)
	ev := func(ts int64) *schemas.Event {
		return &schemas.Event{V: 1, Type: schemas.TypeCDNRequest, TS: ts, Vendor: "v", Node: "n", Status: 200, TTFBMS: 5}
	}
	p.Add(0, ev(t0))
	p.Add(1, ev(t0+5*60_000))
	if p.Add(2, ev(t0)) != Late { // window ended 2m before the watermark (12:03)
		t.Fatal("want late")
	}
	p.Add(3, ev(t0+30*60_000))
	p.Drain() // forgets counters older than the horizon
	if got := p.Add(4, ev(t0)); got != TooLate {
		t.Fatalf("got %v, want too_late", got)
	}
	if got := p.Add(5, ev(t0+60_000)); got != TooLate {
		t.Fatalf("got %v, want too_late", got)
	}
	if got := p.Add(6, ev(t0+20*60_000)); got != Late {
		t.Fatalf("got %v, want late (within horizon)", got)
	}
	if s := p.Stats(); s.TooLate != 2 || s.Late != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// Users are disjoint across Kafka partitions, so summing per-partition rows
// (what the queries do) equals aggregating everything in one partition.
func TestPartitionsSumToWhole(t *testing.T) {
	plan := mustPlan(t, nil)
	g := newGenerator(genOptions{seed: 5, start: t0, users: 300, streams: 8, eventsPerMin: 1000, lateFrac: 0.02,
		maxLagMS: 60_000, switchFrac: 0.1, missingFrac: 0.05})
	whole := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	parts := []*Partition{NewPartition(plan, PartitionID{"client", 1}, schemas.SourceClient), NewPartition(plan, PartitionID{"client", 2}, schemas.SourceClient), NewPartition(plan, PartitionID{"client", 3}, schemas.SourceClient)}
	var e schemas.Event
	for i := range 8000 {
		g.next(&e)
		whole.Add(int64(i), &e)
		// A user's events always go to the same partition (keyed by user_id).
		k := int(e.UserID[len(e.UserID)-1]) % len(parts)
		parts[k].Add(int64(i), &e)
	}
	end := e.TS
	var a, b []Row
	whole.Advance(end)
	whole.CloseAll()
	a = whole.Drain().Final
	for _, p := range parts {
		p.Advance(end)
		p.CloseAll()
		b = append(b, p.Drain().Final...)
	}
	// Lags (≤ 60 s) are below the lateness (2 min): nothing may be late on
	// any partition, whatever its own watermark.
	if whole.Stats().Late != 0 || parts[0].Stats().Late+parts[1].Stats().Late+parts[2].Stats().Late != 0 {
		t.Fatal("unexpected late events")
	}
	a = MergePartitions(a)
	b = MergePartitions(b)
	if len(a) != len(b) {
		t.Fatalf("%d rows vs %d", len(a), len(b))
	}
	for i := range a {
		if !sameKey(&a[i], &b[i]) || !reflect.DeepEqual(a[i].Metrics(nil), b[i].Metrics(nil)) {
			t.Fatalf("row %d differs: %+v vs %+v", i, a[i].Dims, b[i].Dims)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	c := DefaultConfig()
	c.Lateness = AllLateness(-time.Second)
	c.OriginNoDataMinutes = 0
	c.GroupingSets.Client = [][]string{{"province", "provnce"}, {"isp", "province"}, {"province", "isp"}, {"user_id"}, {"isp", "isp"}}
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"lateness.client: must not be negative",
		"origin_no_data_minutes: 0 is not between 1 and 60",
		`grouping_sets.client[0][1]: "provnce" is not an event field`,
		"grouping_sets.client[2]: same dimensions as grouping_sets.client[1]",
		`grouping_sets.client[3][0]: "user_id" cannot be a dimension`,
		`grouping_sets.client[4][1]: "isp" listed twice`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if d := DefaultConfig(); d.Validate() != nil {
		t.Fatal(d.Validate())
	}
}

func TestDefaultGroupingSetsAreIssue4s(t *testing.T) {
	plan := mustPlan(t, nil)
	var names []string
	for _, s := range plan.GroupingSets(schemas.SourceClient) {
		names = append(names, s.Name)
	}
	want := []string{"", "province", "isp", "province,isp", "vendor", "vendor,province,isp", "stream_id", "quality", "platform", "client_version", "role", "node"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("client sets %q", names)
	}
	names = nil
	for _, s := range plan.GroupingSets(schemas.SourceCDN) {
		names = append(names, s.Name)
	}
	if !reflect.DeepEqual(names, []string{"", "vendor", "province", "isp", "vendor,province,isp", "node"}) {
		t.Fatalf("cdn sets %q", names)
	}
	if o := plan.GroupingSets(schemas.SourceOrigin); len(o) != 1 || o[0].Name != "stream_id,line" {
		t.Fatalf("origin sets %+v", o)
	}
}

func TestOutcomeNames(t *testing.T) {
	if Outcome(200).String() != "unknown" || Late.String() != "late" {
		t.Fatal("outcome names")
	}
}

func TestRestoreRejectsUsedPartition(t *testing.T) {
	p := NewPartition(mustPlan(t, nil), PartitionID{"client", 0}, schemas.SourceClient)
	p.Add(0, ptr(hb(t0, "a", "x")))
	if err := p.Restore(Checkpoint{}); err == nil {
		t.Fatal("restore into a used partition must fail")
	}
	q := NewPartition(mustPlan(t, nil), PartitionID{"client", 0}, schemas.SourceClient)
	err := q.Restore(Checkpoint{OriginSeen: []OriginState{{Set: 3, Dims: []string{"a"}}}})
	if err == nil || !strings.Contains(err.Error(), "grouping set 3") {
		t.Fatalf("got %v", err)
	}
}

// A restored partition whose only state is origin presence must still owe
// no_data rows when an idle Advance moves its clock.
func TestAdvanceAfterRestoreOwesNoData(t *testing.T) {
	plan := mustPlan(t, nil) // N = 5
	q := NewPartition(plan, PartitionID{"origin", 0}, schemas.SourceOrigin)
	err := q.Restore(Checkpoint{Resume: 10, Next: 10, MaxTS: t0 + 30_000, ClosedThrough: math.MinInt64,
		OriginSeen: []OriginState{{Set: 0, Dims: []string{"s1", "primary"}, Last: t0, Mask: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	q.Advance(t0 + 5*60_000) // watermark 12:03: closes 12:00 .. 12:02
	b := q.Drain()
	var got []string
	for _, r := range b.Final {
		if !r.Origin.NoData || r.Dims[0].Value != "s1" {
			t.Fatalf("unexpected row %+v", r)
		}
		got = append(got, time.UnixMilli(r.WindowStart).UTC().Format("15:04"))
	}
	// 12:00 is where s1 was seen: it has data there (restored, already
	// written), so no_data starts at 12:01.
	if strings.Join(got, ",") != "12:01,12:02" {
		t.Fatalf("no_data windows %v", got)
	}
}

func TestFieldOffsetsMatchGet(t *testing.T) {
	var e schemas.Event
	n := 0
	for f := schemas.FieldUserID; f.String() != "unknown"; f++ {
		n++
		// Give every string field a distinct value through reflection-free
		// means: set it via the getter's own location, then ask Get.
		off, ok := fieldOffset(f)
		if !ok {
			t.Errorf("field %s has no offset: the hot path falls back to Event.Get", f)
			continue
		}
		*(*string)(unsafe.Add(unsafe.Pointer(&e), off)) = "v-" + f.String()
	}
	for f := schemas.FieldUserID; f.String() != "unknown"; f++ {
		if got := e.Get(f); got != "v-"+f.String() {
			t.Errorf("offset of %s writes the field Get reads as %q", f, got)
		}
		if g := newGetter(f); g.get(&e) != "v-"+f.String() {
			t.Errorf("getter of %s", f)
		}
	}
	if n < 19 {
		t.Fatalf("only %d fields", n)
	}
	if g := newGetter(schemas.Field(250)); g.fast || g.get(&e) != unknown {
		t.Fatal("unknown field must fall back to Get")
	}
}

// Two crashes in a row: the checkpoint taken after a replay whose tail was
// only replayed late events must not move Next backwards, or the second
// replay would count those late events again.
func TestSecondCrashAfterReplayedLateTail(t *testing.T) {
	plan := mustPlan(t, nil)
	events := []schemas.Event{
		hb(t0, "u1", "a"),               // 0: window t0
		hb(t0+4*60_000, "u1", "a"),      // 1: closes window t0
		hb(t0+10_000, "u2", "a"),        // 2..4: late for window t0
		hb(t0+20_000, "u3", "a"),        //
		hb(t0+30_000, "u4", "a"),        //
		hb(t0+4*60_000+1000, "u5", "a"), // 5
	}
	lateOf := func(rows []LateRow) uint64 {
		var n uint64
		for _, r := range rows {
			n = max(n, r.Count)
		}
		return n
	}
	p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	var late []LateRow
	for i := range 5 {
		p.Add(int64(i), &events[i])
	}
	b := p.Drain()
	late = append(late, b.Late...)
	cp1 := b.Checkpoint
	if cp1.Next != 5 || lateOf(late) != 3 {
		t.Fatalf("checkpoint 1 next %d, late %d; want 5, 3", cp1.Next, lateOf(late))
	}

	q := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	if err := q.Restore(cp1); err != nil {
		t.Fatal(err)
	}
	for i := cp1.Resume; i < 5; i++ {
		q.Add(i, &events[i])
	}
	b = q.Drain()
	late = append(late, b.Late...)
	cp2 := b.Checkpoint
	if cp2.Next < cp1.Next {
		t.Fatalf("checkpoint after replay has next %d < %d", cp2.Next, cp1.Next)
	}

	r := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	if err := r.Restore(cp2); err != nil {
		t.Fatal(err)
	}
	for i := cp2.Resume; i < int64(len(events)); i++ {
		r.Add(i, &events[i])
	}
	r.CloseAll()
	late = append(late, r.Drain().Late...)
	if got := lateOf(late); got != 3 {
		t.Fatalf("late events counted %d times, want 3", got)
	}
	if s := r.Stats(); s.Late != 0 || s.Replayed != 3 {
		t.Fatalf("second replay stats %+v, want 3 replayed and no late", s)
	}
}

func TestSkipMovesCheckpointPastMessage(t *testing.T) {
	p := NewPartition(mustPlan(t, nil), PartitionID{"client", 0}, schemas.SourceClient)
	e := hb(t0, "u1", "a")
	p.Add(0, &e)
	p.Skip(1)
	p.Skip(0) // older offsets never move it back
	if cp := p.Checkpoint(); cp.Next != 2 || cp.Resume != 0 {
		t.Fatalf("checkpoint %+v, want next 2 resume 0", cp)
	}
}

// A checkpoint taken part-way through a replay (a flush while the restored
// partition catches up) must not move Next back to the replay's position:
// the restored late counters already count the late events up to the old
// Next, so a crash after that checkpoint would count them again.
func TestCheckpointDuringReplayKeepsNext(t *testing.T) {
	plan := mustPlan(t, nil)
	events := []schemas.Event{
		hb(t0, "u1", "a"),               // 0: window t0
		hb(t0+4*60_000, "u1", "a"),      // 1: closes window t0, opens t0+4m
		hb(t0+4*60_000+500, "u6", "a"),  // 2
		hb(t0+10_000, "u2", "a"),        // 3..5: late for window t0
		hb(t0+20_000, "u3", "a"),        //
		hb(t0+30_000, "u4", "a"),        //
		hb(t0+4*60_000+1000, "u5", "a"), // 6
	}
	p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	var late []LateRow
	for i := range 6 {
		p.Add(int64(i), &events[i])
	}
	b := p.Drain()
	late = append(late, b.Late...)
	cp1 := b.Checkpoint
	if cp1.Next != 6 || cp1.Resume != 1 {
		t.Fatalf("checkpoint 1 %+v, want resume 1 next 6", cp1)
	}

	// Restored, the partition re-reads offsets 1 and 2 (the open window),
	// then a flush drains it before the replay reached the late tail.
	q := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	if err := q.Restore(cp1); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i < 3; i++ {
		q.Add(i, &events[i])
	}
	b = q.Drain()
	late = append(late, b.Late...)
	cp2 := b.Checkpoint
	if cp2.Next < cp1.Next || cp2.Resume != cp1.Resume {
		t.Fatalf("checkpoint mid-replay %+v after %+v: next moved back or resume moved", cp2, cp1)
	}

	// Crash again; the third owner replays from cp2 to the end.
	r := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	if err := r.Restore(cp2); err != nil {
		t.Fatal(err)
	}
	for i := cp2.Resume; i < int64(len(events)); i++ {
		r.Add(i, &events[i])
	}
	r.CloseAll()
	late = append(late, r.Drain().Late...)
	var n uint64
	for _, l := range late {
		n = max(n, l.Count)
	}
	if n != 3 {
		t.Fatalf("late events counted %d, want 3", n)
	}
}
