package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type breakdownAnswer struct {
	Volume string
	At     time.Time
	Rows   []struct {
		Dims   map[string]string
		Value  *float64
		Volume *float64
		Extra  map[string]*float64
		Final  bool
	}
}

func TestBreakdown(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, at.Add(5*time.Minute))
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			users, stutter_users, stalls) VALUES
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 10, 1, 30, 6, 9),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 1, 10, 0, 10, 4, 1),
		('2026-11-23 12:00:00', 'province,isp', map('province','beijing','isp','unicom'), 'c', 0, 10, 1, 10, 1, 2),
		('2026-11-23 12:00:00', 'province,isp', map('province','tibet','isp','mobile'), 'c', 0, 10, 1, 2, 0, 0),
		('2026-11-23 11:59:00', 'province,isp', map('province','hubei','isp','mobile'), 'c', 0, 10, 1, 50, 0, 0)`)
	// By users with min_users 5: guangdong/telecom 40 users, zero stutter
	// (40−10)/40 = 0.75, stalls 9+1 = 10, not final; beijing/unicom 10
	// users, (10−1)/10 = 0.9. tibet (2 users) is dropped; hubei is 11:59.
	var b breakdownAnswer
	f.getJSON(t, "/api/v1/breakdown", url.Values{"metric": {"zero_stutter_rate"}, "by": {"province,isp"}, "extra": {"stalls"},
		"at": {"2026-11-23T12:00:00Z"}, "sort": {"users"}, "min_users": {"5"}}, &b)
	if b.Volume != "users" || !b.At.Equal(at) || len(b.Rows) != 2 {
		t.Fatalf("breakdown: %+v", b)
	}
	r0, r1 := b.Rows[0], b.Rows[1]
	if r0.Dims["province"] != "guangdong" || r0.Dims["isp"] != "telecom" || !near(r0.Volume, 40) || !near(r0.Value, 0.75) || r0.Final || !near(r0.Extra["stalls"], 10) {
		t.Errorf("first: %+v", r0)
	}
	if r1.Dims["province"] != "beijing" || !near(r1.Value, 0.9) || !near(r1.Volume, 10) || !r1.Final {
		t.Errorf("second: %+v", r1)
	}
	// Without at: the newest minute, 12:00; by value ascending, limit 1:
	// guangdong (0.75 < 0.9 < tibet's 1.0).
	f.getJSON(t, "/api/v1/breakdown", url.Values{"metric": {"zero_stutter_rate"}, "by": {"province,isp"}, "order": {"asc"}, "limit": {"1"}}, &b)
	if !b.At.Equal(at) || len(b.Rows) != 1 || b.Rows[0].Dims["province"] != "guangdong" {
		t.Errorf("asc limit 1: %+v", b)
	}
}

func TestBreakdownBadRequests(t *testing.T) {
	f := newFixture(t, time.Date(2026, 11, 23, 12, 5, 0, 0, time.UTC))
	for _, c := range []struct {
		q          url.Values
		param, msg string
	}{
		{url.Values{"metric": {"users"}}, "by", "required"},
		{url.Values{"metric": {"users"}, "by": {"province"}, "sort": {"random"}}, "sort", "valid: users, value"},
		{url.Values{"metric": {"users"}, "by": {"province"}, "order": {"up"}}, "order", "valid: asc, desc"},
		{url.Values{"metric": {"users"}, "by": {"province"}, "limit": {"1001"}}, "limit", "between 1 and 1000"},
		{url.Values{"metric": {"users"}, "by": {"province"}, "limit": {"0"}}, "limit", "between 1 and 1000"},
		{url.Values{"metric": {"users"}, "by": {"province"}, "min_users": {"-1"}}, "min_users", "integer between 0"},
		{url.Values{"metric": {"users"}, "by": {"province"}, "extra": {"nope"}}, "metric", "no client metric"},
		{url.Values{"metric": {"users"}, "by": {"province,province"}}, "by", "listed twice"},
	} {
		code, msg, param := f.errorOf(t, "/api/v1/breakdown", c.q)
		if code != http.StatusBadRequest || param != c.param || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d param %q %q; want 400 param %q containing %q", c.q.Encode(), code, param, msg, c.param, c.msg)
		}
	}
}
