// Package api is `qoscope serve`: the read side's HTTP API over the query
// library (package query), under /api/v1, described by openapi.json. Every
// handler is thin: it parses and checks its query parameters, calls one
// Querier method and writes the answer as JSON; names are checked against
// the metric catalogue and values bound as parameters by the library.
// docs/API.md shows each endpoint with a real answer.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/cors"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/qoscope/qoscope/aggregator"
	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/dashboards"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/query"
	"github.com/qoscope/qoscope/score"
	"github.com/qoscope/qoscope/score/live"
	"github.com/qoscope/qoscope/steer"
)

// Deps are what a Server is built on.
type Deps struct {
	// Conn is an open ClickHouse connection whose database holds the views.
	Conn driver.Conn
	// Logger receives access logs and errors; a "component": "serve" field
	// is added.
	Logger zerolog.Logger
	// Registry is served on /metrics; nil creates one with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// AlertSink receives the live evaluator's notifications
	// (notify.Dispatcher); nil logs them.
	AlertSink alertlive.Sink
	// Written, when set, receives after each flush of an aggregator in
	// the same process (all-in-one): the live alert evaluator then looks
	// at once (alertlive.Service.WakeOn). nil: it polls alone.
	Written <-chan struct{}
}

// Server is the query API: a router and the live endpoint's shared poller.
type Server struct {
	cfg     Config
	q       *query.Querier
	log     zerolog.Logger
	now     func() time.Time
	conn    driver.Conn
	auth    *httpx.Auth
	hub     *hub
	answers *answerCache
	wall    *dashboards.Wall // nil when serve.wall.enabled is false
	alerts  *alertlive.Service
	handler http.Handler
	scores  *live.Scores // nil unless scores.config is set
	steer   *steer.Handler
	closers []func()
}

// New builds the API for cfg (validated) on d.
func New(cfg Config, d Deps) (*Server, error) {
	plan, err := aggregator.NewPlan(cfg.Aggregator)
	if err != nil {
		return nil, fmt.Errorf("serve: aggregator grouping sets: %w", err)
	}
	store, err := httpx.NewStore(cfg.Tokens, nil)
	if err != nil {
		return nil, fmt.Errorf("serve.%w", err)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	hm, err := httpx.NewHTTPMetrics(reg, "qoscope", "serve")
	if err != nil {
		return nil, err
	}
	opts := cfg.QueryOptions()
	opts.Now = d.Now
	s := &Server{
		cfg:  cfg,
		q:    query.NewQuerier(d.Conn, query.NewCatalog(plan), opts),
		log:  d.Logger.With().Str("component", "serve").Logger(),
		now:  d.Now,
		conn: d.Conn,
		auth: httpx.NewAuth(store, "qoscope-serve"),
	}
	if cfg.Wall.Enabled {
		if s.wall, err = dashboards.New(cfg.Wall); err != nil {
			return nil, fmt.Errorf("serve.wall: %w", err)
		}
	}
	s.answers = newAnswerCache(cfg.AnswerTTL, 1024, d.Now)
	s.hub = newHub(s.q, cfg.Live, cfg.QueryTimeout, s.log)
	s.hub.changed = s.answers.invalidate
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "qoscope", Subsystem: "serve", Name: "live_clients",
		Help: "Connected /api/v1/live clients."})
	if err := reg.Register(lag); err != nil {
		return nil, err
	}
	s.hub.clients = lag
	if cfg.Scores.Enabled() {
		if s.scores, err = live.New(cfg.Scores, live.Deps{Rows: s.q, Store: live.NewStore(d.Conn), Logger: s.log, Registry: reg, Now: d.Now}); err != nil {
			return nil, err
		}
		// Players steered by the scheduler's ratios: the same handler as
		// `qoscope steer`, reading this process's snapshot (docs/STEERING.md).
		geo, closeGeo, err := steer.OpenGeo(cfg.Steer.IPDB, s.log)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, closeGeo)
		sc := s.scores
		s.steer, err = steer.NewHandler(steer.HandlerOptions{Config: cfg.Steer, Geo: geo, Registry: reg, Log: s.log, Now: d.Now,
			Snapshot: func() (*score.Table, time.Time) {
				sn := sc.Snapshot()
				if sn == nil {
					return nil, time.Time{}
				}
				return sn.Table, sn.BuiltAt
			}})
		if err != nil {
			closeGeo()
			return nil, err
		}
	}
	if s.alerts, err = alertlive.NewService(cfg.Alert, d.Conn, s.q, d.AlertSink, reg, d.Logger); err != nil {
		return nil, err
	}
	s.alerts.WakeOn(d.Written)
	s.handler = s.routes(reg, hm)
	return s, nil
}

// Routes are the API's routes (each documented in openapi.json, which
// TestEveryRouteDocumented checks).
func (s *Server) routes(reg *prometheus.Registry, hm *httpx.HTTPMetrics) http.Handler {
	r := httpx.NewRouter()
	// Players ask for steering every TTL and schedulers poll the scores
	// up to thousands of times a second: counted in qoscope_http_* and
	// qoscope_steer_*, their successes not logged one line per request
	// (failures are, throttled: httpx.LogOptions.Quiet).
	quiet := append(slices.Clone(httpx.HealthRoutes), steer.Routes...)
	quiet = append(quiet, "/api/v1/scores")
	r.Use(httpx.Stack(s.log, httpx.StackOptions{Log: httpx.LogOptions{Metrics: hm, Quiet: quiet}})...)
	if len(s.cfg.CORS.AllowedOrigins) > 0 {
		r.Use(cors.New(cors.Options{
			AllowedOrigins: s.cfg.CORS.AllowedOrigins,
			AllowedMethods: []string{http.MethodGet},
			AllowedHeaders: []string{"Authorization", "Last-Event-ID", httpx.RequestIDHeader},
			MaxAge:         int(s.cfg.CORS.MaxAge / time.Second),
		}).Handler)
	}
	var metricsAuth *httpx.Auth
	if !s.cfg.MetricsPublic {
		metricsAuth = s.auth
	}
	httpx.MountHealth(r, httpx.HealthOptions{Registry: reg, Ready: s.ready, MetricsAuth: metricsAuth})
	// The document describes the API; it is public, like a login page.
	r.Get("/api/v1/openapi.json", s.openAPI)
	// The war-room wall (docs/WALL.md): a public page whose script reads
	// the API below with the viewer's token.
	if s.wall != nil {
		s.wall.Mount(r)
	}
	r.With(s.auth.Authenticate).Get("/api/v1/whoami", s.whoami)
	r.Group(func(r chi.Router) {
		r.Use(s.auth.Require(httpx.ScopeRead), s.queryLimit)
		r.Get("/api/v1/metrics", s.metrics)
		r.Get("/api/v1/series", s.answers.wrap(s.series))
		r.Get("/api/v1/breakdown", s.answers.wrap(s.breakdown))
		r.Get("/api/v1/history", s.answers.wrap(s.history))
		r.Get("/api/v1/streams", s.answers.wrap(s.streams))
		r.Get("/api/v1/live", s.live)
		r.Get("/api/v1/alerts", s.alerts.ServeAlerts)
	})
	if d := s.alerts.Dispatcher(); d != nil {
		d.Mount(r, s.auth)
	}
	if s.scores != nil {
		s.scores.Mount(r, s.auth)
		// Public: players carry no token (docs/STEERING.md, "Security").
		s.steer.Mount(r)
	}
	return r
}

// Handler is the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Alerts is the alerting service (GET /api/v1/alerts, the evaluator when
// alert.rules is set).
func (s *Server) Alerts() *alertlive.Service { return s.alerts }

// Scores is the live scores service (the steering server reads its
// Snapshot); nil unless scores.config is set.
func (s *Server) Scores() *live.Scores { return s.scores }

// Querier is the query library instance the handlers call.
func (s *Server) Querier() *query.Querier { return s.q }

// ready: ClickHouse answers.
func (s *Server) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse not reachable: %w", err)
	}
	return nil
}

// Serve runs the live poller and the HTTP server on ln until ctx ends,
// then drains requests for Config.ShutdownTimeout. Live connections end
// when ctx does.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := httpx.NewServer(ctx, s.handler, s.log, httpx.ServerOptions{ReadTimeout: 30 * time.Second})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.hub.run(gctx); return nil })
	if s.scores != nil {
		g.Go(func() error { return s.scores.Run(gctx) })
	}
	g.Go(func() error { return s.alerts.Run(gctx) })
	g.Go(func() error { return httpx.Serve(gctx, srv, ln, s.cfg.ShutdownTimeout) })
	return g.Wait()
}

// Options are the inputs of Run (`qoscope serve`).
type Options struct {
	// Config is the loaded, validated configuration (appconfig.LoadServe).
	Config Config
	// Stderr receives logs. Default os.Stderr.
	Stderr io.Writer
	// Ready, when non-nil, receives the listen address once serving.
	Ready chan<- net.Addr
}

// Run opens ClickHouse, serves the API until ctx ends, then stops cleanly.
func Run(ctx context.Context, opts Options) error {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	log := logging.New(opts.Stderr, cfg.Log)
	ch, err := chconn.Open(ctx, cfg.ClickHouse.DSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	s, err := New(cfg, Deps{Conn: ch, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (serve.listen): %w", cfg.Listen, err)
	}
	if opts.Ready != nil {
		opts.Ready <- ln.Addr()
	}
	s.log.Info().Str("listen", ln.Addr().String()).Str("clickhouse", cfg.ClickHouse.Redacted()).Msg("serving the query API")
	err = s.Serve(ctx, ln)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
