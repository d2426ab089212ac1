package allinone

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

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

// Configured brokers that do not answer fail the start within
// kafka.dial_timeout, with an error naming them and how to configure Kafka.
func TestUnreachableBrokersFailFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.DialTimeout = time.Second
	err = run(context.Background(), cfg, zerolog.Nop(), Options{Stdout: io.Discard, Stderr: io.Discard})
	for _, want := range []string{"kafka brokers [" + addr + "] (kafka.brokers) not reachable within 1s", "QOSCOPE_KAFKA_BROKERS", "embedded broker"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// Without brokers the embedded Kafka starts, and the log says so.
func TestNoBrokersStartsEmbeddedKafka(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	chAddr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	// ClickHouse is unreachable: the run stops right after Kafka is ready.
	cfg.ClickHouse.DSN = "clickhouse://" + chAddr + "/qoscope"
	var logs bytes.Buffer
	err = run(context.Background(), cfg, zerolog.New(&logs), Options{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil {
		t.Fatal("run succeeded without ClickHouse")
	}
	if !strings.Contains(logs.String(), "no kafka.brokers configured: started the embedded kafka") {
		t.Errorf("no log line about the embedded kafka:\n%s", logs.String())
	}
}

// TestDemoAddrFallsBackWhenTaken: the demo's default address is kept when
// free; when another program holds it the demo takes a free port and says
// so; an address the user chose is never replaced.
func TestDemoAddrFallsBackWhenTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().String()
	var out strings.Builder
	got := demoAddr(taken, taken, "ingest", &out)
	if got == taken || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("taken default %s: got %s, want another loopback port", taken, got)
	}
	ln, err := net.Listen("tcp", got)
	if err != nil {
		t.Fatalf("the fallback %s is not free: %v", got, err)
	}
	ln.Close()
	if want := "qoscope demo: " + taken + " is taken, so ingest listens on " + got + " instead\n"; out.String() != want {
		t.Errorf("said %q, want %q", out.String(), want)
	}

	out.Reset()
	if got := demoAddr(taken, "127.0.0.1:1", "ingest", &out); got != taken || out.Len() != 0 {
		t.Errorf("a chosen address: got %s and %q, want it kept silently", got, out.String())
	}
	free := ln.Addr().String() // closed above: free again
	if got := demoAddr(free, free, "ingest", &out); got != free || out.Len() != 0 {
		t.Errorf("a free default: got %s and %q, want it kept silently", got, out.String())
	}
}
