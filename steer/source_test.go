package steer

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/config"
)

const testToken = "steer-read-token-0123456789"

// A fake scores API: 200 with an ETag, 304 for that ETag, 500 while down.
// The poller sends the token, keeps the table and its fetch time through
// the outage, and takes the next table when serve is back.
func TestPollerETagAndOutage(t *testing.T) {
	var down atomic.Bool
	var version atomic.Int32
	version.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken || r.URL.Path != "/api/v1/scores" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if down.Load() {
			http.Error(w, `{"error":"clickhouse unreachable"}`, http.StatusInternalServerError)
			return
		}
		etag := `"v` + string(rune('0'+version.Load())) + `"`
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		tb := forced()
		tb.At = testAt.Add(time.Duration(version.Load()) * time.Minute)
		_ = json.NewEncoder(w).Encode(tb)
	}))
	defer srv.Close()

	src := &Source{}
	c := DefaultConfig().Scores
	c.URL, c.Token = srv.URL+"/api/v1/scores", ""
	c.TokenEnv = "STEER_TEST_TOKEN"
	p, err := NewPoller(c, src, zerolog.Nop(), nil, func(k string) string {
		if k == "STEER_TEST_TOKEN" {
			return testToken
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{testAt}
	p.now = clk.now
	ctx := context.Background()

	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	t1, f1 := src.Snapshot()
	if t1 == nil || !t1.At.Equal(testAt.Add(time.Minute)) || !f1.Equal(testAt) || len(t1.Regions) != 2 {
		t.Fatalf("first poll: %+v at %v", t1, f1)
	}
	clk.t = testAt.Add(15 * time.Second)
	if err := p.Poll(ctx); err != nil { // 304: same table, confirmed now
		t.Fatal(err)
	}
	if t2, f2 := src.Snapshot(); t2 != t1 || !f2.Equal(clk.t) {
		t.Fatalf("304 poll: same table %v, fetched %v", t2 == t1, f2)
	}
	down.Store(true)
	clk.t = testAt.Add(30 * time.Second)
	if err := p.Poll(ctx); err == nil || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("poll while down: %v", err)
	}
	if t3, f3 := src.Snapshot(); t3 != t1 || !f3.Equal(testAt.Add(15*time.Second)) {
		t.Fatalf("outage: the last table and its fetch time must stay, got %v %v", t3 == t1, f3)
	}
	down.Store(false)
	version.Store(2)
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if t4, _ := src.Snapshot(); t4 == t1 || !t4.At.Equal(testAt.Add(2*time.Minute)) {
		t.Fatalf("after recovery: %+v", t4)
	}
}

func TestDecodeTableRefusesNonsense(t *testing.T) {
	for doc, want := range map[string]string{
		`{"at":"2026-11-20T12:05:00Z","regions":[]}`:                                                                  "no regions",
		`{"at":"2026-11-20T12:05:00Z","regions":[{"province":"p","isp":"i","vendors":[{"vendor":"a","ratio":1.5}]}]}`: "regions[0].vendors[0].ratio: 1.5",
		`{"at":"2026-11-20T12:05:00Z","regions":[],"extra":1}`:                                                        `unknown field "extra"`,
	} {
		if _, err := DecodeTable([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}

// qoscope steer with --scores-file, over real HTTP: ready, steering, and
// the JSON it serves is the table's order.
func TestRunFromFile(t *testing.T) {
	dir := t.TempDir()
	b, _ := json.Marshal(forced())
	file := filepath.Join(dir, "scores.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Scores.File = file
	var errs config.Errors
	cfg.ValidateSection(errs.In(Section))
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: cfg, Stderr: io.Discard, Listener: ln}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + ln.Addr().String()
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.Get(base + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err = http.Get(base + "/steer/dash?session=z&province=beijing&isp=unicom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"VERSION":1,"TTL":300,"RELOAD-URI":"dash?session=z&province=beijing&isp=unicom","SERVICE-LOCATION-PRIORITY":["cdn-b","cdn-a"]}`
	if resp.StatusCode != 200 || string(body) != want || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Warning") != "" {
		t.Fatalf("%d %s %v", resp.StatusCode, body, resp.Header)
	}
}
