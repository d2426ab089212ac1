package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestHistory(t *testing.T) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	f := newFixture(t, now)
	// Push connect rate: today (50+40)/(60+40) = 0.9, yesterday 80/100 =
	// 0.8, a week ago 60/100 = 0.6: DoD 0.9/0.8 − 1 = 0.125, WoW 0.9/0.6 −
	// 1 = 0.5. Audience: 2 of 10 heartbeats stalled → off-mic PV 0.2.
	f.exec(t, `INSERT INTO client_day (window_start, grouping, dims, topic, kafka_partition, version, minutes,
			pushes, pushes_ok, samples, stalled_samples) VALUES
		('2026-11-23 00:00:00', '', map(), 'c', 0, 9, 840, 60, 50, 0, 0),
		('2026-11-23 00:00:00', '', map(), 'c', 1, 9, 840, 40, 40, 0, 0),
		('2026-11-22 00:00:00', '', map(), 'c', 0, 8, 1440, 100, 80, 0, 0),
		('2026-11-16 00:00:00', '', map(), 'c', 0, 7, 1440, 100, 60, 0, 0),
		('2026-11-23 00:00:00', 'role', map('role','audience'), 'c', 0, 9, 840, 0, 0, 10, 2)`)
	var h struct {
		Columns []struct{ Key string }
		Days    []struct {
			Day   time.Time
			Final bool
			Cells map[string]struct{ Value *float64 }
		}
	}
	f.getJSON(t, "/api/v1/history", url.Values{"days": {"2"}}, &h)
	if len(h.Columns) != 19 || len(h.Days) != 2 {
		t.Fatalf("history: %d columns, %d days", len(h.Columns), len(h.Days))
	}
	today := h.Days[0]
	if !today.Day.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) || today.Final || !h.Days[1].Final {
		t.Errorf("days: %v final %v, %v final %v", today.Day, today.Final, h.Days[1].Day, h.Days[1].Final)
	}
	c := today.Cells["all.push_connect_rate"]
	if !near(c.Value, 0.9) {
		t.Errorf("push_connect_rate today = %v, want 0.9", ptr(c.Value))
	}
	if v := today.Cells["off_mic.stutter_rate_pv"].Value; !near(v, 0.2) {
		t.Errorf("off_mic.stutter_rate_pv = %v, want 0.2", ptr(v))
	}
	// Comparisons under their documented names.
	var raw struct {
		Days []struct {
			Cells map[string]struct {
				DayAgo  *float64 `json:"day_ago"`
				WeekAgo *float64 `json:"week_ago"`
				DoD     *float64 `json:"dod"`
				WoW     *float64 `json:"wow"`
			}
		}
	}
	f.getJSON(t, "/api/v1/history", url.Values{"days": {"2"}}, &raw)
	rc := raw.Days[0].Cells["all.push_connect_rate"]
	if !near(rc.DayAgo, 0.8) || !near(rc.WeekAgo, 0.6) || !near(rc.DoD, 0.125) || !near(rc.WoW, 0.5) {
		t.Errorf("comparisons: day_ago %v week_ago %v dod %v wow %v", ptr(rc.DayAgo), ptr(rc.WeekAgo), ptr(rc.DoD), ptr(rc.WoW))
	}
	// Default: 7 days, newest first.
	f.getJSON(t, "/api/v1/history", nil, &h)
	if len(h.Days) != 7 || !h.Days[6].Day.Equal(time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("default days: %d, last %v", len(h.Days), h.Days[len(h.Days)-1].Day)
	}
	for _, d := range []string{"0", "93", "7d", "99999999999999999999"} {
		code, msg, param := f.errorOf(t, "/api/v1/history", url.Values{"days": {d}})
		if code != http.StatusBadRequest || param != "days" || !strings.Contains(msg, "between 1 and 92") {
			t.Errorf("days=%s: %d %q %q", d, code, param, msg)
		}
	}
}
