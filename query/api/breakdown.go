package api

import (
	"math"
	"net/http"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/query"
)

var breakdownParams = []string{"metric", "source", "by", "filter", "extra", "at", "sort", "order", "limit", "min_users"}

func (s *Server) parseBreakdown(r *http.Request) (query.BreakdownRequest, error) {
	var req query.BreakdownRequest
	p, err := parseParams(r, breakdownParams, "filter")
	if err != nil {
		return req, err
	}
	req.Metric, req.Source, req.Sort, req.Order = p.str("metric"), p.str("source"), p.str("sort"), p.str("order")
	if req.Metric == "" {
		return req, paramError("metric", "required (GET /api/v1/metrics lists them)")
	}
	if req.Source == "" {
		req.Source = "client"
	}
	req.By, req.Extra = p.list("by"), p.list("extra")
	if len(req.By) == 0 {
		return req, paramError("by", "required: the dimensions to rank, e.g. by=province,isp")
	}
	if req.Filters, err = p.filters(); err != nil {
		return req, err
	}
	if req.At, err = p.time("at"); err != nil {
		return req, err
	}
	if req.Limit, err = p.int("limit", 20, 1, s.cfg.Limits.MaxLimit); err != nil {
		return req, err
	}
	minUsers, err := p.int("min_users", 0, 0, math.MaxInt32)
	if err != nil {
		return req, err
	}
	req.MinUsers = uint64(minUsers)
	return req, nil
}

func (s *Server) breakdown(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseBreakdown(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	out, err := s.q.Breakdown(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
