package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// request is one request a capture server got.
type request struct {
	Path, Query string
	Header      http.Header
	Body        []byte
}

// capture is an HTTP receiver recording what it gets; status answers
// (200 when nil), answer is the body.
type capture struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	status func() int
	answer string
}

func newCapture(t *testing.T) *capture {
	c := &capture{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		status := http.StatusOK
		if c.status != nil {
			status = c.status()
		}
		c.mu.Lock()
		if status < 300 {
			c.got = append(c.got, request{Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: b})
		}
		answer := c.answer
		c.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *capture) requests() []request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]request(nil), c.got...)
}

func alertAt(fp, rule, status string, starts time.Time, labels map[string]string) Alert {
	l := map[string]string{"alertname": rule}
	for k, v := range labels {
		l[k] = v
	}
	a := Alert{Fingerprint: fp, Rule: rule, Labels: l, Annotations: map[string]string{"summary": rule + " on " + l["vendor"]},
		Status: status, StartsAt: starts, GeneratorURL: "http://wall/alerts/" + fp, EvaluatedAt: starts}
	if status == StatusResolved {
		a.EndsAt = starts.Add(5 * time.Minute)
	}
	return a
}

// newTestDispatcher builds a Dispatcher on store with receivers rs and
// the fake clock.
func newTestDispatcher(t testing.TB, store Store, c *clock, rs ...ReceiverConfig) *Dispatcher {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Receivers = rs
	cfg.RetryMin, cfg.RetryMax = time.Second, 4*time.Second
	cfg.GiveUpAfter = time.Hour
	cfg.ExternalURL = "http://qoscope.test"
	d, err := New(cfg, Deps{Store: store, Logger: zerolog.Nop(), Now: c.Now, Getenv: func(k string) string {
		return map[string]string{"HOOK_SECRET": "webhook-secret-123"}[k]
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func jsonEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
	}
}
