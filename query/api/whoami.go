package api

import (
	"net/http"

	"github.com/qoscope/qoscope/internal/httpx"
)

// Whoami is the answer of GET /api/v1/whoami.
type Whoami struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// whoami names the request's token and its scopes (never the secret): the
// wall shows its admin controls only for a token that may use them,
// without trying an administrative call.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	t := httpx.TokenFrom(r)
	out := Whoami{Name: t.Name, Scopes: []string{}}
	for _, sc := range t.Scopes() {
		out.Scopes = append(out.Scopes, string(sc))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
