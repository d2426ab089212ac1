// Package httpx is the HTTP plumbing shared by ingest, the aggregator
// runner's health server and the read side: bearer tokens with scopes
// (auth.go), the middleware stack — request id, access log with route
// metrics, panic recovery, header and body limits (middleware.go) — one JSON
// error format with JSON 404 and 405 for chi routers (this file), and the
// /healthz, /readyz, /metrics routes and server (health.go).
// docs/INGEST.md, "Security", documents what clients see.
package httpx

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// ErrorBody is the one error format of every qoscope HTTP answer:
// {"error": "<message for a human>"} plus, for some answers, more members
// (ingest's 503 says "accepted": 0; a 403 lists "required_scopes").
// Clients and tests key on "error"; it never changes.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteJSON writes v as a JSON body with status. Answers are never cached:
// they describe the moment of the request.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError writes {"error": msg} with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, ErrorBody{Error: msg})
}

// WriteErrorWith writes {"error": msg} plus the members of extra (an
// "error" member of extra is ignored: msg wins).
func WriteErrorWith(w http.ResponseWriter, status int, msg string, extra map[string]any) {
	body := make(map[string]any, len(extra)+1)
	for k, v := range extra {
		body[k] = v
	}
	body["error"] = msg
	WriteJSON(w, status, body)
}

// NotFound answers 404 in JSON, naming the path (never the query: it may
// hold secrets).
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
}

// probeMethods are the methods a 405's Allow header may list.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// MethodNotAllowed answers 405 in JSON with the Allow header RFC 9110
// §15.5.6 requires. chi hands a custom 405 handler no list of the path's
// methods, so the handler asks routes (the router it is installed on) for
// each method.
func MethodNotAllowed(routes chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range probeMethods {
			if routes.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allowed = append(allowed, m)
			}
		}
		list := strings.Join(allowed, ", ")
		w.Header().Set("Allow", list)
		WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, list))
	}
}

// NewRouter is a chi router whose 404 and 405 answers are JSON. Add the
// middleware stack with Use before the routes, as chi requires.
func NewRouter() *chi.Mux {
	r := chi.NewRouter()
	r.NotFound(NotFound)
	r.MethodNotAllowed(MethodNotAllowed(r))
	return r
}
