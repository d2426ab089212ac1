package ingest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/qoscope/qoscope/internal/logging"
)

// Options are the inputs of `qoscope ingest`.
type Options struct {
	// Config is the loaded configuration (internal/appconfig reads the
	// file and the QOSCOPE_* variables; ingest cannot, since the file holds
	// every component's section).
	Config Config
	// Listen, when set, overrides the config's listen address.
	Listen string
	// Stderr receives logs. Default os.Stderr.
	Stderr io.Writer
	// Ready, when non-nil, receives the listen address once serving (tests).
	Ready chan<- net.Addr
}

// Run creates the Kafka topics and serves until ctx is cancelled; then it
// drains in-flight requests and flushes Kafka.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	if opts.Listen != "" {
		cfg.Listen = opts.Listen
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	log := logging.New(opts.Stderr, cfg.Log)
	s, err := NewServer(cfg, Deps{Logger: log})
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, startupTimeout(cfg))
	err = s.EnsureTopics(tctx)
	cancel()
	if err != nil {
		_ = s.Close()
		return fmt.Errorf("kafka at %v: %w", cfg.Kafka.Brokers, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = s.Close()
		return fmt.Errorf("cannot listen on %s (listen): %w", cfg.Listen, err)
	}
	if opts.Ready != nil {
		opts.Ready <- ln.Addr()
	}
	return s.Serve(ctx, ln)
}

// startupTimeout bounds topic creation and the wait for partition leaders.
func startupTimeout(cfg Config) time.Duration {
	return 3*cfg.Kafka.DialTimeout + 10*time.Second
}
