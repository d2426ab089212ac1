package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// demoProc is a qoscope command run by a step as its own process: `qoscope
// all-in-one --demo` (the alerts and scores steps) or `qoscope serve` (the
// scores step's read replica).
type demoProc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process ended
	logPath string
	logFile *os.File
	once    sync.Once
}

// startDemo writes cfg to work/NAME.yaml and starts `qoscope all-in-one
// --demo` on it, logging to work/NAME-all-in-one.log, with the embedded
// broker rather than the harness's (the demo's topics and consumer group
// start empty) and the DSN of its own database (the environment wins over
// the file); it returns once serve at serveAddr answers /readyz. stop
// ends it.
func startDemo(ctx context.Context, bin, work, name, cfg, dsn, serveAddr string) (*demoProc, error) {
	return startQoscope(ctx, bin, work, name, []string{"all-in-one", "--demo"}, cfg, dsn, serveAddr)
}

// startQoscope is startDemo for any qoscope command (args before
// --config); the log is work/NAME-ARGS[0].log.
func startQoscope(ctx context.Context, bin, work, name string, args []string, cfg, dsn, serveAddr string) (*demoProc, error) {
	cfgPath := filepath.Join(work, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p := &demoProc{logPath: filepath.Join(work, name+"-"+args[0]+".log"), done: make(chan struct{})}
	var err error
	if p.logFile, err = os.Create(p.logPath); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, append(append([]string(nil), args...), "--config", cfgPath)...)
	p.cmd.Env = append(envWithout(os.Environ(), "QOSCOPE_KAFKA_BROKERS", "QOSCOPE_CLICKHOUSE_DSN"), "QOSCOPE_CLICKHOUSE_DSN="+dsn)
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, fmt.Errorf("cannot start qoscope %s: %w", args[0], err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if err := waitReady(ctx, "http://"+serveAddr+"/readyz", p.done, 90*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w (log %s)", err, p.logPath)
	}
	return p, nil
}

// stop sends SIGTERM and waits for a clean stop, killing after a minute.
// Only the first call does anything.
func (p *demoProc) stop() { p.once.Do(p.doStop) }

func (p *demoProc) doStop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.logFile.Close()
}

// buildBinary builds the package pkg (e.g. "./cmd/qoscope") of the module
// at repo ("": the working directory) into work/name and returns its path.
func buildBinary(ctx context.Context, repo, work, name, pkg string) (string, error) {
	bin := filepath.Join(work, name)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build %s: %w: %s", pkg, err, out)
	}
	return bin, nil
}

// freshDatabase returns the DSN of a step's own database db on the
// harness's ClickHouse, dropping what a previous run left; cleanup drops
// it again unless o.KeepWork.
func freshDatabase(ctx context.Context, o *Options, db string, logf func(string, ...any)) (dsn string, cleanup func(), err error) {
	if dsn, err = withDatabase(o.ClickHouseDSN, db); err != nil {
		return "", nil, err
	}
	if err := dropDatabase(ctx, o.ClickHouseDSN, db); err != nil {
		return "", nil, err
	}
	cleanup = func() {
		if o.KeepWork {
			return
		}
		if err := dropDatabase(context.WithoutCancel(ctx), o.ClickHouseDSN, db); err != nil {
			logf("  cannot drop %s: %v", db, err)
		}
	}
	return dsn, cleanup, nil
}
