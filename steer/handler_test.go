package steer

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/score"
)

func geo(t testing.TB) *ipdb.Table {
	t.Helper()
	g, err := ipdb.Default()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// addrOf is an address of the synthetic table in province × isp.
func addrOf(t testing.TB, g *ipdb.Table, province, isp string) netip.Addr {
	t.Helper()
	a, ok := g.Sample("cn", province, isp, rand.New(rand.NewPCG(1, 2)))
	if !ok {
		t.Fatalf("no address for %s/%s", province, isp)
	}
	return a
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestHandler(t testing.TB, cfg Config, tb *score.Table, fetched time.Time, now *clock) *Handler {
	t.Helper()
	h, err := NewHandler(HandlerOptions{Config: cfg, Geo: geo(t), Log: zerolog.Nop(), Now: now.now,
		Snapshot: func() (*score.Table, time.Time) { return tb, fetched }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h *Handler, target, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	switch {
	case strings.HasPrefix(target, "/steer/dash"):
		h.ServeDASH(w, r)
	default:
		h.ServeHLS(w, r)
	}
	return w
}

// forced is a table whose orders do not depend on the session (one
// weighted vendor per region), so every answer can be written by hand.
func forced() *score.Table {
	return table(
		region("guangdong", "telecom", 100, vr{"cdn-a", 1, false}, vr{"cdn-b", 0, true}),
		region("beijing", "unicom", 300, vr{"cdn-a", 0, false}, vr{"cdn-b", 1, false}),
	)
}

func TestHandlerRegionFromIPAndQuery(t *testing.T) {
	cfg := DefaultConfig()
	now := &clock{testAt.Add(40 * time.Second)}
	h := newTestHandler(t, cfg, forced(), testAt.Add(10*time.Second), now)
	g := geo(t)
	gd := addrOf(t, g, "guangdong", "telecom").String()

	w := get(h, "/steer/hls?session=abc&_HLS_pathway=cdn-b&_HLS_throughput=5000000", gd+":5555", nil)
	want := `{"VERSION":1,"TTL":300,"RELOAD-URI":"hls?session=abc&province=guangdong&isp=telecom","PATHWAY-PRIORITY":["cdn-a","cdn-b"]}`
	if w.Code != 200 || w.Body.String() != want {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "private, max-age=300",
		HeaderLevel: "region", HeaderRegion: "guangdong/telecom", HeaderScoresAt: "2026-11-20T12:05:00Z", HeaderScoresAge: "30", "Warning": ""} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}

	// Query parameters win over the address.
	w = get(h, "/steer/dash?session=abc&province=beijing&isp=unicom", gd+":5555", nil)
	want = `{"VERSION":1,"TTL":300,"RELOAD-URI":"dash?session=abc&province=beijing&isp=unicom","SERVICE-LOCATION-PRIORITY":["cdn-b","cdn-a"]}`
	if w.Code != 200 || w.Body.String() != want || w.Header().Get(HeaderRegion) != "beijing/unicom" {
		t.Fatalf("%d %s %v", w.Code, w.Body, w.Header())
	}

	// A region the table lacks: the country order (cdn-a 100, cdn-b 300
	// Mbps of weight: both weighted, so only the level is checked), the
	// region pinned because the query gave it.
	w = get(h, "/steer/hls?session=abc&province=hainan&isp=mobile", gd+":5555", nil)
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if m["RELOAD-URI"] != "hls?session=abc&province=hainan&isp=mobile" || w.Header().Get(HeaderLevel) != "country" ||
		w.Header().Get(HeaderFallback) != "region not in the score table" || w.Header().Get(HeaderRegion) != "" {
		t.Fatalf("%s %v", w.Body, w.Header())
	}

	// An address outside the table, no session: a generated session.
	w = get(h, "/steer/hls", "192.0.2.1:1", nil)
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	reload, _ := m["RELOAD-URI"].(string)
	sess, ok := strings.CutPrefix(reload, "hls?session=")
	if !ok || len(sess) != 16 || !validSession(sess) || w.Header().Get(HeaderFallback) != "client region unknown" {
		t.Fatalf("%s %v", w.Body, w.Header())
	}
}

func TestHandlerRejects(t *testing.T) {
	now := &clock{testAt}
	h := newTestHandler(t, DefaultConfig(), forced(), testAt, now)
	for q, want := range map[string]string{
		"session=a%20b":                       "query parameter session",
		"session=" + strings.Repeat("x", 129): "query parameter session",
		"province=guangdong":                  "give both or neither",
		"province=Guang+Dong&isp=telecom":     "query parameter province",
		"province=guangdong&isp=%zz":          "query parameter isp: bad escape",
	} {
		w := get(h, "/steer/hls?"+q, "192.0.2.1:1", nil)
		if w.Code != 400 || !strings.Contains(w.Body.String(), want) {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
	// An escaped but valid value is accepted.
	if w := get(h, "/steer/hls?session=a%2Db&province=guangdong&isp=telecom", "192.0.2.1:1", nil); w.Code != 200 ||
		!strings.Contains(w.Body.String(), `"hls?session=a-b&`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}

	// No table yet: 503 with Retry-After.
	h2, err := NewHandler(HandlerOptions{Config: DefaultConfig(), Geo: geo(t), Log: zerolog.Nop(),
		Snapshot: func() (*score.Table, time.Time) { return nil, time.Time{} }})
	if err != nil {
		t.Fatal(err)
	}
	if w := get(h2, "/steer/dash", "192.0.2.1:1", nil); w.Code != 503 || w.Header().Get("Retry-After") != "5" {
		t.Errorf("%d %v", w.Code, w.Header())
	}
}

// A table older than stale_after still steers, with a Warning and its age.
func TestHandlerStaleTable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StaleAfter = time.Minute
	now := &clock{testAt.Add(61 * time.Second)}
	h := newTestHandler(t, cfg, forced(), testAt, now)
	w := get(h, "/steer/hls?session=a", "192.0.2.1:1", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Warning"), "110 - ") || w.Header().Get(HeaderScoresAge) != "61" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	now.t = testAt.Add(62 * time.Second)
	if w := get(h, "/steer/hls?session=a", "192.0.2.1:1", nil); w.Header().Get(HeaderScoresAge) != "62" {
		t.Fatalf("age %q", w.Header().Get(HeaderScoresAge))
	}
}

// X-Forwarded-For counts only from trusted proxies, read from the right.
func TestClientIP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"127.0.0.1", "10.9.0.0/16"}
	h := newTestHandler(t, cfg, forced(), testAt, &clock{testAt})
	for _, c := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.5:1", []string{"1.2.3.4"}, "203.0.113.5"},               // untrusted peer: header ignored
		{"127.0.0.1:1", []string{"1.2.3.4"}, "1.2.3.4"},                     // one trusted hop
		{"127.0.0.1:1", []string{"6.6.6.6, 1.2.3.4, 10.9.1.1"}, "1.2.3.4"},  // forged left part skipped
		{"127.0.0.1:1", []string{"6.6.6.6", "1.2.3.4,10.9.1.1"}, "1.2.3.4"}, // two header lines
		{"127.0.0.1:1", []string{"10.9.1.1"}, "10.9.1.1"},                   // only proxies: the leftmost
		{"127.0.0.1:1", []string{"garbage, 10.9.1.1"}, "10.9.1.1"},          // stops at the last trusted hop
		{"127.0.0.1:1", nil, "127.0.0.1"},                                   // no header
		{"[::ffff:127.0.0.1]:1", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},     // mapped addresses unmapped
	} {
		r := httptest.NewRequest(http.MethodGet, "/steer/hls", nil)
		r.RemoteAddr = c.remote
		for _, x := range c.xff {
			r.Header.Add("X-Forwarded-For", x)
		}
		if got := h.clientIP(r).String(); got != c.want {
			t.Errorf("%s %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RateLimit = RateLimit{PerIP: 1, Burst: 2}
	now := &clock{testAt}
	h := newTestHandler(t, cfg, forced(), testAt, now)
	codes := func() (out []int) {
		for _, ip := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"} {
			out = append(out, get(h, "/steer/hls?session=a", ip+":1", nil).Code)
		}
		return out
	}
	// Burst 2: the third request of .1 is refused, .2 has its own bucket.
	if got := codes(); got[0] != 200 || got[1] != 200 || got[2] != 429 || got[3] != 200 {
		t.Fatalf("codes %v", got)
	}
	// One second refills one token.
	now.t = now.t.Add(time.Second)
	if got := codes(); got[0] != 200 || got[1] != 429 {
		t.Fatalf("codes after 1 s %v", got)
	}
}

func TestConfigErrorsNameKeys(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTL = 1500 * time.Millisecond
	cfg.Pathways = map[string]string{"a": "x y", "b": "z", "c": "z"}
	cfg.TrustedProxies = []string{"nope"}
	cfg.Scores.URL = "ftp://x"
	_, err := NewHandler(HandlerOptions{Config: cfg, Geo: geo(t), Snapshot: func() (*score.Table, time.Time) { return nil, time.Time{} }})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"steer.ttl: 1.5s", `steer.pathways.a: "x y"`, `steer.pathways: vendors b and c have the same pathway id "z"`, `steer.trusted_proxies: "nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}

// fakeRW is a ResponseWriter that keeps its header map between requests,
// so that what the handler itself allocates is measured.
type fakeRW struct {
	h      http.Header
	status int
	n      int
}

func (f *fakeRW) Header() http.Header         { return f.h }
func (f *fakeRW) WriteHeader(s int)           { f.status = s }
func (f *fakeRW) Write(b []byte) (int, error) { f.n += len(b); return len(b), nil }

// The hot path (address → region → draw → manifest → headers) allocates
// nothing of its own.
func TestHandlerAllocations(t *testing.T) {
	h := newTestHandler(t, DefaultConfig(), benchTable(), testAt, &clock{testAt.Add(time.Second)})
	r := httptest.NewRequest(http.MethodGet, "/steer/hls?session=0123456789abcdef&_HLS_pathway=cdn-a", nil)
	r.RemoteAddr = addrOf(t, geo(t), "guangdong", "telecom").String() + ":1"
	w := &fakeRW{h: http.Header{}}
	h.ServeHLS(w, r) // compiles the table
	if allocs := testing.AllocsPerRun(1000, func() {
		clear(w.h)
		h.ServeHLS(w, r)
	}); allocs != 0 || w.status != 200 {
		t.Fatalf("%v allocations per request (status %d)", allocs, w.status)
	}
}

func benchTable() *score.Table { return SyntheticTable(1, testAt) }
