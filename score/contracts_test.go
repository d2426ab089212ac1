package score

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExampleScoresFileLoads(t *testing.T) {
	c, err := LoadContracts("../deploy/config/scores.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings.HalfLife != 5*time.Minute || c.Settings.TrendMinutes != 5 || len(c.Vendors) != 3 {
		t.Fatalf("settings or vendors not read: %+v", c)
	}
	if got := c.Vendors["cdn-b"].Provinces["guangdong"]; got != (Capacity{5000, 15000}) {
		t.Fatalf("cdn-b guangdong pool: %+v", got)
	}
	if c.Vendors["cdn-b"].weight() != 1.5 || c.Vendors["cdn-a"].weight() != 1 {
		t.Fatal("weights: want 1.5 and the default 1")
	}
	// The file writes out the default regions: they must be the IP table's.
	def := DefaultRegions()
	for r, ps := range c.Settings.Regions {
		if !slices.Equal(ps, def[r]) {
			t.Errorf("region %s: file %v, ipdb %v", r, ps, def[r])
		}
	}
	if len(c.Settings.Regions) != len(def) {
		t.Errorf("regions: file has %d, ipdb %d", len(c.Settings.Regions), len(def))
	}
}

func TestDefaultRegions(t *testing.T) {
	r := regionIndex(DefaultRegions())
	for p, want := range map[string]string{"beijing": "north", "shanghai": "central", "guangdong": "south", "sichuan": "west", "hongkong": ""} {
		if r[p] != want {
			t.Errorf("%s: region %q, want %q", p, r[p], want)
		}
	}
	if len(r) != 31 {
		t.Errorf("%d provinces in big regions, want the 31 mainland ones", len(r))
	}
}

func TestContractsErrors(t *testing.T) {
	const ok = "vendors: {cdn-a: {guaranteed_mbps: 10, max_mbps: 20}}\n"
	for _, tc := range []struct{ body, want string }{
		{"", "s.yaml: vendors: at least one vendor contract is required"},
		{ok + "extra: 1", "line 2: field extra not found in type score.Contracts"},
		{"vendors: {cdn-a: {guaranteed_mbps: 10, max_mbps: 20, max: 3}}", "field max not found"},
		{"vendors: {cdn-a: {guaranteed_mbps: 100, max_mbps: 20}}", "s.yaml: vendors.cdn-a.max_mbps: 20 is below guaranteed_mbps 100"},
		{"vendors: {cdn-a: {guaranteed_mbps: -1, max_mbps: 20}}", "vendors.cdn-a.guaranteed_mbps: must be a number >= 0"},
		{"vendors: {cdn-a: {max_mbps: 0}}", "vendors.cdn-a.max_mbps: must be a positive number"},
		{"vendors: {cdn-a: {max_mbps: 10, weight: 0}}", "vendors.cdn-a.weight: must be a positive number"},
		{"vendors: {cdn-a: {max_mbps: 10, provinces: {atlantis: {max_mbps: 5}}}}", `vendors.cdn-a.provinces.atlantis.name: "atlantis" is not a province`},
		{"vendors: {cdn-a: {max_mbps: 10, provinces: {guangdong: {guaranteed_mbps: 9, max_mbps: 5}}}}", "vendors.cdn-a.provinces.guangdong.max_mbps: 5 is below guaranteed_mbps 9"},
		{ok + "settings: {half_life: 0s}", "settings.half_life: must be positive"},
		{ok + "settings: {trend_minutes: 1}", "settings.trend_minutes: must be between 2 and 60"},
		{ok + "settings: {cdn_max_lag: 90s}", "settings.cdn_max_lag: must be whole minutes between 0 and 24h"},
		{ok + "settings: {cdn_max_lag: 25h}", "settings.cdn_max_lag: must be whole minutes between 0 and 24h"},
		{ok + "settings: {quality_weight: 1}", "settings.quality_weight: must be strictly between 0 and 1"},
		{ok + "settings: {quality: {first_frame_good_ms: 3000, first_frame_bad_ms: 3000}}", "settings.quality.first_frame_bad_ms: must be greater than first_frame_good_ms"},
		{ok + "settings: {regions: {north: [beijing], south: [beijing]}}", `settings.regions.south[0]: province "beijing" is already in region "north"`},
		{ok + "settings: {unknown_quality: 101}", "settings.unknown_quality: must be between 0 and 100"},
	} {
		_, err := ParseContracts([]byte(tc.body), "s.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.body, err, tc.want)
		}
	}
}
