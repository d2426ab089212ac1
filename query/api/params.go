package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/query"
)

// paramError is a 400 naming the parameter, like query.ValidationError.
func paramError(param, reason string) error {
	return &query.ValidationError{Param: param, Reason: reason}
}

// queryLimit answers 414 for a query string over limits.max_query_bytes:
// no parameter of this API needs more, and the answer names the limit.
func (s *Server) queryLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(r.URL.RawQuery); n > s.cfg.Limits.MaxQueryBytes {
			httpx.WriteErrorWith(w, http.StatusRequestURITooLong,
				fmt.Sprintf("query string of %d bytes exceeds %d (serve.limits.max_query_bytes)", n, s.cfg.Limits.MaxQueryBytes),
				map[string]any{"param": "query"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// params are a request's query parameters, checked against the names an
// endpoint takes: an unknown name or a repeated one is a 400, so that a
// typo (grop_by) is not silently ignored.
type params struct{ v url.Values }

func parseParams(r *http.Request, names []string, repeatable ...string) (params, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return params{}, paramError("query", "malformed query string: "+err.Error())
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(names, k) {
			valid := "none"
			if len(names) > 0 {
				valid = strings.Join(names, ", ")
			}
			return params{}, &query.ValidationError{Param: k, Reason: "unknown parameter; valid: " + valid}
		}
		if len(v[k]) > 1 && !slices.Contains(repeatable, k) {
			return params{}, paramError(k, "given more than once")
		}
	}
	return params{v}, nil
}

// str is the parameter's value, "" when absent.
func (p params) str(name string) string { return p.v.Get(name) }

// list splits a comma-separated parameter; absent or empty is nil.
func (p params) list(name string) []string {
	s := p.v.Get(name)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// filters parses every filter=dim:value (repeatable; the value is all
// after the first colon).
func (p params) filters() ([]query.Filter, error) {
	var out []query.Filter
	for _, f := range p.v["filter"] {
		dim, value, ok := strings.Cut(f, ":")
		if !ok || dim == "" {
			return nil, &query.ValidationError{Param: "filter", Value: short(f), Reason: "want dimension:value, e.g. filter=vendor:cdn-b"}
		}
		out = append(out, query.Filter{Dim: dim, Value: value})
	}
	return out, nil
}

// Times are RFC 3339 or Unix seconds, between 2000 and 2100: the
// ClickHouse DateTime columns hold 1970–2106, and nothing older than the
// project is stored.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// time parses a time parameter; absent is the zero time.
func (p params) time(name string) (time.Time, error) {
	s := p.v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	var t time.Time
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < minTime.Unix() || n > maxTime.Unix() {
			return t, &query.ValidationError{Param: name, Value: short(s), Reason: "unix seconds outside 2000–2100"}
		}
		t = time.Unix(n, 0).UTC()
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return t, &query.ValidationError{Param: name, Value: short(s), Reason: "want an RFC 3339 time (2026-11-23T12:00:00Z) or unix seconds"}
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return t, &query.ValidationError{Param: name, Value: short(s), Reason: "outside 2000–2100"}
	}
	return t.UTC(), nil
}

// int parses an integer parameter within [lo, hi]; absent is def.
func (p params) int(name string, def, lo, hi int) (int, error) {
	s := p.v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, &query.ValidationError{Param: name, Value: short(s), Reason: fmt.Sprintf("want an integer between %d and %d", lo, hi)}
	}
	return n, nil
}

func short(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

// fail answers err: a validation error is a 400 naming the parameter; a
// deadline is a 503 naming the timeout; anything else a 500 whose detail
// is logged, not shown (it may contain SQL).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var v *query.ValidationError
	switch {
	case errors.As(err, &v):
		httpx.WriteErrorWith(w, http.StatusBadRequest, v.Error(), map[string]any{"param": v.Param})
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		httpx.Info(r).Error = err.Error()
		httpx.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("the query did not finish within %s (serve.query_timeout)", s.cfg.QueryTimeout))
	default:
		httpx.Info(r).Error = err.Error()
		httpx.WriteError(w, http.StatusInternalServerError, "query failed; the server log has the details (request id in X-Request-Id)")
	}
}

// withTimeout is the request's context bounded by serve.query_timeout.
func (s *Server) withTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
}
