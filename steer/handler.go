package steer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/score"
)

// SnapshotFunc returns the current score table and when it was last known
// fresh (fetched, or confirmed unchanged, from its source); nil before the
// first table. It is called on every request and must be cheap (an atomic
// load).
type SnapshotFunc func() (*score.Table, time.Time)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Config Config
	// Geo maps client addresses to province × ISP.
	Geo *ipdb.Table
	// Snapshot provides the table.
	Snapshot SnapshotFunc
	// Registry, when set, receives qoscope_steer_requests_total{kind,level}
	// and qoscope_steer_rejected_total{reason}.
	Registry prometheus.Registerer
	Log      zerolog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Response headers beside the manifest.
const (
	// HeaderLevel is "region" or "country" (Level).
	HeaderLevel = "X-Qoscope-Steer-Level"
	// HeaderRegion is the table's province/isp the order came from (absent
	// for the country order).
	HeaderRegion = "X-Qoscope-Steer-Region"
	// HeaderFallback says why the country order was used.
	HeaderFallback = "X-Qoscope-Steer-Fallback"
	// HeaderScoresAt is the score table's minute (RFC 3339).
	HeaderScoresAt = "X-Qoscope-Scores-At"
	// HeaderScoresAge is the seconds since the table was last fetched or
	// confirmed by its source: it grows while serve is unreachable.
	HeaderScoresAge = "X-Qoscope-Scores-Age"
)

// Header values shared by every response: assigned to the header map
// directly, so a response costs no allocation for them. Their capacity
// equals their length, so a later Header.Add copies instead of writing
// into the shared array.
var (
	hdrJSON           = []string{"application/json"}
	hdrRegion         = []string{string(LevelRegion)}
	hdrCountry        = []string{string(LevelCountry)}
	hdrNotInTable     = []string{"region not in the score table"}
	hdrUnknownRegion  = []string{"client region unknown"}
	hdrStale          = []string{`110 - "scores are stale: the source has not confirmed them within steer.stale_after"`}
	hdrNoStore        = []string{"no-store"}
	hdrRetryAfter     = []string{"5"}
	hdrRetryAfterRate = []string{"1"}
)

// Handler serves GET /steer/hls and GET /steer/dash.
//
// The routes are public: a player fetching a steering manifest cannot
// present a bearer token (neither HLS nor DASH players add headers to it),
// and the answer holds no secret: an order of CDN names drawn from the
// ratios. Put a per-address rate limit (steer.rate_limit) or a proxy in
// front if the endpoint is exposed.
type Handler struct {
	snapshot     SnapshotFunc
	geo          *ipdb.Table
	pathways     Pathways
	ttl          int
	staleAfter   time.Duration
	trusted      []netip.Prefix
	limiter      *limiter
	now          func() time.Time
	log          zerolog.Logger
	cacheControl []string

	mu  sync.Mutex // serializes compiles
	cur atomic.Pointer[compiled]

	pool sync.Pool // *reqState

	served   [2][2]prometheus.Counter // kind × (region, country)
	rejected map[string]prometheus.Counter
}

// compiled is the snapshot of one table with its per-second age header.
type compiled struct {
	snap *Snapshot
	age  atomic.Pointer[ageHeader]
}

type ageHeader struct {
	fetched time.Time
	secs    int64
	v       []string
}

// reqState is one request's scratch space, pooled.
type reqState struct {
	buf []byte
	sid [16]byte
	req Request
}

// NewHandler checks o.Config's handler keys and returns the handler.
func NewHandler(o HandlerOptions) (*Handler, error) {
	if o.Geo == nil || o.Snapshot == nil {
		return nil, errors.New("steer: Geo and Snapshot are required")
	}
	c := o.Config
	var errs config.Errors
	c.ValidateHandler(errs.In(Section))
	if err := errs.Err(); err != nil {
		return nil, err
	}
	trusted, _ := c.trusted()
	h := &Handler{
		snapshot: o.Snapshot, geo: o.Geo, pathways: c.Pathways, ttl: int(c.TTL / time.Second),
		staleAfter: c.StaleAfter, trusted: trusted, now: o.Now, log: o.Log,
		cacheControl: []string{fmt.Sprintf("private, max-age=%d", int(c.TTL/time.Second))},
		rejected:     map[string]prometheus.Counter{},
	}
	if len(h.pathways) == 0 {
		h.pathways = nil
	}
	if h.now == nil {
		h.now = time.Now
	}
	if c.RateLimit.PerIP > 0 {
		h.limiter = newLimiter(c.RateLimit.PerIP, c.RateLimit.Burst)
	}
	h.pool.New = func() any { return &reqState{buf: make([]byte, 0, 512)} }
	served := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "steer", Name: "requests_total",
		Help: "Steering manifests served, by kind (hls, dash) and order level (region, country)."}, []string{"kind", "level"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "steer", Name: "rejected_total",
		Help: "Steering requests answered without a manifest, by reason."}, []string{"reason"})
	for k := range 2 {
		for l, lvl := range []Level{LevelRegion, LevelCountry} {
			h.served[k][l] = served.WithLabelValues(Kind(k).String(), string(lvl))
		}
	}
	for _, r := range []string{"bad_request", "rate_limited", "no_scores"} {
		h.rejected[r] = rejected.WithLabelValues(r)
	}
	if o.Registry != nil {
		for _, col := range []prometheus.Collector{served, rejected} {
			if err := o.Registry.Register(col); err != nil {
				return nil, fmt.Errorf("cannot register steer metrics: %w", err)
			}
		}
	}
	return h, nil
}

// Mount adds GET /steer/hls and GET /steer/dash to r.
func (h *Handler) Mount(r chi.Router) {
	r.Get(Routes[0], h.ServeHLS)
	r.Get(Routes[1], h.ServeDASH)
}

// Routes are the paths Mount adds: HLS, then DASH.
var Routes = []string{"/steer/hls", "/steer/dash"}

// ServeHLS answers an HLS Content Steering manifest.
func (h *Handler) ServeHLS(w http.ResponseWriter, r *http.Request) { h.serve(w, r, HLS) }

// ServeDASH answers a DASH-IF content steering response.
func (h *Handler) ServeDASH(w http.ResponseWriter, r *http.Request) { h.serve(w, r, DASH) }

// current returns the compiled snapshot of the provider's table, compiling
// it when the table changed (once per table: later requests load a
// pointer), and the table's fetch time.
func (h *Handler) current() (*compiled, time.Time) {
	t, fetched := h.snapshot()
	if t == nil {
		return nil, fetched
	}
	if c := h.cur.Load(); c != nil && c.snap.table == t {
		return c, fetched
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.cur.Load(); c != nil && c.snap.table == t {
		return c, fetched
	}
	c := &compiled{snap: Compile(t, h.pathways)}
	for _, w := range c.snap.Warnings {
		h.log.Warn().Str("warning", w).Msg("steering table")
	}
	h.log.Info().Time("scores_at", t.At).Int("regions", len(t.Regions)).Strs("vendors", c.snap.Vendors()).Msg("steering from a new score table")
	h.cur.Store(c)
	return c, fetched
}

// ageValue returns the X-Qoscope-Scores-Age value, rebuilt at most once a
// second.
func (c *compiled) ageValue(fetched, now time.Time) []string {
	secs := max(int64(now.Sub(fetched)/time.Second), 0)
	if a := c.age.Load(); a != nil && a.secs == secs && a.fetched.Equal(fetched) {
		return a.v
	}
	a := &ageHeader{fetched: fetched, secs: secs, v: []string{strconv.FormatInt(secs, 10)}}
	c.age.Store(a)
	return a.v
}

func (h *Handler) reject(w http.ResponseWriter, reason string, status int, msg string) {
	h.rejected[reason].Inc()
	httpx.WriteError(w, status, msg)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, kind Kind) {
	now := h.now()
	var ip netip.Addr
	ipDone := false
	if h.limiter != nil {
		ip, ipDone = h.clientIP(r), true
		if !h.limiter.allow(ip, now) {
			w.Header()["Retry-After"] = hdrRetryAfterRate
			h.reject(w, "rate_limited", http.StatusTooManyRequests, "too many steering requests from this address")
			return
		}
	}
	c, fetched := h.current()
	if c == nil || len(c.snap.paths) == 0 {
		w.Header()["Retry-After"] = hdrRetryAfter
		h.reject(w, "no_scores", http.StatusServiceUnavailable, "no score table with a steerable vendor yet")
		return
	}
	st := h.pool.Get().(*reqState)
	defer h.pool.Put(st)
	q := &st.req
	*q = Request{Kind: kind, TTL: h.ttl}
	if msg := parseQuery(r.URL.RawQuery, q); msg != "" {
		h.reject(w, "bad_request", http.StatusBadRequest, msg)
		return
	}
	hdr := w.Header()
	fallback := hdrNotInTable
	if q.Province == "" {
		if !ipDone {
			ip = h.clientIP(r)
		}
		// Lookup is inlined: the strings are the table's dictionary's.
		if loc, ok := h.geo.Lookup(ip); ok && loc.Province != "" && loc.ISP != "" {
			q.Province, q.ISP = loc.Province, loc.ISP
		} else {
			fallback = hdrUnknownRegion
		}
	}
	if q.Session == "" {
		// A player without a session id gets one; RELOAD-URI carries it, so
		// its next requests draw the same order.
		const hexdigits = "0123456789abcdef"
		v := rand.Uint64()
		for i := range st.sid {
			st.sid[i] = hexdigits[v&15]
			v >>= 4
		}
		q.Session = unsafe.String(&st.sid[0], len(st.sid)) // st is not reused before the response is written
	}
	body, lvl := c.snap.AppendManifest(st.buf[:0], q)
	st.buf = body
	hdr["Content-Type"] = hdrJSON
	hdr["Cache-Control"] = h.cacheControl
	hdr[HeaderScoresAt] = c.snap.atHeader
	hdr[HeaderScoresAge] = c.ageValue(fetched, now)
	if now.Sub(fetched) > h.staleAfter {
		hdr["Warning"] = hdrStale
	}
	if lvl == LevelRegion {
		hdr[HeaderLevel] = hdrRegion
		hdr[HeaderRegion] = c.snap.regions[regionKey{q.Province, q.ISP}].header
		h.served[kind][0].Inc()
	} else {
		hdr[HeaderLevel] = hdrCountry
		hdr[HeaderFallback] = fallback
		h.served[kind][1].Inc()
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// parseQuery reads session, province and isp from a raw query into q
// (other parameters, such as the players' _HLS_pathway, _HLS_throughput,
// _DASH_pathway and _DASH_throughput, are ignored). It returns a message
// for a 400, or "". Values are used in place unless escaped.
func parseQuery(raw string, q *Request) string {
	for raw != "" {
		var kv string
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			kv, raw = raw[:i], raw[i+1:]
		} else {
			kv, raw = raw, ""
		}
		k, v, _ := strings.Cut(kv, "=")
		var dst *string
		switch k {
		case "session":
			dst = &q.Session
		case "province":
			dst = &q.Province
		case "isp":
			dst = &q.ISP
		default:
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return fmt.Sprintf("query parameter %s: bad escape", k)
			}
			v = u
		}
		*dst = v
	}
	if q.Session != "" && !validSession(q.Session) {
		return "query parameter session: 1-128 characters of A-Z a-z 0-9 - . _ ~"
	}
	if (q.Province == "") != (q.ISP == "") {
		return "query parameters province and isp: give both or neither"
	}
	if q.Province != "" {
		if !validRegionName(q.Province) {
			return "query parameter province: 1-64 characters of a-z 0-9 . - _ (the IP table's names, e.g. guangdong)"
		}
		if !validRegionName(q.ISP) {
			return "query parameter isp: 1-64 characters of a-z 0-9 . - _ (the IP table's names, e.g. telecom)"
		}
		q.Pin = true
	}
	return ""
}

// clientIP is the TCP peer, or, when the peer is a trusted proxy, the
// rightmost X-Forwarded-For address that is not a trusted proxy (the
// leftmost ones can be forged by the client). An unparseable entry stops
// the walk at the last trusted hop.
func (h *Handler) clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if !h.isTrusted(ip) {
		return ip
	}
	xs := r.Header["X-Forwarded-For"]
	for i := len(xs) - 1; i >= 0; i-- {
		v := xs[i]
		for v != "" {
			part := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return ip
			}
			a = a.Unmap()
			if !h.isTrusted(a) {
				return a
			}
			ip = a
		}
	}
	return ip
}

func (h *Handler) isTrusted(ip netip.Addr) bool {
	for _, p := range h.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
