package steer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/score"
)

// Source holds the last good score table and when it was last fetched or
// confirmed; its Snapshot is the handler's SnapshotFunc.
type Source struct {
	cur atomic.Pointer[sourceEntry]
}

type sourceEntry struct {
	t       *score.Table
	fetched time.Time
}

// Snapshot returns the table (nil before the first) and its fetch time.
func (s *Source) Snapshot() (*score.Table, time.Time) {
	e := s.cur.Load()
	if e == nil {
		return nil, time.Time{}
	}
	return e.t, e.fetched
}

// Set replaces the table.
func (s *Source) Set(t *score.Table, fetched time.Time) { s.cur.Store(&sourceEntry{t, fetched}) }

// DecodeTable decodes the score table document (docs/SCORES.md "The
// table"), refusing unknown members and a table without regions: steering
// from nothing would hand players empty priority lists.
func DecodeTable(b []byte) (*score.Table, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t score.Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("not a score table: %w", err)
	}
	if len(t.Regions) == 0 {
		return nil, errors.New("the score table has no regions")
	}
	for i, r := range t.Regions {
		for j, v := range r.Vendors {
			if v.Ratio < 0 || v.Ratio > 1 || v.Ratio != v.Ratio {
				return nil, fmt.Errorf("regions[%d].vendors[%d].ratio: %v is not in [0, 1]", i, j, v.Ratio)
			}
		}
	}
	return &t, nil
}

// LoadFile reads a score table JSON file (`qoscope scores --output`).
func LoadFile(path string) (*score.Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read scores file: %w", err)
	}
	t, err := DecodeTable(b)
	if err != nil {
		return nil, fmt.Errorf("scores file %s: %w", path, err)
	}
	return t, nil
}

// Poller fetches serve's GET /api/v1/scores into a Source every interval,
// with If-None-Match so an unchanged table costs a 304. When a poll fails
// (serve down, a bad answer) the Source keeps its table and its fetch time,
// so the age header grows and, past steer.stale_after, a Warning says so.
type Poller struct {
	url, token string
	interval   time.Duration
	client     *http.Client
	src        *Source
	log        zerolog.Logger
	now        func() time.Time
	etag       string
	failures   prometheus.Counter
}

// NewPoller polls c.Scores.URL into src; getenv (nil: os.Getenv) resolves
// token_env.
func NewPoller(c Scores, src *Source, log zerolog.Logger, reg prometheus.Registerer, getenv func(string) string) (*Poller, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	tok := c.Token
	switch {
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("steer.scores.token_file: cannot read: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	case c.TokenEnv != "":
		tok = strings.TrimSpace(getenv(c.TokenEnv))
	}
	if tok == "" {
		return nil, errors.New("steer.scores: the token is empty (token, token_file or token_env)")
	}
	p := &Poller{url: c.URL, token: tok, interval: c.Interval, client: &http.Client{Timeout: c.Timeout},
		src: src, log: log, now: time.Now,
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "steer", Name: "scores_poll_failures_total",
			Help: "Polls of the scores API that failed (the last table stays in use)."})}
	if reg != nil {
		if err := reg.Register(p.failures); err != nil {
			return nil, fmt.Errorf("cannot register steer poll metrics: %w", err)
		}
	}
	return p, nil
}

// Poll fetches once. On error the Source is unchanged.
func (p *Poller) Poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("cannot poll scores: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Accept", "application/json")
	t, _ := p.src.Snapshot()
	if p.etag != "" && t != nil {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot poll scores at %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("cannot read scores from %s: %w", p.url, err)
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		p.src.Set(t, p.now())
		return nil
	case http.StatusOK:
		nt, err := DecodeTable(body)
		if err != nil {
			return fmt.Errorf("scores from %s: %w", p.url, err)
		}
		p.etag = resp.Header.Get("ETag")
		p.src.Set(nt, p.now())
		return nil
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return fmt.Errorf("scores from %s: status %d: %s", p.url, resp.StatusCode, msg)
}

// Run polls until ctx ends, the first time at once.
func (p *Poller) Run(ctx context.Context) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.failures.Inc()
			_, fetched := p.src.Snapshot()
			ev := p.log.Warn().Err(err)
			if !fetched.IsZero() {
				ev = ev.Dur("table_age", p.now().Sub(fetched))
			}
			ev.Msg("scores poll failed; steering with the last table")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
