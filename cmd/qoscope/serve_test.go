package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServePrintConfig(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "QOSCOPE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	p := filepath.Join(t.TempDir(), "q.yaml")
	if err := os.WriteFile(p, []byte("serve:\n  tokens: [{name: wall, token: wall-secret-0123456789, scopes: [read]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := dispatch(context.Background(), []string{"serve", "--config", p, "--listen", "127.0.0.1:9911", "--print-config"}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	s := out.String()
	if !strings.Contains(s, "listen: 127.0.0.1:9911") || strings.Contains(s, "wall-secret") || !strings.Contains(s, "max_live_clients: 200") {
		t.Errorf("print-config:\n%s", s)
	}
	// Without a read token the configuration is printed but invalid.
	out.Reset()
	err := dispatch(context.Background(), []string{"serve", "--print-config"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "serve.tokens: at least one token with scope read") || !strings.Contains(out.String(), "serve:") {
		t.Errorf("no tokens: %v\n%s", err, out.String())
	}
}

func TestQueryUsage(t *testing.T) {
	t.Setenv("QOSCOPE_QUERY_TOKEN", "")
	var out, errOut bytes.Buffer
	if err := dispatch(context.Background(), []string{"query", "planets"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "series, breakdown, streams, history") {
		t.Errorf("unknown endpoint: %v", err)
	}
	if err := dispatch(context.Background(), []string{"query", "series", "--metric", "users"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "QOSCOPE_QUERY_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	if err := dispatch(context.Background(), []string{"query", "history", "--metric", "users"}, &out, &errOut); err == nil {
		t.Error("history takes no --metric")
	}
}
