package allinone

import (
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/alert"
	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/score"
)

func TestAlertLines(t *testing.T) {
	if got := alertLines(alertlive.ActiveAnswer{}); got != "alerts: none evaluated yet\n" {
		t.Errorf("nothing evaluated: %q", got)
	}
	at := time.Date(2026, 12, 6, 4, 30, 0, 0, time.UTC)
	fired := at.Add(-2 * time.Minute)
	a := alertlive.ActiveAnswer{At: &at, Alerts: []alertlive.ActiveAlert{
		{Rule: "stutter-uv-high", State: "firing", ActiveAt: at.Add(-4 * time.Minute), FiredAt: &fired,
			Labels: alert.Labels{{Name: "vendor", Value: "cdn-b"}, {Name: "province", Value: "guangdong"}, {Name: "isp", Value: "telecom"}, {Name: "severity", Value: "critical"}, {Name: "team", Value: "cdn"}}},
		{Rule: "stutter-uv-total-high", State: "pending", ActiveAt: at, Labels: alert.Labels{{Name: "severity", Value: "warning"}}},
	}}
	want := "alerts (through 04:30):  FIRING stutter-uv-high cdn-b×guangdong×telecom since 04:28  (1 pending)\n"
	if got := alertLines(a); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestScoreWatch(t *testing.T) {
	reason := "alert stutter-uv-high"
	qb := 86.0  // cdn-b's quality in guangdong/telecom (demand 200)
	qbj := 90.0 // cdn-b's in beijing/unicom (demand 20)
	tab := func(min int, b float64, blacklisted bool) *score.Table {
		q, qj := qb, qbj
		vb := score.VendorScore{Vendor: "cdn-b", Ratio: b, Blacklisted: blacklisted, Quality: &q}
		if blacklisted {
			vb.Reason = &reason
		}
		return &score.Table{At: time.Date(2026, 12, 6, 4, min, 0, 0, time.UTC), Regions: []score.Region{
			{Province: "guangdong", ISP: "telecom", DemandMbps: 200, Vendors: []score.VendorScore{{Vendor: "cdn-a", Ratio: 1 - b}, vb}},
			{Province: "beijing", ISP: "unicom", DemandMbps: 20, Vendors: []score.VendorScore{{Vendor: "cdn-a", Ratio: 0.5}, {Vendor: "cdn-b", Ratio: 0.5, Quality: &qj}}},
		}}
	}
	var w scoreWatch
	if got := w.lines(tab(1, 0.5, false)); !strings.Contains(got, "2 regions") {
		t.Errorf("first table: %q", got)
	}
	// 0.5 → 0.47: below the 5-point threshold; the quality move where the
	// traffic is is named: cdn-b's 86 → 79 in guangdong/telecom (7 × 200),
	// not its 90 → 78 in beijing/unicom (12 × 20); cdn-a has no quality.
	qb, qbj = 79, 78
	if got, want := w.lines(tab(2, 0.47, false)), "scores: table for 04:02, no ratio moved 5 points since 04:01; largest quality move where the traffic is: cdn-b×guangdong×telecom 86→79\n"; got != want {
		t.Errorf("small move:\n got %q\nwant %q", got, want)
	}
	got := w.lines(tab(3, 0, true))
	want := "scores: table for 04:03, ratios changed since 04:02 in 1 region(s):\n  guangdong×telecom: cdn-a 53%→100%, cdn-b 47%→0% (blacklisted: alert stutter-uv-high)\n"
	if got != want {
		t.Errorf("blacklisted:\n got %q\nwant %q", got, want)
	}
	got = w.lines(tab(4, 0.5, false))
	if !strings.Contains(got, "cdn-b 0%→50% (back from the blacklist)") || strings.Contains(got, "beijing") {
		t.Errorf("back: %q", got)
	}
	// Nothing moved, quality included: no quality note.
	if got, want := w.lines(tab(5, 0.5, false)), "scores: table for 04:05, no ratio moved 5 points since 04:04\n"; got != want {
		t.Errorf("still:\n got %q\nwant %q", got, want)
	}
}
