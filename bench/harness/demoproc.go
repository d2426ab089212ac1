package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// demoProc is `qoscope all-in-one --demo` run by a step as its own process
// (the alerts and scores steps).
type demoProc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process ended
	logPath string
	logFile *os.File
}

// startDemo writes cfg to work/NAME.yaml and starts `qoscope all-in-one
// --demo` on it, logging to work/NAME-all-in-one.log, with the embedded
// broker rather than the harness's (the demo's topics and consumer group
// start empty) and the DSN of its own database (the environment wins over
// the file); it returns once serve at serveAddr answers /readyz. stop
// ends it.
func startDemo(ctx context.Context, bin, work, name, cfg, dsn, serveAddr string) (*demoProc, error) {
	cfgPath := filepath.Join(work, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p := &demoProc{logPath: filepath.Join(work, name+"-all-in-one.log"), done: make(chan struct{})}
	var err error
	if p.logFile, err = os.Create(p.logPath); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "all-in-one", "--demo", "--config", cfgPath)
	p.cmd.Env = append(envWithout(os.Environ(), "QOSCOPE_KAFKA_BROKERS", "QOSCOPE_CLICKHOUSE_DSN"), "QOSCOPE_CLICKHOUSE_DSN="+dsn)
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, fmt.Errorf("cannot start qoscope all-in-one: %w", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if err := waitReady(ctx, "http://"+serveAddr+"/readyz", p.done, 90*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w (log %s)", err, p.logPath)
	}
	return p, nil
}

// stop sends SIGTERM and waits for a clean stop, killing after a minute.
func (p *demoProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.logFile.Close()
}
