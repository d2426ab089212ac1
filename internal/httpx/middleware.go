package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// RequestInfo is what the middleware stack learns about a request: its id
// and token, plus whatever a handler adds for the access log line.
type RequestInfo struct {
	// ID is the request id (X-Request-Id).
	ID    string
	token *Token
	// Error, when a handler sets it, is logged as "error" (the body's
	// message, or more detail than a client should see).
	Error    string
	annotate []func(*zerolog.Event)
}

// Annotate adds fields to the request's access log line; f runs when the
// line is written, after the handler, so it sees the handler's final state.
func (i *RequestInfo) Annotate(f func(*zerolog.Event)) { i.annotate = append(i.annotate, f) }

// TokenName is the name of the request's token, "" before or without
// authentication.
func (i *RequestInfo) TokenName() string {
	if i.token == nil {
		return ""
	}
	return i.token.Name
}

type infoKey struct{}

func infoOf(r *http.Request) *RequestInfo {
	i, _ := r.Context().Value(infoKey{}).(*RequestInfo)
	return i
}

// ensureInfo returns r's RequestInfo, attaching a new one (and returning
// the new request) when no middleware did yet. One value per request keeps
// the stack at one context copy however many pieces use it.
func ensureInfo(r *http.Request) (*RequestInfo, *http.Request) {
	if i := infoOf(r); i != nil {
		return i, r
	}
	i := &RequestInfo{}
	return i, r.WithContext(context.WithValue(r.Context(), infoKey{}, i))
}

// Info returns r's RequestInfo; outside the stack, a detached one (what is
// set on it is lost), so handlers need not check.
func Info(r *http.Request) *RequestInfo {
	if i := infoOf(r); i != nil {
		return i
	}
	return &RequestInfo{}
}

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// RequestID returns middleware that gives every request an id: the
// incoming X-Request-Id when it is sane (1–128 characters of letters,
// digits and ._:/+=-, so a proxy's or client's id joins the logs without
// letting a client inject log syntax), else a new one: a random per-process
// prefix and a counter, unique without a random read per request. The id is
// echoed in the response's X-Request-Id.
func RequestID() func(http.Handler) http.Handler {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	prefix := hex.EncodeToString(b[:]) + "-"
	var n atomic.Uint64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, r := ensureInfo(r)
			id := r.Header.Get(RequestIDHeader)
			if !saneID(id) {
				id = prefix + strconv.FormatUint(n.Add(1), 10)
			}
			info.ID = id
			w.Header().Set(RequestIDHeader, id)
			next.ServeHTTP(w, r)
		})
	}
}

func saneID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == ':' || c == '/' || c == '+' || c == '=' || c == '-':
		default:
			return false
		}
	}
	return true
}

// HTTPMetrics are the per-route request metrics of one service.
type HTTPMetrics struct {
	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	inflight prometheus.Gauge
}

// NewHTTPMetrics registers <namespace>_<subsystem>_http_requests_total
// {route, code}, ..._http_request_duration_seconds{route} and
// ..._http_inflight_requests on reg. Routes are chi patterns, so the label
// set stays bounded whatever paths clients send ("unmatched" for 404s).
func NewHTTPMetrics(reg prometheus.Registerer, namespace, subsystem string) (*HTTPMetrics, error) {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "http_requests_total", Help: "HTTP requests by route pattern and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "http_request_duration_seconds", Help: "HTTP request duration by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "http_inflight_requests", Help: "Requests being served."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inflight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register %s_%s http metrics: %w", namespace, subsystem, err)
		}
	}
	return m, nil
}

// LogOptions configure AccessLog.
type LogOptions struct {
	// Metrics, when set, count and time every request by route.
	Metrics *HTTPMetrics
	// Quiet routes (chi patterns) are counted but their successes are not
	// logged: health checks, scrapes, players and schedulers polling
	// arrive every few seconds or many times a second. Their failures
	// (4xx, 5xx) are, at most one line per route and status per
	// QuietErrorEvery, with the number left out since ("suppressed").
	Quiet []string
	// QuietErrorEvery defaults to DefaultQuietErrorEvery.
	QuietErrorEvery time.Duration

	now func() time.Time // tests
}

// DefaultQuietErrorEvery is LogOptions.QuietErrorEvery's default.
const DefaultQuietErrorEvery = 10 * time.Second

// quietThrottle lets one failure line of a quiet route and status through
// per period and counts the rest.
type quietThrottle struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be written at now, and how many were
// left out since the last one.
func (q *quietThrottle) allow(now time.Time, every time.Duration) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.last.IsZero() && now.Sub(q.last) < every {
		q.suppressed++
		return 0, false
	}
	n := q.suppressed
	q.last, q.suppressed = now, 0
	return n, true
}

// AccessLog returns middleware that writes one line per request to log:
// request_id, method, path (never the query, which may carry secrets),
// route (the chi pattern), status, resp_bytes, duration and token (the
// name; the Authorization header is never logged), plus the handler's
// Annotate fields and Error. 2xx/3xx log at info, 4xx at warn, 5xx at
// error. It also recovers panics (as Recover), so that a panicking request
// is logged with its 500.
func AccessLog(log zerolog.Logger, o LogOptions) func(http.Handler) http.Handler {
	quiet := map[string]bool{}
	for _, q := range o.Quiet {
		quiet[q] = true
	}
	if o.QuietErrorEvery <= 0 {
		o.QuietErrorEvery = DefaultQuietErrorEvery
	}
	if o.now == nil {
		o.now = time.Now
	}
	var throttles sync.Map // route + " " + status → *quietThrottle
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			info, r := ensureInfo(r)
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			if o.Metrics != nil {
				o.Metrics.inflight.Inc()
			}
			defer func() {
				if o.Metrics != nil {
					o.Metrics.inflight.Dec()
				}
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				d := time.Since(start)
				if o.Metrics != nil {
					o.Metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
					o.Metrics.duration.WithLabelValues(route).Observe(d.Seconds())
				}
				suppressed := -1
				if quiet[route] {
					if status < 400 {
						return
					}
					t, _ := throttles.LoadOrStore(route+" "+strconv.Itoa(status), &quietThrottle{})
					n, ok := t.(*quietThrottle).allow(o.now(), o.QuietErrorEvery)
					if !ok {
						return
					}
					suppressed = n
				}
				ev := log.Info()
				if status >= 500 {
					ev = log.Error()
				} else if status >= 400 {
					ev = log.Warn()
				}
				ev.Str("request_id", info.ID).Str("method", r.Method).Str("path", r.URL.Path).Str("route", route).
					Int("status", status).Dur("duration", d).Int("resp_bytes", ww.BytesWritten()).
					Str("token", info.TokenName())
				for _, f := range info.annotate {
					f(ev)
				}
				if info.Error != "" {
					ev.Str("error", info.Error)
				}
				if suppressed >= 0 {
					ev.Int("suppressed", suppressed)
				}
				ev.Msg("request")
			}()
			defer recoverTo(log, ww, r, info)
			next.ServeHTTP(ww, r)
		})
	}
}

// Recover returns middleware that turns a handler's panic into a JSON 500
// (when nothing was written yet) and an error log line with the stack.
// http.ErrAbortHandler is re-raised: it is net/http's way to abort a
// response on purpose. AccessLog includes it; use Recover alone only
// without AccessLog.
func Recover(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, r := ensureInfo(r)
			ww, ok := w.(middleware.WrapResponseWriter)
			if !ok {
				ww = middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			}
			defer recoverTo(log, ww, r, info)
			next.ServeHTTP(ww, r)
		})
	}
}

func recoverTo(log zerolog.Logger, ww middleware.WrapResponseWriter, r *http.Request, info *RequestInfo) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	log.Error().Interface("panic", p).Str("request_id", info.ID).Str("path", r.URL.Path).
		Bytes("stack", debug.Stack()).Msg("handler panicked")
	info.Error = fmt.Sprintf("panic: %v", p)
	if ww.Status() == 0 {
		WriteError(ww, http.StatusInternalServerError, "internal error")
	}
}

// HeaderBytes counts a request's header the way net/http counts it for
// http.Server.MaxHeaderBytes: the request line and every "Key: value\r\n".
func HeaderBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// HeaderLimit returns middleware answering a JSON 431 for headers over max
// bytes. net/http answers those over http.Server.MaxHeaderBytes itself, in
// plain text and without reading further; so set that one higher (as
// ServerOptions does) and let this give the JSON answer below it.
func HeaderLimit(max int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n := HeaderBytes(r); n > max {
				WriteError(w, http.StatusRequestHeaderFieldsTooLarge,
					fmt.Sprintf("request header is %d bytes, over the %d-byte limit", n, max))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// MaxBody returns middleware that answers a JSON 413 for a declared
// Content-Length over max bytes and bounds the body read otherwise
// (http.MaxBytesReader: a read past max fails with *http.MaxBytesError,
// which handlers turn into 413). Ingest has its own reader, which also
// bounds the decompressed size.
func MaxBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				WriteError(w, http.StatusRequestEntityTooLarge,
					fmt.Sprintf("request body is %d bytes, over the %d-byte limit", r.ContentLength, max))
				return
			}
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// DefaultMaxHeaderBytes is the header limit of Stack: 64 KiB, in JSON;
// ServerOptions' hard limit past it is 256 KiB.
const DefaultMaxHeaderBytes = 64 << 10

// StackOptions configure Stack.
type StackOptions struct {
	Log LogOptions
	// MaxHeaderBytes: 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// Stack is the middleware every qoscope router starts with, outermost
// first: request id, access log with metrics and panic recovery, header
// limit. Routes add Auth.Require and MaxBody where they need them.
func Stack(log zerolog.Logger, o StackOptions) []func(http.Handler) http.Handler {
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return []func(http.Handler) http.Handler{RequestID(), AccessLog(log, o.Log), HeaderLimit(o.MaxHeaderBytes)}
}
