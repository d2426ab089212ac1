package httpx

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// HealthOptions configure the /healthz, /readyz and /metrics routes.
type HealthOptions struct {
	// Registry is served on /metrics; nil: no /metrics route.
	Registry *prometheus.Registry
	// Ready answers /readyz: nil error is 200 {"status":"ready"}, an
	// error 503 {"error": err.Error()}. nil Ready: always ready.
	Ready func(ctx context.Context) error
	// MetricsAuth, when set, puts /metrics behind the metrics scope; nil
	// serves it to anyone (ingest with metrics_public, or a port only the
	// scraper reaches).
	MetricsAuth *Auth
}

// HealthRoutes are the routes MountHealth adds, which services keep out of
// their access logs (LogOptions.Quiet).
var HealthRoutes = []string{"/healthz", "/readyz", "/metrics"}

// MountHealth adds /healthz (200 {"status":"ok"} while the process
// serves), /readyz and /metrics to r.
func MountHealth(r chi.Router, o HealthOptions) {
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(r.Context()); err != nil {
				WriteError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if o.Registry == nil {
		return
	}
	var h http.Handler = promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{})
	if o.MetricsAuth != nil {
		h = o.MetricsAuth.Require(ScopeMetrics)(h)
	}
	r.Method(http.MethodGet, "/metrics", h)
}

// NewHealthHandler is a router with the Stack and only the health routes:
// the separate metrics port of a service without an API of its own (the
// aggregator runner's metrics_listen).
func NewHealthHandler(log zerolog.Logger, o HealthOptions) http.Handler {
	r := NewRouter()
	r.Use(Stack(log, StackOptions{Log: LogOptions{Quiet: HealthRoutes}})...)
	MountHealth(r, o)
	return r
}

// ServerOptions are the http.Server settings of NewServer; zero fields get
// the defaults named on each.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration // 10s
	ReadTimeout       time.Duration // 0: none
	WriteTimeout      time.Duration // 0: none
	IdleTimeout       time.Duration // 120s
	// MaxHeaderBytes is net/http's hard limit, answered in plain text;
	// keep it above the Stack's JSON limit. Default 256 KiB.
	MaxHeaderBytes int
}

// HardMaxHeaderBytes is ServerOptions' default MaxHeaderBytes.
const HardMaxHeaderBytes = 256 << 10

// NewServer is an http.Server for h with o's limits, whose own errors
// (TLS handshakes, malformed requests) go to log. ctx is every request's
// base context without its cancellation: a stop drains requests instead of
// cancelling them.
func NewServer(ctx context.Context, h http.Handler, log zerolog.Logger, o ServerOptions) *http.Server {
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = HardMaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          StdLogger(log),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// StdLogger adapts log for net/http's ErrorLog.
func StdLogger(l zerolog.Logger) *log.Logger {
	return log.New(l.With().Str("source", "net/http").Logger(), "", 0)
}

// Serve serves srv on ln until ctx ends, then shuts it down, giving
// in-flight requests up to drain to finish (then closing what is left).
// It returns nil after a stop asked for by ctx, else the serve error.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server on %s failed: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("http server on %s did not drain in %s: %w", ln.Addr(), drain, err)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
