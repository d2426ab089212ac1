package runner

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/logging"
)

// Options are the command-line inputs of `qoscope aggregate` in streaming
// mode.
type Options struct {
	// Config is the loaded configuration (internal/appconfig reads the file
	// and the QOSCOPE_* variables).
	Config Config
	// Stderr receives the log. Default os.Stderr.
	Stderr io.Writer
	// MetricsReady, when non-nil, receives the metrics listener's address
	// (tests; never sent when metrics_listen is empty).
	MetricsReady chan<- net.Addr
}

// Run is the standalone service: it serves /metrics, /healthz and /readyz
// (Runner.Ready) on metrics_listen, and runs a Runner until ctx
// ends. The environment variable QOSCOPE_AGGREGATOR_CRASH_AT installs a
// crash hook (see CrashHookFromEnv).
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	log := logging.New(opts.Stderr, cfg.Log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hook, err := CrashHookFromEnv()
	if err != nil {
		return err
	}
	r, err := New(cfg, Deps{Logger: log, Registry: reg, CrashHook: hook})
	if err != nil {
		return err
	}
	if cfg.MetricsListen == "" {
		return r.Run(ctx)
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (metrics_listen): %w", cfg.MetricsListen, err)
	}
	// The port carries only health and metrics and has no tokens of its
	// own: /metrics is open, as before (bind metrics_listen where only the
	// scraper reaches it).
	srv := httpx.NewServer(ctx, httpx.NewHealthHandler(log, httpx.HealthOptions{Registry: reg, Ready: r.Ready}), log, httpx.ServerOptions{})
	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- httpx.Serve(hctx, srv, ln, 5*time.Second) }()
	if opts.MetricsReady != nil {
		opts.MetricsReady <- ln.Addr()
	}
	// The health server stops only after Run's last flush: the final
	// metrics stay scrapeable until then.
	runErr := r.Run(ctx)
	stopHealth()
	if err := <-served; err != nil {
		log.Error().Err(err).Msg("metrics server stopped")
	}
	return runErr
}

// EnvCrashAt names the crash-test hook variable: POINT[:N], e.g.
// "after-rows:3" kills the process with SIGKILL when a flush reaches
// after-rows for the third time (points: after-deadletters, after-rows,
// after-checkpoint, after-commit; N defaults to 1). For tests only.
const EnvCrashAt = "QOSCOPE_AGGREGATOR_CRASH_AT"

// CrashHookFromEnv returns the hook EnvCrashAt asks for, or nil.
func CrashHookFromEnv() (func(point string), error) {
	v := os.Getenv(EnvCrashAt)
	if v == "" {
		return nil, nil
	}
	point, nth, _ := strings.Cut(v, ":")
	n := 1
	if nth != "" {
		var err error
		if n, err = strconv.Atoi(nth); err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: N must be a positive integer", EnvCrashAt, v)
		}
	}
	switch point {
	case "after-deadletters", "after-rows", "after-checkpoint", "after-commit":
	default:
		return nil, fmt.Errorf("%s=%q: unknown point (after-deadletters, after-rows, after-checkpoint, after-commit)", EnvCrashAt, v)
	}
	var mu sync.Mutex
	seen := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		seen++
		hit := seen == n
		mu.Unlock()
		if hit {
			killSelf()
		}
	}, nil
}
