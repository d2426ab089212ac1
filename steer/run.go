package steer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/internal/logging"
)

// Options configure Run.
type Options struct {
	// Config is the steer section (validated by the loader) with the log
	// section.
	Config Config
	// Stderr receives the logs.
	Stderr io.Writer
	// Listener, when set, is used instead of listening on Config.Listen
	// (tests).
	Listener net.Listener
}

// Run is `qoscope steer`: the steering server for the edge. It gets the
// score table from serve's scores API (or a file), steers GET /steer/hls
// and /steer/dash, answers /healthz and /readyz (ready once a table is
// loaded) and, on steer.metrics_listen, /metrics. It returns nil when ctx
// ends.
//
// The steering routes have no middleware: at tens of thousands of requests
// a second an access log line each would cost more than the answer; the
// handler counts them in qoscope_steer_requests_total instead.
func Run(ctx context.Context, o Options) error {
	c := o.Config
	log := logging.New(o.Stderr, c.Log).With().Str("component", "steer").Logger()

	geo, closeGeo, err := OpenGeo(c.IPDB, log)
	if err != nil {
		return err
	}
	defer closeGeo()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	src := &Source{}
	var poller *Poller
	if c.Scores.File != "" {
		t, err := LoadFile(c.Scores.File)
		if err != nil {
			return fmt.Errorf("steer: %w", err)
		}
		src.Set(t, time.Now())
		log.Info().Str("file", c.Scores.File).Int("regions", len(t.Regions)).Msg("score table loaded from file")
	} else {
		if poller, err = NewPoller(c.Scores, src, log, reg, nil); err != nil {
			return fmt.Errorf("steer: %w", err)
		}
	}
	if src.cur.Load() != nil && c.Scores.File != "" {
		// A file is never re-read: its table must not turn stale.
		c.StaleAfter = 100 * 365 * 24 * time.Hour
	}
	h, err := NewHandler(HandlerOptions{Config: c, Geo: geo, Snapshot: src.Snapshot, Registry: reg, Log: log})
	if err != nil {
		return err
	}
	ready := func(context.Context) error {
		if t, _ := src.Snapshot(); t == nil {
			return errors.New("no score table yet")
		}
		return nil
	}

	r := httpx.NewRouter()
	h.Mount(r)
	httpx.MountHealth(r, httpx.HealthOptions{Ready: ready})

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.Listen); err != nil {
			return fmt.Errorf("steer: cannot listen on %s: %w", c.Listen, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	if poller != nil {
		g.Go(func() error { poller.Run(gctx); return nil })
	}
	g.Go(func() error {
		log.Info().Str("listen", ln.Addr().String()).Dur("ttl", c.TTL).Msg("steering")
		return httpx.Serve(gctx, httpx.NewServer(gctx, r, log, httpx.ServerOptions{}), ln, c.ShutdownTimeout)
	})
	if c.MetricsListen != "" {
		mln, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return fmt.Errorf("steer: cannot listen on %s: %w", c.MetricsListen, err)
		}
		mh := httpx.NewHealthHandler(log, httpx.HealthOptions{Registry: reg, Ready: ready})
		g.Go(func() error {
			return httpx.Serve(gctx, httpx.NewServer(gctx, mh, log, httpx.ServerOptions{}), mln, c.ShutdownTimeout)
		})
	}
	return g.Wait()
}

// OpenGeo opens the IP table steer.ipdb names, or the embedded synthetic
// one (with a warning) when it is empty; close releases it.
func OpenGeo(path string, log zerolog.Logger) (geo *ipdb.Table, close func(), err error) {
	if path == "" {
		geo, err = ipdb.Default()
		log.Warn().Str("source", ipdb.SyntheticSource).Msg("steer.ipdb not set: using the embedded synthetic IP table")
		close = func() {}
	} else {
		geo, err = ipdb.Open(path)
		close = func() {
			if geo != nil {
				_ = geo.Close()
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("steer: cannot open the IP table: %w", err)
	}
	return geo, close, nil
}
