package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	f := newFixture(t, time.Time{})
	var m struct {
		Sources []struct {
			Name         string
			Volume       string
			Dimensions   []string
			GroupingSets []struct{ Name string } `json:"grouping_sets"`
			Metrics      []struct {
				Name, Kind, Unit string
				OverMinutes      string `json:"over_minutes"`
			}
		}
		Steps []string
	}
	f.getJSON(t, "/api/v1/metrics", nil, &m)
	if len(m.Sources) != 3 || m.Sources[0].Name != "client" || m.Sources[1].Name != "cdn" || m.Sources[2].Name != "origin" {
		t.Fatalf("sources: %+v", m.Sources)
	}
	if !slices.Equal(m.Steps, []string{"1m", "5m", "1h", "1d"}) {
		t.Errorf("steps %v", m.Steps)
	}
	c := m.Sources[0]
	// The default client grouping sets (aggregator.DefaultGroupingSets)
	// include the total and province,isp; users merges to users_sum_of_minutes.
	var sets []string
	for _, g := range c.GroupingSets {
		sets = append(sets, g.Name)
	}
	if c.Volume != "users" || !slices.Contains(sets, "") || !slices.Contains(sets, "province,isp") || !slices.Contains(c.Dimensions, "vendor") {
		t.Errorf("client: volume %s, sets %q, dims %v", c.Volume, sets, c.Dimensions)
	}
	found := false
	for _, x := range c.Metrics {
		if x.Name == "users" {
			found = x.Kind == "count" && x.OverMinutes == "users_sum_of_minutes"
		}
	}
	if !found {
		t.Errorf("client users metric missing or wrong: %+v", c.Metrics)
	}
}

// Auth: no token 401, a token without read 403, both JSON; an unknown
// parameter is a 400 naming it.
func TestAuthAndUnknownParams(t *testing.T) {
	f := newFixture(t, time.Time{})
	for _, c := range []struct {
		token string
		code  int
		want  string
	}{{"", 401, "bearer token"}, {"wrong-token-0123456789", 401, "bearer token"}, {adminToken, 403, `may not read the query API`}} {
		code, b := f.getWith(t, c.token, "/api/v1/metrics")
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("token %q: %d %s, want %d with %q", c.token, code, b, c.code, c.want)
		}
	}
	code, msg, param := f.errorOf(t, "/api/v1/metrics", url.Values{"verbose": {"1"}})
	if code != http.StatusBadRequest || param != "verbose" || !strings.Contains(msg, "unknown parameter") {
		t.Errorf("unknown parameter: %d %q %q", code, msg, param)
	}
	// The public routes need no token.
	for _, p := range []string{"/healthz", "/readyz", "/api/v1/openapi.json"} {
		if code, b := f.getWith(t, "", p); code != 200 {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}
}
