package allinone

import (
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/query"
)

func f(v float64) *float64 { return &v }

func TestWriteReport(t *testing.T) {
	w := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	totals := []query.MinuteTotal{
		{Window: w, Final: true, Users: 1500, StutterRateUV: f(0.034), FirstFrameP90MS: f(1234.4), PullConnectRate: f(0.991)},
		{Window: w.Add(time.Minute), Users: 0},
	}
	worst := []query.KeyMinute{{Dims: map[string]string{"province": "guangdong", "isp": "telecom"}, Users: 120, StutterRateUV: f(0.5)}}
	var b strings.Builder
	if err := writeReport(&b, w.Add(2*time.Minute+5*time.Second), totals, worst, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"12:02:05 UTC",
		"12:00", "1500", "3.4%", "1234 ms", "99.1%", "final",
		"12:01", "n/a", "provisional",
		"guangdong×telecom 50.0% (120 users)",
		"worst vendor×province×ISP (≥20 users): none yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestDemoConfigNeedsNoFile(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.DemoDefaults(""); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("demo defaults do not validate: %v", err)
	}
	if !cfg.Embedded() || len(cfg.Tokens) != 1 || len(cfg.Tokens[0].Token) < 16 {
		t.Fatalf("demo defaults: embedded=%v tokens=%d", cfg.Embedded(), len(cfg.Tokens))
	}
	other := DefaultConfig()
	if err := other.DemoDefaults(""); err != nil {
		t.Fatal(err)
	}
	if other.Tokens[0].Token == cfg.Tokens[0].Token {
		t.Fatal("two demo runs share a token: it must be random per run")
	}
}

// ingest's max_future_skew is checked against the aggregator's client
// lateness: the error names both keys and values.
func TestFutureSkewBelowClientLateness(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.DemoDefaults(""); err != nil {
		t.Fatal(err)
	}
	cfg.MaxFutureSkew = 10 * time.Minute // the default client lateness
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "ingest.max_future_skew: 10m0s must be below aggregator.lateness.client (10m0s)") {
		t.Fatalf("got %v", err)
	}
	cfg.MaxFutureSkew = 9 * time.Minute
	if err := cfg.Validate(); err != nil {
		t.Fatalf("9m < 10m must pass: %v", err)
	}
}
