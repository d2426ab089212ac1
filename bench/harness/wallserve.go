package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// wallServe is `qoscope serve` in its own process, reading the query
// benchmark's database: the wall's load then goes through the HTTP API a
// wall uses (auth, parameter checks, JSON, the shared answers of
// serve.answer_ttl), not through a library call in the load generator's
// process.
type wallServe struct {
	url, token string
	cmd        *exec.Cmd
	done       chan error
}

// startWallServe builds the qoscope binary into work and starts `qoscope
// serve` on dsn (a database of the benchmark's ClickHouse), on a free
// loopback port, with a one-run read token; it returns once /readyz
// answers 200.
func startWallServe(ctx context.Context, work, dsn string, logf func(string, ...any)) (*wallServe, error) {
	bin, err := buildBinary(ctx, "", work, "qoscope", "./cmd/qoscope")
	if err != nil {
		return nil, fmt.Errorf("query step: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot find a free port for qoscope serve: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(b[:])
	cfgPath := filepath.Join(work, "serve.yaml")
	cfg := fmt.Sprintf("serve:\n  tokens:\n    - name: bench\n      token: %s\n      scopes: [read]\n", token)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(work, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	// The environment wins over the file in qoscope's configuration: the
	// benchmark's own QOSCOPE_CLICKHOUSE_DSN names another database.
	cmd.Env = append(os.Environ(), "QOSCOPE_CLICKHOUSE_DSN="+dsn, "QOSCOPE_SERVE_LISTEN="+addr, "QOSCOPE_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("cannot start qoscope serve: %w", err)
	}
	s := &wallServe{url: "http://" + addr, token: token, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); logFile.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				logf("  qoscope serve (pid %d) ready at %s", cmd.Process.Pid, s.url)
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("qoscope serve exited before it was ready (%v); log: %s", err, logPath)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("qoscope serve not ready after 60 s; log: %s", logPath)
		}
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (s *wallServe) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
