package httpx

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestWriteJSONAndErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		write  func(http.ResponseWriter)
		status int
		body   string
	}{
		{"json", func(w http.ResponseWriter) { WriteJSON(w, 201, map[string]int{"n": 1}) }, 201, "{\"n\":1}\n"},
		{"error", func(w http.ResponseWriter) { WriteError(w, 400, `bad "x"`) }, 400, "{\"error\":\"bad \\\"x\\\"\"}\n"},
		{"error with fields", func(w http.ResponseWriter) {
			WriteErrorWith(w, 503, "kafka is down", map[string]any{"accepted": 0, "error": "ignored"})
		}, 503, "{\"accepted\":0,\"error\":\"kafka is down\"}\n"},
		{"unencodable", func(w http.ResponseWriter) { WriteJSON(w, 200, math.Inf(1)) }, 500, "{\"error\":\"cannot encode response\"}\n"},
	} {
		rec := httptest.NewRecorder()
		c.write(rec)
		if rec.Code != c.status || rec.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, rec.Code, rec.Body, c.status, c.body)
		}
		if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", c.name, rec.Header())
		}
	}
}

func TestRouterNotFoundAndMethodNotAllowed(t *testing.T) {
	r := NewRouter()
	nop := func(http.ResponseWriter, *http.Request) {}
	r.Get("/a", nop)
	r.Post("/a", nop)
	r.Put("/b/{id}", nop)
	r.Route("/sub", func(s chi.Router) { s.Get("/c", nop) })

	for _, c := range []struct {
		method, path string
		status       int
		allow, msg   string
	}{
		{http.MethodDelete, "/a", 405, "GET, POST", "method DELETE is not allowed on /a (allowed: GET, POST)"},
		{http.MethodGet, "/b/7", 405, "PUT", "method GET is not allowed on /b/7 (allowed: PUT)"},
		{http.MethodPost, "/sub/c", 405, "GET", "method POST is not allowed on /sub/c (allowed: GET)"},
		{http.MethodGet, "/nope?token=secret", 404, "", "no such endpoint: /nope"},
		{http.MethodGet, "/sub/nope", 404, "", "no such endpoint: /sub/nope"},
	} {
		got := serve(t, r, c.method, c.path, "")
		if got.status != c.status || got.header.Get("Allow") != c.allow || got.body["error"] != c.msg {
			t.Errorf("%s %s: %d Allow %q %v; want %d Allow %q %q", c.method, c.path, got.status, got.header.Get("Allow"), got.body, c.status, c.allow, c.msg)
		}
	}
}
