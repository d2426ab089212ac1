package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/alert"
	alertlive "github.com/qoscope/qoscope/alert/live"
)

// qoscope query prints the API's answer as an aligned table, or as JSON,
// and an error answer as an error with the server's message.
func TestQueryCLITable(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, at.Add(5*time.Minute))
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users) VALUES
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 1, 1, 40, 10),
		('2026-11-23 12:00:00', 'province,isp', map('province','beijing','isp','unicom'), 'c', 0, 1, 0, 10, 1)`)
	var out bytes.Buffer
	o := QueryOptions{Endpoint: "breakdown", URL: f.ts.URL, Token: readToken, Stdout: &out,
		Params: url.Values{"metric": {"stutter_rate_uv"}, "by": {"province,isp"}}}
	if err := Query(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// By value, highest first: guangdong 10/40 = 0.25, beijing 1/10 = 0.1.
	want := "# stutter_rate_uv at 2026-11-23 12:00\n" +
		"province   isp      stutter_rate_uv  users  state\n" +
		"guangdong  telecom  0.25             40     final\n" +
		"beijing    unicom   0.1              10     provisional\n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	// A series of a rate says, per point, what it is over: guangdong's
	// telecom users, 10 of 40 stuttering.
	out.Reset()
	so := QueryOptions{Endpoint: "series", URL: f.ts.URL, Token: readToken, Stdout: &out,
		Params: url.Values{"metric": {"stutter_rate_uv"}, "group_by": {"province"}, "filter": {"isp:telecom"},
			"from": {"2026-11-23T12:00:00Z"}, "to": {"2026-11-23T12:01:00Z"}}}
	if err := Query(context.Background(), so); err != nil {
		t.Fatal(err)
	}
	want = "time              province   stutter_rate_uv (ratio)  of (users)  state\n" +
		"2026-11-23 12:00  guangdong  0.25                     40          final\n"
	if out.String() != want {
		t.Errorf("series table:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	o.JSON = true
	if err := Query(context.Background(), o); err != nil || !strings.HasPrefix(out.String(), `{"source":"client","metric":"stutter_rate_uv"`) {
		t.Errorf("json: %v %s", err, out.String())
	}
	o.Params = url.Values{"metric": {"nope"}, "by": {"province"}}
	if err := Query(context.Background(), o); err == nil || !strings.Contains(err.Error(), `400 Bad Request: metric "nope": no client metric`) {
		t.Errorf("error answer: %v", err)
	}
	o.Token = ""
	if err := Query(context.Background(), o); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("no token: %v", err)
	}
}

// qoscope query scores prints a line per region and vendor from the live
// table: cdn-a alone in guangdong/telecom with 75,000,000 bytes in the
// minute before now, 75e6 · 8 / 60 / 10⁶ = 10 Mbit/s, takes all of it; no
// client rows, so no quality at any level.
func TestQueryCLIScores(t *testing.T) {
	now := time.Now().UTC()
	f := newFixture(t, now, withScores(t))
	f.steerable(t, now)
	if err := f.srv.Scores().Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := QueryOptions{Endpoint: "scores", URL: f.ts.URL, Token: readToken, Stdout: &out, Params: url.Values{"province": {"guangdong"}}}
	if err := Query(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "# scores at "+now.Truncate(time.Minute).Format("2006-01-02 15:04")) || !strings.Contains(lines[0], "1 region(s)") {
		t.Fatalf("table:\n%s", out.String())
	}
	f1 := strings.Fields(lines[2])
	if len(f1) < 9 || f1[0] != "guangdong" || f1[1] != "telecom" || f1[3] != "cdn-a" || f1[4] != "100.0%" || f1[6] != "-" || f1[7] != "none" || f1[8] != "10" {
		t.Errorf("cdn-a's line %q: want guangdong telecom … cdn-a 100.0%% … - none 10 (Mbit/s)", lines[2])
	}
}

// qoscope query alerts prints the active alerts with their diagnosis, and
// the history's changes, from the API's own answer types.
func TestQueryCLIAlerts(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 9, 0, 0, time.UTC)
	fired, v, users := at.Add(-time.Minute), 0.652, int64(34)
	active := alertlive.ActiveAnswer{At: &at, Alerts: []alertlive.ActiveAlert{{
		Rule: "stutter-uv-high", State: "firing", Severity: "critical", ActiveAt: fired, FiredAt: &fired, Value: &v, Users: &users, Action: "blacklist",
		Labels:    alert.Labels{{Name: "alertname", Value: "stutter-uv-high"}, {Name: "vendor", Value: "cdn-b"}, {Name: "province", Value: "guangdong"}, {Name: "severity", Value: "critical"}},
		Diagnosis: []alertlive.Cause{{Text: "cdn-b×guangdong×telecom: 65 % over 34 users"}},
	}}}
	history := alertlive.HistoryAnswer{Changes: []alertlive.HistoryChange{{At: fired, Rule: "stutter-uv-high", State: "firing", Value: &v, Users: &users,
		Labels: alert.Labels{{Name: "vendor", Value: "cdn-b"}}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/alerts" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Has("from") {
			_ = json.NewEncoder(w).Encode(history)
			return
		}
		_ = json.NewEncoder(w).Encode(active)
	}))
	defer srv.Close()
	var out bytes.Buffer
	o := QueryOptions{Endpoint: "alerts", URL: srv.URL, Token: readToken, Stdout: &out}
	if err := Query(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want := "# 1 active after minute 2026-12-06 10:09\n" +
		"state   severity  rule             labels                           since  value  users  action\n" +
		"firing  critical  stutter-uv-high  vendor=cdn-b province=guangdong  10:08  0.652  34     blacklist\n" +
		"  cause: cdn-b×guangdong×telecom: 65 % over 34 users\n"
	if out.String() != want {
		t.Errorf("active:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	o.Params = url.Values{"from": {"2026-12-06T10:00:00Z"}, "to": {"2026-12-06T11:00:00Z"}}
	if err := Query(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want = "minute            state   rule             labels        value  users\n" +
		"2026-12-06 10:08  firing  stutter-uv-high  vendor=cdn-b  0.652  34\n"
	if out.String() != want {
		t.Errorf("history:\n%s\nwant:\n%s", out.String(), want)
	}
}
