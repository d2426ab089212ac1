package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func testRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "qoscope_test_things_total", Help: "Things."})
	c.Add(3)
	reg.MustRegister(c)
	return reg
}

func TestHealthRoutes(t *testing.T) {
	var readyErr error
	o := HealthOptions{
		Registry: testRegistry(t),
		Ready:    func(context.Context) error { return readyErr },
	}
	public := NewHealthHandler(zerolog.Nop(), o)
	o.MetricsAuth = NewAuth(testStore(t), "qoscope-test")
	guarded := NewHealthHandler(zerolog.Nop(), o)

	for _, h := range []http.Handler{public, guarded} {
		if got := serve(t, h, http.MethodGet, "/healthz", ""); got.status != 200 || got.body["status"] != "ok" {
			t.Errorf("healthz: %d %v", got.status, got.body)
		}
		readyErr = nil
		if got := serve(t, h, http.MethodGet, "/readyz", ""); got.status != 200 || got.body["status"] != "ready" {
			t.Errorf("readyz: %d %v", got.status, got.body)
		}
		readyErr = errors.New("kafka not ready: no leader for qoscope.client/3")
		if got := serve(t, h, http.MethodGet, "/readyz", ""); got.status != 503 || got.body["error"] != "kafka not ready: no leader for qoscope.client/3" {
			t.Errorf("readyz not ready: %d %v", got.status, got.body)
		}
		if got := serve(t, h, http.MethodPost, "/healthz", ""); got.status != 405 || got.header.Get("Allow") != "GET" {
			t.Errorf("POST healthz: %d Allow %q", got.status, got.header.Get("Allow"))
		}
	}

	scrape := func(h http.Handler, authz string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := scrape(public, ""); code != 200 || !strings.Contains(body, "qoscope_test_things_total 3") {
		t.Errorf("public metrics: %d %q", code, body)
	}
	if code, _ := scrape(guarded, ""); code != 401 {
		t.Errorf("guarded metrics without a token: %d, want 401", code)
	}
	if code, _ := scrape(guarded, "Bearer "+secB); code != 403 {
		t.Errorf("guarded metrics with a read token: %d, want 403", code)
	}
	for _, sec := range []string{secC, secD} { // ops (read, admin, metrics), scraper (metrics)
		if code, body := scrape(guarded, "Bearer "+sec); code != 200 || !strings.Contains(body, "qoscope_test_things_total 3") {
			t.Errorf("guarded metrics with a metrics token: %d", code)
		}
	}

	// No registry: no /metrics route.
	h := NewHealthHandler(zerolog.Nop(), HealthOptions{})
	if got := serve(t, h, http.MethodGet, "/metrics", ""); got.status != 404 {
		t.Errorf("metrics without a registry: %d, want 404", got.status)
	}
	if got := serve(t, h, http.MethodGet, "/readyz", ""); got.status != 200 {
		t.Errorf("readyz without a Ready func: %d, want 200", got.status)
	}
}

// Serve answers over a real listener and returns nil once its context
// ends, after letting an in-flight request finish.
func TestServeDrains(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	r := NewRouter()
	r.Use(Stack(zerolog.Nop(), StackOptions{})...)
	r.Get("/slow", func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		WriteJSON(w, http.StatusOK, map[string]bool{"done": true})
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, NewServer(ctx, r, zerolog.Nop(), ServerOptions{}), ln, 10*time.Second) }()

	type result struct {
		code int
		body string
		rid  string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode, body: string(b), rid: resp.Header.Get(RequestIDHeader)}
	}()
	<-entered
	cancel()
	close(release)
	got := <-res
	if got.err != nil || got.code != 200 || got.body != "{\"done\":true}\n" || got.rid == "" {
		t.Fatalf("in-flight request: %+v", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after a requested stop: %v", err)
	}
}
