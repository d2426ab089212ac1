package api

import (
	"net/http"
	"time"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/query"
)

// seriesParams are GET /api/v1/series's parameters.
var seriesParams = []string{"metric", "source", "group_by", "filter", "from", "to", "step"}

// DefaultSeriesSpan is from's default before to: the wall's hour.
const DefaultSeriesSpan = time.Hour

// parseSeries turns the parameters into a request: source defaults to
// client, step to 1m, to to now and from to an hour before to.
func (s *Server) parseSeries(r *http.Request) (query.SeriesRequest, error) {
	var req query.SeriesRequest
	p, err := parseParams(r, seriesParams, "filter")
	if err != nil {
		return req, err
	}
	req.Metric, req.Source, req.Step = p.str("metric"), p.str("source"), query.Step(p.str("step"))
	if req.Metric == "" {
		return req, paramError("metric", "required (GET /api/v1/metrics lists them)")
	}
	if req.Source == "" {
		req.Source = "client"
	}
	if req.Step == "" {
		req.Step = query.Step1m
	}
	req.GroupBy = p.list("group_by")
	if req.Filters, err = p.filters(); err != nil {
		return req, err
	}
	if req.From, err = p.time("from"); err != nil {
		return req, err
	}
	if req.To, err = p.time("to"); err != nil {
		return req, err
	}
	if req.To.IsZero() {
		req.To = s.now().UTC()
	}
	if req.From.IsZero() {
		req.From = req.To.Add(-DefaultSeriesSpan)
	}
	return req, nil
}

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseSeries(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	out, err := s.q.Series(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
