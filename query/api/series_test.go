package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type seriesAnswer struct {
	Name    string
	Step    string
	From    time.Time
	GroupBy []string `json:"group_by"`
	Groups  []struct {
		Dims   map[string]string
		Points []struct {
			T     time.Time
			V     *float64
			Final bool
		}
	}
}

func TestSeries(t *testing.T) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	f := newFixture(t, now)
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			users, stutter_users) VALUES
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 10, 1, 8, 2),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 1, 10, 1, 12, 3),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','unicom'), 'c', 0, 10, 1, 9, 9),
		('2026-11-23 12:00:00', 'province,isp', map('province','beijing','isp','telecom'), 'c', 0, 10, 1, 4, 1),
		('2026-11-23 12:01:00', 'province,isp', map('province','beijing','isp','telecom'), 'c', 0, 11, 0, 6, 0),
		('2026-11-23 12:00:00', '', map(), 'c', 0, 10, 1, 33, 15),
		('2026-11-23 12:01:00', '', map(), 'c', 0, 11, 0, 6, 0)`)

	// group_by=province with filter isp:telecom at 1m: guangdong 12:00
	// (2+3)/(8+12) = 0.25 final; beijing 12:00 1/4 = 0.25 final, 12:01
	// 0/6 = 0 provisional. unicom is filtered out.
	var s seriesAnswer
	f.getJSON(t, "/api/v1/series", url.Values{"metric": {"stutter_rate_uv"}, "group_by": {"province"}, "filter": {"isp:telecom"},
		"from": {"2026-11-23T12:00:00Z"}, "to": {"2026-11-23T12:05:00Z"}, "step": {"1m"}}, &s)
	if s.Name != "stutter_rate_uv" || len(s.Groups) != 2 {
		t.Fatalf("series: %+v", s)
	}
	for _, g := range s.Groups {
		switch g.Dims["province"] {
		case "guangdong":
			if len(g.Points) != 1 || !near(g.Points[0].V, 0.25) || !g.Points[0].Final {
				t.Errorf("guangdong: %+v", g.Points)
			}
		case "beijing":
			if len(g.Points) != 2 || !near(g.Points[0].V, 0.25) || !g.Points[0].Final || !near(g.Points[1].V, 0) || g.Points[1].Final ||
				!g.Points[1].T.Equal(time.Date(2026, 11, 23, 12, 1, 0, 0, time.UTC)) {
				t.Errorf("beijing: %+v", g.Points)
			}
		default:
			t.Errorf("unexpected group %v", g.Dims)
		}
	}

	// The total over 5m, in unix seconds: users 33+6 = 39, named
	// users_sum_of_minutes; not final (12:01 is provisional).
	f.getJSON(t, "/api/v1/series", url.Values{"metric": {"users"}, "from": {"1795435200"}, "to": {"1795435500"}, "step": {"5m"}}, &s)
	if s.Name != "users_sum_of_minutes" || len(s.GroupBy) != 0 || len(s.Groups) != 1 || len(s.Groups[0].Points) != 1 ||
		!near(s.Groups[0].Points[0].V, 39) || s.Groups[0].Points[0].Final {
		t.Errorf("5m total: %+v", s)
	}
	// Defaults: to = now (14:00), from = an hour before: 12:00 is outside.
	f.getJSON(t, "/api/v1/series", url.Values{"metric": {"users"}}, &s)
	if s.Step != "1m" || !s.From.Equal(now.Add(-time.Hour)) || len(s.Groups) != 0 {
		t.Errorf("defaults: %+v", s)
	}
}

// Every bad parameter is a 400 naming it, and the names come from the
// catalogue.
func TestSeriesBadRequests(t *testing.T) {
	f := newFixture(t, time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC))
	for _, c := range []struct {
		q          url.Values
		param, msg string
	}{
		{url.Values{}, "metric", "required"},
		{url.Values{"metric": {"nope"}}, "metric", "valid: users,"},
		{url.Values{"metric": {"users"}, "source": {"edge"}}, "source", "valid: client, cdn, origin"},
		{url.Values{"metric": {"users"}, "group_by": {"planet"}}, "group_by", "not a client dimension; valid:"},
		{url.Values{"metric": {"users"}, "group_by": {"province,isp,vendor,platform"}}, "group_by", "no client grouping set"},
		{url.Values{"metric": {"users"}, "filter": {"isp"}}, "filter", "dimension:value"},
		{url.Values{"metric": {"users"}, "step": {"2m"}}, "step", "valid: 1m, 5m, 1h, 1d"},
		{url.Values{"metric": {"users"}, "from": {"yesterday"}}, "from", "RFC 3339"},
		{url.Values{"metric": {"users"}, "to": {"99999999999999999999"}}, "to", "RFC 3339"},
		{url.Values{"metric": {"users"}, "from": {"1900-01-01T00:00:00Z"}}, "from", "outside 2000–2100"},
		{url.Values{"metric": {"users"}, "from": {"2026-11-01T00:00:00Z"}, "to": {"2026-11-23T00:00:00Z"}}, "from", "at most 24h0m0s"},
		{url.Values{"metric": {"users"}, "step": {"1m", "5m"}}, "step", "given more than once"},
		{url.Values{"metric": {"users"}, "grop_by": {"province"}}, "grop_by", "unknown parameter; valid: metric, source, group_by"},
	} {
		code, msg, param := f.errorOf(t, "/api/v1/series", c.q)
		if code != http.StatusBadRequest || param != c.param || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d param %q %q; want 400 param %q containing %q", c.q.Encode(), code, param, msg, c.param, c.msg)
		}
	}
	// A query string over limits.max_query_bytes is a 414.
	code, _, param := f.errorOf(t, "/api/v1/series", url.Values{"metric": {strings.Repeat("x", 9000)}})
	if code != http.StatusRequestURITooLong || param != "query" {
		t.Errorf("long query: %d %q", code, param)
	}
}
