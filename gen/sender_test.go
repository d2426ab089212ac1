package gen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/schemas"
)

// fakeIngest answers each request with the next scripted response and
// records what it received.
type fakeIngest struct {
	mu       sync.Mutex
	script   []func(w http.ResponseWriter, lines int)
	calls    int
	keys     []string
	lines    []int
	bodies   []string
	paths    []string
	authHdrs []string
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, "not gzip", http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(zr)
	n := bytes.Count(b, []byte("\n"))
	f.mu.Lock()
	step := f.script[min(f.calls, len(f.script)-1)]
	f.calls++
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	f.lines = append(f.lines, n)
	f.bodies = append(f.bodies, string(b))
	f.paths = append(f.paths, r.URL.Path)
	f.authHdrs = append(f.authHdrs, r.Header.Get("Authorization"))
	f.mu.Unlock()
	step(w, n)
}

func reply(status int, retryAfter string, body any) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, n int) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		out := body
		if f, ok := body.(func(int) any); ok {
			out = f(n)
		}
		_ = json.NewEncoder(w).Encode(out)
	}
}

func acceptAll(n int) any { return map[string]any{"accepted": n, "rejected": 0, "errors": []any{}} }

type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func newTestSender(t *testing.T, f *fakeIngest, maxRetries int) (*sender, *SendStats, *sleepRecorder) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	var st SendStats
	rec := &sleepRecorder{}
	s := newSender(senderConfig{
		target: srv.URL, token: "test-token-0123456789", workers: 1, batchLines: 500,
		maxRetries: maxRetries, timeout: 5 * time.Second, maxRetryAfter: time.Minute,
		backoff: 100 * time.Millisecond, log: zerolog.Nop(), runID: "t", sleep: rec.sleep,
	}, &st)
	return s, &st, rec
}

func ndjson(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"v":1,"type":"origin_stats","ts":1767225600000,"stream_id":"s%d","node":"o","line":"primary","bitrate_kbps":1,"fps":1,"rtt_ms":1}`+"\n", i)
	}
	return b.Bytes()
}

func sendOne(t *testing.T, s *sender, src schemas.Source, n int) {
	t.Helper()
	if err := s.enqueue(&batch{src: src, lines: n, raw: ndjson(n)}); err != nil {
		t.Fatal(err)
	}
	s.close(0)
}

func checkBooks(t *testing.T, st *SendStats, sent, acc, rej, failed int64) {
	t.Helper()
	got := [4]int64{st.Sent.Load(), st.Accepted.Load(), st.Rejected.Load(), st.Failed.Load()}
	want := [4]int64{sent, acc, rej, failed}
	if got != want {
		t.Fatalf("sent/accepted/rejected/failed = %v, want %v", got, want)
	}
}

func TestSenderRetries429ThenCountsOnce(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){
		reply(http.StatusTooManyRequests, "1", map[string]string{"error": "over its rate limit"}),
		reply(http.StatusOK, "", acceptAll),
	}}
	s, st, rec := newTestSender(t, f, 3)
	sendOne(t, s, schemas.SourceOrigin, 10)
	checkBooks(t, st, 10, 10, 0, 0)
	if f.calls != 2 || st.Retries.Load() != 1 {
		t.Fatalf("calls %d, retries %d; want 2 and 1", f.calls, st.Retries.Load())
	}
	if len(rec.waits) != 1 || rec.waits[0] != time.Second {
		t.Fatalf("waits %v, want [1s] from Retry-After", rec.waits)
	}
	if f.keys[0] == "" || f.keys[0] != f.keys[1] {
		t.Fatalf("a retry must repeat the Idempotency-Key: %q vs %q", f.keys[0], f.keys[1])
	}
	if f.paths[0] != "/v1/events/origin" || f.authHdrs[0] != "Bearer test-token-0123456789" {
		t.Fatalf("path %q, auth %q", f.paths[0], f.authHdrs[0])
	}
	if f.bodies[0] != string(ndjson(10)) || f.bodies[1] != f.bodies[0] {
		t.Fatal("the body sent (after gunzip) differs from the batch")
	}
}

func TestSender503HonoursRetryAfter(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){
		reply(http.StatusServiceUnavailable, "7", map[string]any{"error": "kafka is unavailable", "accepted": 0}),
		reply(http.StatusServiceUnavailable, "", map[string]any{"error": "kafka is unavailable", "accepted": 0}),
		reply(http.StatusServiceUnavailable, "120", map[string]any{"error": "kafka is unavailable", "accepted": 0}),
		reply(http.StatusOK, "", acceptAll),
	}}
	s, st, rec := newTestSender(t, f, 5)
	sendOne(t, s, schemas.SourceClient, 3)
	checkBooks(t, st, 3, 3, 0, 0)
	// 7 s as asked; no header: backoff of 100ms<<1 = 200ms, jittered to
	// [100ms, 200ms]; 120 s capped at max_retry_after (1 min).
	if len(rec.waits) != 3 || rec.waits[0] != 7*time.Second || rec.waits[1] < 100*time.Millisecond ||
		rec.waits[1] > 200*time.Millisecond || rec.waits[2] != time.Minute {
		t.Fatalf("waits %v, want [7s, 100-200ms, 1m]", rec.waits)
	}
}

func TestSenderGivesUpAndCountsFailed(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){
		reply(http.StatusServiceUnavailable, "1", map[string]any{"error": "kafka is unavailable"}),
	}}
	s, st, _ := newTestSender(t, f, 2)
	sendOne(t, s, schemas.SourceCDN, 4)
	checkBooks(t, st, 4, 0, 0, 4)
	if f.calls != 3 {
		t.Fatalf("%d requests, want 1 + 2 retries", f.calls)
	}
}

func TestSenderCountsRejectedLines(t *testing.T) {
	t.Run("400 with rejected lines", func(t *testing.T) {
		f := &fakeIngest{script: []func(http.ResponseWriter, int){
			reply(http.StatusBadRequest, "", map[string]any{"accepted": 0, "rejected": 5,
				"errors": []map[string]any{{"line": 1, "field": "ts", "reason": "missing"}}}),
		}}
		s, st, _ := newTestSender(t, f, 3)
		sendOne(t, s, schemas.SourceClient, 5)
		checkBooks(t, st, 5, 0, 5, 0)
		if f.calls != 1 {
			t.Fatalf("a rejection must not be retried: %d calls", f.calls)
		}
	})
	t.Run("200 with some rejected", func(t *testing.T) {
		f := &fakeIngest{script: []func(http.ResponseWriter, int){
			reply(http.StatusOK, "", map[string]any{"accepted": 7, "rejected": 3,
				"errors": []map[string]any{{"line": 2, "field": "type", "reason": "unknown"}}}),
		}}
		s, st, _ := newTestSender(t, f, 3)
		sendOne(t, s, schemas.SourceClient, 10)
		checkBooks(t, st, 10, 7, 3, 0)
	})
	t.Run("400 without counts", func(t *testing.T) {
		f := &fakeIngest{script: []func(http.ResponseWriter, int){
			reply(http.StatusBadRequest, "", map[string]any{"error": "malformed body"}),
		}}
		s, st, _ := newTestSender(t, f, 3)
		sendOne(t, s, schemas.SourceClient, 6)
		checkBooks(t, st, 6, 0, 6, 0)
	})
}

func TestSenderSplitsOn413(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){
		reply(http.StatusRequestEntityTooLarge, "", map[string]string{"error": "request has more than 4 events"}),
		reply(http.StatusOK, "", acceptAll),
		reply(http.StatusOK, "", acceptAll),
	}}
	s, st, _ := newTestSender(t, f, 3)
	sendOne(t, s, schemas.SourceOrigin, 9)
	checkBooks(t, st, 9, 9, 0, 0)
	if f.calls != 3 || f.lines[1] != 4 || f.lines[2] != 5 {
		t.Fatalf("calls %d with lines %v, want 9 then 4 + 5", f.calls, f.lines)
	}
	if f.bodies[1]+f.bodies[2] != string(ndjson(9)) {
		t.Fatal("the halves do not add up to the batch")
	}
}

func TestSenderStopsOnRefusedToken(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){
		reply(http.StatusUnauthorized, "", map[string]string{"error": "missing or invalid bearer token"}),
	}}
	s, st, _ := newTestSender(t, f, 3)
	if err := s.enqueue(&batch{src: schemas.SourceClient, lines: 2, raw: ndjson(2)}); err != nil {
		t.Fatal(err)
	}
	// Wait for the worker to see the 401, then further batches fail fast.
	<-s.ctx.Done()
	if err := s.enqueue(&batch{src: schemas.SourceClient, lines: 3, raw: ndjson(3)}); err == nil {
		t.Fatal("enqueue after a 401 succeeded")
	}
	s.close(0)
	if err := s.err(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("sender error %v, want one naming HTTP 401", err)
	}
	checkBooks(t, st, 5, 0, 0, 5)
	if f.calls != 1 {
		t.Fatalf("%d calls after a 401, want 1", f.calls)
	}
}

// TestRunSendsWhatItWrites sends a fast-mode run to a fake ingest and
// checks that the lines received per endpoint are exactly the lines the
// same run writes to files.
func TestRunSendsWhatItWrites(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){
		reply(http.StatusTooManyRequests, "0", map[string]string{"error": "slow down"}),
		reply(http.StatusOK, "", acceptAll),
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	o := DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = ModeFast, "none", "error"
	o.Users, o.Duration = 150, 90*time.Second
	o.Target, o.Token = srv.URL, "test-token-0123456789"
	o.BatchLines = 300
	var out bytes.Buffer
	o.SummaryJSON = "-"
	if err := Run(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var sum Summary
	js := out.String()[strings.Index(out.String(), "{"):]
	if err := json.Unmarshal([]byte(js), &sum); err != nil {
		t.Fatalf("summary JSON: %v\n%s", err, out.String())
	}
	if sum.Generated == 0 || sum.Sent != sum.Generated || sum.Accepted != sum.Generated || sum.Failed != 0 || sum.Retries != 1 {
		t.Fatalf("summary %+v: want every generated event sent and accepted once, one retry", sum)
	}
	want := genFile(t, func(o *Options) { o.Users, o.Duration = 150, 90*time.Second })
	got := map[string]int{}
	for i, b := range f.bodies[1:] { // the first was answered 429 and resent
		for _, l := range strings.SplitAfter(b, "\n") {
			if l != "" {
				got[f.paths[i+1]+" "+l]++
			}
		}
	}
	n := 0
	for _, e := range strings.SplitAfter(string(want), "\n") {
		if e == "" {
			continue
		}
		var ev schemas.Event
		if err := schemas.ParseLine([]byte(e), &ev); err != nil {
			t.Fatal(err)
		}
		k := "/v1/events/" + ev.Type.Source().String() + " " + e
		if got[k] == 0 {
			t.Fatalf("line not sent to its endpoint: %s", k)
		}
		got[k]--
		n++
	}
	if int64(n) != sum.Generated {
		t.Fatalf("file has %d lines, run generated %d", n, sum.Generated)
	}
}

// TestRealtimeStampsWallTime runs two seconds in realtime mode: events carry
// wall-clock times between the run's start and end and none from the future.
func TestRealtimeStampsWallTime(t *testing.T) {
	f := &fakeIngest{script: []func(http.ResponseWriter, int){reply(http.StatusOK, "", acceptAll)}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	o := DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = ModeRealtime, "none", "error"
	o.Users, o.Duration = 100, 2*time.Second
	o.Target, o.Token = srv.URL, "test-token-0123456789"
	before := time.Now().Truncate(time.Second).UnixMilli()
	if err := Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()
	n := 0
	for i, b := range f.bodies {
		for _, l := range strings.Split(strings.TrimSpace(b), "\n") {
			var e schemas.Event
			if err := schemas.ParseLine([]byte(l), &e); err != nil {
				t.Fatalf("body %d: %v", i, err)
			}
			if e.TS < before || e.TS > after {
				t.Fatalf("event at %d outside the run [%d, %d]", e.TS, before, after)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("nothing sent")
	}
}
