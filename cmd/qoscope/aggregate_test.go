package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/testenv"
)

// Without --input the command is the streaming service: offline-only flags
// are refused, and its config is the service config (errors name the key).
func TestAggregateStreamingFlags(t *testing.T) {
	var out, errb bytes.Buffer
	err := runAggregate(context.Background(), []string{"--output", "x.ndjson"}, &out, &errb)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--output only apply with --input") {
		t.Fatalf("want a usage error naming --output, got %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "a.yaml")
	if err := os.WriteFile(cfg, []byte("aggregator:\n  flush_interval: 1ms\n  insert:\n    mode: csv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runAggregate(context.Background(), []string{"--config", cfg}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "aggregator.flush_interval") || !strings.Contains(err.Error(), "aggregator.insert.mode") {
		t.Fatalf("want a config error naming flush_interval and insert.mode, got %v", err)
	}
}

// clearQoscopeEnv unsets every QOSCOPE_* variable for the test (restored
// afterwards): the integration environment exports the ClickHouse DSN.
func clearQoscopeEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "QOSCOPE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func writeEvents(t *testing.T, ts time.Time) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ev.ndjson")
	line := fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u1","stream_id":"s1","stalled":false}`+"\n", ts.UnixMilli())
	if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A backfill never writes to a default database: without clickhouse.dsn in
// the config file or the environment it stops, saying where to set it.
func TestAggregateOutputClickHouseNeedsSettings(t *testing.T) {
	clearQoscopeEnv(t)
	in := writeEvents(t, time.Date(2026, 11, 23, 12, 0, 1, 0, time.UTC))
	var out, errb bytes.Buffer
	err := runAggregate(context.Background(), []string{"--input", in, "--output", "clickhouse"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "clickhouse.dsn") || !strings.Contains(err.Error(), "QOSCOPE_CLICKHOUSE_DSN") ||
		!strings.Contains(err.Error(), "--config") {
		t.Fatalf("want an error naming clickhouse.dsn, --config and QOSCOPE_CLICKHOUSE_DSN, got %v", err)
	}
	// A config file without a clickhouse section is no better.
	cfg := filepath.Join(t.TempDir(), "a.yaml")
	if err := os.WriteFile(cfg, []byte("aggregator:\n  lateness: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runAggregate(context.Background(), []string{"--input", in, "--output", "clickhouse", "--config", cfg}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "QOSCOPE_CLICKHOUSE_DSN") {
		t.Fatalf("want the missing-settings error with a config file lacking clickhouse, got %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("backfill printed rows to stdout: %q", out.String())
	}
}

func TestAggregateReplaceNeedsClickHouseOutput(t *testing.T) {
	in := writeEvents(t, time.Date(2026, 11, 23, 12, 0, 1, 0, time.UTC))
	var out, errb bytes.Buffer
	err := runAggregate(context.Background(), []string{"--input", in, "--replace"}, &out, &errb)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--replace only applies with --output clickhouse") {
		t.Fatalf("want a usage error for --replace without --output clickhouse, got %v", err)
	}
}

// The flags reach the backfill: settings from QOSCOPE_CLICKHOUSE_*, a
// refusal naming --replace for a minute with streaming rows, then --replace.
func TestAggregateOutputClickHouse(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	if err := e2e.Migrate(ctx, ch.DSN); err != nil {
		t.Fatal(err)
	}
	clearQoscopeEnv(t)
	t.Setenv("QOSCOPE_CLICKHOUSE_DSN", ch.DSN)
	if ch.HTTP != "" {
		t.Setenv("QOSCOPE_CLICKHOUSE_HTTP", ch.HTTP)
	} else {
		t.Setenv("QOSCOPE_AGGREGATOR_INSERT_MODE", "native")
	}
	minute := runner.RecentStart(time.Now())
	in := writeEvents(t, minute.Add(time.Second))
	args := []string{"--input", in, "--output", "clickhouse", "--log-level", "warn"}
	users := func() (n uint64) {
		t.Helper()
		if err := ch.Conn.QueryRow(ctx, "SELECT sum(users) FROM client_minute_metrics WHERE grouping = ''").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var out, errb bytes.Buffer
	if err := runAggregate(ctx, args, &out, &errb); err != nil {
		t.Fatalf("%v (log: %s)", err, errb.String())
	}
	if n := users(); n != 1 {
		t.Fatalf("users after the backfill = %d, want 1", n)
	}
	if err := ch.Conn.Exec(ctx, "INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users) "+
		"VALUES (toDateTime(?, 'UTC'), '', map(), 'qoscope.client', 0, 3, 1, 5)", minute.Unix()); err != nil {
		t.Fatal(err)
	}
	err := runAggregate(ctx, args, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), minute.UTC().Format(time.RFC3339)) || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("want a refusal naming %s and --replace, got %v", minute.UTC().Format(time.RFC3339), err)
	}
	if n := users(); n != 1+5 {
		t.Fatalf("users after the refusal = %d, want 6 (backfill 1 + streaming 5, untouched)", n)
	}
	if err := runAggregate(ctx, append(args, "--replace"), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if n := users(); n != 1 {
		t.Fatalf("users after --replace = %d, want the backfill's 1", n)
	}
}
