package runner_test

import (
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/testenv"
)

// BenchmarkEndToEnd measures Kafka → ClickHouse on generated events
// (≈350k; QOSCOPE_LONG=1: ≈1M): sustained events/s over the backlog and
// the freshness of final rows (view-visible minus watermark past the
// window end). Run with -benchtime=1x: each iteration is a whole run.
func BenchmarkEndToEnd(b *testing.B) {
	users, d := 2000, 10*time.Minute
	if long() {
		users, d = 5200, 11*time.Minute
	}
	events, err := e2e.Generate(b.Context(), e2e.GenSpec{Seed: 5, Users: users, Start: runner.RecentStart(time.Now()), Duration: d}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, mode string
		pace       float64
	}{
		{"backlog/arrow_http", runner.InsertArrowHTTP, 0},
		{"backlog/native", runner.InsertNative, 0},
		// Event time 20× faster than the wall clock: a window closes every 3 s.
		{"paced20x/arrow_http", runner.InsertArrowHTTP, 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			var last e2e.Result
			for b.Loop() {
				k := testenv.Kafka(b, testenv.WithPartitions(4))
				ch := testenv.ClickHouse(b)
				env := e2e.Env{Kafka: k.Config(), ClickHouse: ch.Config(), HTTP: ch.HTTP, GroupID: k.GroupID("bench")}
				res, err := e2e.MeasureEndToEnd(b.Context(), env, events, e2e.MeasureOptions{InsertMode: c.mode, Pace: c.pace})
				if err != nil {
					b.Fatal(err)
				}
				last = res
				b.Log(res)
				for _, w := range res.PerWindow {
					b.Logf("window %s closed at %s, final visible at %s", w.Window.Format("15:04"), w.Closed.Round(time.Millisecond), w.Visible.Round(time.Millisecond))
				}
			}
			b.ReportMetric(last.EventsPerSecond, "events/s")
			b.ReportMetric(last.FreshnessP50.Seconds(), "fresh-p50-s")
			b.ReportMetric(last.FreshnessP99.Seconds(), "fresh-p99-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
