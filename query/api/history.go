package api

import (
	"net/http"

	"github.com/qoscope/qoscope/internal/httpx"
)

// DefaultHistoryDays is history's default: a week, today included.
const DefaultHistoryDays = 7

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, []string{"days"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	days, err := p.int("days", DefaultHistoryDays, 1, s.cfg.Limits.MaxHistoryDays)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	out, err := s.q.History(ctx, days)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
