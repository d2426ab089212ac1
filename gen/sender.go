package gen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/qoscope/qoscope/schemas"
)

// The HTTP output posts NDJSON batches, gzip-compressed, to ingest's
// /v1/events/{client,cdn,origin}. Every line handed to it ends in exactly
// one of accepted, rejected (ingest judged the line invalid) or failed (no
// answer after the retries, or a fatal error such as a refused token):
// sent == accepted + rejected + failed once the sender is closed.

// SendStats are the sender's counters.
type SendStats struct {
	Sent     atomic.Int64 // lines handed to the sender
	Accepted atomic.Int64
	Rejected atomic.Int64
	Failed   atomic.Int64
	Retries  atomic.Int64 // requests repeated after 429, 503, 5xx or a network error
	Requests atomic.Int64
	Bytes    atomic.Int64 // compressed request bodies, retries included
}

type senderConfig struct {
	target        string // base URL, e.g. http://127.0.0.1:8080
	token         string
	workers       int
	batchLines    int
	maxRetries    int
	timeout       time.Duration // per request
	rate          float64       // lines/s, 0 = unlimited
	maxRetryAfter time.Duration // cap on a server's Retry-After
	backoff       time.Duration // first retry delay without Retry-After
	client        *http.Client
	log           zerolog.Logger
	runID         string
	// sleep waits d or until ctx ends; tests replace it to record delays.
	sleep func(ctx context.Context, d time.Duration) error
}

type batch struct {
	src   schemas.Source
	lines int
	raw   []byte // NDJSON, one event per line
}

type sender struct {
	cfg     senderConfig
	urls    [4]string
	queue   chan *batch
	wg      sync.WaitGroup
	limiter *rate.Limiter
	stats   *SendStats
	ctx     context.Context
	cancel  context.CancelCauseFunc
	seq     atomic.Uint64
	gzPool  sync.Pool
	rawPool sync.Pool
	warn    zerolog.Logger // sampled: a failing server must not flood stderr
}

// errFatal marks answers that make every further request pointless.
var errFatal = errors.New("ingest refused the generator")

func newSender(cfg senderConfig, stats *SendStats) *sender {
	base := strings.TrimRight(cfg.target, "/")
	s := &sender{cfg: cfg, stats: stats, queue: make(chan *batch, cfg.workers)}
	for _, src := range []schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin} {
		s.urls[src] = base + "/v1/events/" + src.String()
	}
	if cfg.rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.rate), max(cfg.batchLines, int(cfg.rate)))
	}
	if s.cfg.sleep == nil {
		s.cfg.sleep = sleepCtx
	}
	if s.cfg.client == nil {
		s.cfg.client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.workers * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}}
	}
	s.warn = cfg.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	for range cfg.workers {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// err is the fatal error that stopped the sender, if any.
func (s *sender) err() error {
	if err := context.Cause(s.ctx); err != nil && errors.Is(err, errFatal) {
		return err
	}
	return nil
}

// enqueue hands b to the workers, blocking while they are busy (so a slow
// ingest slows the generator down instead of filling memory).
func (s *sender) enqueue(b *batch) error {
	s.stats.Sent.Add(int64(b.lines))
	if err := context.Cause(s.ctx); err != nil {
		s.stats.Failed.Add(int64(b.lines))
		return err
	}
	select {
	case s.queue <- b:
		return nil
	case <-s.ctx.Done():
		s.stats.Failed.Add(int64(b.lines))
		return context.Cause(s.ctx)
	}
}

// close waits for the queued batches; after drain (when > 0) it gives up
// and counts what is left as failed.
func (s *sender) close(drain time.Duration) {
	close(s.queue)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	if drain > 0 {
		select {
		case <-done:
		case <-time.After(drain):
			s.cancel(fmt.Errorf("drain timeout %s exceeded", drain))
			<-done
		}
	} else {
		<-done
	}
	s.cancel(nil)
}

// abort stops sending at once: queued and in-flight batches fail.
func (s *sender) abort(cause error) { s.cancel(cause) }

func (s *sender) getRaw() []byte {
	if b, ok := s.rawPool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 256<<10)
}

func (s *sender) putRaw(b []byte) {
	if cap(b) <= 4<<20 {
		s.rawPool.Put(&b)
	}
}

func (s *sender) work() {
	defer s.wg.Done()
	for b := range s.queue {
		s.process(b.src, b.lines, b.raw)
		s.putRaw(b.raw)
	}
}

func (s *sender) compress(raw []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(raw)/6 + 512)
	zw, ok := s.gzPool.Get().(*gzip.Writer)
	if !ok {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	} else {
		zw.Reset(&buf)
	}
	_, _ = zw.Write(raw)
	_ = zw.Close()
	s.gzPool.Put(zw)
	return buf.Bytes()
}

// ingestResponse is ingest's answer to an events request.
type ingestResponse struct {
	Accepted *int `json:"accepted"`
	Rejected *int `json:"rejected"`
	Errors   []struct {
		Line   int    `json:"line"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
	Error string `json:"error"`
}

// process delivers one batch, retrying what can succeed later, and books
// every line exactly once.
func (s *sender) process(src schemas.Source, lines int, raw []byte) {
	if s.ctx.Err() != nil {
		s.stats.Failed.Add(int64(lines))
		return
	}
	if s.limiter != nil {
		if err := s.limiter.WaitN(s.ctx, lines); err != nil {
			s.stats.Failed.Add(int64(lines))
			return
		}
	}
	body := s.compress(raw)
	key := fmt.Sprintf("gen-%s-%d", s.cfg.runID, s.seq.Add(1))
	log := s.warn.With().Str("source", src.String()).Int("lines", lines).Str("idempotency_key", key).Logger()
	for attempt := 0; ; attempt++ {
		status, retryAfter, resp, err := s.post(src, body, key)
		var wait time.Duration
		switch {
		case err != nil:
			if s.ctx.Err() != nil {
				s.stats.Failed.Add(int64(lines))
				return
			}
			log.Warn().Err(err).Int("attempt", attempt+1).Msg("ingest request failed")
		case status >= 200 && status < 300:
			s.book(lines, resp, true)
			return
		case status == http.StatusRequestEntityTooLarge && lines > 1:
			// Ingest's limits are smaller than our batch: split it.
			a, b := splitLines(raw, lines)
			s.process(src, lines/2, a)
			s.process(src, lines-lines/2, b)
			return
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable ||
			status == http.StatusRequestTimeout || status == http.StatusBadGateway ||
			status == http.StatusGatewayTimeout || status == http.StatusInternalServerError:
			wait = retryAfter
			log.Warn().Int("status", status).Int("attempt", attempt+1).Dur("retry_after", retryAfter).Str("error", resp.Error).Msg("ingest asked to retry")
		case status == http.StatusUnauthorized || status == http.StatusForbidden ||
			status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			s.stats.Failed.Add(int64(lines))
			s.abort(fmt.Errorf("%w: HTTP %d from %s: %s", errFatal, status, s.urls[src], resp.Error))
			return
		case status >= 400 && status < 500:
			// Ingest judged the request: count the lines it rejected.
			if resp.Rejected != nil {
				s.book(lines, resp, false)
			} else {
				s.stats.Rejected.Add(int64(lines))
			}
			log.Warn().Int("status", status).Str("error", resp.Error).Msg("ingest rejected a request")
			return
		default:
			log.Warn().Int("status", status).Int("attempt", attempt+1).Msg("unexpected ingest status")
		}
		if attempt >= s.cfg.maxRetries {
			s.stats.Failed.Add(int64(lines))
			log.Error().Int("attempts", attempt+1).Msg("giving up on a batch; its events are counted as failed")
			return
		}
		if wait <= 0 {
			wait = s.backoff(attempt)
		}
		s.stats.Retries.Add(1)
		if s.cfg.sleep(s.ctx, wait) != nil {
			s.stats.Failed.Add(int64(lines))
			return
		}
	}
}

// book counts an answered request: what ingest reports as rejected is
// rejected, the rest of the batch accepted (ok) or rejected (not ok).
func (s *sender) book(lines int, resp ingestResponse, ok bool) {
	rej := 0
	if resp.Rejected != nil {
		rej = min(max(*resp.Rejected, 0), lines)
	}
	if ok {
		s.stats.Accepted.Add(int64(lines - rej))
		s.stats.Rejected.Add(int64(rej))
	} else {
		acc := 0
		if resp.Accepted != nil {
			acc = min(max(*resp.Accepted, 0), lines-rej)
		}
		s.stats.Accepted.Add(int64(acc))
		s.stats.Rejected.Add(int64(lines - acc))
	}
	if rej > 0 && len(resp.Errors) > 0 {
		e := resp.Errors[0]
		s.warn.Warn().Int("rejected", rej).Int("line", e.Line).Str("field", e.Field).Str("reason", e.Reason).Msg("ingest rejected lines")
	}
}

func (s *sender) backoff(attempt int) time.Duration {
	d := s.cfg.backoff << min(attempt, 6)
	d = min(d, 30*time.Second)
	// Full jitter keeps concurrent senders from retrying in lockstep.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (s *sender) post(src schemas.Source, body []byte, key string) (int, time.Duration, ingestResponse, error) {
	var resp ingestResponse
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[src], bytes.NewReader(body))
	if err != nil {
		return 0, 0, resp, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+s.cfg.token)
	req.Header.Set("Idempotency-Key", key)
	s.stats.Requests.Add(1)
	s.stats.Bytes.Add(int64(len(body)))
	r, err := s.cfg.client.Do(req)
	if err != nil {
		return 0, 0, resp, err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(b, &resp)
	return r.StatusCode, s.retryAfter(r.Header.Get("Retry-After")), resp, nil
}

// retryAfter parses Retry-After (seconds or an HTTP date), capped.
func (s *sender) retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	if d < 0 {
		d = 0
	}
	return min(d, s.cfg.maxRetryAfter)
}

// splitLines cuts NDJSON of n lines after line n/2.
func splitLines(raw []byte, n int) ([]byte, []byte) {
	k := n / 2
	for i, c := range raw {
		if c == '\n' {
			k--
			if k == 0 {
				return raw[:i+1], raw[i+1:]
			}
		}
	}
	return raw, nil
}

// httpSink batches lines per source for the sender.
type httpSink struct {
	s          *sender
	batchLines int
	bufs       [4][]byte
	n          [4]int
	// flushEvery > 0 sends partial batches that old (realtime mode), so
	// events reach ingest within about a tick.
	flushEvery time.Duration
	lastFlush  time.Time
	// interrupted reports whether the run was cancelled; then close waits
	// at most drain for the queued batches.
	interrupted func() bool
	drain       time.Duration
}

func (h *httpSink) write(c *chunk) error {
	for i := range c.lines() {
		src := c.srcs[i]
		if h.bufs[src] == nil {
			h.bufs[src] = h.s.getRaw()
		}
		h.bufs[src] = append(h.bufs[src], c.line(i)...)
		h.n[src]++
		if h.n[src] >= h.batchLines {
			if err := h.flush(src); err != nil {
				return err
			}
		}
	}
	if h.flushEvery > 0 && time.Since(h.lastFlush) >= h.flushEvery {
		if err := h.flushAll(); err != nil {
			return err
		}
	}
	return h.s.err()
}

func (h *httpSink) flush(src schemas.Source) error {
	if h.n[src] == 0 {
		return nil
	}
	b := &batch{src: src, lines: h.n[src], raw: h.bufs[src]}
	h.bufs[src], h.n[src] = nil, 0
	return h.s.enqueue(b)
}

func (h *httpSink) flushAll() error {
	h.lastFlush = time.Now()
	for src := range h.bufs {
		if err := h.flush(schemas.Source(src)); err != nil {
			return err
		}
	}
	return nil
}

func (h *httpSink) close() error {
	err := h.flushAll()
	var drain time.Duration
	if h.interrupted != nil && h.interrupted() {
		drain = h.drain
	}
	h.s.close(drain)
	if err == nil {
		err = h.s.err()
	}
	return err
}
