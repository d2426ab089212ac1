package aggregator

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/qoscope/qoscope/schemas"
)

const (
	goodHB  = `{"v":1,"type":"heartbeat","ts":"2026-11-23T12:00:01Z","user_id":"u1","stream_id":"s1","stalled":false}`
	goodHB2 = `{"v":1,"type":"heartbeat","ts":"2026-11-23T12:00:02Z","user_id":"u2","stream_id":"s1","stalled":true}`
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func totalUsers(t *testing.T, out string) (users, samples string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"source":"client","dims":{}`) {
			i := strings.Index(l, `"users":`)
			j := strings.Index(l, `"samples":`)
			return l[i+8 : i+8+strings.IndexByte(l[i+8:], ',')], l[j+10 : j+10+strings.IndexByte(l[j+10:], ',')]
		}
	}
	t.Fatalf("no client total row in %q", out)
	return "", ""
}

func TestOfflineBadLineFailsFastWithFileLineAndField(t *testing.T) {
	in := writeFile(t, "ev.ndjson", goodHB+"\n\n"+`{"v":1,"type":"heartbeat","ts":"2026-11-23T12:00:01Z","user_id":"u1","stream_id":"s1","stalled":"no"}`+"\n"+goodHB2+"\n")
	var out bytes.Buffer
	err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{in}}, &out)
	if err == nil {
		t.Fatal("want an error")
	}
	// Line 2 is blank (skipped, still counted as a line); line 3 is bad.
	if !strings.Contains(err.Error(), in+":3: ") || !strings.Contains(err.Error(), "field stalled") {
		t.Fatalf("error %q lacks file:line and field", err)
	}
	if out.Len() != 0 {
		t.Fatal("no output on failure")
	}
}

func TestOfflineSkipBadCountsAndLogs(t *testing.T) {
	var lines []string
	lines = append(lines, goodHB)
	for range 15 {
		lines = append(lines, `{"v":1,"type":"nope","ts":1}`)
	}
	lines = append(lines, goodHB2, `not json`)
	in := writeFile(t, "ev.ndjson", strings.Join(lines, "\n")) // no final newline
	var out, log bytes.Buffer
	err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{in}, SkipBad: true, LogOutput: &log}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if u, s := totalUsers(t, out.String()); u != "2" || s != "2" {
		t.Fatalf("users %s samples %s", u, s)
	}
	l := log.String()
	if n := strings.Count(l, "skipped bad line"); n != maxLoggedBad {
		t.Fatalf("%d bad lines logged one by one, want %d:\n%s", n, maxLoggedBad, l)
	}
	if !strings.Contains(l, `"bad_lines":16`) || !strings.Contains(l, `"events":2`) || !strings.Contains(l, `"line":2`) || !strings.Contains(l, `"field":"type"`) {
		t.Fatalf("summary or detail missing:\n%s", l)
	}
}

func TestOfflineGzipMultipleInputsAndOutputFile(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(goodHB + "\n"))
	zw.Close()
	a := writeFile(t, "a.ndjson.gz", gz.String())
	b := writeFile(t, "b.ndjson", goodHB2+"\n")
	outPath := filepath.Join(t.TempDir(), "out.ndjson")
	if err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{a, b}, Output: outPath}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if u, s := totalUsers(t, string(got)); u != "2" || s != "2" {
		t.Fatalf("users %s samples %s", u, s)
	}
	// Default config: 12 client grouping sets, one key each here
	// (u1 and u2 share every dimension), plus nothing else.
	if n := strings.Count(string(got), "\n"); n != 12 {
		t.Fatalf("%d rows, want 12:\n%s", n, got)
	}
}

// One stream for all inputs vs one partition per file: the same user in two
// files counts once in the first mode and once per file in the second (the
// documented price of partition-per-file); lateness is per file there.
func TestOfflinePartitionModes(t *testing.T) {
	a := writeFile(t, "a.ndjson", goodHB+"\n"+`{"v":1,"type":"heartbeat","ts":"2026-11-23T12:15:00Z","user_id":"u9","stream_id":"s1","stalled":false}`+"\n")
	b := writeFile(t, "b.ndjson", goodHB+"\n")
	var one, per bytes.Buffer
	if err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{a, b}}, &one); err != nil {
		t.Fatal(err)
	}
	if err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{a, b}, PartitionPerFile: true}, &per); err != nil {
		t.Fatal(err)
	}
	// One stream: b's 12:00:01 event comes after 12:15:00, more than the
	// default 10 minutes of client lateness past its window, so it is late.
	if !strings.Contains(one.String(), `"source":"late","dims":{"source":"client"},"metrics":{"late_events":1}`) {
		t.Fatalf("single stream: want one late event:\n%s", one.String())
	}
	if u, _ := totalUsers(t, one.String()); u != "1" {
		t.Fatalf("single stream users %s", u)
	}
	// Per file: b is its own partition, nothing is late, u1 counts in both.
	if strings.Contains(per.String(), `"late"`) {
		t.Fatalf("per file: nothing is late:\n%s", per.String())
	}
	if u, s := totalUsers(t, per.String()); u != "2" || s != "2" {
		t.Fatalf("per-file users %s samples %s", u, s)
	}
}

func TestOfflineOptionsValidation(t *testing.T) {
	neg := Lateness{Client: time.Minute, CDN: -time.Second, Origin: time.Minute}
	err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{"-", "-"}, Lateness: &neg}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "stdin (-) given more than once") || !strings.Contains(err.Error(), "lateness.cdn: must not be negative") {
		t.Fatalf("got %v", err)
	}
	err = RunOffline(context.Background(), OfflineOptions{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "input: at least one") {
		t.Fatalf("got %v", err)
	}
	cfg := writeFile(t, "c.yaml", "grouping_sets:\n  client: [[provnce]]\n")
	err = RunOffline(context.Background(), OfflineOptions{Inputs: []string{cfg}, ConfigFile: cfg}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"provnce" is not an event field`) {
		t.Fatalf("got %v", err)
	}
	cfg = writeFile(t, "c.yaml", "latenes: 2m\n")
	err = RunOffline(context.Background(), OfflineOptions{Inputs: []string{cfg}, ConfigFile: cfg}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "latenes") {
		t.Fatalf("unknown key must fail: %v", err)
	}
}

func TestLoadConfigYAML(t *testing.T) {
	p := writeFile(t, "c.yaml", "lateness: 90s\norigin_no_data_minutes: 3\ngrouping_sets:\n  cdn: [[], [vendor, node]]\n")
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Lateness != AllLateness(90*time.Second) || c.OriginNoDataMinutes != 3 {
		t.Fatalf("%+v", c)
	}
	if !reflect.DeepEqual(c.GroupingSets.CDN, [][]string{{}, {"vendor", "node"}}) {
		t.Fatalf("cdn %v", c.GroupingSets.CDN)
	}
	if len(c.GroupingSets.Client) != 12 || len(c.GroupingSets.Origin) != 1 {
		t.Fatal("sources left out keep their defaults")
	}
	t.Setenv("QOSCOPE_AGGREGATOR_LATENESS", "30s")
	if c, err = LoadConfig(p); err != nil || c.Lateness != AllLateness(30*time.Second) {
		t.Fatalf("env override: %v %v", c.Lateness, err)
	}
	// Per source; the others keep the file's value.
	t.Setenv("QOSCOPE_AGGREGATOR_LATENESS", "cdn=45m, origin=5m")
	if c, err = LoadConfig(p); err != nil || c.Lateness != (Lateness{Client: 90 * time.Second, CDN: 45 * time.Minute, Origin: 5 * time.Minute}) {
		t.Fatalf("env override per source: %+v %v", c.Lateness, err)
	}
	t.Setenv("QOSCOPE_AGGREGATOR_LATENESS", "cdn=soon")
	if _, err = LoadConfig(p); err == nil || !strings.Contains(err.Error(), "QOSCOPE_AGGREGATOR_LATENESS") {
		t.Fatalf("bad env value must name the variable: %v", err)
	}
}

func TestLatenessYAML(t *testing.T) {
	// No file: the documented defaults.
	c, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Lateness != (Lateness{Client: 10 * time.Minute, CDN: 30 * time.Minute, Origin: 10 * time.Minute}) {
		t.Fatalf("defaults: %+v", c.Lateness)
	}
	// A map sets the sources it names; the others keep their defaults.
	c, err = LoadConfig(writeFile(t, "m.yaml", "lateness:\n  cdn: 1h\n  client: 3m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Lateness != (Lateness{Client: 3 * time.Minute, CDN: time.Hour, Origin: 10 * time.Minute}) {
		t.Fatalf("map: %+v", c.Lateness)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"lateness:\n  cnd: 1h\n", "line 2: lateness.cnd: unknown source"},
		{"lateness:\n  cdn: soon\n", "line 2: lateness.cdn: want a duration"},
		{"lateness: [1m]\n", "line 1: lateness: want a duration or a map"},
		{"lateness:\n  origin: -1m\n", "lateness.origin: must not be negative"},
		{"lateness: 200h\n", "lateness.client: 200h0m0s is more than 168h"},
	} {
		if _, err := LoadConfig(writeFile(t, "bad.yaml", bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

// The public vocabulary (docs/METRICS.md), spelled out independently of metrics.go.
func TestMetricNames(t *testing.T) {
	q := func(n string) []string { return []string{n + "_p50", n + "_p90", n + "_p99", n + "_avg"} }
	var client []string
	client = append(client, "users", "stutter_users", "stutter_users_video", "stutter_users_audio", "stutter_rate_uv",
		"zero_stutter_rate", "stalls", "stall_ms", "samples", "stalled_samples", "stutter_rate_pv", "plays", "plays_ok",
		"pull_connect_rate")
	client = append(client, q("pull_connect_ms")...)
	client = append(client, "first_frames")
	client = append(client, q("first_frame_ms")...)
	client = append(client, "fast_open_rate", "video_buffer_ms_avg", "audio_buffer_ms_avg", "play_errors", "dns_lookups",
		"dns_hit_rate", "pushes", "pushes_ok", "push_connect_rate")
	client = append(client, q("push_connect_ms")...)
	client = append(client, "push_ends", "push_drops", "push_drop_rate", "relays", "relays_failed", "relay_fail_rate")
	client = append(client, q("relay_ms")...)
	if got := MetricNames(schemas.SourceClient); !reflect.DeepEqual(got, client) {
		t.Errorf("client metrics\n got %q\nwant %q", got, client)
	}
	cdn := append([]string{"requests", "bytes", "bandwidth_mbps", "errors_4xx", "errors_4xx_rate", "errors_5xx", "errors_5xx_rate"}, q("ttfb_ms")...)
	if got := MetricNames(schemas.SourceCDN); !reflect.DeepEqual(got, cdn) {
		t.Errorf("cdn metrics %q", got)
	}
	origin := []string{"no_data", "samples", "fps_avg", "fps_min", "bitrate_kbps_avg", "bitrate_kbps_min", "rtt_ms_avg"}
	if got := MetricNames(schemas.SourceOrigin); !reflect.DeepEqual(got, origin) {
		t.Errorf("origin metrics %q", got)
	}
}
