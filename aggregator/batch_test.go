package aggregator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator/hist"
	"github.com/qoscope/qoscope/schemas"
)

// rowString renders everything a row says, histogram buckets included, so
// that two rows compare equal only if they would store the same values.
func rowString(r *Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %d %s %d %q %v final=%v v=%d", r.Partition, r.WindowStart, r.Source, r.Set, r.Grouping, r.Dims, r.Final, r.Version)
	for _, m := range r.Metrics(nil) {
		fmt.Fprintf(&b, " %s=%v/%v", m.Name, m.Value, m.Valid)
	}
	hists := func(hs ...*hist.Histogram) {
		for _, h := range hs {
			fmt.Fprintf(&b, " [%d %v", h.Count(), h.Sum())
			h.Buckets(func(i int32, n uint64) { fmt.Fprintf(&b, " %d:%d", i, n) })
			b.WriteString("]")
		}
	}
	switch {
	case r.Client != nil:
		c := *r.Client
		hists(&c.PullConnectMS, &c.FirstFrameMS, &c.PushConnectMS, &c.RelayMS)
		c.PullConnectMS, c.FirstFrameMS, c.PushConnectMS, c.RelayMS = hist.Histogram{}, hist.Histogram{}, hist.Histogram{}, hist.Histogram{}
		fmt.Fprintf(&b, " %+v", c)
	case r.CDN != nil:
		c := *r.CDN
		hists(&c.TTFBMS)
		c.TTFBMS = hist.Histogram{}
		fmt.Fprintf(&b, " %+v", c)
	case r.Origin != nil:
		fmt.Fprintf(&b, " %+v", *r.Origin)
	}
	return b.String()
}

func batchString(b Batch) string {
	var s strings.Builder
	for i := range b.Final {
		s.WriteString(rowString(&b.Final[i]))
		s.WriteByte('\n')
	}
	fmt.Fprintf(&s, "late %+v\n", b.Late)
	cp, _ := json.Marshal(b.Checkpoint)
	s.Write(cp)
	return s.String()
}

func rowsString(rows []Row) string {
	var s strings.Builder
	for i := range rows {
		s.WriteString(rowString(&rows[i]))
		s.WriteByte('\n')
	}
	return s.String()
}

// oddDims gives some events dimension values the fast paths of the
// dictionaries treat apart: empty (unknown), 1 to 3, 4 to 7, 8 to 24 and
// 25 to 300 bytes, values that differ only in bytes in the middle, and
// values longer than the inline limit.
func oddDims(rng *rand.Rand, e *schemas.Event) {
	if e.Type.Source() == schemas.SourceOrigin || rng.IntN(4) != 0 {
		return
	}
	n := []int{1, 3, 4, 7, 8, 9, 16, 17, 23, 24, 25, 31, 32, 33, 40, 64, 100, maxInlineValue, maxInlineValue + 1, 300}[rng.IntN(20)]
	b := []byte(strings.Repeat("n", n))
	if n > 2 {
		b[n/2] = byte('a' + rng.IntN(3)) // a few values that share head and tail
	}
	if n > 12 && rng.IntN(2) == 0 {
		b[11] = byte('a' + rng.IntN(3)) // inside the middle word of a 17..24-byte value, or the body of a long one
	}
	switch rng.IntN(3) {
	case 0:
		e.Node = string(b)
	case 1:
		e.StreamID = string(b)
	default:
		e.Province = string(b)
	}
}

// AddBatch must do exactly what the same Add calls do: outcomes and
// watermarks per event, the drained rows, late counters and checkpoints,
// provisional rows, stats, and after a Restore the replay.
func TestAddBatchEqualsAdd(t *testing.T) {
	cases := []struct {
		name string
		gen  genOptions
		cfg  func(*Config)
	}{
		{"mixed", genOptions{users: 300, streams: 30, eventsPerMin: 1000, lateFrac: 0.05, maxLagMS: 200_000,
			switchFrac: 0.1, missingFrac: 0.05, cdnFrac: 0.1, originFrac: 0.03, originStreams: 6, recvFrac: 0.5, fastFrac: 0.05, maxAheadMS: 240_000, dupFrac: 0.05},
			func(c *Config) { c.Lateness = AllLateness(2 * time.Minute) }},
		{"churn", genOptions{users: 300, streams: 4000, eventsPerMin: 800, lateFrac: 0.1, maxLagMS: 150_000,
			switchFrac: 0.6, missingFrac: 0.2, cdnFrac: 0.2, originFrac: 0.05, originStreams: 40, dupFrac: 0.1}, func(c *Config) { c.Lateness = AllLateness(30e9) }},
		{"zero-lateness", genOptions{users: 100, streams: 10, eventsPerMin: 500, lateFrac: 0.2, maxLagMS: 90_000,
			switchFrac: 0.1, cdnFrac: 0.1, originFrac: 0.02, originStreams: 3}, func(c *Config) { c.Lateness = AllLateness(0) }},
		{"other-sets", genOptions{users: 200, streams: 8, eventsPerMin: 600, lateFrac: 0.05, maxLagMS: 300_000,
			switchFrac: 0.2, missingFrac: 0.1, cdnFrac: 0.1, originFrac: 0.05, originStreams: 4}, func(c *Config) {
			c.Lateness = AllLateness(2 * time.Minute)
			c.GroupingSets.Client = [][]string{{"role", "media"}, {"stream_id", "quality", "platform"}, {"city"}, {"node", "isp"}, {}}
			c.GroupingSets.CDN = [][]string{{"node"}, {"vendor", "stream_id"}}
			c.GroupingSets.Origin = [][]string{{"stream_id", "line"}, {"line"}, {}}
		}},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			plan, err := NewPlan(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.gen.seed, c.gen.start = uint64(ci+20), t0
			g := newGenerator(c.gen)
			rng := rand.New(rand.NewPCG(uint64(ci), 5))
			n := 4000
			if raceEnabled {
				n = 1500 // the race detector slows this test tenfold
			}
			events := make([]schemas.Event, n)
			for i := range events {
				g.next(&events[i])
				oddDims(rng, &events[i])
			}
			// Chunk boundaries (the Drain points of both runs), some chunks
			// longer than AddBatch's internal group.
			var ends []int
			for i := 0; i < len(events); {
				i = min(len(events), i+1+rng.IntN([]int{3, 40, 200}[rng.IntN(3)]))
				ends = append(ends, i)
			}
			id := PartitionID{"t", 1}
			compare := func(t *testing.T, from int, a, b *Partition) {
				t.Helper()
				start := from
				res := make([]Result, len(events))
				offsets := make([]int64, len(events))
				for i := range offsets {
					offsets[i] = int64(i)
				}
				for _, end := range ends {
					if end <= start {
						continue
					}
					b.AddBatch(offsets[start:end], events[start:end], res[start:end])
					for i := start; i < end; i++ {
						o := a.Add(int64(i), &events[i])
						if o != res[i].Outcome || a.Watermark() != res[i].Watermark {
							t.Fatalf("event %d: Add gives %v, watermark %d; AddBatch %v, %d", i, o, a.Watermark(), res[i].Outcome, res[i].Watermark)
						}
					}
					start = end
					if a.Pending() != b.Pending() {
						t.Fatalf("after event %d: pending %v vs %v", end-1, a.Pending(), b.Pending())
					}
					if rng.IntN(20) == 0 {
						if sa, sb := rowsString(a.Snapshot()), rowsString(b.Snapshot()); sa != sb {
							t.Fatalf("after event %d: snapshots differ:\n%s\n----\n%s", end-1, sa, sb)
						}
					}
					if a.Pending() || rng.IntN(10) == 0 {
						if da, db := batchString(a.Drain()), batchString(b.Drain()); da != db {
							t.Fatalf("after event %d: drains differ:\n%s\n----\n%s", end-1, da, db)
						}
					}
				}
				a.CloseAll()
				b.CloseAll()
				if da, db := batchString(a.Drain()), batchString(b.Drain()); da != db {
					t.Fatalf("final drains differ:\n%s\n----\n%s", da, db)
				}
				if a.Stats() != b.Stats() {
					t.Fatalf("stats %+v vs %+v", a.Stats(), b.Stats())
				}
			}
			a, b := NewPartition(plan, id, schemas.SourceUnknown), NewPartition(plan, id, schemas.SourceUnknown)
			compare(t, 0, a, b)
			st := a.Stats()
			if st.Late == 0 || st.Applied == 0 || (c.gen.dupFrac > 0 && st.Duplicate == 0) {
				t.Fatalf("stats %+v: the stream should have applied, late and (with dupFrac) duplicate events", st)
			}

			// Replay from a checkpoint taken half way.
			p := NewPartition(plan, id, schemas.SourceUnknown)
			for i := range len(events) / 2 {
				p.Add(int64(i), &events[i])
			}
			cp := p.Drain().Checkpoint
			a, b = NewPartition(plan, id, schemas.SourceUnknown), NewPartition(plan, id, schemas.SourceUnknown)
			if err := a.Restore(cp); err != nil {
				t.Fatal(err)
			}
			if err := b.Restore(cp); err != nil {
				t.Fatal(err)
			}
			compare(t, int(cp.Resume), a, b)
		})
	}
}

// The inlined dictionary lookup (fieldsFast) must find exactly the ids that
// fieldDict.intern assigned, for values of every length class, and tell
// apart values that differ in a single byte anywhere.
func TestFieldsFastMatchesIntern(t *testing.T) {
	plan := mustPlan(t, func(c *Config) { c.GroupingSets.Client = [][]string{{"stream_id"}} })
	p := NewPartition(plan, PartitionID{"t", 0}, schemas.SourceUnknown)
	refs := p.fields[0]
	if len(refs) != 1 || refs[0].t == nil {
		t.Fatalf("fields %+v: want one field, its component's only one", refs)
	}
	d := refs[0].d
	rng := rand.New(rand.NewPCG(3, 3))
	var vals []string
	seen := map[string]bool{}
	for n := 1; n <= 300; n++ {
		base := make([]byte, n)
		for i := range base {
			base[i] = byte('a' + rng.IntN(26))
		}
		for pos := range n {
			v := append([]byte(nil), base...)
			if pos > 0 {
				v[pos] ^= 1 // differs from base in one byte
			}
			if s := string(v); !seen[s] {
				seen[s] = true
				vals = append(vals, s)
			}
			if pos > 40 {
				pos += 7
			}
		}
	}
	ids := map[uint32]string{}
	for _, v := range vals {
		id := d.intern(v)
		if prev, ok := ids[id]; ok {
			t.Fatalf("%q and %q have the same id %d", prev, v, id)
		}
		ids[id] = v
		// Make the component's tuple exist, so that fieldsFast finishes.
		p.tables[0][0].lookup([]uint32{id}, 1)
	}
	scr := make([]uint32, p.scratchLen())
	var e schemas.Event
	for _, v := range vals {
		e.StreamID = v
		want := d.intern(v)
		if i := fieldsFast(&e, refs, scr, 1, 0); len(v) <= maxInlineValue && i != 1 {
			t.Fatalf("fieldsFast stopped on %q (%d bytes), which is in the dictionary", v, len(v))
		} else if i == 1 && (scr[0] != want || scr[refs[0].vi] != want || scr[refs[0].ki] != want) {
			t.Fatalf("%q: fieldsFast gives %d/%d/%d, intern %d", v, scr[0], scr[refs[0].vi], scr[refs[0].ki], want)
		}
	}
	if d.live != len(vals) {
		t.Fatalf("%d values, dictionary holds %d", len(vals), d.live)
	}
	// A value not in the dictionary is left to the general path.
	e.StreamID = "not-there"
	if i := fieldsFast(&e, refs, scr, 1, 0); i != 0 {
		t.Fatalf("fieldsFast found a value that is not in the dictionary")
	}
}

// Dimension values, tuples and keys no live window uses are forgotten when
// windows are drained, and their ids are reused, so the tables follow the
// active population.
func TestTablesFollowActivePopulation(t *testing.T) {
	plan := mustPlan(t, nil)
	p := NewPartition(plan, PartitionID{"t", 0}, schemas.SourceUnknown)
	var e schemas.Event
	for m := range int64(30) {
		// Every minute a new set of 50 streams.
		for i := range 500 {
			e = schemas.Event{V: 1, Type: schemas.TypeHeartbeat, TS: t0 + m*WindowMS + int64(i)*100,
				UserID: fmt.Sprint("u", i), StreamID: fmt.Sprintf("m%d-s%d", m, i%50), Province: "p"}
			if o := p.Add(int64(m*500)+int64(i), &e); o != Applied {
				t.Fatalf("minute %d event %d: %v", m, i, o)
			}
		}
		if p.Pending() {
			b := p.Drain()
			for _, r := range b.Final {
				if r.Grouping == "stream_id" && !strings.HasPrefix(r.Dims[0].Value, fmt.Sprintf("m%d-", (r.WindowStart-t0)/WindowMS)) {
					t.Fatalf("row of window %d has stream %s", (r.WindowStart-t0)/WindowMS, r.Dims[0].Value)
				}
			}
		}
	}
	sp := &plan.src[0]
	for f, field := range sp.fields {
		if field != schemas.FieldStreamID {
			continue
		}
		d := &p.dicts[0][f]
		// Lateness 2 min: at most 4 minutes of streams are live.
		if d.live > 4*50 || len(d.strs) > 5*50 {
			t.Fatalf("stream dictionary: %d live values, %d ids, after 30 minutes of 50 new streams each", d.live, len(d.strs))
		}
		k := p.keys(0, slicesIndex(sp.sets, "stream_id"))
		if k.size() > 5*50 {
			t.Fatalf("stream keys: %d ids", k.size())
		}
	}
}

func slicesIndex(sets []GroupingSet, name string) int {
	for i, s := range sets {
		if s.Name == name {
			return i
		}
	}
	return -1
}
