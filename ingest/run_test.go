package ingest

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestRun drives `qoscope ingest` end to end: config file, topic creation,
// serving, logging without secrets, and a clean stop on cancel.
func TestRun(t *testing.T) {
	k := fakeKafka(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ingest.yaml")
	cfg := "listen: 127.0.0.1:1\n" + // overridden by Options.Listen
		"log: {format: json, level: info}\n" +
		"kafka: {brokers: [" + k.kafka.Brokers[0] + "]}\n" +
		"producer: {partitions: 2}\n" +
		"tokens:\n  - {name: sdk, token: " + tokSDK + ", sources: [client]}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigFile: path, Listen: "127.0.0.1:0", Stderr: &logs, Ready: ready})
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
