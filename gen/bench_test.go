package gen

import (
	"testing"
	"time"
)

// BenchmarkGenerate measures the simulation and JSON encoding of the
// baseline with 10,000 users: one op is one simulated second (about 3,000
// events), after a warm-up minute so that every user is playing.
func BenchmarkGenerate(b *testing.B) {
	sc, err := LoadScenario(BaseScenario, "")
	if err != nil {
		b.Fatal(err)
	}
	w, err := buildWorld(sc, 10_000, 1, mustTable(b), true)
	if err != nil {
		b.Fatal(err)
	}
	s := newSim(w, simControl{start: DefaultStart.UnixMilli(), duration: int64(365 * 24 * time.Hour / time.Millisecond), hbMS: 5000})
	var c chunk
	k := int64(0)
	for ; k < 60; k++ {
		c.reset()
		s.tick(k, &c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var events, bytes int64
	for i := 0; i < b.N; i++ {
		c.reset()
		s.tick(k, &c)
		k++
		events += int64(c.lines())
		bytes += int64(len(c.data))
	}
	b.StopTimer()
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(events), "bytes/event")
}
