package aggregator

import (
	"math/rand/v2"
	"testing"

	"github.com/qoscope/qoscope/schemas"
)

// clientTotal returns the client total row (no dimensions) of the window
// starting at ws, or nil.
func clientTotal(rows []Row, ws int64) *ClientRaw {
	for i := range rows {
		if r := &rows[i]; r.Source == schemas.SourceClient && len(r.Dims) == 0 && r.WindowStart == ws {
			return r.Client
		}
	}
	return nil
}

func withEID(e schemas.Event, id uint64) schemas.Event { e.EID = id; return e }

func TestDuplicateCountedOnce(t *testing.T) {
	p := NewPartition(mustPlan(t, nil), PartitionID{"client", 0}, schemas.SourceClient)
	stall := schemas.Event{V: 1, Type: schemas.TypeStall, TS: t0 + 1000, UserID: "u1", StreamID: "s1", DurationMS: 3000, Media: "video", EID: 7}
	seq := []struct {
		e    schemas.Event
		want Outcome
	}{
		{withEID(hb(t0+500, "u1", "p"), 1), Applied},
		{stall, Applied},
		{withEID(hb(t0+2000, "u2", "p"), 2), Applied},
		{withEID(hb(t0+500, "u1", "p"), 1), Duplicate}, // the retry
		{stall, Duplicate},
		// A copy whose corrected time falls into the next minute is
		// still a copy.
		{withEID(hb(t0+60_500, "u1", "p"), 2), Duplicate},
		// Without identity (EID 0) nothing is de-duplicated.
		{hb(t0+3000, "u3", "p"), Applied},
		{hb(t0+3000, "u3", "p"), Applied},
	}
	for i, s := range seq {
		if got := p.Add(int64(i), &s.e); got != s.want {
			t.Fatalf("event %d: %v, want %v", i, got, s.want)
		}
	}
	if st := p.Stats(); st.Applied != 5 || st.Duplicate != 3 {
		t.Fatalf("stats %+v, want 5 applied, 3 duplicate", st)
	}
	p.CloseAll()
	rows := p.Drain().Final
	c := clientTotal(rows, t0)
	// Hand count: heartbeats u1, u2, u3, u3 = 4 samples; one stall of
	// 3000 ms; users u1, u2, u3, of which u1 stuttered.
	if c == nil || c.Samples != 4 || c.Stalls != 1 || c.StallMS != 3000 || c.Users != 3 || c.StutterUsers != 1 {
		t.Fatalf("total row %+v", c)
	}
	if clientTotal(rows, t0+60_000) != nil {
		t.Fatal("the copy in the next minute made a row")
	}
	if n := p.dedup.len(); n != 0 {
		t.Fatalf("%d identities kept after every window was drained", n)
	}
}

func TestDuplicateOfFinalWindowIsLate(t *testing.T) {
	p := NewPartition(mustPlan(t, nil), PartitionID{"client", 0}, schemas.SourceClient) // lateness 2m
	first := withEID(hb(t0+1000, "u1", "p"), 42)
	if o := p.Add(0, &first); o != Applied {
		t.Fatal(o)
	}
	// The watermark passes t0+60s: the window [t0, t0+60s) is final.
	later := withEID(hb(t0+3*60_000+1000, "u2", "p"), 43)
	p.Add(1, &later)
	b := p.Drain()
	if len(b.Final) == 0 {
		t.Fatal("window not final")
	}
	if o := p.Add(2, &first); o != Late {
		t.Fatalf("copy after its window was drained: %v, want late", o)
	}
	if st := p.Stats(); st.Late != 1 || st.Duplicate != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := p.dedup.len(); n != 1 {
		t.Fatalf("%d identities, want 1 (the open window's)", n)
	}
}

// A restart replays every event of the open windows from
// Checkpoint.Resume, so the set is rebuilt: a copy after the restart is
// still one.
func TestDuplicateAfterRestore(t *testing.T) {
	plan := mustPlan(t, nil)
	p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	evs := []schemas.Event{
		withEID(hb(t0+1000, "u1", "p"), 1),
		withEID(hb(t0+2000, "u2", "p"), 2),
		withEID(hb(t0+1000, "u1", "p"), 1),
	}
	for i := range evs {
		p.Add(int64(i), &evs[i])
	}
	cp := p.Drain().Checkpoint
	q := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	if err := q.Restore(cp); err != nil {
		t.Fatal(err)
	}
	if cp.Resume != 0 {
		t.Fatalf("resume %d, want 0", cp.Resume)
	}
	for i := int(cp.Resume); i < len(evs); i++ {
		p := q.Add(int64(i), &evs[i])
		if want := []Outcome{Applied, Applied, Duplicate}[i]; p != want {
			t.Fatalf("replay of %d: %v, want %v", i, p, want)
		}
	}
	again := withEID(hb(t0+2000, "u2", "p"), 2)
	if o := q.Add(3, &again); o != Duplicate {
		t.Fatalf("copy after the restart: %v", o)
	}
	q.CloseAll()
	if c := clientTotal(q.Drain().Final, t0); c == nil || c.Samples != 2 || c.Users != 2 {
		t.Fatalf("total row %+v", c)
	}
}

// The property the broker-kill test checks end to end: a stream where some
// events arrive again (same identity) while their window is open gives the
// rows of the stream without the copies.
func TestCopiesChangeNoRow(t *testing.T) {
	plan := mustPlan(t, nil)
	g := newGenerator(genOptions{seed: 3, start: t0, users: 300, streams: 8, eventsPerMin: 1000, lateFrac: 0.02,
		maxLagMS: 30_000, switchFrac: 0.1, missingFrac: 0.05, cdnFrac: 0.1, originFrac: 0.02, originStreams: 3})
	clean := make([]schemas.Event, 6000)
	for i := range clean {
		g.next(&clean[i])
	}
	// Copies of an event follow it by up to 200 events (≈12 s here).
	rng := rand.New(rand.NewPCG(3, 4))
	var noisy []schemas.Event
	copies := 0
	for i := range clean {
		noisy = append(noisy, clean[i])
		if j := i - rng.IntN(200); j >= 0 && rng.IntN(10) == 0 {
			noisy = append(noisy, clean[j])
			copies++
		}
	}
	run := func(evs []schemas.Event) (string, Stats) {
		p := NewPartition(plan, PartitionID{"t", 0}, schemas.SourceUnknown)
		offs := make([]int64, len(evs))
		for i := range offs {
			offs[i] = int64(i)
		}
		out := make([]Result, len(evs))
		var rows []Row
		for s := 0; s < len(evs); s += 100 {
			e := min(s+100, len(evs))
			p.AddBatch(offs[s:e], evs[s:e], out[s:e])
			rows = append(rows, p.Drain().Final...)
		}
		p.CloseAll()
		rows = append(rows, p.Drain().Final...)
		for i := range rows {
			rows[i].Version = 0 // offsets differ by the copies
		}
		SortRows(rows)
		return rowsString(rows), p.Stats()
	}
	want, ws := run(clean)
	got, gs := run(noisy)
	if got != want {
		t.Fatalf("rows differ with copies")
	}
	if gs.Duplicate+(gs.Late-ws.Late) != uint64(copies) || gs.Duplicate == 0 || gs.Applied != ws.Applied {
		t.Fatalf("%d copies; stats with copies %+v, without %+v", copies, gs, ws)
	}
}

// The set itself: retain keeps exactly the entries of the live windows,
// all of them still found, across growth and the in-place re-placement.
func TestDedupSetRetain(t *testing.T) {
	d := newDedupSet(12345)
	rng := rand.New(rand.NewPCG(9, 9))
	ids := map[uint64]int64{}
	for range 20_000 {
		id := rng.Uint64() | 1
		ws := t0 + int64(rng.IntN(5))*WindowMS
		if d.seenOrAdd(id, ws) {
			t.Fatal("fresh id reported as seen")
		}
		ids[id] = ws
	}
	for id, ws := range ids {
		if !d.seenOrAdd(id, ws) {
			t.Fatal("id lost")
		}
	}
	live := []*window{{start: t0 + 3*WindowMS}, {start: t0 + 4*WindowMS}}
	d.retain(live)
	kept := 0
	for id, ws := range ids {
		if ws >= t0+3*WindowMS {
			kept++
			if !d.seenOrAdd(id, ws) {
				t.Fatal("id of a live window lost by retain")
			}
		}
	}
	if d.len() != kept {
		t.Fatalf("%d ids after retain, want %d", d.len(), kept)
	}
	for id, ws := range ids {
		if ws < t0+3*WindowMS && d.seenOrAdd(id, ws) {
			t.Fatal("id of a drained window still present")
		}
	}
}
