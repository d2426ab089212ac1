package api

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
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
