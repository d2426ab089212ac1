package gen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedScenariosLoad(t *testing.T) {
	names := ScenarioNames()
	for _, want := range []string{"baseline", "vendor-degradation", "origin-bitrate-drop", "push-failure-spike", "origin-silent"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("scenario %s is not embedded (have %v)", want, names)
		}
	}
	for _, n := range names {
		s, err := LoadScenario(n, "")
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if s.Name != n {
			t.Errorf("scenario file %s.yaml names itself %q", n, s.Name)
		}
		if n != BaseScenario && len(s.Incidents) == 0 {
			t.Errorf("%s has no incidents", n)
		}
		if n == BaseScenario && len(s.Incidents) != 0 {
			t.Errorf("baseline has incidents")
		}
	}
}

func TestScenarioInheritsBaseline(t *testing.T) {
	s, err := ParseScenario([]byte("name: x\nusers: 123\nincidents:\n  - {from: 1m, to: 2m, origin_silent: {stream: live-0003, line: backup}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Users != 123 || s.HeartbeatInterval != 5*time.Second || len(s.Vendors) != 3 || len(s.Incidents) != 1 {
		t.Fatalf("users %d, heartbeat %s, %d vendors, %d incidents", s.Users, s.HeartbeatInterval, len(s.Vendors), len(s.Incidents))
	}
	// A list replaces the baseline's list as a whole.
	s, err = ParseScenario([]byte("vendors:\n  - {name: solo, share: 1, max_mbps: 10000, guaranteed_mbps: 1, nodes_per_region: 1, stall_rate_x: 1, first_frame_x: 1, ttfb_ms: {median: 30, sigma: 0.3}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Vendors) != 1 || s.Vendors[0].Name != "solo" {
		t.Fatalf("vendors %+v", s.Vendors)
	}
}

func TestScenarioErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "users: 10\nheartbeat_intervall: 5s\n", []string{"line 2", "heartbeat_intervall"}},
		{"unknown nested key", "incidents:\n  - from: 1m\n    to: 2m\n    origin_silent: {stream: live-0001, lines: backup}\n", []string{"line 4", "lines"}},
		{"wrong type", "users: many\n", []string{"line 1 (users)", "many"}},
		{"duration without unit", "incidents:\n  - from: 3\n    to: 5m\n    origin_silent: {stream: live-0001}\n", []string{"line 2 (incidents[0].from)"}},
		{"nested wrong type", "playback:\n  rebuffer_ms: {median: fast, sigma: 0.8}\n", []string{"line 2 (playback.rebuffer_ms.median)", "fast"}},
		{"bad vendor", "incidents:\n  - {from: 1m, to: 2m, cdn_degradation: {vendor: cdn-x}}\n", []string{"incidents[0].cdn_degradation.vendor", "cdn-x"}},
		{"bad province", "incidents:\n  - {from: 1m, to: 2m, cdn_degradation: {vendor: cdn-a, province: atlantis}}\n", []string{"incidents[0].cdn_degradation.province", "atlantis"}},
		{"two kinds", "incidents:\n  - {from: 1m, to: 2m, origin_silent: {stream: live-0001}, push_failure: {connect_fail_rate: 0.5}}\n", []string{"incidents[0]", "exactly one of"}},
		{"empty window", "incidents:\n  - {from: 5m, to: 2m, origin_silent: {stream: live-0001}}\n", []string{"incidents[0].to"}},
		{"bad rate", "playback:\n  audio_share: 1.5\n", []string{"playback.audio_share"}},
		{"bad line", "incidents:\n  - {from: 1m, to: 2m, origin_silent: {stream: live-0001, line: tertiary}}\n", []string{"incidents[0].origin_silent.line", "tertiary"}},
		{"bad factor", "incidents:\n  - {from: 1m, to: 2m, origin_bitrate_drop: {stream: live-0001, factor: 2}}\n", []string{"incidents[0].origin_bitrate_drop.factor"}},
		{"zero weights", "isps:\n  - {name: telecom, weight: 0}\n", []string{"isps: weights sum to zero"}},
		{"duplicate province", "provinces:\n  - {name: beijing, weight: 1}\n  - {name: beijing, weight: 2}\n", []string{"provinces[1].name", "twice"}},
		{"bad co-host mic time", "push:\n  cohost_mic_s: {median: -5}\n", []string{"push.cohost_mic_s.median: must be positive"}},
		{"two documents", "users: 1\n---\nusers: 2\n", []string{"exactly one YAML document"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestScenarioFileAndUnknownName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(p, []byte("description: custom\nusers: 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadScenario("", p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Users != 50 || s.Name != p[:len(p)-len(".yaml")] {
		t.Fatalf("users %d name %q", s.Users, s.Name)
	}
	if _, err := LoadScenario("no-such-scenario", ""); err == nil || !strings.Contains(err.Error(), "vendor-degradation") {
		t.Fatalf("unknown scenario error %v should list the embedded ones", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("users: -1\n"), 0o644)
	if _, err := LoadScenario("", bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "users: must be positive") {
		t.Fatalf("error %v should name the file and the key", err)
	}
}

func TestWorldRejectsWhatTheIPTableLacks(t *testing.T) {
	sc, err := ParseScenario([]byte("provinces:\n  - {name: beijing, weight: 1}\n  - {name: guangdong, weight: 1}\n  - {name: atlantis, weight: 0.001}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildWorld(sc, 100, 1, mustTable(t), true); err == nil || !strings.Contains(err.Error(), "atlantis") {
		t.Fatalf("unknown province accepted: %v", err)
	}
	// An incident naming a room beyond streams.count fails at build time.
	sc, err = ParseScenario([]byte("incidents:\n  - {from: 1m, to: 2m, origin_silent: {stream: live-0099}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildWorld(sc, 100, 1, mustTable(t), true); err == nil || !strings.Contains(err.Error(), "live-0099") {
		t.Fatalf("missing stream accepted: %v", err)
	}
	// Too few users for the rooms' hosts and co-hosts.
	sc, _ = LoadScenario(BaseScenario, "")
	if _, err := buildWorld(sc, 5, 1, mustTable(t), true); err == nil || !strings.Contains(err.Error(), "users") {
		t.Fatalf("5 users for 20 rooms accepted: %v", err)
	}
}

func TestOptionsValidateNamesFlags(t *testing.T) {
	o := DefaultOptions()
	o.Mode = "slow"
	o.BatchLines = 0
	o.Target = "ftp://x"
	o.Rate = -1
	o.Gzip = true
	err := o.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"--mode", "--batch", "--target", "--token", "--rate", "--gzip"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	o = DefaultOptions()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("no output accepted: %v", err)
	}
	o.Output = "x.ndjson"
	o.Forever = true
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--forever") {
		t.Fatalf("--forever in fast mode accepted: %v", err)
	}
	o = DefaultOptions()
	o.Target, o.Token = "http://127.0.0.1:8080", "t0123456789abcdef"
	o.Start = DefaultStart
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--start") {
		t.Fatalf("--start in realtime mode accepted: %v", err)
	}
}

func TestUsersForRate(t *testing.T) {
	sc, err := LoadScenario(BaseScenario, "")
	if err != nil {
		t.Fatal(err)
	}
	// Per playing user: 1/5 heartbeats + 1/10 CDN records per second; with
	// watch mean 360·e^0.5 ≈ 594 s and gap 20·e^0.5 ≈ 33 s a slot plays
	// 94.7% of the time, so ≈ 0.29 events/s per user, plus 20 rooms × 2
	// lines / 5 s = 8 origin_stats/s: 1,000 events/s ≈ 3,400 users.
	n := usersForRate(sc, sc.HeartbeatInterval, 1000)
	if n < 3200 || n > 3600 {
		t.Fatalf("usersForRate(1000) = %d, want about 3,400", n)
	}
}
