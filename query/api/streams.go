package api

import (
	"net/http"

	"github.com/qoscope/qoscope/internal/httpx"
)

func (s *Server) streams(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, []string{"at"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	at, err := p.time("at")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	out, err := s.q.Streams(ctx, at)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
