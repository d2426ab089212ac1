package live

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/score"
)

// benchRows is a full snapshot's input, like score's BenchmarkBuild: 34
// provinces × 4 ISPs × 5 vendors, one client and one CDN row each for
// every minute of the 30-minute lookback.
type benchRows struct{ in *score.Input }

func (b benchRows) ScoreInput(context.Context, time.Time, time.Time) (*score.Input, error) {
	return b.in, nil
}

func newBenchScores(b *testing.B) *Scores {
	at := time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC)
	isps := []string{"telecom", "unicom", "mobile", "cernet"}
	c := &score.Contracts{Settings: score.DefaultSettings(), Vendors: map[string]score.Contract{}}
	c.Settings.Regions = score.DefaultRegions()
	var vendors []string
	for v := range 5 {
		name := fmt.Sprintf("cdn-%c", 'a'+v)
		vendors = append(vendors, name)
		c.Vendors[name] = score.Contract{GuaranteedMbps: 20000, MaxMbps: 60000 + float64(v)*5000}
	}
	in := &score.Input{}
	for m := 1; m <= 30; m++ {
		minute := at.Add(-time.Duration(m) * time.Minute)
		for pi, p := range ipdb.Provinces() {
			for ii, isp := range isps {
				for vi, v := range vendors {
					users := float64(10 + (pi*7+ii*3+vi*5+m)%200)
					in.Client = append(in.Client, score.ClientRow{Minute: minute, Vendor: v, Province: p, ISP: isp,
						Users: users, StutterUsers: users / 20, Plays: users, PlaysOK: users * 0.97,
						FirstFrames: users, FirstFrameMSSum: users * float64(800+vi*150+m*3)})
					in.CDN = append(in.CDN, score.CDNRow{Minute: minute, Vendor: v, Province: p, ISP: isp, BandwidthMbps: users * 2.5})
				}
			}
		}
	}
	lbl := map[string]string{"vendor": "cdn-a", "province": "guangdong", "isp": "telecom"}
	store := &fakeStore{alerts: []AlertChange{{Rule: "r", Fingerprint: "f", Labels: lbl, State: "firing", At: at.Add(-3 * time.Minute)}}}
	s := &Scores{cfg: DefaultConfig(), contracts: c, rows: benchRows{in}, store: store, log: zerolog.Nop(),
		now: func() time.Time { return at.Add(5 * time.Second) }, trigger: make(chan struct{}, 1), published: map[string]published{}}
	s.mRebuild, s.mErrors, s.mKafkaErr = nopHistogram(), nopCounter(), nopCounter()
	return s
}

// BenchmarkRebuild is one snapshot rebuild minus the ClickHouse I/O (rows
// and blacklist in memory): Build, judging the blacklist, encoding every
// view in JSON and Arrow (docs/SCORES.md, "Speed").
func BenchmarkRebuild(b *testing.B) {
	s := newBenchScores(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Rebuild(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if n := len(s.Snapshot().Table.Regions); n != 34*4 {
		b.Fatalf("%d regions", n)
	}
}

// BenchmarkServeScores is GET /api/v1/scores from a snapshot of 34 × 4 × 5:
// the whole table and one region, JSON and Arrow.
func BenchmarkServeScores(b *testing.B) {
	s := newBenchScores(b)
	if err := s.Rebuild(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, target, accept string }{
		{"full/json", "/api/v1/scores", ""},
		{"full/arrow", "/api/v1/scores", ctArrow},
		{"region/json", "/api/v1/scores?province=guangdong&isp=telecom", ""},
		{"region/arrow", "/api/v1/scores?province=guangdong&isp=telecom", ctArrow},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", c.target, nil)
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			w := &discard{h: map[string][]string{}}
			s.ServeScores(w, req)
			if w.code != 200 {
				b.Fatalf("%d", w.code)
			}
			b.SetBytes(int64(w.n))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				s.ServeScores(w, req)
			}
		})
	}
}

// discard is a ResponseWriter that keeps nothing but the size.
type discard struct {
	h    map[string][]string
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { d.n = len(p); return len(p), nil }

func nopHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x"})
}
func nopCounter() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}) }
