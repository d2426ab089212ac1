package allinone

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/internal/testenv"
)

// testPipeline is one all-in-one process on the real servers, with its own
// topics and database.
type testPipeline struct {
	url   string
	token string
	ch    *testenv.ClickHouseEnv
	// cfg is what the process runs (brokers, topics, group, serve
	// section): startServe runs serve from it.
	cfg Config
}

const pipelineToken = "late-token-0123456789abcdef"

// startPipeline runs all-in-one with the production windowing defaults
// (mod may change them) until the test ends.
func startPipeline(t *testing.T, mod func(*Config)) *testPipeline {
	t.Helper()
	kafka := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	cfg := DefaultConfig()
	cfg.Kafka = kafka.Config()
	cfg.ClickHouse = ch.Config()
	cfg.Listen = "127.0.0.1:0"
	cfg.Tokens = []ingest.TokenConfig{{Name: "late", Token: pipelineToken, Sources: []string{"client", "cdn", "origin"}}}
	cfg.Producer.Partitions = testenv.DefaultPartitions
	cfg.Aggregator.GroupID = kafka.GroupID("agg")
	cfg.Aggregator.FlushInterval = time.Second
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, logging.New(io.Discard, cfg.Log), Options{Stdout: io.Discard, Stderr: io.Discard, Ready: ready})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("all-in-one stopped before ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("all-in-one not ready after 2 minutes")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("all-in-one did not stop cleanly: %v", err)
		}
	})
	return &testPipeline{url: "http://" + addr.String(), token: pipelineToken, ch: ch, cfg: cfg}
}

// post sends NDJSON lines to an ingest endpoint and wants them all accepted.
func (p *testPipeline) post(t *testing.T, source string, lines []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/events/"+source, strings.NewReader(strings.Join(lines, "\n")))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"accepted":%d,`, len(lines))) {
		t.Fatalf("ingest answered %d %s", resp.StatusCode, body)
	}
}

// waitFor polls the query (one row of one column) until it returns want.
func (p *testPipeline) waitFor(t *testing.T, what, query string, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		last = p.queryString(t, query)
		if last == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %s got %q, want %q (%s)", what, within, last, want, query)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// queryString runs a query and renders its rows as "a b c\n" lines.
func (p *testPipeline) queryString(t *testing.T, query string, args ...any) string {
	t.Helper()
	rows, err := p.ch.Conn.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("cannot query: %v (%s)", err, query)
	}
	defer rows.Close()
	var b strings.Builder
	cols := rows.ColumnTypes()
	for rows.Next() {
		vals := make([]any, len(cols))
		for i, c := range cols {
			vals[i] = newScanTarget(c.ScanType())
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprint(&b, deref(v))
		}
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// The issue-10 measurement, as a test: four minutes of generated traffic
// that started six minutes ago, sent through ingest as fast as it takes
// it. With the old fixed 2-minute lateness and the wall-clock advance of
// idle partitions, all but the last minute were late events. Every event
// must now count: each minute's client, CDN and origin totals equal the
// offline aggregation of the same events, and no event is late.
func TestBacklogFromSixMinutesAgoCounts(t *testing.T) {
	p := startPipeline(t, func(c *Config) { c.Aggregator.IdleAfter = 2 * time.Second })
	// Let the empty partitions be advanced to the wall clock first, as on
	// a fresh deployment that waited for its first client.
	time.Sleep(5 * time.Second)
	file := filepath.Join(t.TempDir(), "events.ndjson")
	opts := gen.DefaultOptions()
	opts.Mode = gen.ModeFast
	opts.Start = time.Now().Add(-6 * time.Minute).Truncate(time.Second)
	opts.Duration = 4 * time.Minute
	opts.Users = 600
	opts.Target, opts.Token = p.url, p.token
	opts.Output = file
	opts.Progress = "none"
	var summary bytes.Buffer
	if err := gen.Run(context.Background(), opts, &summary, io.Discard); err != nil {
		t.Fatalf("gen: %v\n%s", err, summary.String())
	}

	// Expected: the offline mode over the same events, one stream per
	// source (users are disjoint across the runner's client partitions,
	// so totals sum exactly).
	var out bytes.Buffer
	if err := aggregator.RunOffline(context.Background(), aggregator.OfflineOptions{Inputs: []string{file}}, &out); err != nil {
		t.Fatal(err)
	}
	type metric struct{ source, name string }
	checks := []metric{
		{"client", "users"}, {"client", "stutter_users"}, {"client", "samples"}, {"client", "stalled_samples"},
		{"client", "stalls"}, {"client", "plays"}, {"client", "plays_ok"}, {"client", "first_frames"},
		{"cdn", "requests"}, {"cdn", "bytes"}, {"cdn", "errors_5xx"}, {"origin", "samples"},
	}
	want := map[string]map[string]string{} // source → "minute metric" lines
	minutes := map[string]bool{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r struct {
			WindowStart string                     `json:"window_start"`
			Source      string                     `json:"source"`
			Dims        map[string]string          `json:"dims"`
			Metrics     map[string]json.RawMessage `json:"metrics"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Source == "late" {
			t.Fatalf("the offline mode found late events: %s", sc.Text())
		}
		if len(r.Dims) != 0 && r.Source != "origin" {
			continue
		}
		minutes[r.WindowStart] = true
		for _, c := range checks {
			if c.source == r.Source {
				if want[c.source] == nil {
					want[c.source] = map[string]string{}
				}
				ws, _ := time.Parse(time.RFC3339, r.WindowStart)
				k := ws.UTC().Format("15:04") + " " + c.name
				if r.Source == "origin" {
					// Origin has no total grouping: sum its (stream, line) rows.
					var prev, add int64
					fmt.Sscan(want[c.source][k], &prev)
					fmt.Sscan(string(r.Metrics[c.name]), &add)
					want[c.source][k] = fmt.Sprint(prev + add)
					continue
				}
				want[c.source][k] = string(r.Metrics[c.name])
			}
		}
	}
	if len(minutes) < 4 {
		t.Fatalf("offline rows cover %d minutes, want at least 4", len(minutes))
	}

	totals := func(source, table, grouping string) map[string]string {
		got := map[string]string{}
		for _, c := range checks {
			if c.source != source {
				continue
			}
			q := fmt.Sprintf("SELECT formatDateTime(window_start, '%%H:%%i', 'UTC'), toString(sum(%s)) FROM %s WHERE %s GROUP BY window_start ORDER BY window_start", c.name, table, grouping)
			for _, l := range strings.Split(p.queryString(t, q), "\n") {
				if f := strings.Fields(l); len(f) == 2 {
					got[f[0]+" "+c.name] = f[1]
				}
			}
		}
		return got
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		same := true
		for _, s := range []struct{ source, table, grouping string }{
			{"client", "client_minute_metrics", "grouping = ''"},
			{"cdn", "cdn_minute_metrics", "grouping = ''"},
			{"origin", "origin_minute_metrics", "grouping = 'stream_id,line'"},
		} {
			got := totals(s.source, s.table, s.grouping)
			for k, v := range want[s.source] {
				if got[k] != v {
					same = false
					if time.Now().After(deadline) {
						t.Errorf("%s %s = %q, want %q", s.source, k, got[k], v)
					}
				}
			}
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the views never matched the offline aggregation")
		}
		time.Sleep(time.Second)
	}
	if n := p.queryString(t, "SELECT toString(sum(late_events)) FROM late_events_metrics"); n != "0" && n != "" {
		t.Fatalf("late events: %s, want none", n)
	}
	t.Logf("gen: %s", strings.TrimSpace(summary.String()))
}

// The issue-10 repro of one fast client clock: a heartbeat stamped 4
// minutes ahead, then 600 on-time users on another stream. Expected by
// hand: 600 users on srep in the current minute, 1 on sfast 4 minutes
// later, no late events.
func TestFastClientClockCostsOthersNothing(t *testing.T) {
	p := startPipeline(t, nil)
	now := time.Now()
	if now.Second() > 50 {
		// Keep the 600 heartbeats in one minute.
		time.Sleep(time.Duration(61-now.Second()) * time.Second)
		now = time.Now()
	}
	ms := now.UnixMilli()
	p.post(t, "client", []string{fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"fastclock","stream_id":"sfast","stalled":false}`, ms+240_000)})
	var lines []string
	for i := range 600 {
		lines = append(lines, fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"r%d","stream_id":"srep","stalled":false}`, ms, i))
	}
	p.post(t, "client", lines)
	minute := now.UTC().Truncate(time.Minute)
	q := func(stream string, at time.Time) string {
		return fmt.Sprintf("SELECT toString(sum(users)) FROM client_minute_metrics WHERE grouping = 'stream_id' AND dims['stream_id'] = '%s' AND window_start = toDateTime(%d)", stream, at.Unix())
	}
	p.waitFor(t, "srep users", q("srep", minute), "600", time.Minute)
	p.waitFor(t, "sfast users", q("sfast", minute.Add(4*time.Minute)), "1", time.Minute)
	if n := p.queryString(t, "SELECT toString(count()) FROM late_events_metrics WHERE late_events > 0"); n != "0" {
		t.Fatalf("%s late rows, want none", n)
	}
}

// A CDN vendor's batch for minutes 3 and 4 delivered after minute 14 (10
// minutes late, within the default 30 minutes of CDN lateness) gives the
// same minute rows and hourly rollups as the same events delivered on
// time. The minutes are in the past, so the wall-clock advance of the idle
// partitions finalizes them once everything is in.
func TestLateCDNBatchEqualsOnTime(t *testing.T) {
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	line := func(vendor string, at time.Time, status, bytes, ttfb int) string {
		return fmt.Sprintf(`{"v":1,"type":"cdn_request","ts":%d,"vendor":%q,"node":"edge-1","ip":"1.2.3.4","status":%d,"bytes":%d,"ttfb_ms":%d,"stream_id":"s1"}`,
			at.UnixMilli(), vendor, status, bytes, ttfb)
	}
	minute := func(m int) []string {
		at := base.Add(time.Duration(m) * time.Minute)
		return []string{
			line("cdn-a", at.Add(time.Second), 200, 1_000_000, 30+m),
			line("cdn-a", at.Add(2*time.Second), 502, 0, 900),
			line("cdn-b", at.Add(3*time.Second), 200, 2_000_000, 40),
		}
	}
	// cdn-late's batch: 2 requests in minute 3, 1 in minute 4.
	batch := []string{
		line("cdn-late", base.Add(3*time.Minute+10*time.Second), 200, 3_000_000, 50),
		line("cdn-late", base.Add(3*time.Minute+20*time.Second), 404, 100, 60),
		line("cdn-late", base.Add(4*time.Minute+5*time.Second), 200, 5_000_000, 70),
	}
	const minutes = 20
	idle := func(c *Config) { c.Aggregator.IdleAfter = 15 * time.Second }
	results := map[string]string{}
	for _, mode := range []string{"on-time", "delayed"} {
		p := startPipeline(t, idle)
		var lines, all []string
		for m := range minutes {
			lines = append(lines, minute(m)...)
			if mode == "on-time" && m == 4 {
				lines = append(lines, batch...)
			}
			if mode == "delayed" && m == 14 {
				// What has arrived so far goes in first, as its own request.
				p.post(t, "cdn", lines)
				all = append(all, lines...)
				lines = append([]string(nil), batch...)
			}
		}
		p.post(t, "cdn", lines)
		all = append(all, lines...)
		p.waitFor(t, mode+": final minutes",
			"SELECT toString(countIf(final = 1)) FROM cdn_minute_metrics WHERE grouping = ''", fmt.Sprint(minutes), 2*time.Minute)
		p.waitFor(t, mode+": hourly rollup",
			"SELECT toString(sum(requests)) FROM cdn_hour_metrics WHERE grouping = ''", fmt.Sprint(3*minutes+3), time.Minute)
		results[mode+" minute"] = p.queryString(t, `SELECT window_start, grouping, dims_key, requests, bytes, errors_4xx, errors_5xx,
			ttfb_ms_p50, ttfb_ms_p99, final FROM cdn_minute_metrics ORDER BY window_start, grouping, dims_key`)
		results[mode+" hour"] = p.queryString(t, `SELECT * EXCEPT (written_at) FROM cdn_hour_metrics ORDER BY ALL`)
		if n := p.queryString(t, "SELECT toString(count()) FROM late_events_metrics WHERE late_events > 0"); n != "0" {
			t.Fatalf("%s: %s late rows, want none", mode, n)
		}
		// By hand: minute 3 = cdn-a 1 MB + 0, cdn-b 2 MB, cdn-late 3 MB + 100 B.
		got := p.queryString(t, "SELECT toString(requests), toString(bytes), toString(errors_4xx), toString(errors_5xx) FROM cdn_minute_metrics WHERE grouping = '' AND window_start = toDateTime(?)", base.Add(3*time.Minute).Unix())
		if got != "5 6000100 1 1" {
			t.Fatalf("%s: minute 3 = %q, want requests 5, bytes 6000100, 4xx 1, 5xx 1", mode, got)
		}
		// The offline mode over the same lines, in the order they were
		// sent, agrees with the streaming path on every total row.
		file := filepath.Join(t.TempDir(), mode+".ndjson")
		if err := os.WriteFile(file, []byte(strings.Join(all, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := aggregator.RunOffline(context.Background(), aggregator.OfflineOptions{Inputs: []string{file}}, &out); err != nil {
			t.Fatal(err)
		}
		var offline []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var r struct {
				WindowStart time.Time         `json:"window_start"`
				Source      string            `json:"source"`
				Dims        map[string]string `json:"dims"`
				Metrics     struct {
					Requests, Bytes int64
				} `json:"metrics"`
			}
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			if r.Source == "late" {
				t.Fatalf("%s: the offline mode found late events: %s", mode, l)
			}
			if r.Source == "cdn" && len(r.Dims) == 0 {
				offline = append(offline, fmt.Sprintf("%s %d %d", r.WindowStart.UTC().Format(time.RFC3339), r.Metrics.Requests, r.Metrics.Bytes))
			}
		}
		streaming := p.queryString(t, "SELECT window_start, requests, bytes FROM cdn_minute_metrics WHERE grouping = '' ORDER BY window_start")
		if strings.Join(offline, "\n") != streaming {
			t.Errorf("%s: offline totals differ from the streaming path:\noffline:\n%s\nstreaming:\n%s", mode, strings.Join(offline, "\n"), streaming)
		}
	}
	for _, what := range []string{"minute", "hour"} {
		if results["on-time "+what] != results["delayed "+what] {
			t.Errorf("%s rows differ:\non time:\n%s\ndelayed:\n%s", what, results["on-time "+what], results["delayed "+what])
		}
	}
}

func newScanTarget(t reflect.Type) any { return reflect.New(t).Interface() }

// deref renders a scanned value: pointers followed, nil as NULL.
func deref(v any) any {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		rv = rv.Elem()
	}
	if tm, ok := rv.Interface().(time.Time); ok {
		return tm.UTC().Format(time.RFC3339)
	}
	return rv.Interface()
}
