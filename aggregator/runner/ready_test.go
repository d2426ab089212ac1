package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// Ready (the health server's /readyz) is false until Run consumes, true
// while it does, and false while a failing flush holds consumption.
func TestReady(t *testing.T) {
	r, err := New(DefaultConfig(), Deps{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "not consuming") {
		t.Fatalf("before Run: %v", err)
	}
	r.running.Store(true) // what Run does once the consumer group exists
	if err := r.Ready(context.Background()); err != nil {
		t.Fatalf("consuming: %v", err)
	}
	r.gate.Lock() // what a failing flush does until ClickHouse answers
	err = r.Ready(context.Background())
	r.gate.Unlock()
	if err == nil || !strings.Contains(err.Error(), "clickhouse writes are failing") {
		t.Fatalf("while writes fail: %v", err)
	}
	if err := r.Ready(context.Background()); err != nil {
		t.Fatalf("after writes recovered: %v", err)
	}
}
