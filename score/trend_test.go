package score

import (
	"testing"
	"time"
)

func TestPredictNext(t *testing.T) {
	for _, tc := range []struct {
		ys   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{10, 20, 30, 40, 50}, 60},
		{[]float64{50, 50, 50}, 50},
		// x̄ = 2, ȳ = 20, Σ(x−x̄)(y−ȳ) = 40+20+0−20+160 = 200, Σ(x−x̄)² = 10:
		// slope 20, fit at x = 5: 20 + 20·3 = 80
		{[]float64{0, 0, 0, 0, 100}, 80},
		{[]float64{100, 80, 60, 40, 20}, 0},
		{[]float64{100, 50, 0}, 0}, // −50 clamped: bandwidth is never negative
		{[]float64{60, 80}, 100},
	} {
		if got := predictNext(tc.ys); !near(got, tc.want) {
			t.Errorf("predictNext(%v) = %v, want %v", tc.ys, got, tc.want)
		}
	}
}

// TestCDNWatermarkTrend: CDN minutes that have not arrived yet are not
// minutes without traffic (docs/SCORES.md, "Predicted bandwidth and
// demand"). trend_minutes 3, table at 12:05 unless said. cdn-a's logs are
// three minutes late: rows 12:00, 12:01, 12:02 of 10, 20, 30 Mbps in
// guangdong/telecom. cdn-b is on time: 10 Mbps at 12:02–12:04 there and
// 8 in beijing/unicom at 12:04 only (12:02 and 12:03 there had no
// traffic: cdn-b's watermark is 12:04).
//
// By hand, fit y = ȳ + b·(x − x̄) over x = 0, 1, 2 (x̄ = 1), read at
// x = 2 + h, h = min(minutes from the watermark to at, 3):
//   - cdn-a, watermark 12:02, h = 3: ȳ 20, b 10 → 20 + 10·4 = 60; current 30;
//   - cdn-b guangdong [10 10 10], h = 1 → 10; current 10;
//   - cdn-b beijing [0 0 8]: ȳ 8/3, b = ((−1)(−8/3) + (1)(16/3))/2 = 4
//     → 8/3 + 4·2 = 32/3; current 8;
//   - cdn-b's pool (global): current 18, predicted 10 + 32/3 = 62/3;
//   - demand guangdong/telecom 60 + 10 = 70, beijing/unicom 32/3.
//
// cdn_max_lag 0 puts every watermark at 12:04: cdn-a's series is
// [30 0 0], ȳ 10, b = ((−1)(20) + (1)(−10))/2 = −15 → 10 − 15·2 < 0 → 0,
// current 0, and guangdong's demand is 10.
//
// At 12:10 (cdn-a's watermark 8 minutes back) h is capped at 3: still
// 60, not the 20 + 10·9 = 110 of reading the line at 12:10 itself. cdn-b's
// watermark is then 12:04, 6 minutes back, h = 3: guangdong 10; beijing
// 8/3 + 4·4 = 56/3.
//
// cdn_max_lag 2m at 12:10: the watermarks cannot be before 12:07; cdn-a's
// series 12:05–12:07 has no row: 0 and 0; cdn-b's neither.
func TestCDNWatermarkTrend(t *testing.T) {
	var in Input
	add := func(v, province, isp string, m int, mbps float64) {
		in.CDN = append(in.CDN, CDNRow{Minute: mt(12, m), Vendor: v, Province: province, ISP: isp, BandwidthMbps: mbps})
	}
	add("cdn-a", "guangdong", "telecom", 0, 10)
	add("cdn-a", "guangdong", "telecom", 1, 20)
	add("cdn-a", "guangdong", "telecom", 2, 30)
	for m := 2; m <= 4; m++ {
		add("cdn-b", "guangdong", "telecom", m, 10)
	}
	add("cdn-b", "beijing", "unicom", 4, 8)
	type want struct{ aCur, aPred, bCur, bPred, gdDemand, bjDemand float64 }
	for _, tc := range []struct {
		name string
		lag  time.Duration
		at   time.Time
		want want
	}{
		{"cdn-a late, default lag", 30 * time.Minute, at1205, want{30, 60, 18, 62.0 / 3, 70, 32.0 / 3}},
		{"cdn_max_lag 0", 0, at1205, want{0, 0, 18, 62.0 / 3, 10, 32.0 / 3}},
		{"horizon capped", 30 * time.Minute, mt(12, 10), want{30, 60, 18, 10 + 56.0/3, 70, 56.0 / 3}},
		{"older than cdn_max_lag", 2 * time.Minute, mt(12, 10), want{0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Contracts{Settings: DefaultSettings(), Vendors: map[string]Contract{
				"cdn-a": {GuaranteedMbps: 100, MaxMbps: 1000}, "cdn-b": {GuaranteedMbps: 100, MaxMbps: 1000},
			}}
			c.Settings.TrendMinutes = 3
			c.Settings.CDNMaxLag = tc.lag
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			tab := Build(&in, c, tc.at, nil)
			if len(tab.Regions) != 2 {
				t.Fatalf("regions: %+v", tab.Regions)
			}
			bj, gd := tab.Regions[0], tab.Regions[1]
			a, b := gd.Vendors[0], gd.Vendors[1]
			got := want{a.BandwidthMbps, a.PredictedMbps, b.BandwidthMbps, b.PredictedMbps, gd.DemandMbps, bj.DemandMbps}
			w := tc.want
			if !near(got.aCur, w.aCur) || !near(got.aPred, w.aPred) || !near(got.bCur, w.bCur) || !near(got.bPred, w.bPred) ||
				!near(got.gdDemand, w.gdDemand) || !near(got.bjDemand, w.bjDemand) {
				t.Errorf("got %+v, want %+v", got, w)
			}
		})
	}
}
