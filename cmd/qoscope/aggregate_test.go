package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
