package ingest

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun drives `qoscope ingest` end to end: topic creation, serving,
// logging without secrets, and a clean stop on cancel. Loading the file is
// internal/appconfig's (tested there).
func TestRun(t *testing.T) {
	k := fakeKafka(t)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:1" // overridden by Options.Listen
	cfg.Log = config.Log{Format: "json", Level: "info"}
	cfg.Kafka.Brokers = k.kafka.Brokers
	cfg.Producer.Partitions = 2
	cfg.Tokens = []TokenConfig{{Name: "sdk", Token: tokSDK, Sources: []string{"client"}}}
	var logs syncBuffer
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Listen: "127.0.0.1:0", Stderr: &logs, Ready: ready})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Run returned early: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not become ready")
	}
	url := "http://" + addr.String()
	if r := send(t, url, "/v1/events/client", tokSDK, []byte(clientEvent("dns", "u", time.Now().UnixMilli())+"\nbad"), nil); r.status != 200 || r.resp.Accepted != 1 {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	if r := send(t, url, "/v1/events/client", "x-wrong-token-x-wrong", []byte("{}"), nil); r.status != 401 {
		t.Fatalf("wrong token: %d", r.status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := logs.String()
	for _, want := range []string{`"component":"ingest"`, `"message":"request"`, `"token":"sdk"`, `"accepted":1`, `"rejected":1`, `"status":401`, `"message":"ingest stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, tokSDK) || strings.Contains(out, "x-wrong-token-x-wrong") {
		t.Errorf("logs contain a token secret:\n%s", out)
	}
}
