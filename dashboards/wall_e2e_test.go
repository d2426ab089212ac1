package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query/api"
)

// The wall end to end (docs/WALL.md "Tests"): a real `serve` on real
// ClickHouse rows, seen through real headless Chromium. Every endpoint the
// page reads is serve's own: the live scores (scores.config), the alert
// evaluator (alert.rules) with a webhook receiver (alert.notify), the
// blacklist and the silences. The minute rows are inserted as the
// aggregator writes them, and its checkpoints (testenv.Watermarks) tell the
// evaluator which minutes are complete.

const (
	readToken  = "wall-read-token-0123456789"
	adminToken = "wall-admin-token-9876543210"
	// adminName is the admin token's name, which serve records as who
	// switched a blacklist entry or created a silence.
	adminName     = "ops-alice"
	webhookSecret = "wall-webhook-secret"
	// envArtifacts names the directory for the screenshots; default a
	// temporary one. envUpdateDoc=1 also writes docs/wall.png.
	envArtifacts = "QOSCOPE_WALL_ARTIFACTS"
	envUpdateDoc = "QOSCOPE_WALL_UPDATE_DOC"
	envChromium  = "QOSCOPE_CHROMIUM"
)

// wallContracts is the scores file (docs/SCORES.md): three vendors.
const wallContracts = `vendors:
  cdn-a: {guaranteed_mbps: 100, max_mbps: 400}
  cdn-b: {guaranteed_mbps: 100, max_mbps: 400}
  cdn-c: {guaranteed_mbps: 0, max_mbps: 200}
`

// wallRules (docs/ALERTS.md "Rules"): a vendor stuttering above 10 % in a
// province × ISP is blacklisted there at the first minute; a region above
// 8 % is diagnosed by its vendors.
const wallRules = `
- name: vendor-stutter
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  above: 0.10
  min_users: 100
  for: 0
  severity: critical
  annotations: {summary: "{{ .Labels.vendor }} stutter {{ .Value | pct }} in {{ .Labels.province }}/{{ .Labels.isp }} over {{ .Users }} users"}
  action: blacklist
- name: region-stutter
  source: client
  metric: stutter_rate_uv
  group_by: [province, isp]
  above: 0.08
  min_users: 200
  for: 0
  severity: warning
  annotations: {summary: "{{ .Labels.province }}/{{ .Labels.isp }} stutter {{ .Value | pct }}"}
`

// chromium finds the browser; without one the test skips, except where
// integration tests are required (CI), where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (apt-get install chromium, which `go tool task infra:chromium` does as root; or set " + envChromium + ")"
	if os.Getenv("QOSCOPE_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browserLog collects what the page did: console errors, exceptions,
// browser-log errors and every request ("METHOD URL").
type browserLog struct {
	mu       sync.Mutex
	errors   []string
	requests []string
}

func (b *browserLog) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.errors = append(b.errors, "console."+string(ev.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.errors = append(b.errors, "exception: "+msg)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.errors = append(b.errors, "log "+string(ev.Entry.Source)+": "+ev.Entry.Text+" "+ev.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.Method+" "+ev.Request.URL)
	}
}

func (b *browserLog) snapshot() ([]string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...), append([]string(nil), b.requests...)
}

// count is how many requests were "METHOD URL-with-suffix".
func (b *browserLog) count(method, suffix string) int {
	_, reqs := b.snapshot()
	n := 0
	for _, r := range reqs {
		if m, u, _ := strings.Cut(r, " "); m == method && strings.HasSuffix(u, suffix) {
			n++
		}
	}
	return n
}

// hook is the on-call webhook receiver of alert.notify: it keeps every
// message whose signature verifies and counts those that do not.
type hook struct {
	mu   sync.Mutex
	msgs []notify.WebhookMessage
	bad  int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	var m notify.WebhookMessage
	if !notify.Verify([]byte(webhookSecret), body, r.Header.Get("X-Qoscope-Signature")) || json.Unmarshal(body, &m) != nil {
		h.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.msgs = append(h.msgs, m)
}

// unsigned is how many requests did not verify.
func (h *hook) unsigned() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad
}

// firing lists "rule vendor/province/isp" of the firing alerts received.
func (h *hook) firing() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.msgs {
		for _, a := range m.Alerts {
			if a.Status == "firing" {
				out = append(out, a.Labels["alertname"]+" "+a.Labels["vendor"]+"/"+a.Labels["province"]+"/"+a.Labels["isp"])
			}
		}
	}
	return out
}

type tileDOM struct {
	Metric, V, T, Text, Badge, Dod, Wow, Spark, Err, Over string
	Thin                                                  bool
}

type cardDOM struct {
	Stream, Line, Status, Text, Title string
}

// minuteCols are the client_minute columns the test writes.
const minuteCols = `(window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users, plays, plays_ok, first_frames, first_frame_ms_sum, first_frame_ms_hist)`

// region is one vendor × province × ISP (or, without vendor, a province ×
// ISP) of the client rows: users and stutter users per minute.
type region struct {
	vendor, province, isp string
	users, stutter        int
}

// regionRow is its client_minute row: every user plays, one play in a
// hundred fails, first frames at about 800 ms (one histogram bucket).
func regionRow(at time.Time, topic string, version int, final bool, r region) string {
	set, dims := "province,isp", fmt.Sprintf("map('province','%s','isp','%s')", r.province, r.isp)
	if r.vendor != "" {
		set, dims = "vendor,province,isp", fmt.Sprintf("map('vendor','%s','province','%s','isp','%s')", r.vendor, r.province, r.isp)
	}
	f := 0
	if final {
		f = 1
	}
	return fmt.Sprintf("('%s', '%s', %s, '%s', 0, %d, %d, %d, %d, %d, %d, %d, %d, map(331, %d))",
		at.Format(time.DateTime), set, dims, topic, version, f, r.users, r.stutter, r.users, r.users-r.users/100, r.users, r.users*800, r.users)
}

func TestWallInChromium(t *testing.T) {
	browser := chromium(t)
	env := testenv.ClickHouse(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	insert := func(query string, args ...any) {
		t.Helper()
		if err := env.Conn.Exec(ctx, fmt.Sprintf(query, args...)); err != nil {
			t.Fatal(err)
		}
	}
	ts := func(d time.Time) string { return d.Format(time.DateTime) }

	// serve's configuration: the scores, the rules, the webhook.
	dir := t.TempDir()
	cfg := api.DefaultConfig()
	cfg.Tokens = []httpx.TokenConfig{{Name: "wall", Token: readToken, Scopes: []string{"read"}},
		{Name: adminName, Token: adminToken, Scopes: []string{"read", "admin"}}}
	cfg.Live.Poll = 200 * time.Millisecond
	cfg.Scores.Config = filepath.Join(dir, "scores.yaml")
	// A rebuild every 2 s instead of every minute, so the alert's blacklist
	// entry is applied within seconds; no Kafka topic.
	cfg.Scores.Interval, cfg.Scores.KafkaTopic = 2*time.Second, ""
	cfg.Alert.Rules = filepath.Join(dir, "rules.yaml")
	cfg.Alert.Evaluation.Interval = 200 * time.Millisecond
	on := &hook{}
	receiver := httptest.NewServer(on)
	defer receiver.Close()
	cfg.Alert.Notify.Tick = 200 * time.Millisecond
	cfg.Alert.Notify.Receivers = []notify.ReceiverConfig{{Name: "oncall", Type: notify.TypeWebhook, URL: receiver.URL,
		Secret: webhookSecret, GroupWait: 500 * time.Millisecond}}
	for name, body := range map[string]string{cfg.Scores.Config: wallContracts, cfg.Alert.Rules: wallRules} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// No brokers: the evaluator runs in single-instance mode (docs/ALERTS.md "Live").
	if len(cfg.Alert.Brokers) != 0 {
		t.Fatalf("alert brokers %v", cfg.Alert.Brokers)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	topic := cfg.Alert.Topics.Client

	// Which minute the wall shows (docs/WALL.md "Which minute"): the newest
	// minute that has ended. Here the rows' newest minute is now, the minute
	// in progress (the aggregator writes it every few seconds), so every
	// panel must show shown = now − 1 min, provisional, and nothing of now.
	shown := now.Add(-time.Minute)

	// The client rows of the headline tiles. The shown minute
	// (provisional): 1000 users, 30 with a stall → stutter 3 %,
	// zero-stutter 97 %; 85 of 100 first frames ≤ 1 s → 85 %; pull 114/120 =
	// 95 %; push 19/20 = 95 %; drops 1/10 = 10 %. The nine minutes before it:
	// final, 900 + 10·i users. Yesterday's same minute: 800 users, 16
	// stutter (2 %); last week's: 1250 users, 50 stutter (4 %). The minute
	// in progress, 20 seconds of it: 200 users, 60 stutter (30 %), 20 % fast
	// opens, slower first frames, pull 60/120 = 50 %, push 5/20 = 25 %,
	// drops 5/10 = 50 %: none of it may reach a tile.
	const cols = `(window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users, first_frames, first_frame_ms_hist, fast_opens, plays, plays_ok, pushes, pushes_ok, push_ends, push_drops)`
	hist := "map(311, 50, 345, 35, 390, 15)"
	inProgress := func(version int) string {
		return fmt.Sprintf("('%s', '', map(), '%s', 0, %d, 0, 200, 60, 100, map(345, 20, 420, 80), 20, 120, 60, 20, 5, 10, 5)", ts(now), topic, version)
	}
	var rows []string
	for i := 0; i < 9; i++ {
		rows = append(rows, fmt.Sprintf("('%s', '', map(), '%s', 0, 1, 1, %d, 20, 100, %s, 90, 100, 99, 10, 10, 5, 0)", ts(shown.Add(time.Duration(i-9)*time.Minute)), topic, 900+10*i, hist))
	}
	rows = append(rows,
		fmt.Sprintf("('%s', '', map(), '%s', 0, 1, 0, 1000, 30, 100, %s, 85, 120, 114, 20, 19, 10, 1)", ts(shown), topic, hist),
		fmt.Sprintf("('%s', '', map(), '%s', 0, 1, 1, 800, 16, 100, %s, 90, 100, 99, 10, 10, 5, 0)", ts(shown.Add(-24*time.Hour)), topic, hist),
		fmt.Sprintf("('%s', '', map(), '%s', 0, 1, 1, 1250, 50, 100, %s, 90, 100, 99, 10, 10, 5, 0)", ts(shown.Add(-7*24*time.Hour)), topic, hist),
		inProgress(1),
	)
	insert("INSERT INTO client_minute %s VALUES %s", cols, strings.Join(rows, ", "))

	// The regions, the same in the six minutes up to the shown one (the five
	// before it final): guangdong/mobile 9 of 300 users stutter (3 %):
	// cdn-a 3 of 150 (2 %), cdn-b 6 of 150 (4 %), its worst vendor; every
	// other region at most 1 %. No rule's condition holds: vendor-stutter
	// needs > 10 % over ≥ 100 users, region-stutter > 8 % over ≥ 200.
	// Besides them, as many regions as the demo has (36 more province × ISP
	// of 60 users: cdn-a and cdn-c 30 each, tied at 0 or at 1 stutter, so no
	// worst vendor), so the layout is tested at the demo's size. The CDN's bandwidth is half a
	// Mbit/s per user (bytes · 8 / 60 s / 10⁶). In the minute in progress
	// guangdong/mobile is at 30 % (cdn-b 60 of 150): the heat map must not
	// show it.
	regions := []region{
		{"", "guangdong", "telecom", 400, 4}, {"", "guangdong", "mobile", 300, 9},
		{"", "zhejiang", "telecom", 200, 2}, {"", "jiangsu", "unicom", 100, 0},
		{"cdn-a", "guangdong", "mobile", 150, 3}, {"cdn-b", "guangdong", "mobile", 150, 6},
		{"cdn-a", "guangdong", "telecom", 200, 2}, {"cdn-b", "guangdong", "telecom", 200, 2},
		{"cdn-a", "zhejiang", "telecom", 200, 2}, {"cdn-c", "jiangsu", "unicom", 100, 0},
	}
	for i, p := range []string{"sichuan", "henan", "shandong", "hebei", "hunan", "anhui", "hubei", "fujian", "shanghai", "beijing", "shaanxi", "liaoning"} {
		for _, isp := range []string{"telecom", "mobile", "unicom"} {
			regions = append(regions, region{"", p, isp, 60, 2 * (i % 2)}, region{"cdn-a", p, isp, 30, i % 2}, region{"cdn-c", p, isp, 30, i % 2})
		}
	}
	rows = rows[:0]
	var cdnRows []string
	for m := shown.Add(-5 * time.Minute); !m.After(now); m = m.Add(time.Minute) {
		for _, r := range regions {
			if m.Equal(now) && r.province == "guangdong" && r.isp == "mobile" {
				switch r.vendor {
				case "":
					r.stutter = 90
				case "cdn-b":
					r.stutter = 60
				}
			}
			rows = append(rows, regionRow(m, topic, 1, m.Before(shown), r))
			if r.vendor != "" {
				cdnRows = append(cdnRows, fmt.Sprintf("('%s', 'vendor,province,isp', map('vendor','%s','province','%s','isp','%s'), 'd', 0, 1, %d, %d, %d)",
					ts(m), r.vendor, r.province, r.isp, b2i(m.Before(shown)), r.users*10, r.users*3_750_000))
			}
		}
	}
	insert("INSERT INTO client_minute %s VALUES %s", minuteCols, strings.Join(rows, ", "))
	insert("INSERT INTO cdn_minute (window_start, grouping, dims, topic, kafka_partition, version, final, requests, bytes) VALUES %s", strings.Join(cdnRows, ", "))
	// The worst streams of the shown minute: live-0002 6 %, live-0001 1 %;
	// live-0005's 10 of 19 users are below the panel's floor of 20; in the
	// minute in progress live-0099 at 50 %: neither may be listed.
	insert(`INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users) VALUES
		('%[1]s', 'stream_id', map('stream_id','live-0001'), '%[2]s', 0, 1, 0, 600, 6),
		('%[1]s', 'stream_id', map('stream_id','live-0005'), '%[2]s', 0, 1, 0, 19, 10),
		('%[1]s', 'stream_id', map('stream_id','live-0002'), '%[2]s', 0, 1, 0, 400, 24),
		('%[3]s', 'stream_id', map('stream_id','live-0099'), '%[2]s', 0, 1, 0, 500, 250)`, ts(shown), topic, ts(now))
	// Upstream, as in the demo 20 streams × primary and backup, at 30 fps
	// and 4000 kbit/s, but live-0003's primary line silent and live-0004's
	// backup at 10 fps. In the minute in progress live-0002's primary is at
	// 100 kbit/s and live-0003's primary is back: neither may reach a card.
	originCols := `(window_start, grouping, dims, topic, kafka_partition, version, final, samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum, no_data)`
	var origin []string
	for i := 1; i <= 20; i++ {
		for _, line := range []string{"primary", "backup"} {
			key := fmt.Sprintf("'%s', 'stream_id,line', map('stream_id','live-%04d','line','%s'), 'o', 0, 1, 0", ts(shown), i, line)
			switch {
			case i == 3 && line == "primary":
				origin = append(origin, "("+key+", 0, 0, inf, 0, inf, 0, 1)")
			case i == 4 && line == "backup":
				origin = append(origin, "("+key+", 6, 60, 9, 24000, 3900, 240, 0)")
			default:
				origin = append(origin, "("+key+", 6, 180, 29, 24000, 3900, 240, 0)")
			}
		}
	}
	origin = append(origin,
		fmt.Sprintf("('%s', 'stream_id,line', map('stream_id','live-0002','line','primary'), 'o', 0, 1, 0, 3, 90, 29, 300, 90, 120, 0)", ts(now)),
		fmt.Sprintf("('%s', 'stream_id,line', map('stream_id','live-0003','line','primary'), 'o', 0, 1, 0, 3, 90, 29, 12000, 3900, 120, 0)", ts(now)))
	insert("INSERT INTO origin_minute %s VALUES %s", originCols, strings.Join(origin, ", "))
	// The aggregator's progress: every minute before the shown one is
	// complete and final; the shown one is not complete yet (its
	// checkpoint comes with the incident). The evaluator's first start
	// begins there (nothing fires).
	wm := env.Watermarks(cfg.Alert.AggregatorGroup)
	wm.Advance(t, topic, 0, shown.Add(-time.Minute), shown.Add(-time.Minute))

	// serve.
	srv, err := api.New(cfg, api.Deps{Conn: env.Conn, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-serveDone }()
	front := "http://" + ln.Addr().String()
	base, _ := url.Parse(front)
	get := func(path, token string, v any) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, front+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK && v != nil {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	// The first scores snapshot (before it, /api/v1/scores answers 503,
	// which the browser would log as an error).
	waitFor(t, "the first scores snapshot", func() bool { return get("/api/v1/scores", readToken, nil) == http.StatusOK })

	// The browser.
	artifacts := os.Getenv(envArtifacts)
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true), chromedp.Flag("mute-audio", true), chromedp.WindowSize(1366, 768))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bl := &browserLog{}
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(bl.listen))
	defer bcancel()
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(what, expr string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			dbg, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('age').textContent + ' | ' + document.getElementById('conn').textContent + ' | ' + document.getElementById('alerts').textContent + ' | ' + document.getElementById('blacklist').textContent + ' | ' + document.getElementById('scores').textContent`))
			t.Logf("page: %s", dbg)
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		return time.Since(start)
	}
	eval := func(expr string, v any) {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string]("JSON.stringify("+expr+")"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(s), v); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	js := func(expr string) {
		t.Helper()
		run(chromedp.Evaluate[chromedp.Void](expr))
	}

	// 1. The laptop: 1366×768, token in the fragment.
	run(chromedp.EmulateViewport(1366, 768), chromedp.Navigate(front+"/#token="+readToken))
	poll("tiles filled", `document.querySelectorAll('.tile .value[data-v]:not([data-v=""])').length === 10 && [...document.querySelectorAll('.tile .wow')].every(e => e.textContent !== 'w/w —')`, 20*time.Second)
	poll("upstream cards", `document.querySelectorAll('#streams .card, #chips .card').length === 40`, 10*time.Second)
	poll("live stream connected", `document.getElementById('conn').textContent.includes('live') && !document.getElementById('conn').classList.contains('bad')`, 10*time.Second)
	poll("ratios and blacklist", `document.querySelectorAll('#scores .region').length === 12 && document.getElementById('blacklist').textContent.includes('nothing blacklisted')`, 10*time.Second)

	var href string
	eval("location.href", &href)
	if strings.Contains(href, readToken) || strings.Contains(href, "token=") {
		t.Errorf("the token stayed in the URL: %s", href)
	}

	// The tiles show the shown minute (the last ended one), its values by
	// hand from the rows above, never the minute in progress.
	hm := func(d time.Time) string { return d.Format("15:04") }
	var minute string
	eval(`document.getElementById('minute').textContent`, &minute)
	if want := "minute " + hm(shown) + " UTC (last ended) · " + hm(now) + " in progress, not shown"; minute != want {
		t.Errorf("the header says %q, want %q", minute, want)
	}
	var tiles []tileDOM
	eval(`[...document.querySelectorAll('.tile')].map(t => ({Metric: t.dataset.metric, V: t.querySelector('.value').dataset.v, T: t.querySelector('.value').dataset.t,
		Text: t.querySelector('.value').textContent, Badge: t.querySelector('.badge').textContent, Dod: t.querySelector('.dod').textContent,
		Wow: t.querySelector('.wow').textContent, Spark: t.querySelector('svg.spark').getAttribute('aria-label'),
		Err: t.querySelector('.err').hidden ? '' : t.querySelector('.err').textContent,
		Over: t.querySelector('.over').textContent, Thin: t.classList.contains('thin')}))`, &tiles)
	if len(tiles) != 10 {
		t.Fatalf("%d tiles", len(tiles))
	}
	// By hand from the rows above: the shown minute, and what the minute in
	// progress would read.
	want := map[string][3]string{
		"users":             {"1,000", "d/d ▲ +25.0 % better", "w/w ▼ −20.0 % worse"},
		"stutter_rate_uv":   {"3.00 %", "d/d ▲ +1.00 pp worse", "w/w ▼ −1.00 pp better"},
		"zero_stutter_rate": {"97.00 %", "d/d ▼ −1.00 pp worse", "w/w ▲ +1.00 pp better"},
		"fast_open_rate":    {"85.00 %", "d/d ▼ −5.00 pp worse", "w/w ▼ −5.00 pp worse"},
		"pull_connect_rate": {"95.00 %", "d/d ▼ −4.00 pp worse", "w/w ▼ −4.00 pp worse"},
		"push_connect_rate": {"95.00 %", "d/d ▼ −5.00 pp worse", "w/w ▼ −5.00 pp worse"},
		"push_drop_rate":    {"10.00 %", "d/d ▲ +10.00 pp worse", "w/w ▲ +10.00 pp worse"},
	}
	partial := map[string]string{"users": "200", "stutter_rate_uv": "30.00 %", "zero_stutter_rate": "70.00 %", "fast_open_rate": "20.00 %",
		"pull_connect_rate": "50.00 %", "push_connect_rate": "25.00 %", "push_drop_rate": "50.00 %"}
	// What each value is over, by hand from the shown minute's row: 1000
	// users, 100 first frames (plays) and as many histogram samples
	// (50 + 35 + 15), 120 pull and 20 push attempts, 10 ended pushes, which
	// are fewer than 20: that tile is dimmed. A count is over nothing.
	over := map[string]string{"users": "", "stutter_rate_uv": "of 1,000 users", "zero_stutter_rate": "of 1,000 users",
		"first_frame_ms_p50": "of 100 samples", "first_frame_ms_p90": "of 100 samples", "first_frame_ms_p99": "of 100 samples",
		"fast_open_rate": "of 100 plays", "pull_connect_rate": "of 120 attempts", "push_connect_rate": "of 20 attempts",
		"push_drop_rate": "of 10 pushes"}
	for _, tile := range tiles {
		if tile.Err != "" {
			t.Errorf("%s: %s", tile.Metric, tile.Err)
			continue
		}
		if w, ok := over[tile.Metric]; !ok || tile.Over != w || tile.Thin != (tile.Metric == "push_drop_rate") {
			t.Errorf("%s: over %q, dimmed %v; want %q, dimmed only for push_drop_rate", tile.Metric, tile.Over, tile.Thin, w)
		}
		at, err := time.Parse(time.RFC3339, tile.T)
		if err != nil || !at.Equal(shown) || tile.Badge != "provisional "+hm(shown) {
			t.Errorf("%s: minute %q, badge %q; want %s, provisional", tile.Metric, tile.T, tile.Badge, shown)
		}
		// The sparkline ends with the shown minute: the nine final minutes
		// and it, not the minute in progress.
		if !strings.HasSuffix(tile.Spark, ", 10 points") {
			t.Errorf("%s: sparkline %q, want 10 points", tile.Metric, tile.Spark)
		}
		if w, ok := want[tile.Metric]; ok {
			if tile.Text != w[0] || tile.Dod != w[1] || tile.Wow != w[2] {
				t.Errorf("%s: %q %q %q, want %q", tile.Metric, tile.Text, tile.Dod, tile.Wow, w)
			}
			if tile.Text == partial[tile.Metric] {
				t.Errorf("%s shows the minute in progress (%s)", tile.Metric, tile.Text)
			}
			continue
		}
		// The first-frame quantiles come from merged histograms: the API's
		// value of the shown minute, which differs from the minute in
		// progress (its first frames are slower).
		v := pointAt(t, front, tile.Metric, shown)
		got, err := parseFloat(tile.V)
		if err != nil || math.Abs(got-v) > 1e-9*math.Max(1, math.Abs(v)) || tile.Text != format(tile.Metric, v) {
			t.Errorf("%s: DOM %q %q, API at %s %v", tile.Metric, tile.V, tile.Text, shown, v)
		}
		if p := pointAt(t, front, tile.Metric, now); format(tile.Metric, p) == tile.Text {
			t.Errorf("%s: the minute in progress reads the same (%s): the rows do not tell the minutes apart", tile.Metric, tile.Text)
		}
	}

	// The cards of the shown minute, problems first (no data, then low
	// frame rate), the healthy lines as chips; colours carried by text too.
	type cardsDOM struct {
		Order []string
		Cards map[string]cardDOM
	}
	cards := func() cardsDOM {
		var cs []cardDOM
		eval(`[...document.querySelectorAll('#streams .card, #chips .card')].map(c => ({Stream: c.dataset.stream, Line: c.dataset.line, Status: c.dataset.status, Text: c.textContent, Title: c.title}))`, &cs)
		out := cardsDOM{Cards: map[string]cardDOM{}}
		for _, c := range cs {
			out.Order = append(out.Order, c.Stream+"/"+c.Line+" "+c.Status)
			out.Cards[c.Stream+"/"+c.Line] = c
		}
		return out
	}
	cs := cards()
	if got := strings.Join(cs.Order[:3], ", "); got != "live-0003/primary no_data, live-0004/backup low_fps, live-0001/primary ok" {
		t.Errorf("cards in order %s", got)
	}
	for _, o := range cs.Order[2:] {
		if !strings.HasSuffix(o, " ok") {
			t.Errorf("after the problems: %s", o)
		}
	}
	if c := cs.Cards["live-0001/primary"]; c.Text != "P 30.0 fps 4,000 kbit/s" || !strings.Contains(c.Title, "✓ bitrate OK") || !strings.Contains(c.Title, "RTT 40 ms") {
		t.Errorf("live-0001/primary reads %q (%q)", c.Text, c.Title)
	}
	if c := cs.Cards["live-0002/primary"]; c.Status != "ok" || c.Text != "P 30.0 fps 4,000 kbit/s" {
		t.Errorf("live-0002/primary (100 kbit/s in the minute in progress) reads %s %q", c.Status, c.Text)
	}
	if c := cs.Cards["live-0003/primary"]; !strings.Contains(c.Text, "N/A · no data this minute") {
		t.Errorf("live-0003/primary reads %q", c.Text)
	}
	if c := cs.Cards["live-0004/backup"]; !strings.Contains(c.Text, "◆ LOW FRAME RATE (< 15.0 fps)") || !strings.Contains(c.Text, "10.0 fps") {
		t.Errorf("live-0004/backup reads %q", c.Text)
	}
	var chipText string
	eval(`document.querySelector('#chips .chip[data-stream="live-0001"] .cid').textContent`, &chipText)
	if chipText != "live-0001 ✓ OK" {
		t.Errorf("live-0001's chip is headed %q", chipText)
	}
	// Every panel names the shown minute.
	var whens map[string]string
	eval(`Object.fromEntries(['streams-at', 'heat-at', 'regions-at', 'vendors-at', 'worst-at'].map(id => [id, document.getElementById(id).textContent]))`, &whens)
	for id, got := range whens {
		if want := hm(shown) + " UTC · provisional"; got != want {
			t.Errorf("#%s says %q, want %q", id, got, want)
		}
	}
	// The heat map's guangdong/mobile cell (3 %: the 2–5 % class; 30 % in
	// the minute in progress) and the worst vendor: cdn-b there; in
	// guangdong/telecom cdn-a and cdn-b tie at 1 %, so neither is marked.
	heat := func() string {
		var s string
		eval(`(c => c.className + ' ' + c.textContent)(document.querySelector('#heat [data-province="guangdong"][data-isp="mobile"]'))`, &s)
		return s
	}
	if h := heat(); h != "hc h2 3.0 %" {
		t.Errorf("heat cell guangdong/mobile: %q", h)
	}
	var worstVendor string
	eval(`[...document.querySelectorAll('#vendors .vrow.worst')].map(r => r.closest('.region').dataset.region + ':' + r.dataset.vendor).join(',')`, &worstVendor)
	if worstVendor != "guangdong / mobile:cdn-b" {
		t.Errorf("worst vendors marked: %q, want guangdong / mobile:cdn-b", worstVendor)
	}
	var worstStreams, worstHint string
	eval(`[...document.querySelectorAll('#worst tr[data-stream]')].map(r => r.dataset.stream).join(',')`, &worstStreams)
	eval(`document.getElementById('worst-hint').textContent`, &worstHint)
	if worstStreams != "live-0002,live-0001" || worstHint != "stutter UV, ≥ 20 users" {
		t.Errorf("worst streams %q under %q, want live-0002,live-0001 (live-0005 has 19 users, live-0099 is only in the minute in progress) under \"stutter UV, ≥ 20 users\"", worstStreams, worstHint)
	}
	var panels map[string]bool
	eval(`({scores: !document.getElementById('p-scores').hidden, blacklist: !document.getElementById('p-blacklist').hidden, alerts: !document.getElementById('p-alerts').hidden,
		admin: getComputedStyle(document.getElementById('admin-blacklist')).display !== 'none'})`, &panels)
	if !panels["scores"] || !panels["blacklist"] || panels["alerts"] || panels["admin"] {
		t.Errorf("panels shown: %v; want scores and blacklist, no alerts strip (none active), no admin controls (read token)", panels)
	}
	var age string
	eval(`document.getElementById('age').className`, &age)
	if age != "age fresh" {
		t.Errorf("data age class %q, want fresh", age)
	}
	// The first screen of the laptop (docs/WALL.md "Layout"): the healthy
	// lines take two rows of chips, and the province × ISP and vendors
	// panels start well above the bottom edge.
	firstScreen(t, eval, "before the incident")

	// 2. The incident, as the aggregator writes it: the next version of the
	// shown minute's rows (late events, within its lateness), cdn-b in
	// guangdong/mobile at 27 of 150 users (18 %, the region 30 of 300:
	// 10 %) and live-0001's primary line at 300 kbit/s; then its
	// checkpoint: the minute is complete.
	insert("INSERT INTO client_minute %s VALUES %s, %s", minuteCols,
		regionRow(shown, topic, 2, false, region{"cdn-b", "guangdong", "mobile", 150, 27}),
		regionRow(shown, topic, 2, false, region{"", "guangdong", "mobile", 300, 30}))
	insert(`INSERT INTO origin_minute %s VALUES ('%s', 'stream_id,line', map('stream_id','live-0001','line','primary'), 'o', 0, 2, 0, 6, 180, 29, 1800, 250, 240, 0)`, originCols, ts(shown))
	landed := time.Now()
	wm.Advance(t, topic, 0, shown, shown.Add(-time.Minute))
	red := poll("the incident's card red", `(c => !!c && c.dataset.status === 'low_bitrate')(document.querySelector('#streams .card[data-stream="live-0001"][data-line="primary"]'))`, 10*time.Second)
	// Both rules fire at this minute (for: 0); the pop-up shows them.
	popped := `!document.getElementById('popup').hidden && ['vendor-stutter', 'region-stutter'].every(r => document.querySelector('#popup .pop-alert[data-rule="' + r + '"]'))`
	poll("the alerts' pop-up", popped, 10*time.Second-time.Since(landed))
	t.Logf("after the rows landed: card red in %s, alerts popped up in %s", red.Round(time.Millisecond), time.Since(landed).Round(time.Millisecond))
	cs = cards()
	if c := cs.Cards["live-0001/primary"]; !strings.Contains(c.Text, "▼ LOW BITRATE (< 500 kbit/s)") || !strings.Contains(c.Text, "300 kbit/s ▼") {
		t.Errorf("the red card reads %q", c.Text)
	}
	if got := strings.Join(cs.Order[:4], ", "); got != "live-0001/primary low_bitrate, live-0003/primary no_data, live-0004/backup low_fps, live-0001/backup ok" {
		t.Errorf("cards in order %s", got)
	}
	poll("the heat map's top class", `(c => c.className + ' ' + c.textContent)(document.querySelector('#heat [data-province="guangdong"][data-isp="mobile"]')) === 'hc h4 10.0 % ▲'`, 10*time.Second-time.Since(landed))
	var popText, strip string
	eval(`document.getElementById('popup').textContent`, &popText)
	eval(`document.getElementById('alerts').textContent`, &strip)
	// The diagnosis by hand (docs/ALERTS.md "Diagnosis"): the region's
	// baseline over the five minutes before is 45 / 1500 = 3.0 %; cdn-b's
	// excess 27 − 150 · 0.03 = 22.5, cdn-a's 3 − 4.5 < 0: cdn-b has all of it.
	for _, w := range []string{"CRITICAL · vendor-stutter", "vendor=cdn-b province=guangdong isp=mobile", "cdn-b stutter 18.0% in guangdong/mobile over 150 users",
		"WARNING · region-stutter", "guangdong/mobile stutter 10.0%", "cdn-b × guangdong × mobile: 18 % vs 3.0 % baseline, 100 % of the excess"} {
		if !strings.Contains(popText, w) {
			t.Errorf("pop-up lacks %q: %s", w, popText)
		}
	}
	for _, w := range []string{"● FIRING critical", "vendor-stutter", "● FIRING warning", "region-stutter", "cdn-b × guangdong × mobile"} {
		if !strings.Contains(strip, w) {
			t.Errorf("alerts strip lacks %q: %s", w, strip)
		}
	}
	// The webhook receiver got the firing alerts, signed.
	waitFor(t, "the webhook's firing notifications", func() bool { return len(on.firing()) >= 2 })
	if got := strings.Join(on.firing(), ", "); !strings.Contains(got, "vendor-stutter cdn-b/guangdong/mobile") || !strings.Contains(got, "region-stutter /guangdong/mobile") || on.unsigned() != 0 {
		t.Errorf("webhook: firing %s, %d unsigned", got, on.unsigned())
	}

	// The alert's blacklist entry, applied at the next scores rebuild: the
	// blacklist lists cdn-b in guangdong/mobile by the alert, and its ratio
	// there is 0.
	poll("the alert's blacklist entry", `!!document.querySelector('#blacklist tr[data-vendor="cdn-b"][data-province="guangdong"][data-isp="mobile"][data-source="alert"]') &&
		document.querySelector('#scores .region[data-province="guangdong"][data-isp="mobile"] [data-vendor="cdn-b"]').dataset.blacklisted === 'true'`, 30*time.Second)
	var blRow, ratio string
	eval(`document.querySelector('#blacklist tr[data-vendor="cdn-b"][data-province="guangdong"][data-isp="mobile"]').textContent`, &blRow)
	if !strings.Contains(blRow, "⊘ cdn-b") || !strings.Contains(blRow, "alert vendor-stutter") || !strings.Contains(blRow, "while firing") {
		t.Errorf("blacklist row reads %q", blRow)
	}
	eval(`(e => e.dataset.ratio + ' ' + e.textContent)(document.querySelector('#scores .region[data-province="guangdong"][data-isp="mobile"] [data-vendor="cdn-b"]'))`, &ratio)
	if ratio != "0 cdn-b 0.00 % ⊘ blacklisted" {
		t.Errorf("cdn-b's ratio in guangdong/mobile reads %q", ratio)
	}
	shot(t, bctx, filepath.Join(artifacts, "wall-1366x768-popup.png"))
	js(`document.getElementById('popup-close').click()`)
	// With the alerts strip and a red card: still the strip, the tiles and
	// the start of province × ISP and vendors on the first screen.
	firstScreen(t, eval, "with the incident")
	shot(t, bctx, filepath.Join(artifacts, "wall-1366x768.png"))

	// 3. An operator with the admin token: the blacklist switch and a
	// silence. The page refuses both without a reason; nothing is posted.
	run(chromedp.Navigate(front + "/#token=" + adminToken))
	poll("admin controls", `document.body.classList.contains('admin') && getComputedStyle(document.getElementById('admin-blacklist')).display !== 'none' &&
		!!document.querySelector('#alerts li[data-rule="vendor-stutter"] button.silence')`, 15*time.Second)
	var lift int
	eval(`document.querySelectorAll('#blacklist button.lift').length`, &lift)
	if lift != 0 {
		t.Errorf("%d lift buttons; an alert's entry cannot be lifted by an operator", lift)
	}
	js(`document.getElementById('admin-blacklist').click()`)
	poll("the blacklist dialog", `!document.getElementById('dialog').hidden`, 5*time.Second)
	js(`(f => { f.vendor.value = 'cdn-a'; f.province.value = 'guangdong'; f.isp.value = 'telecom'; f.on.value = 'true'; f.querySelector('button[type=submit]').click(); })(document.getElementById('dialog-form'))`)
	var refused map[string]any
	eval(`({open: !document.getElementById('dialog').hidden, missing: document.getElementById('dialog-form').reason.validity.valueMissing})`, &refused)
	if refused["open"] != true || refused["missing"] != true {
		t.Errorf("without a reason: %v; want the dialog open and the reason marked missing", refused)
	}
	js(`(f => { f.reason.value = '   '; f.querySelector('button[type=submit]').click(); })(document.getElementById('dialog-form'))`)
	var dlgErr string
	eval(`document.getElementById('dialog-err').hidden ? '' : document.getElementById('dialog-err').textContent`, &dlgErr)
	if dlgErr != "a reason is required" || bl.count("POST", "/api/v1/admin/blacklist") != 0 {
		t.Errorf("a blank reason: error %q, %d posts; want refused in the page", dlgErr, bl.count("POST", "/api/v1/admin/blacklist"))
	}
	const opReason = "cdn-a packet loss in guangdong telecom, ticket 4711"
	js(`(f => { f.reason.value = '` + opReason + `'; f.querySelector('button[type=submit]').click(); })(document.getElementById('dialog-form'))`)
	poll("the operator's blacklist entry", `document.getElementById('dialog').hidden && !!document.querySelector('#blacklist tr[data-vendor="cdn-a"][data-province="guangdong"][data-isp="telecom"][data-source="operator"]') &&
		document.querySelector('#scores .region[data-province="guangdong"][data-isp="telecom"] [data-vendor="cdn-a"]').dataset.blacklisted === 'true'`, 15*time.Second)
	var toast string
	eval(`document.getElementById('toast').textContent`, &toast)
	if toast != "blacklisted cdn-a in guangdong / telecom" {
		t.Errorf("after the switch the page says %q", toast)
	}
	eval(`document.querySelector('#blacklist tr[data-vendor="cdn-a"][data-source="operator"]').textContent`, &blRow)
	if !strings.Contains(blRow, "operator "+adminName) || !strings.Contains(blRow, opReason) || !strings.Contains(blRow, "until switched off") {
		t.Errorf("the operator's row reads %q", blRow)
	}
	eval(`document.querySelectorAll('#blacklist tr[data-source="operator"] button.lift').length`, &lift)
	if lift != 1 || bl.count("POST", "/api/v1/admin/blacklist") != 1 {
		t.Errorf("%d lift buttons on the operator's entry, %d posts; want 1 and 1", lift, bl.count("POST", "/api/v1/admin/blacklist"))
	}
	var blAPI struct {
		Entries []struct{ Vendor, Province, ISP, Source, Reason, By string }
	}
	get("/api/v1/blacklist", readToken, &blAPI)
	if fmt.Sprint(blAPI.Entries) != fmt.Sprintf("[{cdn-b guangdong mobile alert alert vendor-stutter firing since %s alert:vendor-stutter} {cdn-a guangdong telecom operator %s %s}]",
		shown.Format(time.RFC3339), opReason, adminName) {
		t.Errorf("GET /api/v1/blacklist entries: %v", blAPI.Entries)
	}

	// The silence of the vendor's alert: one matcher per label, for an hour.
	js(`document.querySelector('#alerts li[data-rule="vendor-stutter"] button.silence').click()`)
	poll("the silence dialog", `!document.getElementById('dialog').hidden && document.getElementById('dialog-title').textContent === 'Silence vendor-stutter'`, 5*time.Second)
	js(`document.querySelector('#dialog-form button[type=submit]').click()`)
	eval(`({open: !document.getElementById('dialog').hidden, missing: document.getElementById('dialog-form').reason.validity.valueMissing})`, &refused)
	if refused["open"] != true || refused["missing"] != true || bl.count("POST", "/api/v1/admin/silences") != 0 {
		t.Errorf("a silence without a reason: %v, %d posts; want refused in the page", refused, bl.count("POST", "/api/v1/admin/silences"))
	}
	const silReason = "cdn-b blacklisted in guangdong/mobile, vendor ticket 4712"
	silenced := time.Now()
	js(`(f => { f.reason.value = '` + silReason + `'; f.querySelector('button[type=submit]').click(); })(document.getElementById('dialog-form'))`)
	poll("the silence accepted", `document.getElementById('dialog').hidden && document.querySelector('#alerts li[data-rule="vendor-stutter"]').textContent.includes('SILENCED until')`, 15*time.Second)
	var sil struct {
		Silences []struct {
			Matchers  []notify.Matcher `json:"matchers"`
			StartsAt  time.Time        `json:"starts_at"`
			EndsAt    time.Time        `json:"ends_at"`
			CreatedBy string           `json:"created_by"`
			Comment   string           `json:"comment"`
			State     string           `json:"state"`
		} `json:"silences"`
	}
	if code := get("/api/v1/silences", readToken, &sil); code != http.StatusOK || len(sil.Silences) != 1 {
		t.Fatalf("GET /api/v1/silences: %d %+v", code, sil)
	}
	s := sil.Silences[0]
	var ms []string
	for _, m := range s.Matchers {
		ms = append(ms, m.Name+m.Op+m.Value)
	}
	if strings.Join(ms, " ") != "alertname=vendor-stutter isp=mobile province=guangdong severity=critical vendor=cdn-b" ||
		s.CreatedBy != adminName || s.Comment != silReason || s.State != "active" ||
		s.EndsAt.Before(silenced.Add(time.Hour-5*time.Second)) || s.EndsAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("the silence: %+v", s)
	}
	var silText string
	eval(`document.querySelector('#alerts li[data-rule="vendor-stutter"] .silenced').textContent`, &silText)
	if want := "SILENCED until " + s.EndsAt.UTC().Format("15:04") + " UTC by " + adminName; silText != want {
		t.Errorf("the silenced alert reads %q, want %q", silText, want)
	}
	eval(`document.getElementById('toast').textContent`, &toast)
	if want := "silenced vendor-stutter until " + s.EndsAt.UTC().Format("15:04") + " UTC"; toast != want {
		t.Errorf("after the silence the page says %q, want %q", toast, want)
	}
	// The page as the README shows it, without the passing toast.
	poll("the toast gone", `document.getElementById('toast').hidden`, 10*time.Second)
	full, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifacts, "wall-1366-full.png"), full, 0o644); err != nil {
		t.Fatal(err)
	}

	// 4. The 4K wall in kiosk mode (the token stays in the tab's session
	// storage; the alerts, already seen, do not pop up again).
	// The next provisional version of the minute in progress lands (the
	// data age is fresh for the screenshot); it stays off the tiles.
	insert("INSERT INTO client_minute %s VALUES %s", cols, inProgress(2))
	run(chromedp.EmulateViewport(3840, 2160), chromedp.Navigate(front+"/?kiosk=1"))
	poll("4K tiles", `document.querySelectorAll('.tile .value[data-v]:not([data-v=""])').length === 10 && document.querySelectorAll('#streams .card, #chips .card').length === 40 && document.querySelectorAll('#heat .hc').length > 4 &&
		[...document.querySelectorAll('.tile .wow')].every(e => e.textContent !== 'w/w —') && document.querySelectorAll('#worst tr').length === 3 &&
		document.querySelectorAll('#alerts li').length === 2 && document.querySelectorAll('#blacklist tr[data-vendor]').length === 2 && document.querySelectorAll('#scores .region').length === 12`, 20*time.Second)
	var users string
	eval(`document.querySelector('.tile[data-metric="users"] .value').textContent`, &users)
	if users != "1,000" {
		t.Errorf("4K: users tile %q, want the shown minute's 1,000", users)
	}
	// The 4K wall holds the whole page: nothing below the screen's edge.
	var fit map[string]float64
	eval(`({scroll: document.documentElement.scrollHeight, inner: innerHeight, width: document.documentElement.scrollWidth, innerW: innerWidth})`, &fit)
	if fit["scroll"] > fit["inner"] || fit["width"] > fit["innerW"] {
		t.Errorf("4K: the page is %v×%v px, the screen %v×%v", fit["width"], fit["scroll"], fit["innerW"], fit["inner"])
	}
	var kiosk map[string]string
	eval(`({cursor: getComputedStyle(document.body).cursor, controls: getComputedStyle(document.getElementById('filters')).display, popup: String(document.getElementById('popup').hidden),
		})`, &kiosk)
	if kiosk["cursor"] != "none" || kiosk["controls"] != "none" || kiosk["popup"] != "true" {
		t.Errorf("kiosk: %v; want no cursor, no controls, no repeated pop-up", kiosk)
	}
	var silenceShown bool
	eval(`[...document.querySelectorAll('#alerts button.silence')].some(b => getComputedStyle(b).display !== 'none')`, &silenceShown)
	if silenceShown {
		t.Error("kiosk: the silence buttons show")
	}
	shot(t, bctx, filepath.Join(artifacts, "wall-3840x2160.png"))

	// No console errors and no request to another origin, over everything
	// above.
	errs, reqs := bl.snapshot()
	for _, e := range errs {
		t.Errorf("browser: %s", e)
	}
	for _, r := range reqs {
		_, raw, _ := strings.Cut(r, " ")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "data" && u.Host != base.Host) {
			t.Errorf("request to another origin: %s", r)
		}
	}
	t.Logf("%d requests, all to %s; screenshots in %s", len(reqs), base.Host, artifacts)

	// 5. A serve without scores.config answers 404 on /api/v1/scores and
	// /api/v1/blacklist: those panels hide.
	bare := api.DefaultConfig()
	bare.Tokens = cfg.Tokens
	if err := bare.Validate(); err != nil {
		t.Fatal(err)
	}
	srv2, err := api.New(bare, api.Deps{Conn: env.Conn, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	serve2Done := make(chan error, 1)
	go func() { serve2Done <- srv2.Serve(ctx2, ln2) }()
	defer func() { cancel2(); <-serve2Done }()
	run(chromedp.EmulateViewport(1366, 768), chromedp.Navigate("http://"+ln2.Addr().String()+"/#token="+readToken))
	poll("scores and blacklist hidden on 404", `document.querySelectorAll('#streams .card, #chips .card').length === 40 && document.getElementById('p-scores').hidden && document.getElementById('p-blacklist').hidden`, 20*time.Second)

	if os.Getenv(envUpdateDoc) == "1" {
		// The laptop's whole page, the one README shows.
		if err := os.WriteFile(filepath.Join("..", "docs", "wall.png"), full, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitFor polls cond until it holds; the deadline only turns a hang into a
// failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func shot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pointAt asks the API for metric's value in the minute at.
func pointAt(t *testing.T, base, metric string, at time.Time) float64 {
	t.Helper()
	q := url.Values{"metric": {metric}, "step": {"1m"}, "from": {at.Format(time.RFC3339)}, "to": {at.Add(time.Minute).Format(time.RFC3339)}}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/series?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Groups []struct {
			Points []struct {
				T time.Time `json:"t"`
				V *float64  `json:"v"`
			} `json:"points"`
		} `json:"groups"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || len(s.Groups) != 1 || len(s.Groups[0].Points) != 1 {
		t.Fatalf("series %s at %s: %d %v %+v", metric, at, resp.StatusCode, err, s)
	}
	p := s.Groups[0].Points[0]
	if p.V == nil || !p.T.Equal(at) {
		t.Fatalf("series %s at %s: point %+v", metric, at, p)
	}
	return *p.V
}

// firstScreen checks the laptop's first screen (docs/WALL.md "Layout"):
// the healthy lines in at most two rows of chips; the alerts strip (when
// shown) and the tiles whole; at least the headers and first rows of the
// province × ISP and vendors panels (4 em) above the bottom edge.
func firstScreen(t *testing.T, eval func(string, any), when string) {
	t.Helper()
	var l map[string]float64
	eval(`(() => { const r = (id) => document.getElementById(id).getBoundingClientRect(); const em = parseFloat(getComputedStyle(document.body).fontSize);
		return {inner: innerHeight, width: innerWidth, em, chipRows: new Set([...document.querySelectorAll('#chips .chip')].map(c => c.offsetTop)).size,
			alerts: document.getElementById('p-alerts').hidden ? 0 : r('p-alerts').bottom, tiles: r('tiles').bottom,
			heat: r('p-heat').top, vendors: r('p-vendors').top, scrollY}; })()`, &l)
	if l["width"] != 1366 || l["scrollY"] != 0 {
		t.Fatalf("%s: the layout is measured at 1366 px wide, unscrolled: %v", when, l)
	}
	if l["chipRows"] > 2 {
		t.Errorf("%s: the healthy lines take %v rows of chips, want at most 2", when, l["chipRows"])
	}
	bottom := l["inner"] - 4*l["em"]
	if l["alerts"] > l["inner"] || l["tiles"] > l["inner"] || l["heat"] > bottom || l["vendors"] > bottom {
		t.Errorf("%s: 1366×768's first screen (%v px high) ends before the alerts (bottom %v), the tiles (bottom %v), province × ISP (top %v) or vendors (top %v) show",
			when, l["inner"], l["alerts"], l["tiles"], l["heat"], l["vendors"])
	}
}

func parseFloat(s string) (float64, error) {
	var f float64
	_, err := fmt.Sscan(s, &f)
	return f, err
}

// format is docs/WALL.md's display rule: ratios as percent with two
// decimals, milliseconds and counts rounded with thousands separators.
func format(metric string, v float64) string {
	switch {
	case strings.HasSuffix(metric, "_rate") || strings.HasSuffix(metric, "_rate_uv"):
		return fmt.Sprintf("%.2f %%", v*100)
	case strings.Contains(metric, "_ms_"):
		return group(math.Round(v)) + " ms"
	}
	return group(math.Round(v))
}

func group(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
