package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

// Run is the standalone service: it serves
// /metrics and /healthz on metrics_listen, and runs a Runner until ctx
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
	if cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("cannot listen on %s (metrics_listen): %w", cfg.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("metrics server stopped")
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			wg.Wait()
		}()
		if opts.MetricsReady != nil {
			opts.MetricsReady <- ln.Addr()
		}
	}
	return r.Run(ctx)
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
