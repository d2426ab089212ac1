package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// logLines decodes the JSON lines zerolog wrote to buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRequestID(t *testing.T) {
	var got []string
	h := RequestID()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, Info(r).ID)
	}))
	send := func(in string) string {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if in != "" {
			req.Header.Set(RequestIDHeader, in)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get(RequestIDHeader) != got[len(got)-1] {
			t.Fatalf("response id %q, handler saw %q", rec.Header().Get(RequestIDHeader), got[len(got)-1])
		}
		return got[len(got)-1]
	}
	for _, sane := range []string{"abc", "4bf92f3577b34da6a3ce929d0e0e4736", "req_1.2:3/4+5=6-7", strings.Repeat("x", 128)} {
		if id := send(sane); id != sane {
			t.Errorf("sane id %q replaced by %q", sane, id)
		}
	}
	a, b := send(""), send("")
	if a == "" || a == b {
		t.Errorf("generated ids %q, %q: want distinct non-empty", a, b)
	}
	for _, bad := range []string{strings.Repeat("x", 129), "a b", `x"y`, "line\nbreak", "ünï", "{}"} {
		if id := send(bad); id == bad || !saneID(id) {
			t.Errorf("insane id %q kept (got %q)", bad, id)
		}
	}
}

func TestAccessLogAndMetrics(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	reg := prometheus.NewRegistry()
	m, err := NewHTTPMetrics(reg, "qoscope", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewHTTPMetrics(reg, "qoscope", "test"); err == nil {
		t.Fatal("registering twice did not fail")
	}
	a := NewAuth(testStore(t), "t")
	r := NewRouter()
	r.Use(Stack(log, StackOptions{Log: LogOptions{Metrics: m, Quiet: []string{"/healthz"}}})...)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	r.With(a.Require(ScopeRead)).Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		Info(r).Annotate(func(e *zerolog.Event) { e.Int("items", 3) })
		WriteJSON(w, http.StatusOK, []int{1, 2, 3})
	})
	r.Get("/fail", func(w http.ResponseWriter, r *http.Request) {
		Info(r).Error = "backend said no"
		WriteError(w, http.StatusBadGateway, "upstream failed")
	})

	do := func(path, authz, reqID string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if reqID != "" {
			req.Header.Set(RequestIDHeader, reqID)
		}
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
	do("/items/7?api_key=hunter2", "Bearer "+secB, "rid-1")
	do("/items/8", "Bearer "+secA, "")
	do("/healthz", "", "")
	do("/nowhere", "", "")
	do("/fail", "", "")

	lines := logLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4 (health check not logged): %s", len(lines), buf.String())
	}
	want := []map[string]any{
		{"level": "info", "request_id": "rid-1", "method": "GET", "path": "/items/7", "route": "/items/{id}", "status": 200.0, "token": "reader", "items": 3.0, "resp_bytes": 8.0},
		{"level": "warn", "path": "/items/8", "route": "/items/{id}", "status": 403.0, "token": "sdk"},
		{"level": "warn", "path": "/nowhere", "route": "unmatched", "status": 404.0, "token": ""},
		{"level": "error", "path": "/fail", "route": "/fail", "status": 502.0, "error": "backend said no"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if _, ok := lines[i]["duration"]; !ok {
			t.Errorf("line %d has no duration", i)
		}
	}
	if _, ok := lines[1]["items"]; ok {
		t.Error("a refused request ran the handler's annotation")
	}
	out := buf.String()
	for _, secret := range []string{secA, secB, "hunter2", "Bearer"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q: %s", secret, out)
		}
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"/items/{id}", "200", 1}, {"/items/{id}", "403", 1}, {"/healthz", "200", 1}, {"unmatched", "404", 1}, {"/fail", "502", 1}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("http_requests_total{%s,%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.inflight); got != 0 {
		t.Errorf("inflight = %v after all requests", got)
	}
	if n := testutil.CollectAndCount(m.duration); n != 4 {
		t.Errorf("%d duration series, want 4 routes", n)
	}
}

func TestPanicIsJSON500(t *testing.T) {
	var buf bytes.Buffer
	r := NewRouter()
	r.Use(Stack(zerolog.New(&buf), StackOptions{})...)
	r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("kaput") })
	r.Get("/late", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic(errors.New("after the header"))
	})
	got := serve(t, r, http.MethodGet, "/boom", "")
	if got.status != 500 || got.body["error"] != "internal error" {
		t.Fatalf("panic answered %d %v", got.status, got.body)
	}
	if got := serve(t, r, http.MethodGet, "/late", ""); got.status != http.StatusAccepted {
		t.Fatalf("panic after the header: status %d, want the 202 already sent", got.status)
	}
	lines := logLines(t, &buf)
	var panics, requests int
	for _, l := range lines {
		switch l["message"] {
		case "handler panicked":
			panics++
			if l["stack"] == nil || l["path"] == nil {
				t.Errorf("panic line lacks stack or path: %v", l)
			}
		case "request":
			requests++
			if l["path"] == "/boom" && (l["status"] != 500.0 || l["error"] != "panic: kaput") {
				t.Errorf("request line %v", l)
			}
		}
	}
	if panics != 2 || requests != 2 {
		t.Fatalf("%d panic and %d request lines, want 2 and 2: %s", panics, requests, buf.String())
	}

	// net/http's deliberate abort is not swallowed.
	h := Recover(zerolog.Nop())(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-raised", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	// Recover alone (without AccessLog) answers in JSON too.
	h = Recover(zerolog.Nop())(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("x") }))
	if got := serve(t, h, http.MethodGet, "/", ""); got.status != 500 || got.body["error"] != "internal error" {
		t.Fatalf("Recover alone: %d %v", got.status, got.body)
	}
}

func TestHeaderLimit(t *testing.T) {
	h := HeaderLimit(200)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	// "GET /x HTTP/1.1\r\n" 17 + "Host: example.com\r\n" 19 = 36; "X-Pad: " + v + "\r\n" = 9 + len(v).
	req.Header.Set("X-Pad", strings.Repeat("a", 200-36-9))
	if n := HeaderBytes(req); n != 200 {
		t.Fatalf("HeaderBytes = %d, want 200", n)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 204 {
		t.Fatalf("at the limit: %d", rec.Code)
	}
	req.Header.Set("X-Pad", strings.Repeat("a", 200-36-9+1))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body ErrorBody
	if rec.Code != http.StatusRequestHeaderFieldsTooLarge || json.Unmarshal(rec.Body.Bytes(), &body) != nil ||
		body.Error != "request header is 201 bytes, over the 200-byte limit" {
		t.Fatalf("over the limit: %d %s", rec.Code, rec.Body)
	}
}

func TestMaxBody(t *testing.T) {
	h := MaxBody(10)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteError(w, http.StatusRequestEntityTooLarge, "read past the limit")
			return
		}
		WriteJSON(w, http.StatusOK, map[string]int{"read": len(b)})
	}))
	post := func(body string, declared bool) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		if !declared {
			req.ContentLength = -1
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	if code, body := post("0123456789", true); code != 200 || body != `{"read":10}` {
		t.Errorf("10 bytes: %d %s", code, body)
	}
	if code, body := post("0123456789a", true); code != 413 || body != `{"error":"request body is 11 bytes, over the 10-byte limit"}` {
		t.Errorf("declared 11 bytes: %d %s", code, body)
	}
	if code, body := post("0123456789a", false); code != 413 || body != `{"error":"read past the limit"}` {
		t.Errorf("undeclared 11 bytes: %d %s", code, body)
	}
}

// TestQuietRouteFailuresThrottled: a quiet route's successes are never
// logged; its failures are, one line per route and status per period,
// saying how many were left out since the last.
func TestQuietRouteFailuresThrottled(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	o := LogOptions{Quiet: []string{"/poll"}, QuietErrorEvery: 10 * time.Second, now: func() time.Time { return now }}
	r := NewRouter()
	r.Use(AccessLog(zerolog.New(&buf), o))
	status := http.StatusOK
	r.Get("/poll", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) })
	poll := func(n int) {
		for range n {
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/poll", nil))
		}
	}
	poll(5) // 200s: none logged
	status = http.StatusUnauthorized
	poll(4) // 07:00:00: the first logged, 3 left out
	status = http.StatusServiceUnavailable
	poll(2) // another status: its own first line, 1 left out
	now = now.Add(9 * time.Second)
	status = http.StatusUnauthorized
	poll(1) // within the period: left out (4 now)
	now = now.Add(time.Second)
	poll(2) // 07:00:10: logged with suppressed 4, then 1 left out
	lines := logLines(t, &buf)
	want := []struct {
		status, suppressed float64
	}{{401, 0}, {503, 0}, {401, 4}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["status"] != w.status || lines[i]["suppressed"] != w.suppressed || lines[i]["route"] != "/poll" {
			t.Errorf("line %d: %v, want status %v suppressed %v", i, lines[i], w.status, w.suppressed)
		}
	}
}
