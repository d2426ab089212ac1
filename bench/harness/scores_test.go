package harness

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when told: SleepUntil jumps to t when t is ahead,
// and a request's service time is added by the fake handler.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	// slack is how late SleepUntil wakes (Go's timers when idle).
	slack time.Duration
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) SleepUntil(_ context.Context, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t.Add(c.slack)
	}
	return true
}
func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// stallFourth answers each request in 0.2 ms on clk, the fourth in 5 ms.
func stallFourth(clk *fakeClock) func(context.Context) error {
	n := 0
	return func(context.Context) error {
		d := 200 * time.Microsecond
		if n == 3 {
			d = 5 * time.Millisecond
		}
		n++
		clk.advance(d)
		return nil
	}
}

// TestOpenLoopCountsFromScheduledTime: one sender, a request every 1 ms,
// each answered in 0.2 ms except the fourth, which stalls 5 ms. A closed
// loop would see one slow request; the open loop charges the stall to
// every request due during it. By hand (ms, due → done):
// 0→0.2, 1→1.2, 2→2.2, 3→8 (5), 4→8.2 (4.2), 5→8.4 (3.4), 6→8.6 (2.6),
// 7→8.8 (1.8), 8→9 (1), 9→9.2 (0.2).
func TestOpenLoopCountsFromScheduledTime(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	send := stallFourth(clk)
	r := openLoop(context.Background(), clk, 1000, 10*time.Millisecond, 1, send)
	if r.Requests != 10 || r.Errors != 0 {
		t.Fatalf("requests %d errors %d, want 10 and 0", r.Requests, r.Errors)
	}
	// Sorted: 0.2 0.2 0.2 0.2 1 1.8 2.6 3.4 4.2 5; nearest rank:
	// p50 = 5th = 1, p90 = 9th = 4.2, p99 = 10th = 5.
	want := map[string][2]float64{"n": {float64(r.Latency.N), 10}, "p50": {r.Latency.P50, 1e-3}, "p90": {r.Latency.P90, 4.2e-3},
		"p99": {r.Latency.P99, 5e-3}, "max": {r.Latency.Max, 5e-3}, "min": {r.Latency.Min, 0.2e-3}}
	for k, v := range want {
		if math.Abs(v[0]-v[1]) > 1e-9 {
			t.Errorf("%s = %g, want %g", k, v[0], v[1])
		}
	}
	// The latest start: request 4, due at 4 ms, sent at 8 ms.
	if r.LateMax != 4*time.Millisecond {
		t.Errorf("latest start %s, want 4ms", r.LateMax)
	}
}

// TestOpenLoopTimerSlack: the generator's own late wake-ups (0.7 ms here)
// are not charged to the server. One sender, a request every 1 ms,
// answered in 0.2 ms, except the fourth (due 3 ms), which stalls 5 ms. By
// hand (ms): requests 0–3 were taken before they were due, so they count
// from when they went out: 0.2, 0.2, 0.2 and 5. Request 3, sent at 3.7,
// ends at 8.7: requests 4–8 (due 4–8) are taken late and count from when
// they were due, with no slack (no sleep): 4 → 8.9 (4.9), 5 → 9.1 (4.1),
// 6 → 9.3 (3.3), 7 → 9.5 (2.5), 8 → 9.7 (1.7). Request 9, due 9, is taken
// at 9.7: late, 9 → 9.9 (0.9).
func TestOpenLoopTimerSlack(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC), slack: 700 * time.Microsecond}
	send := stallFourth(clk)
	r := openLoop(context.Background(), clk, 1000, 10*time.Millisecond, 1, send)
	// Sorted: 0.2 0.2 0.2 0.9 1.7 2.5 3.3 4.1 4.9 5.
	if r.Latency.N != 10 || math.Abs(r.Latency.Min-0.2e-3) > 1e-9 || math.Abs(r.Latency.P50-1.7e-3) > 1e-9 ||
		math.Abs(r.Latency.P90-4.9e-3) > 1e-9 || math.Abs(r.Latency.Max-5e-3) > 1e-9 {
		t.Errorf("latencies %+v, want min 0.2 ms, p50 1.7, p90 4.9, max 5", r.Latency)
	}
}

// TestOpenLoopErrors: failed requests are counted, not in the latencies.
func TestOpenLoopErrors(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}
	n := 0
	boom := errors.New("boom")
	send := func(context.Context) error {
		n++
		clk.advance(100 * time.Microsecond)
		if n%4 == 0 {
			return boom
		}
		return nil
	}
	r := openLoop(context.Background(), clk, 1000, 8*time.Millisecond, 1, send)
	if r.Requests != 8 || r.Errors != 2 || r.Latency.N != 6 || !errors.Is(r.FirstErr, boom) {
		t.Fatalf("requests %d errors %d latencies %d first %v, want 8, 2, 6, boom", r.Requests, r.Errors, r.Latency.N, r.FirstErr)
	}
}

// TestScoresSenderHeaders: the client sends the request's own
// Accept-Encoding and none when not asked (Go's transport would add gzip),
// and a non-200 is an error.
func TestScoresSenderHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		if r.URL.Path == "/bad" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := scoresClient(2)
	if err := scoresSender(c, srv.URL+"/", nil)(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := scoresSender(c, srv.URL+"/", map[string]string{"Accept-Encoding": "gzip"})(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := scoresSender(c, srv.URL+"/bad", nil)(context.Background()); err == nil {
		t.Error("503 accepted")
	}
	if len(got) != 3 || got[0] != "" || got[1] != "gzip" {
		t.Errorf("Accept-Encoding sent %q, want \"\" then \"gzip\"", got)
	}
}
