package query

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// hostileStrings are injection-shaped and malformed values, then random
// byte strings.
func hostileStrings(n int) []string {
	out := []string{
		"", " ", "'", "\"", "`", "\\", "\\'", "' OR 1=1 --", "province' OR '1'='1", "}", "{p0:String}", "{from:DateTime}",
		"x'); DROP TABLE client_minute; --", "users FROM system.users --", "users,province", "province\n", "\x00", "\xff\xfe",
		"省份", "广东'", strings.Repeat("a", 10000), "users\t", "USERS", "stutter_rate_uv ", "1m; SELECT 1", "desc, 1", "value DESC",
		"$1", "?", "%s", "${QOSCOPE_CLICKHOUSE_DSN}",
	}
	rng := rand.New(rand.NewPCG(11, 7))
	for range n {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		out = append(out, string(b))
	}
	return out
}

// checkRefusedOrSame: err must be a *ValidationError, or the SQL must be
// the baseline's text exactly (the value went into a parameter).
func checkRefusedOrSame(t *testing.T, what, value, base string, sql string, params map[string]string, err error) {
	t.Helper()
	if err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s = %q: error is not a ValidationError: %v", what, value, err)
		}
		return
	}
	if sql != base {
		t.Errorf("%s = %q changed the SQL text:\n%s\nbaseline:\n%s", what, value, sql, base)
	}
	found := false
	for _, v := range params {
		found = found || v == escapeParam(value)
	}
	if !found && value != "" {
		t.Errorf("%s = %q accepted but not bound as a parameter: %v", what, value, params)
	}
}

func TestHostileValuesNeverChangeSQL(t *testing.T) {
	q := NewQuerier(nil, defaultCatalog(t), Options{})
	from := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	baseSeries := SeriesRequest{Source: "client", Metric: "first_frame_ms_p90", GroupBy: []string{"province"},
		Filters: []Filter{{Dim: "isp", Value: "telecom"}}, From: from, To: from.Add(time.Hour), Step: Step5m}
	seriesSQL := func(r SeriesRequest) (string, map[string]string, error) {
		p, err := q.planSeries(r)
		if err != nil {
			return "", nil, err
		}
		s := p.build(q.opts.MaxRows)
		return s.String(), s.params, nil
	}
	base, _, err := seriesSQL(baseSeries)
	if err != nil {
		t.Fatal(err)
	}
	baseBreak := BreakdownRequest{Source: "client", Metric: "zero_stutter_rate", Extra: []string{"stalls"}, By: []string{"province"},
		Filters: []Filter{{Dim: "isp", Value: "telecom"}}, Sort: "users", Order: "desc", Limit: 10}
	breakSQL := func(r BreakdownRequest) (string, map[string]string, error) {
		p, err := q.planBreakdown(r)
		if err != nil {
			return "", nil, err
		}
		s := p.build(from, 5)
		return s.String(), s.params, nil
	}
	baseB, _, err := breakSQL(baseBreak)
	if err != nil {
		t.Fatal(err)
	}

	for _, h := range hostileStrings(500) {
		// Series: every string parameter.
		for name, mut := range map[string]func(*SeriesRequest){
			"source":       func(r *SeriesRequest) { r.Source = h },
			"metric":       func(r *SeriesRequest) { r.Metric = h },
			"step":         func(r *SeriesRequest) { r.Step = Step(h) },
			"group_by":     func(r *SeriesRequest) { r.GroupBy = []string{h} },
			"filter dim":   func(r *SeriesRequest) { r.Filters = []Filter{{Dim: h, Value: "telecom"}} },
			"filter value": func(r *SeriesRequest) { r.Filters = []Filter{{Dim: "isp", Value: h}} },
		} {
			r := baseSeries
			mut(&r)
			sql, params, err := seriesSQL(r)
			checkRefusedOrSame(t, "series "+name, h, base, sql, params, err)
		}
		for name, mut := range map[string]func(*BreakdownRequest){
			"source":       func(r *BreakdownRequest) { r.Source = h },
			"metric":       func(r *BreakdownRequest) { r.Metric = h },
			"extra":        func(r *BreakdownRequest) { r.Extra = []string{h} },
			"by":           func(r *BreakdownRequest) { r.By = []string{h} },
			"sort":         func(r *BreakdownRequest) { r.Sort = h },
			"order":        func(r *BreakdownRequest) { r.Order = h },
			"filter dim":   func(r *BreakdownRequest) { r.Filters = []Filter{{Dim: h, Value: "x"}} },
			"filter value": func(r *BreakdownRequest) { r.Filters = []Filter{{Dim: "isp", Value: h}} },
		} {
			if name == "sort" && h == "" {
				continue // "" is the default sort (value), another valid statement
			}
			r := baseBreak
			mut(&r)
			sql, params, err := breakSQL(r)
			checkRefusedOrSame(t, "breakdown "+name, h, baseB, sql, params, err)
		}
	}
}

// Limits are refused with an error naming the parameter.
func TestLimitsNameTheParameter(t *testing.T) {
	q := NewQuerier(nil, defaultCatalog(t), Options{MaxLimit: 50})
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		r     SeriesRequest
		param string
	}{
		{SeriesRequest{Source: "client", Metric: "users", From: from, To: from.Add(25 * time.Hour), Step: Step1m}, "from"},
		{SeriesRequest{Source: "client", Metric: "users", From: from, To: from, Step: Step1m}, "to"},
		{SeriesRequest{Source: "client", Metric: "users", To: from, Step: Step1m}, "from"},
		{SeriesRequest{Source: "client", Metric: "users", From: from, To: from.Add(time.Hour), Step: "2m"}, "step"},
		{SeriesRequest{Source: "origin", Metric: "data_minutes", From: from, To: from.Add(time.Hour), Step: Step1m}, "step"},
		{SeriesRequest{Source: "client", Metric: "users", From: from, To: from.Add(time.Hour), Step: Step1m, GroupBy: []string{"province", "province"}}, "group_by"},
		{SeriesRequest{Source: "client", Metric: "users", From: from, To: from.Add(time.Hour), Step: Step1m, GroupBy: []string{"province"},
			Filters: []Filter{{Dim: "province", Value: "x"}}}, "filter"},
		{SeriesRequest{Source: "client", Metric: "users", From: from, To: from.Add(time.Hour), Step: Step1m,
			Filters: []Filter{{Dim: "isp", Value: "a"}, {Dim: "isp", Value: "b"}}}, "filter"},
	} {
		_, err := q.planSeries(c.r)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Param != c.param {
			t.Errorf("%+v: want a ValidationError on %s, got %v", c.r, c.param, err)
		}
	}
	for _, lim := range []int{-1, 51} {
		_, err := q.planBreakdown(BreakdownRequest{Source: "client", Metric: "users", Limit: lim})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Param != "limit" || !strings.Contains(err.Error(), "between 1 and 50") {
			t.Errorf("limit %d: %v", lim, err)
		}
	}
	if _, _, _, err := q.historyPlan(93); err == nil || !strings.Contains(err.Error(), "days") {
		t.Errorf("days 93: %v", err)
	}
}
