package api

import (
	"net/http"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/query"
)

// MetricsResponse is GET /api/v1/metrics: the catalogue, so that the wall
// and Grafana never hard-code metric or dimension names.
type MetricsResponse struct {
	Sources []query.SourceInfo `json:"sources"`
	Steps   []query.Step       `json:"steps"`
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, MetricsResponse{Sources: s.q.Catalog().Sources(), Steps: query.Steps})
}
