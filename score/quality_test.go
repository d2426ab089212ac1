package score

import (
	"math"
	"testing"
	"time"
)

func testSettings() Settings {
	s := DefaultSettings()
	s.HalfLife = 2 * time.Minute
	s.Lookback = 10 * time.Minute
	s.MinUsers = 30
	s.Regions = DefaultRegions()
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

var at1205 = time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC)

func mt(hh, mm int) time.Time { return time.Date(2026, 11, 20, hh, mm, 0, 0, time.UTC) }

func TestDecayWeight(t *testing.T) {
	s := testSettings() // half-life 2m, lookback 10m
	for _, tc := range []struct {
		minute time.Time
		w      float64
		ok     bool
	}{
		{mt(12, 4), 1, true},                  // closed exactly at 12:05: age 0
		{mt(12, 2), 0.5, true},                // age 2m = one half-life
		{mt(12, 0), 0.25, true},               // age 4m
		{mt(11, 55), math.Pow(2, -4.5), true}, // age 9m
		{mt(11, 54), 0, false},                // age 10m: outside the lookback
		{mt(12, 5), 0, false},                 // still open at 12:05
		{mt(12, 7), 0, false},                 // future
	} {
		w, ok := decayWeight(tc.minute, at1205, &s)
		if ok != tc.ok || !near(w, tc.w) {
			t.Errorf("minute %s: got (%v, %v), want (%v, %v)", tc.minute.Format("15:04"), w, ok, tc.w, tc.ok)
		}
	}
}

func TestQualityFormula(t *testing.T) {
	q := DefaultSettings().Quality // good 1000 ms, bad 5000 ms, penalties 100
	for _, tc := range []struct {
		name string
		s    qualitySums
		want float64
	}{
		{"fast, clean", qualitySums{users: 10, firstFrames: 10, firstFrameMS: 10 * 1000, plays: 10, playsOK: 10}, 100},
		{"faster than good is still 100", qualitySums{users: 10, firstFrames: 10, firstFrameMS: 10 * 200, plays: 10, playsOK: 10}, 100},
		// base (5000−3000)/4000 = 50; stutter 0.1 → −10; failures 0.2 → −20
		{"mid with penalties", qualitySums{users: 10, stutterUsers: 1, firstFrames: 10, firstFrameMS: 10 * 3000, plays: 10, playsOK: 8}, 20},
		// 100 − 50 − 60 < 0
		{"clamped at 0", qualitySums{users: 10, stutterUsers: 5, firstFrames: 4, firstFrameMS: 4 * 500, plays: 10, playsOK: 4}, 0},
		{"slower than bad", qualitySums{users: 10, firstFrames: 10, firstFrameMS: 10 * 6000, plays: 10, playsOK: 10}, 0},
		{"no first frame", qualitySums{users: 10, plays: 0}, 0},
		// no plays seen: no failure penalty; base (5000−2000)/4000 = 75
		{"no plays", qualitySums{users: 10, firstFrames: 2, firstFrameMS: 4000}, 75},
	} {
		if got := q.score(&tc.s); !near(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Two minutes of one region, weights 1 (12:04) and 0.5 (12:02):
// users 10 + 0.5·20 = 20, stutter users 0 + 0.5·4 = 2 → 0.1 → −10;
// first frames 10 + 0.5·10 = 15, ms 10·1000 + 0.5·10·5000 = 35000 → mean
// 2333.3 → base (5000 − 2333.3)/4000·100 = 66.667; plays 10 + 5 = 15, ok
// 10 + 0.5·5 = 12.5 → failures 1/6 → −16.667. Quality 66.667 − 10 − 16.667 = 40.
func TestQualityDecaysEachMinute(t *testing.T) {
	s := testSettings()
	s.MinUsers = 20
	rows := []ClientRow{
		{Minute: mt(12, 4), Vendor: "a", Province: "guangdong", ISP: "telecom", Users: 10, FirstFrames: 10, FirstFrameMSSum: 10000, Plays: 10, PlaysOK: 10},
		{Minute: mt(12, 2), Vendor: "a", Province: "guangdong", ISP: "telecom", Users: 20, StutterUsers: 4, FirstFrames: 10, FirstFrameMSSum: 50000, Plays: 10, PlaysOK: 5},
		{Minute: mt(12, 5), Vendor: "a", Province: "guangdong", ISP: "telecom", Users: 1000, FirstFrames: 1000, FirstFrameMSSum: 1e9}, // open minute: ignored
	}
	ro := regionIndex(s.Regions)
	qi := buildQuality(rows, at1205, &s, ro)
	q, lvl, ok := qi.lookup("a", regionKey{"guangdong", "telecom"}, &s, ro)
	if !ok || lvl != LevelProvinceISP || !near(q, 40) {
		t.Fatalf("got (%v, %s, %v), want (40, province_isp, true)", q, lvl, ok)
	}
	// The decayed user count is exactly 20: one more required and the
	// region has no level at all.
	s.MinUsers = 20.5
	if _, lvl, ok := qi.lookup("a", regionKey{"guangdong", "telecom"}, &s, ro); ok || lvl != LevelNone {
		t.Fatalf("above the threshold: got (%s, %v), want (none, false)", lvl, ok)
	}
}

// Threshold 30 users, every row at 12:04 (weight 1), no stutter or failures,
// so each quality is (5000 − mean first frame)/40:
//
//	gd/telecom 40 users, 1000 ms          → 100 at province_isp
//	gd/unicom   5 users, 5000 ms          → province gd: 45 users, (40·1000+5·5000)/45 = 1444.4 ms → 88.889
//	fj/mobile   5 users, 3000 ms          → region south (gd+fj): 50 users, 80000/50 = 1600 ms → 85
//	bj/telecom  5 users, 5000 ms          → north has 5 users → country
//	hk/telecom  5 users, 1000 ms          → in no big region → country
//	country: 60 users, 110000/60 = 1833.3 ms → 79.1667
func TestQualityFallback(t *testing.T) {
	s := testSettings()
	row := func(v, p, isp string, users, ffMS float64) ClientRow {
		return ClientRow{Minute: mt(12, 4), Vendor: v, Province: p, ISP: isp, Users: users, FirstFrames: users, FirstFrameMSSum: users * ffMS, Plays: users, PlaysOK: users}
	}
	rows := []ClientRow{
		row("a", "guangdong", "telecom", 40, 1000),
		row("a", "guangdong", "unicom", 5, 5000),
		row("a", "fujian", "mobile", 5, 3000),
		row("a", "beijing", "telecom", 5, 5000),
		row("a", "hongkong", "telecom", 5, 1000),
		row("b", "beijing", "telecom", 5, 1000),
	}
	ro := regionIndex(s.Regions)
	qi := buildQuality(rows, at1205, &s, ro)
	country := (5000 - 110000.0/60) / 40
	for _, tc := range []struct {
		vendor, province, isp string
		q                     float64
		lvl                   Level
	}{
		{"a", "guangdong", "telecom", 100, LevelProvinceISP},
		{"a", "guangdong", "unicom", (5000 - 65000.0/45) / 40, LevelProvince},
		{"a", "guangdong", "mobile", (5000 - 65000.0/45) / 40, LevelProvince}, // no rows of its own
		{"a", "fujian", "mobile", 85, LevelRegion},
		{"a", "guangxi", "unicom", 85, LevelRegion}, // south, no rows in the province
		{"a", "beijing", "telecom", country, LevelCountry},
		{"a", "hongkong", "telecom", country, LevelCountry},
		{"a", "shanghai", "telecom", country, LevelCountry},
		{"b", "beijing", "telecom", 0, LevelNone},
		{"c", "beijing", "telecom", 0, LevelNone}, // a vendor never seen
	} {
		q, lvl, ok := qi.lookup(tc.vendor, regionKey{tc.province, tc.isp}, &s, ro)
		if lvl != tc.lvl || ok != (tc.lvl != LevelNone) || !near(q, tc.q) {
			t.Errorf("%s in %s/%s: got (%v, %s, %v), want (%v, %s)", tc.vendor, tc.province, tc.isp, q, lvl, ok, tc.q, tc.lvl)
		}
	}
}

func TestQualityRowsWithUnknownDims(t *testing.T) {
	s := testSettings()
	s.MinUsers = 10
	rows := []ClientRow{
		{Minute: mt(12, 4), Vendor: "a", Province: "guangdong", ISP: "unknown", Users: 10, FirstFrames: 10, FirstFrameMSSum: 10000},
		{Minute: mt(12, 4), Vendor: "a", Province: "unknown", ISP: "telecom", Users: 10, FirstFrames: 10, FirstFrameMSSum: 50000},
	}
	ro := regionIndex(s.Regions)
	qi := buildQuality(rows, at1205, &s, ro)
	// guangdong/unknown counts for guangdong (100), not for a guangdong/unknown region.
	if q, lvl, _ := qi.lookup("a", regionKey{"guangdong", "telecom"}, &s, ro); lvl != LevelProvince || !near(q, 100) {
		t.Errorf("guangdong/telecom: got (%v, %s), want (100, province)", q, lvl)
	}
	// unknown/telecom counts only for the country: (10·1000 + 10·5000)/20 = 3000 ms → 50.
	if q, lvl, _ := qi.lookup("a", regionKey{"beijing", "telecom"}, &s, ro); lvl != LevelCountry || !near(q, 50) {
		t.Errorf("beijing/telecom: got (%v, %s), want (50, country)", q, lvl)
	}
}
