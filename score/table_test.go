package score

import (
	"strings"
	"testing"
)

// Two vendors of max 10 Mbps each, no quality data anywhere (level none,
// unknown quality 50), demand gd/telecom 20 + 20 = 40 and bj/unicom 5 + 5:
// 50 Mbps > 20 of capacity, so both regions are split by the maxima and
// overloaded. Both vendors are blacklisted in gd/telecom: cdn-a (first by
// name) is, cdn-b is kept as the last eligible vendor and takes it all.
// Each pool carries 25 Mbps ≥ its guarantee 0: score 0.5·0 + 0.5·0.5 = 0.25.
func TestBuildOverloadedAndLastEligible(t *testing.T) {
	c := &Contracts{Settings: DefaultSettings(), Vendors: map[string]Contract{
		"cdn-a": {MaxMbps: 10}, "cdn-b": {MaxMbps: 10},
	}}
	c.Settings.TrendMinutes = 2
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var in Input
	for _, v := range []string{"cdn-a", "cdn-b"} {
		for _, m := range []int{3, 4} {
			in.CDN = append(in.CDN,
				CDNRow{Minute: mt(12, m), Vendor: v, Province: "guangdong", ISP: "telecom", BandwidthMbps: 20},
				CDNRow{Minute: mt(12, m), Vendor: v, Province: "beijing", ISP: "unicom", BandwidthMbps: 5})
		}
	}
	bl := Blacklist{
		{Vendor: "cdn-b", Province: "guangdong", ISP: "telecom", Reason: "stalls"},
		{Vendor: "cdn-a", Province: "guangdong", ISP: "telecom", Reason: "5xx"},
		{Vendor: "cdn-a", Province: "hainan", ISP: "mobile", Reason: "no rows there"},
	}
	// Viewers whose player reports no vendor: not a vendor without a
	// contract (no warning), and no region of their own.
	in.Client = append(in.Client, ClientRow{Minute: mt(12, 4), Vendor: "unknown", Province: "guangdong", ISP: "telecom", Users: 40})
	tab := Build(&in, c, at1205, bl)
	if len(tab.Regions) != 2 {
		t.Fatalf("regions: %+v", tab.Regions)
	}
	bj, gd := tab.Regions[0], tab.Regions[1]
	if bj.Province != "beijing" || !bj.Overloaded || !near(bj.DemandMbps, 10) ||
		!near(bj.Vendors[0].Ratio, 0.5) || !near(bj.Vendors[1].Ratio, 0.5) || bj.Vendors[0].Blacklisted || bj.Vendors[1].Blacklisted {
		t.Errorf("beijing/unicom: %+v", bj)
	}
	a, b := gd.Vendors[0], gd.Vendors[1]
	if gd.Province != "guangdong" || !gd.Overloaded || !near(gd.DemandMbps, 40) ||
		!a.Blacklisted || a.Ratio != 0 || *a.Reason != "5xx" ||
		b.Blacklisted || !near(b.Ratio, 1) || !strings.Contains(*b.Reason, "last eligible vendor") {
		t.Errorf("guangdong/telecom: %+v %+v", a, b)
	}
	for _, r := range tab.Regions {
		for _, v := range r.Vendors {
			if v.Level != LevelNone || v.Quality != nil || !near(v.Score, 0.25) || !near(v.BandwidthMbps, 25) {
				t.Errorf("%s/%s %s: %+v", r.Province, r.ISP, v.Vendor, v)
			}
		}
	}
	if w := strings.Join(tab.Warnings, "\n"); !strings.Contains(w, "cdn-b in guangdong/telecom: not blacklisted") || !strings.Contains(w, "hainan/mobile: no rows") ||
		strings.Contains(w, "unknown") {
		t.Errorf("warnings: %q", tab.Warnings)
	}
}

func TestBuildWithoutRows(t *testing.T) {
	c := &Contracts{Settings: DefaultSettings(), Vendors: map[string]Contract{"cdn-a": {MaxMbps: 10}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tab := Build(&Input{}, c, at1205, nil)
	if tab.DataUntil != nil || len(tab.Regions) != 0 {
		t.Fatalf("no rows: want no data_until and no regions, got %+v", tab)
	}
}
