package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The same question asked by many clients at once reaches the handler
// once; asked again within the ttl it is answered from the cache; after
// the ttl it reaches the handler again; errors are never kept.
func TestAnswerCache(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, `{"error":"no"}`, http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("slow") != "" {
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"n":`+string(rune('0'+n))+`}`)
	}
	var mu sync.Mutex
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c := newAnswerCache(time.Second, 2, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	srv := httptest.NewServer(c.wrap(h))
	defer srv.Close()
	get := func(q string) (string, string, int) {
		resp, err := http.Get(srv.URL + "/api/v1/series?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("X-Cache"), resp.StatusCode
	}

	// 10 concurrent identical questions while the first is running.
	var wg sync.WaitGroup
	bodies := make([]string, 10)
	for i := range bodies {
		wg.Add(1)
		go func() { defer wg.Done(); bodies[i], _, _ = get("metric=users&slow=1") }()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the others join the flight
	close(release)
	wg.Wait()
	for _, b := range bodies {
		if b != `{"n":1}` {
			t.Fatalf("answers %q, want all {\"n\":1}", bodies)
		}
	}
	if n := calls.Load(); n != 1 {
		// A client that arrived after the flight ended is a cache hit, not
		// a second call, since the answer is fresh.
		t.Fatalf("%d handler calls for 10 identical concurrent questions, want 1", n)
	}
	if b, state, _ := get("metric=users&slow=1"); b != `{"n":1}` || state != "hit" {
		t.Fatalf("within the ttl: %q %s, want the cached answer", b, state)
	}
	if b, _, _ := get("metric=users_other"); b != `{"n":2}` {
		t.Fatalf("another question: %q", b)
	}
	// Past the ttl (within a second one): the stale answer at once, and one
	// refresh in the background; then the refreshed answer.
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if b, state, _ := get("metric=users&slow=1"); b != `{"n":1}` || state != "stale" {
		t.Fatalf("after the ttl: %q %s, want the stale answer", b, state)
	}
	for calls.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	var b, state string
	for state != "hit" {
		b, state, _ = get("metric=users&slow=1")
	}
	if b != `{"n":3}` {
		t.Fatalf("after the refresh: %q, want {\"n\":3}", b)
	}
	// Past twice the ttl: nothing is served from the cache.
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	if b, state, _ := get("metric=users&slow=1"); b != `{"n":4}` || state != "miss" {
		t.Fatalf("after 2 × ttl: %q %s, want a fresh answer", b, state)
	}
	for i := range 2 {
		if b, _, code := get("fail=1"); code != http.StatusBadRequest || !strings.Contains(b, "no") {
			t.Fatalf("error answer %d: %d %q", i, code, b)
		}
	}
	if n := calls.Load(); n != 6 {
		t.Fatalf("%d calls: an error answer must not be cached", n)
	}
	// Bounded: never more than max entries.
	for _, q := range []string{"a=1", "a=2", "a=3", "a=4"} {
		get(q)
	}
	if len(c.entries) > 2 {
		t.Fatalf("%d entries, max 2", len(c.entries))
	}
	// Off with ttl 0.
	if off := newAnswerCache(0, 2, time.Now); off.wrap(h) == nil {
		t.Fatal("wrap returned nil")
	}
}

// New rows landed (invalidate): an answer kept before is not served, not
// even as stale, and the answer of a query that began before is not kept;
// a question asked after joins no flight of before.
func TestAnswerCacheInvalidate(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Query().Get("slow") != "" && n == 2 {
			<-release
		}
		io.WriteString(w, `{"n":`+string(rune('0'+n))+`}`)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c := newAnswerCache(time.Minute, 10, func() time.Time { return now })
	srv := httptest.NewServer(c.wrap(h))
	defer srv.Close()
	get := func(q string) (string, string) {
		resp, err := http.Get(srv.URL + "/api/v1/streams?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("X-Cache")
	}
	if b, st := get("slow=1"); b != `{"n":1}` || st != "miss" {
		t.Fatalf("first: %s %s", b, st)
	}
	if b, st := get("slow=1"); b != `{"n":1}` || st != "hit" {
		t.Fatalf("within the ttl: %s %s", b, st)
	}
	c.invalidate()
	// Call 2 began after the invalidation but is held; call 3, after a
	// second invalidation, must not join it nor find its answer.
	done := make(chan string)
	go func() { b, _ := get("slow=1"); done <- b }()
	for calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	c.invalidate()
	if b, st := get("slow=1"); b != `{"n":3}` || st != "miss" {
		t.Errorf("after the second invalidation: %s %s, want a new query (n 3)", b, st)
	}
	close(release)
	if b := <-done; b != `{"n":2}` {
		t.Errorf("the held query answered %s", b)
	}
	// Call 2 ended after the invalidation: its answer is not kept over call 3's.
	if b, st := get("slow=1"); b != `{"n":3}` || st != "hit" {
		t.Errorf("kept: %s %s, want call 3's answer", b, st)
	}
}
