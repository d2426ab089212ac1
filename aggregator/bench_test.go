package aggregator

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/qoscope/qoscope/schemas"
)

// benchGen is a realistic client-heavy mix: 100k users, ~10 events per user
// per minute of event time, 5% CDN, 0.1% origin, a few late events.
func benchGen(seed uint64) *generator {
	return newGenerator(genOptions{seed: seed, start: t0, users: 100_000, streams: 500, eventsPerMin: 1_000_000,
		lateFrac: 0.01, maxLagMS: 30_000, switchFrac: 0.02, missingFrac: 0.02, cdnFrac: 0.05, originFrac: 0.001,
		originStreams: 50})
}

func jsonSize(events []schemas.Event) int64 {
	var buf []byte
	n := 0
	for i := range events {
		buf = schemas.AppendJSON(buf[:0], &events[i])
		n += len(buf) + 1
	}
	return int64(n / len(events))
}

// packStrings moves e's strings into one buffer of their own, as
// schemas.ParseLine leaves them: the generator's strings are shared by all
// events of a user and scattered over the heap, which would make every
// benchmark event start with cache misses a decoded event does not have.
func packStrings(e *schemas.Event) {
	fields := []*string{&e.UserID, &e.SessionID, &e.StreamID, &e.Vendor, &e.Node, &e.IP, &e.Country,
		&e.Province, &e.City, &e.ISP, &e.Platform, &e.ClientVersion, &e.Quality, &e.Role, &e.Error,
		&e.Media, &e.Reason, &e.Line, &e.EgressISP}
	n := 0
	for _, f := range fields {
		n += len(*f)
	}
	buf := make([]byte, 0, n) // never reallocated: the strings below alias it
	for _, f := range fields {
		start := len(buf)
		buf = append(buf, *f...)
		if len(*f) > 0 {
			*f = unsafe.String(&buf[start], len(*f))
		}
	}
}

// BenchmarkAggregate is the aggregation core as the runner and the offline
// mode drive it: AddBatch over chunks of 512 events (the runner's default
// consumer.chunk) with every default grouping set, plus the Drain of each
// window as it closes (final rows built). JSON decoding is not included;
// SetBytes is the events' NDJSON size so MB/s compares with the decoder's
// benchmark. One op = one event.
func BenchmarkAggregate(b *testing.B) {
	benchAggregate(b, 512)
}

// BenchmarkAggregateAdd is BenchmarkAggregate with one Add call per event.
func BenchmarkAggregateAdd(b *testing.B) {
	benchAggregate(b, 1)
}

// benchAggregate feeds the same generated mix to a partition, chunk events
// per AddBatch call (1: Add per event), draining whenever windows closed.
func benchAggregate(b *testing.B, chunk int) {
	const n = 1 << 18 // a multiple of every chunk used, so chunks never straddle a lap
	g := benchGen(1)
	events := make([]schemas.Event, n)
	for i := range events {
		g.next(&events[i])
		packStrings(&events[i])
	}
	span := events[n-1].TS - events[0].TS + 1
	plan := mustPlan(b, nil)
	p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	offsets := make([]int64, chunk)
	out := make([]Result, chunk)
	b.SetBytes(jsonSize(events))
	b.ReportAllocs()
	var rows, i, queued int
	apply := func() {
		// The queued events are events[j-queued+1 : j+1] for j = (i-1)%n:
		// chunks never straddle a lap, as chunk divides n.
		j := (i - 1) % n
		if chunk == 1 {
			p.Add(int64(i-1), &events[j])
		} else {
			p.AddBatch(offsets[:queued], events[j-queued+1:j+1], out)
		}
		queued = 0
		if p.Pending() {
			rows += len(p.Drain().Final)
		}
	}
	cpu0 := cpuTime()
	// One iteration is one event; the events are applied chunk by chunk.
	for b.Loop() {
		if i > 0 && i%n == 0 {
			// Next lap: move every event one span later so time advances.
			for k := range events {
				events[k].TS += span
			}
		}
		offsets[queued] = int64(i)
		queued++
		i++
		if queued == chunk {
			apply()
		}
	}
	if queued > 0 {
		apply()
	}
	b.ReportMetric(float64(rows)/float64(max(i, 1)), "rows/event")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(max(i, 1)), "cpu-ns/event")
}

// cpuTime is the process's user+system CPU time: on a shared machine it is a
// steadier measure of cost than wall time (the per-op ns), which includes
// time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParseAndAggregate is the runner's per-message work: decode each
// NDJSON line of a chunk of 512 (schemas.ParseLine), then AddBatch the
// chunk, draining whenever windows closed. One op = one event.
func BenchmarkParseAndAggregate(b *testing.B) {
	const n, chunk = 1 << 16, 512
	g := benchGen(2)
	var e schemas.Event
	lines := make([][]byte, n)
	var size, first int64
	for i := range lines {
		g.next(&e)
		if i == 0 {
			first = e.TS
		}
		lines[i] = schemas.AppendJSON(nil, &e)
		size += int64(len(lines[i]) + 1)
	}
	span := e.TS - first + 1 // each lap is shifted by this so time keeps advancing
	p := NewPartition(mustPlan(b, nil), PartitionID{"client", 0}, schemas.SourceClient)
	events := make([]schemas.Event, chunk)
	offsets := make([]int64, chunk)
	out := make([]Result, chunk)
	b.SetBytes(size / n)
	b.ReportAllocs()
	var i, queued int
	apply := func() {
		p.AddBatch(offsets[:queued], events[:queued], out)
		queued = 0
		if p.Pending() {
			p.Drain()
		}
	}
	cpu0 := cpuTime()
	// One iteration is one event: decoded at once, applied chunk by chunk.
	for b.Loop() {
		if err := schemas.ParseLine(lines[i%n], &events[queued]); err != nil {
			b.Fatal(err)
		}
		events[queued].TS += int64(i/n) * span
		offsets[queued] = int64(i)
		queued++
		i++
		if queued == chunk {
			apply()
		}
	}
	if queued > 0 {
		apply()
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(max(i, 1)), "cpu-ns/event")
}

// fillWindow adds about perUser events for each of users users, all in one
// window, and returns the partition.
func fillWindow(tb testing.TB, users, perUser int) *Partition {
	g := newGenerator(genOptions{seed: 7, start: t0, users: users, streams: 500, eventsPerMin: users * perUser * 2,
		switchFrac: 0.02, missingFrac: 0.02, cdnFrac: 0.0, originFrac: 0})
	p := NewPartition(mustPlan(tb, nil), PartitionID{"client", 0}, schemas.SourceClient)
	var e schemas.Event
	for i := range users * perUser {
		g.next(&e)
		p.Add(int64(i), &e)
	}
	if len(p.windows) != 1 {
		tb.Fatalf("%d windows, want 1", len(p.windows))
	}
	return p
}

// BenchmarkSnapshot builds the provisional rows of a one-minute window with
// 100k active users (the runner does it every 5 s).
func BenchmarkSnapshot(b *testing.B) {
	p := fillWindow(b, 100_000, 10)
	b.ReportAllocs()
	var rows, n int
	cpu0 := cpuTime()
	for b.Loop() {
		rows = len(p.Snapshot())
		n++
	}
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(max(n, 1))/1e6, "cpu-ms/op")
}

// bytesPerUser measures the heap held by a partition whose one window has
// users active users, per user, and the part of it that is the
// de-duplication set (every generated event has its own EID, as from ingest).
func bytesPerUser(tb testing.TB, users, perUser int) (total, dedup float64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := fillWindow(tb, users, perUser)
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := float64(p.windows[0].client.users.len())
	runtime.KeepAlive(p)
	d := float64(cap(p.dedup.ids)*8 + cap(p.dedup.tags))
	return float64(after.HeapAlloc-before.HeapAlloc) / n, d / n
}

// BenchmarkBytesPerUser reports the memory of one active user-minute: the
// whole partition state (user records, tuples, keys, accumulators, the
// identities of the de-duplication set) divided by the active users of its
// single window.
func BenchmarkBytesPerUser(b *testing.B) {
	var v, d float64
	for b.Loop() {
		v, d = bytesPerUser(b, 100_000, 10)
	}
	b.ReportMetric(v, "B/user")
	b.ReportMetric(d, "dedup-B/user")
}

// The budget (docs/METRICS.md, "Late data") is at most 200 bytes per active user-minute for the
// aggregation state. The de-duplication set comes on top and grows with
// events, not users: 9 bytes per slot at a load of at least 0.53 (dedup.go),
// so at most 17 bytes per event held (README.md, "Duplicates").
func TestBytesPerActiveUser(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~100k users; skipped in -short")
	}
	if raceEnabled {
		t.Skip("heap sizes under the race detector do not measure the real footprint; run without -race")
	}
	const perUser = 10
	v, d := bytesPerUser(t, 100_000, perUser)
	t.Logf("%.0f bytes per active user-minute, of which %.0f the de-duplication set", v, d)
	if v-d > 200 {
		t.Errorf("%.0f bytes per active user without the de-duplication set, goal <= 200", v-d)
	}
	if d > 17*perUser*1.02 { // ~10 events per user; the generator's count varies a little
		t.Errorf("the de-duplication set holds %.0f bytes per user of ~%d events, more than 17 per event", d, perUser)
	}
}

// bytesPerOpenUserMinute measures the heap of a client partition holding
// the windows of `minutes` minutes of traffic, each with about users
// active users, with the default client lateness (10m): every one of those
// windows is still open. It returns the heap per active user-minute held,
// the number to multiply by (lateness in minutes + 1) × users per minute.
func bytesPerOpenUserMinute(tb testing.TB, users, perUser, minutes int) (perUserMinute, dedup float64, open int) {
	plan, err := NewPlan(DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := newGenerator(genOptions{seed: 7, start: t0, users: users, streams: 500, eventsPerMin: users * perUser,
		switchFrac: 0.02, missingFrac: 0.02})
	p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
	var e schemas.Event
	for i := range users * perUser * minutes {
		g.next(&e)
		p.Add(int64(i), &e)
	}
	p.Drain()
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := 0
	for _, w := range p.windows {
		if w.client != nil {
			held += w.client.users.len()
		}
	}
	runtime.KeepAlive(p)
	d := float64(cap(p.dedup.ids)*8 + cap(p.dedup.tags))
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(held), d / float64(held), len(p.windows)
}

// BenchmarkBytesPerOpenUserMinute: the memory cost of the allowed lateness.
func BenchmarkBytesPerOpenUserMinute(b *testing.B) {
	var v, d float64
	var n int
	for b.Loop() {
		v, d, n = bytesPerOpenUserMinute(b, 50_000, 10, 10)
	}
	b.ReportMetric(v, "B/user-minute")
	b.ReportMetric(d, "dedup-B/user-minute")
	b.ReportMetric(float64(n), "open-windows")
}

// Windows kept open for the allowed lateness cost the same per active
// user-minute as one window: the budget of 200 bytes holds for each minute
// of lateness (docs/METRICS.md, "Late data").
func TestBytesPerOpenUserMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 10 minutes × 20k users; skipped in -short")
	}
	if raceEnabled {
		t.Skip("heap sizes under the race detector do not measure the real footprint; run without -race")
	}
	v, d, n := bytesPerOpenUserMinute(t, 50_000, 10, 10)
	t.Logf("%.0f bytes per active user-minute over %d open windows, of which %.0f the de-duplication set", v, n, d)
	// 10 full minutes plus the one the last event opened: none is past
	// the 10 minutes of client lateness yet.
	if n != 11 {
		t.Fatalf("%d open windows, want 11 (client lateness 10m)", n)
	}
	if v-d > 200 {
		t.Errorf("%.0f bytes per open user-minute without the de-duplication set, goal <= 200", v-d)
	}
	if d > 17*10*1.02 {
		t.Errorf("the de-duplication set holds %.0f bytes per user-minute of ~10 events, more than 17 per event", d)
	}
}
