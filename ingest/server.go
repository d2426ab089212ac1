package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/schemas"
)

// Deps are the server's collaborators; nil fields get production defaults.
type Deps struct {
	// Logger receives request and error logs; "component=ingest" is added.
	// The zero value discards.
	Logger zerolog.Logger
	// Producer defaults to a KafkaProducer built from cfg.Kafka/cfg.Producer.
	// The server owns it: Close closes it.
	Producer Producer
	// Geo defaults to the table at cfg.IPDB, or the embedded demo table.
	Geo Geo
	// Codec defaults to DefaultCodec() (the schemas package).
	Codec *Codec
	// CMCD defaults to DefaultCMCD() (the ingest/cmcd package).
	CMCD CMCDFunc
	// Registry receives the metrics served on /metrics; default: a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Now defaults to time.Now.
	Now func() time.Time
	// Getenv resolves tokens[].token_env; default os.Getenv.
	Getenv func(string) string
}

// CMCDFunc turns a CMCD request (query string, CMCD-* headers or a POSTed
// body of one payload per line) into reports, one per payload. ip is the
// client's address. The error, a *RequestError, means the request carried
// no CMCD at all.
type CMCDFunc func(r *http.Request, body []byte, recv time.Time, ip string) ([]CMCDReport, error)

// CMCDReport is one CMCD payload of a request: the client events it maps to
// (possibly none, e.g. a manifest request), or why it was rejected. A
// rejected payload is dead-lettered like a bad NDJSON line.
type CMCDReport struct {
	Line   int    // 1-based line of the body; 1 for the query or header form
	Raw    []byte // the payload as received, for the dead letter
	Events []schemas.Event
	Err    error // a *schemas.FieldError naming the CMCD key, or nil
	// Violations are the sender rules the payload broke but that were
	// tolerated (cmcd.Rule values), counted once the request is answered.
	Violations []string
}

// Server is the ingest HTTP service. Create it with NewServer, serve
// Handler() (or call Serve), and Close it to flush Kafka.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	lineLog  zerolog.Logger // per-line rejections, rate-limited
	kafkaLog zerolog.Logger // repeated Kafka failures, rate-limited
	producer Producer
	decoder  *Decoder
	cmcd     CMCDFunc
	auth     *httpx.Auth
	limits   []limiters // by httpx.Token.Index
	httpm    *httpx.HTTPMetrics
	body     *bodyReader
	reg      *prometheus.Registry
	m        *metrics
	now      func() time.Time
	handler  http.Handler
	topics   [4]string // by schemas.Source; [0] = dead letter

	states sync.Pool // *reqState

	stopping  atomic.Bool
	kafkaDown atomic.Bool
	failedReq atomic.Int64 // requests failed since Kafka went down

	readyMu  sync.Mutex
	readyAt  time.Time
	readyErr error

	geoClose  func() error // nil unless NewServer opened the IP table
	closeOnce sync.Once
	closeErr  error
}

// NewServer builds a server from a validated cfg. It does not touch the
// network: call EnsureTopics (or let Run do it) before serving.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid ingest config: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      deps.Logger.With().Str("component", "ingest").Logger(),
		producer: deps.Producer,
		cmcd:     deps.CMCD,
		reg:      deps.Registry,
		now:      deps.Now,
		body:     newBodyReader(cfg.Limits.MaxBodyBytes),
	}
	s.lineLog = s.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second})
	s.kafkaLog = s.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	if s.now == nil {
		s.now = time.Now
	}
	if s.reg == nil {
		s.reg = newRegistry()
	}
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var err error
	if s.m, err = newMetrics(s.reg); err != nil {
		return nil, err
	}
	if s.httpm, err = httpx.NewHTTPMetrics(s.reg, "qoscope", "ingest"); err != nil {
		return nil, err
	}
	shared := make([]httpx.TokenConfig, len(cfg.Tokens))
	for i := range cfg.Tokens {
		shared[i] = cfg.Tokens[i].shared()
	}
	store, err := httpx.NewStore(shared, getenv)
	if err != nil {
		return nil, err
	}
	s.auth = httpx.NewAuth(store, "qoscope-ingest")
	s.limits = newLimiters(cfg.Tokens, cfg.RateLimit)
	codec := deps.Codec
	if codec == nil {
		c := DefaultCodec()
		codec = &c
	}
	if s.cmcd == nil {
		if s.cmcd, err = NewCMCD(cfg.CMCD); err != nil {
			return nil, err
		}
	}
	geo := deps.Geo
	if geo == nil {
		if geo, s.geoClose, err = LoadGeo(cfg.IPDB); err != nil {
			return nil, err
		}
	}
	s.decoder = NewDecoder(*codec, geo, cfg.Limits, cfg.MaxFutureSkew)
	if s.producer == nil {
		kp, err := NewKafkaProducer(cfg.Kafka, cfg.Producer)
		if err != nil {
			return nil, err
		}
		s.producer = kp
	}
	s.topics = [4]string{cfg.Kafka.Topics.DeadLetter, cfg.Kafka.Topics.Client, cfg.Kafka.Topics.CDN, cfg.Kafka.Topics.Origin}
	s.states.New = func() any { return new(reqState) }
	s.handler = s.routes()
	return s, nil
}

// Handler is the service's HTTP handler, for embedding (all-in-one, tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is the registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// EnsureTopics creates missing topics when the producer is Kafka (a no-op
// for other producers) and waits until every topic has leaders.
func (s *Server) EnsureTopics(ctx context.Context) error {
	if kp, ok := s.producer.(*KafkaProducer); ok {
		return kp.EnsureTopics(ctx)
	}
	return nil
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: it
// reports not-ready, stops accepting, lets in-flight requests finish
// (they still get their Kafka acks), and flushes and closes the producer.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := httpx.NewServer(ctx, s.handler, s.log, httpx.ServerOptions{
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info().Str("listen", ln.Addr().String()).Msg("ingest listening")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("ingest http server failed: %w", serveErr)
	}
	s.stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Error().Err(err).Msg("shutdown did not drain every request in time")
		_ = srv.Close()
	}
	closeErr := s.Close()
	s.log.Info().Msg("ingest stopped")
	return errors.Join(serveErr, closeErr)
}

// Close flushes and closes the producer and releases the IP table it
// opened. Call it after the last request.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopping.Store(true)
		s.closeErr = s.producer.Close()
		if s.geoClose != nil {
			s.closeErr = errors.Join(s.closeErr, s.geoClose())
		}
	})
	return s.closeErr
}

func (s *Server) routes() http.Handler {
	r := httpx.NewRouter()
	r.Use(httpx.Stack(s.log, httpx.StackOptions{Log: httpx.LogOptions{Metrics: s.httpm, Quiet: httpx.HealthRoutes}})...)
	r.Use(s.withInfo)
	if len(s.cfg.CORS.AllowedOrigins) > 0 {
		r.Use(cors.New(cors.Options{
			AllowedOrigins: s.cfg.CORS.AllowedOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Content-Encoding", "Idempotency-Key", "Sent-At",
				"CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session"},
			ExposedHeaders: []string{"Retry-After"},
			MaxAge:         int(s.cfg.CORS.MaxAge.Seconds()),
			// Bearer tokens are set explicitly by the SDK; no cookies.
			AllowCredentials: false,
		}).Handler)
	}
	health := httpx.HealthOptions{Registry: s.reg, Ready: s.ready}
	if !s.cfg.MetricsPublic {
		health.MetricsAuth = s.auth
	}
	httpx.MountHealth(r, health)
	r.Get("/v1/schemas", s.handleSchemaList)
	r.Get("/v1/schemas/{name}", s.handleSchema)
	write := func(source string, scope httpx.Scope) chi.Router {
		return r.With(s.withSource(source), s.auth.Require(scope), s.requestLimit)
	}
	write("client", httpx.ScopeIngestClient).Post("/v1/events/client", s.handleEvents(schemas.SourceClient))
	write("cdn", httpx.ScopeIngestCDN).Post("/v1/events/cdn", s.handleEvents(schemas.SourceCDN))
	write("origin", httpx.ScopeIngestOrigin).Post("/v1/events/origin", s.handleEvents(schemas.SourceOrigin))
	cmcd := write("cmcd", httpx.ScopeIngestCMCD)
	cmcd.Get("/v1/cmcd", s.handleCMCD)
	cmcd.Post("/v1/cmcd", s.handleCMCD)
	return r
}

// reqInfo carries what the handler learned to the request log line (the
// token name, request id and error are httpx's).
type reqInfo struct {
	source   string
	accepted int
	rejected int
	wire     int64
}

type ctxKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// withInfo adds ingest's fields to the access log line of httpx.Stack
// (docs/INGEST.md, "Observability").
func (s *Server) withInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := &reqInfo{}
		httpx.Info(r).Annotate(func(ev *zerolog.Event) {
			ev.Int64("bytes", ri.wire).Str("source", ri.source).Int("accepted", ri.accepted).Int("rejected", ri.rejected)
		})
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri)))
	})
}

// withSource names the endpoint's source for the log line, before the
// token is checked, so that refused requests show it too.
func (s *Server) withSource(source string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info(r).source = source
			next.ServeHTTP(w, r)
		})
	}
}

// ready answers /readyz: not while stopping, and only when the producer's
// Ping succeeds. Ping runs at most once per ready_cache_ttl; callers
// arriving meanwhile share the cached answer.
func (s *Server) ready(ctx context.Context) error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if !s.readyAt.IsZero() && time.Since(s.readyAt) < s.cfg.ReadyCacheTTL {
		return s.readyErr
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Kafka.DialTimeout)
	defer cancel()
	s.readyErr = s.producer.Ping(pctx)
	if s.readyErr != nil {
		s.readyErr = fmt.Errorf("kafka not ready: %w", s.readyErr)
	}
	s.readyAt = time.Now()
	return s.readyErr
}

func (s *Server) handleSchemaList(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string][]string{"schemas": schemaNames()})
}

func (s *Server) handleSchema(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	b, ok := schemaJSON(strings.TrimSuffix(name, ".json"))
	if !ok {
		httpx.WriteError(w, http.StatusNotFound, fmt.Sprintf("no schema %q; GET /v1/schemas lists them", name))
		return
	}
	w.Header().Set("Content-Type", "application/schema+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// reqState is the pooled per-request memory.
type reqState struct {
	body  bytes.Buffer
	batch Batch
	msgs  []kafka.Message
	dl    []byte
	dlOff []int
	hdrs  []kafka.Header
	lines []byte
}

// maxPooledBytes keeps one huge request from pinning its buffers forever.
const maxPooledBytes = 32 << 20

func (s *Server) getState() *reqState { return s.states.Get().(*reqState) }

func (s *Server) putState(st *reqState) {
	if st.body.Cap()+cap(st.batch.buf)+cap(st.dl) > maxPooledBytes {
		return
	}
	st.body.Reset()
	st.batch.Reset()
	clear(st.msgs)
	st.msgs = st.msgs[:0]
	st.dl = st.dl[:0]
	st.dlOff = st.dlOff[:0]
	clear(st.hdrs)
	st.hdrs = st.hdrs[:0]
	st.lines = st.lines[:0]
	s.states.Put(st)
}

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, t *httpx.Token, d time.Duration, what string) {
	secs := int64(math.Ceil(d.Seconds()))
	if secs < 1 || d == time.Duration(math.MaxInt64) {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	msg := fmt.Sprintf("token %q is over its rate limit (%s); retry in %ds", t.Name, what, secs)
	httpx.Info(r).Error = msg
	httpx.WriteError(w, http.StatusTooManyRequests, msg)
}

// idempotencyKey returns the client's Idempotency-Key header, if any.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if len(k) > 128 {
		return "", errors.New("header Idempotency-Key is longer than 128 bytes")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", errors.New("header Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return k, nil
}

// eventMediaTypes are the Content-Types an event body may be sent with
// (docs/INGEST.md, "Content types"); Split tells NDJSON from a JSON array by
// the body itself, so they are all read alike. text/plain is what
// navigator.sendBeacon sends for a string and what a CORS request may use
// without a preflight. A missing Content-Type is accepted too: log
// shippers often send none, and the body is self-describing.
var eventMediaTypes = []string{"application/x-ndjson", "application/ndjson", "application/jsonl",
	"application/x-jsonlines", "application/json", "text/plain"}

// checkContentType refuses bodies that are neither NDJSON nor JSON (a form
// or a multipart upload would otherwise be read line by line and half
// accepted) with 415, and charsets other than UTF-8.
func checkContentType(ct string) error {
	if strings.TrimSpace(ct) == "" {
		return nil
	}
	unsupported := func(why string) error {
		return &RequestError{Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("Content-Type %q %s; send NDJSON or JSON as one of %s (or no Content-Type)",
				ct, why, strings.Join(eventMediaTypes, ", "))}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return unsupported("cannot be parsed")
	}
	if !slices.Contains(eventMediaTypes, mt) {
		return unsupported("is not supported")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return unsupported("has a charset other than utf-8")
	}
	return nil
}

// sentAtHeader returns the request's Sent-At header in Unix ms (0 when
// absent), or a 400 naming the header. A bad value rejects the whole
// request rather than each line: every line would share the same error.
func sentAtHeader(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("Sent-At"))
	if v == "" {
		return 0, nil
	}
	ms, reason := schemas.ParseTime(v)
	if reason != "" {
		return 0, &RequestError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("header Sent-At %q: %s", v, reason)}
	}
	return ms, nil
}

func (s *Server) handleEvents(src schemas.Source) http.HandlerFunc {
	source := src.String()
	return func(w http.ResponseWriter, r *http.Request) {
		t := httpx.TokenFrom(r)
		if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
			s.fail(w, r, err)
			return
		}
		idem, err := idempotencyKey(r)
		if err != nil {
			s.fail(w, r, &RequestError{Status: http.StatusBadRequest, Msg: err.Error()})
			return
		}
		sentAt, err := sentAtHeader(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		recv := s.now()
		recvMS := recv.UnixMilli()
		st := s.getState()
		reuse := true
		defer func() {
			if reuse {
				s.putState(st)
			}
		}()
		if err := s.body.read(w, r, &st.body); err != nil {
			s.fail(w, r, err)
			return
		}
		s.countBytes(r, source, st.body.Len())
		st.batch.Identity = NewIdentity(t.Name, source, idem)
		if err := s.decoder.DecodeSentAt(src, st.body.Bytes(), recvMS, sentAt, &st.batch); err != nil {
			s.fail(w, r, err)
			return
		}
		if d := wait(s.limits[t.Index].ev, st.batch.Lines, recv); d > 0 {
			s.tooMany(w, r, t, d, "events_per_second")
			return
		}
		reuse = s.produceAndRespond(w, r, st, t, source, idem, recv)
	}
}

func (s *Server) handleCMCD(w http.ResponseWriter, r *http.Request) {
	const source = "cmcd"
	t := httpx.TokenFrom(r)
	idem, err := idempotencyKey(r)
	if err != nil {
		s.fail(w, r, &RequestError{Status: http.StatusBadRequest, Msg: err.Error()})
		return
	}
	recv := s.now()
	st := s.getState()
	reuse := true
	defer func() {
		if reuse {
			s.putState(st)
		}
	}()
	if r.Method == http.MethodPost {
		if err := s.body.read(w, r, &st.body); err != nil {
			s.fail(w, r, err)
			return
		}
		s.countBytes(r, source, st.body.Len())
	}
	reports, err := s.cmcd(r, st.body.Bytes(), recv, s.clientIP(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	events := 0
	for i := range reports {
		events += max(len(reports[i].Events), 1)
		if len(reports[i].Raw) > s.cfg.Limits.MaxLineBytes {
			s.fail(w, r, &RequestError{Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("CMCD line %d is %d bytes, over the %d-byte limit (limits.max_line_bytes)", reports[i].Line, len(reports[i].Raw), s.cfg.Limits.MaxLineBytes)})
			return
		}
	}
	if events > s.cfg.Limits.MaxLines {
		s.fail(w, r, &RequestError{Status: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("CMCD request maps to more than %d events (limits.max_lines); split it", s.cfg.Limits.MaxLines)})
		return
	}
	st.batch.Source = schemas.SourceClient
	st.batch.Identity = NewIdentity(t.Name, source, idem)
	for i := range reports {
		rep := &reports[i]
		if rep.Err != nil {
			st.batch.Lines++
			st.batch.reject(rep.Line, rep.Raw, rep.Err)
			continue
		}
		s.decoder.AddEvents(rep.Events, rep.Line, rep.Raw, recv.UnixMilli(), &st.batch)
	}
	if d := wait(s.limits[t.Index].ev, st.batch.Lines, recv); d > 0 {
		s.tooMany(w, r, t, d, "events_per_second")
		return
	}
	reuse = s.produceAndRespond(w, r, st, t, source, idem, recv)
	if httpx.Info(r).Error == "" {
		s.countCMCDViolations(reports)
	}
}

// countCMCDViolations counts the tolerated sender-rule violations of a
// request that was answered 2xx, like events_accepted_total: a request
// retried after a 503 is not counted twice.
func (s *Server) countCMCDViolations(reports []CMCDReport) {
	for i := range reports {
		for _, rule := range reports[i].Violations {
			s.m.cmcdViolations.WithLabelValues(rule).Inc()
		}
	}
}

// clientIP is the TCP peer, or the first X-Forwarded-For entry when the
// operator declared a trusted proxy in front.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			return strings.TrimSpace(first)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) countBytes(r *http.Request, source string, decoded int) {
	wire := r.ContentLength
	if wire < 0 || r.Header.Get("Content-Encoding") == "" {
		wire = int64(decoded)
	}
	info(r).wire = wire
	s.m.reqBytes.WithLabelValues(source, "wire").Add(float64(wire))
	s.m.reqBytes.WithLabelValues(source, "decoded").Add(float64(decoded))
}

// produceAndRespond writes the request's accepted events and dead letters in
// one Produce call and answers 200 only once Kafka acknowledged all of them.
// It reports whether st may be reused: not after a context error, when the
// writer may still hold the messages.
func (s *Server) produceAndRespond(w http.ResponseWriter, r *http.Request, st *reqState, t *httpx.Token, source, idem string, recv time.Time) bool {
	b := &st.batch
	recvMS := recv.UnixMilli()
	topic := s.topics[b.Source]

	// Dead letters first into their own arena; slices are taken after the
	// last append because appends may move it.
	for i := range b.Errors {
		le := &b.Errors[i]
		dl := NewDeadLetter(source, t.Name, idem, recvMS, le, s.cfg.Limits.DeadLetterMaxRaw)
		st.dlOff = append(st.dlOff, len(st.dl))
		st.dl = dl.AppendJSON(st.dl)
	}
	n := b.Accepted() + len(b.Errors)
	if cap(st.msgs) < n {
		st.msgs = make([]kafka.Message, 0, n)
	}
	if idem != "" && cap(st.hdrs) < 2*n {
		st.hdrs = make([]kafka.Header, 0, 2*n)
	}
	// Headers let a consumer drop the duplicates of a retried request:
	// (idempotency-key, line) is unique per event of a logical request.
	var lineOff []int
	if idem != "" {
		lineOff = make([]int, 0, n+1)
		for i := 0; i < b.Accepted(); i++ {
			line, _, _ := b.Record(i)
			lineOff = append(lineOff, len(st.lines))
			st.lines = strconv.AppendInt(st.lines, int64(line), 10)
		}
		for i := range b.Errors {
			lineOff = append(lineOff, len(st.lines))
			st.lines = strconv.AppendInt(st.lines, int64(b.Errors[i].Line), 10)
		}
		lineOff = append(lineOff, len(st.lines))
	}
	idemB := []byte(idem)
	headers := func(k int) []kafka.Header {
		if idem == "" {
			return nil
		}
		st.hdrs = append(st.hdrs,
			kafka.Header{Key: "idempotency-key", Value: idemB},
			kafka.Header{Key: "line", Value: st.lines[lineOff[k]:lineOff[k+1]]})
		return st.hdrs[len(st.hdrs)-2 : len(st.hdrs) : len(st.hdrs)]
	}
	for i := 0; i < b.Accepted(); i++ {
		_, key, val := b.Record(i)
		st.msgs = append(st.msgs, kafka.Message{Topic: topic, Key: key, Value: val, Time: recv, Headers: headers(i)})
	}
	dlKey := []byte(source)
	for i := range b.Errors {
		end := len(st.dl)
		if i+1 < len(st.dlOff) {
			end = st.dlOff[i+1]
		}
		st.msgs = append(st.msgs, kafka.Message{Topic: s.topics[0], Key: dlKey, Value: st.dl[st.dlOff[i]:end:end], Time: recv,
			Headers: headers(b.Accepted() + i)})
	}

	ri := info(r)
	if len(st.msgs) > 0 {
		// The client going away must not abort a produce half-way: the
		// writer would keep retrying the batches anyway, and the client's
		// retry is then a duplicate either way.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.Producer.ProduceTimeout)
		start := time.Now()
		err := s.producer.Produce(ctx, st.msgs)
		cancel()
		s.m.produceDur.Observe(time.Since(start).Seconds())
		s.m.produceMsgs.Observe(float64(len(st.msgs)))
		if err != nil {
			s.produceFailed(w, r, err, len(st.msgs))
			return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
		}
		s.produceOK()
	}

	s.m.accepted.WithLabelValues(source).Add(float64(b.Accepted()))
	if len(b.Errors) > 0 {
		s.m.deadLettered.WithLabelValues(source).Add(float64(len(b.Errors)))
		for i := range b.Errors {
			le := &b.Errors[i]
			s.m.rejected.WithLabelValues(source, le.Class).Inc()
			s.lineLog.Info().Str("token", t.Name).Str("source", source).Int("line", le.Line).
				Str("field", le.Field).Str("reason", le.Reason).Msg("line rejected")
		}
	}
	ri.accepted, ri.rejected = b.Accepted(), len(b.Errors)

	resp := response{Accepted: b.Accepted(), Rejected: len(b.Errors), Errors: []lineErrorJSON{}}
	for i := range b.Errors {
		if i >= s.cfg.Limits.MaxErrors {
			resp.Truncated = len(b.Errors) - i
			break
		}
		le := &b.Errors[i]
		resp.Errors = append(resp.Errors, lineErrorJSON{Line: le.Line, Field: le.Field, Reason: le.Reason})
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return true
}

func (s *Server) produceFailed(w http.ResponseWriter, r *http.Request, err error, n int) {
	kind := produceErrorKind(err)
	s.m.kafkaErrors.WithLabelValues(kind).Inc()
	failed := s.failedReq.Add(1)
	if !s.kafkaDown.Swap(true) {
		s.log.Error().Err(err).Str("kind", kind).Int("messages", n).Msg("kafka produce failed; answering 503 until it recovers")
	} else {
		s.kafkaLog.Warn().Err(err).Str("kind", kind).Int64("failed_requests", failed).Msg("kafka produce still failing")
	}
	retry := int64(math.Ceil(s.cfg.Producer.RetryAfter.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
	httpx.Info(r).Error = "kafka: " + err.Error()
	httpx.WriteErrorWith(w, http.StatusServiceUnavailable, "kafka is unavailable; nothing from this request was accepted, retry it later",
		map[string]any{"accepted": 0})
}

// produceErrorKind is the kafka_errors_total label of a failed Produce.
// Every kind is answered 503 with Retry-After: the writer has already
// retried what Kafka calls retriable (kafka-go's Error.Temporary, which
// includes NOT_ENOUGH_REPLICAS and NOT_ENOUGH_REPLICAS_AFTER_APPEND), and
// what is left is for the client to retry. "replicas" means the cluster
// cannot currently meet the topics' min.insync.replicas (brokers down):
// refusing is right, since accepting would risk losing the events.
func produceErrorKind(err error) string {
	var werrs kafka.WriteErrors
	switch {
	case errors.As(err, &werrs):
		if werrs.Count() < len(werrs) {
			return "partial"
		}
		for _, e := range werrs {
			if errors.Is(e, kafka.NotEnoughReplicas) || errors.Is(e, kafka.NotEnoughReplicasAfterAppend) {
				return "replicas"
			}
		}
	case errors.Is(err, kafka.NotEnoughReplicas) || errors.Is(err, kafka.NotEnoughReplicasAfterAppend):
		return "replicas"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "produce"
}

func (s *Server) produceOK() {
	if s.kafkaDown.Load() && s.kafkaDown.Swap(false) {
		s.log.Info().Int64("failed_requests", s.failedReq.Swap(0)).Msg("kafka produce recovered")
	}
}

// fail answers a request-level error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var re *RequestError
	if !errors.As(err, &re) {
		re = &RequestError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	httpx.Info(r).Error = re.Msg
	httpx.WriteError(w, re.Status, re.Msg)
}

type lineErrorJSON struct {
	Line   int    `json:"line"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// response is the body of a 200 answer to an event or CMCD request.
type response struct {
	Accepted  int             `json:"accepted"`
	Rejected  int             `json:"rejected"`
	Errors    []lineErrorJSON `json:"errors"`
	Truncated int             `json:"truncated"` // errors left out of the list
}
