package allinone

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/rs/zerolog"

	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/internal/kafkautil"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query/api"
	"github.com/qoscope/qoscope/score"
)

// Helpers of the tests that run `qoscope serve` beside a test pipeline
// and talk to it as its clients do: the scheduler (scores in JSON and
// Arrow, steering), on-call (alerts, silences, webhook receivers).

// serveToken is the read and admin token of the test's serve.
const serveToken = "serve-oncall-token-0123456789abcdef"

// testServe is one `qoscope serve` (api.New + Serve, through all-in-one's
// prepareServe) on a test pipeline's ClickHouse and Kafka; it can be
// stopped and another started on the same servers.
type testServe struct {
	url  string
	srv  *api.Server
	logs *syncBuffer
	stop func()
}

// startServe runs serve with the pipeline's serve section (mod may change
// it) until stop or the end of the test. Its logs (info and above) are
// printed when the test fails.
func (p *testPipeline) startServe(t *testing.T, mod func(*api.Config)) *testServe {
	t.Helper()
	cfg := p.cfg
	cfg.Section.Serve.Enabled = true
	cfg.Serve.Listen = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg.Serve)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// The keys all-in-one copies in (prepareServe), validated like
	// `qoscope serve` validates its own.
	check := cfg.Serve
	check.ClickHouse, check.Log, check.Aggregator = cfg.ClickHouse, cfg.Log, cfg.Aggregator.Aggregator
	if err := check.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	srv, ln, err := prepareServe(cfg, p.ch.Conn, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	s := &testServe{url: "http://" + ln.Addr().String(), srv: srv, logs: logs}
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("serve did not stop cleanly: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("serve at %s logged:\n%s", s.url, logs.tail(80))
		}
	})
	return s
}

// get sends a GET with the serve token and returns the status, headers
// and body.
func (s *testServe) get(t *testing.T, path, accept string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+serveToken)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// getJSON decodes a 200 answer of path into v.
func (s *testServe) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, _, b := s.get(t, path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// activeAlerts is GET /api/v1/alerts?state=active.
func (s *testServe) activeAlerts(t *testing.T) alertlive.ActiveAnswer {
	t.Helper()
	var a alertlive.ActiveAnswer
	s.getJSON(t, "/api/v1/alerts?state=active", &a)
	return a
}

// alertHistory is GET /api/v1/alerts?from=&to=.
func (s *testServe) alertHistory(t *testing.T, from, to time.Time) alertlive.HistoryAnswer {
	t.Helper()
	var h alertlive.HistoryAnswer
	s.getJSON(t, "/api/v1/alerts?from="+url.QueryEscape(from.Format(time.RFC3339))+"&to="+url.QueryEscape(to.Format(time.RFC3339)), &h)
	return h
}

// scores reads GET /api/v1/scores in JSON and as an Arrow IPC stream (the
// scheduler's two encodings), decodes both and requires that they say the
// same of every region and vendor. A JSON answer read before and after
// the Arrow one tells that both came from one snapshot. Before the first
// snapshot (503) it returns nil.
func (s *testServe) scores(t *testing.T) *score.Table {
	t.Helper()
	for range 10 {
		code, _, before := s.get(t, "/api/v1/scores", "")
		if code == http.StatusServiceUnavailable {
			return nil
		}
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/scores: %d %s", code, before)
		}
		code, hdr, arrowBody := s.get(t, "/api/v1/scores", "application/vnd.apache.arrow.stream")
		if code != http.StatusOK || hdr.Get("Content-Type") != "application/vnd.apache.arrow.stream" {
			t.Fatalf("GET /api/v1/scores as Arrow: %d %s %q", code, hdr.Get("Content-Type"), arrowBody)
		}
		_, _, after := s.get(t, "/api/v1/scores", "")
		if !bytes.Equal(before, after) {
			continue // a rebuild in between
		}
		var tab score.Table
		if err := json.Unmarshal(before, &tab); err != nil {
			t.Fatalf("GET /api/v1/scores: %v in %s", err, before)
		}
		var fromJSON []scoreRow
		for _, r := range tab.Regions {
			for _, v := range r.Vendors {
				fromJSON = append(fromJSON, scoreRow{At: tab.At, Province: r.Province, ISP: r.ISP, Vendor: v.Vendor, Level: string(v.Level),
					Quality: v.Quality, Score: v.Score, Ratio: v.Ratio, Blacklisted: v.Blacklisted})
			}
		}
		fromArrow := decodeArrowScores(t, arrowBody)
		if !slices.EqualFunc(fromJSON, fromArrow, scoreRow.equal) {
			t.Fatalf("the Arrow answer differs from the JSON one:\nJSON:  %+v\nArrow: %+v", fromJSON, fromArrow)
		}
		return &tab
	}
	t.Fatal("GET /api/v1/scores changed between every pair of reads (10 tries)")
	return nil
}

// scoreRow is one region × vendor as both encodings carry it.
type scoreRow struct {
	At            time.Time
	Province, ISP string
	Vendor, Level string
	Quality       *float64
	Score, Ratio  float64
	Blacklisted   bool
}

func (a scoreRow) equal(b scoreRow) bool {
	sameQ := (a.Quality == nil) == (b.Quality == nil) && (a.Quality == nil || *a.Quality == *b.Quality)
	return a.At.Equal(b.At) && a.Province == b.Province && a.ISP == b.ISP && a.Vendor == b.Vendor && a.Level == b.Level &&
		sameQ && a.Score == b.Score && a.Ratio == b.Ratio && a.Blacklisted == b.Blacklisted
}

// decodeArrowScores reads the columns of docs/SCORES.md "Arrow" with
// arrow-go's IPC reader.
func decodeArrowScores(t *testing.T, b []byte) []scoreRow {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("arrow: %v", err)
	}
	defer rd.Release()
	var out []scoreRow
	for rd.Next() {
		rec := rd.RecordBatch()
		col := func(name string) int {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) != 1 {
				t.Fatalf("arrow: no column %q in %v", name, rec.Schema())
			}
			return idx[0]
		}
		at := rec.Column(col("at")).(*array.Timestamp)
		str := func(name string) *array.String { return rec.Column(col(name)).(*array.String) }
		f64 := func(name string) *array.Float64 { return rec.Column(col(name)).(*array.Float64) }
		quality := f64("quality")
		for i := range int(rec.NumRows()) {
			r := scoreRow{
				At:       time.UnixMilli(int64(at.Value(i))).UTC(),
				Province: str("province").Value(i), ISP: str("isp").Value(i),
				Vendor: str("vendor").Value(i), Level: str("level").Value(i),
				Score: f64("score").Value(i), Ratio: f64("ratio").Value(i),
				Blacklisted: rec.Column(col("blacklisted")).(*array.Boolean).Value(i),
			}
			if quality.IsValid(i) {
				q := quality.Value(i)
				r.Quality = &q
			}
			out = append(out, r)
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatalf("arrow: %v", err)
	}
	return out
}

// vendorScore finds a vendor of a region in the table (nil if absent).
func vendorScore(tab *score.Table, province, isp, vendor string) *score.VendorScore {
	if tab == nil {
		return nil
	}
	for i := range tab.Regions {
		r := &tab.Regions[i]
		if r.Province != province || r.ISP != isp {
			continue
		}
		for j := range r.Vendors {
			if r.Vendors[j].Vendor == vendor {
				return &r.Vendors[j]
			}
		}
	}
	return nil
}

// ratiosByHand checks docs/SCORES.md "Ratios and caps" on a table whose
// contracts never cap (the test's are far above its traffic) and whose
// weights are all 1: in each region a blacklisted vendor has ratio 0 and
// every other vendor score / Σ scores of the region's vendors not
// blacklisted. It returns "" or what differs.
func ratiosByHand(tab *score.Table) string {
	var bad []string
	for _, r := range tab.Regions {
		sum := 0.0
		for _, v := range r.Vendors {
			if !v.Blacklisted {
				sum += v.Score
			}
		}
		if r.Overloaded {
			bad = append(bad, fmt.Sprintf("%s/%s is overloaded", r.Province, r.ISP))
		}
		for _, v := range r.Vendors {
			want := 0.0
			if !v.Blacklisted {
				want = v.Score / sum
			}
			if d := v.Ratio - want; d > 1e-9 || d < -1e-9 {
				bad = append(bad, fmt.Sprintf("%s/%s %s: ratio %.6f, want score %.6f / %.6f = %.6f", r.Province, r.ISP, v.Vendor, v.Ratio, v.Score, sum, want))
			}
		}
	}
	return strings.Join(bad, "; ")
}

// describeScores renders a table for failure messages.
func describeScores(tab *score.Table) string {
	if tab == nil {
		return "no snapshot yet"
	}
	var b strings.Builder
	du := "none"
	if tab.DataUntil != nil {
		du = tab.DataUntil.Format(time.TimeOnly)
	}
	fmt.Fprintf(&b, "at %s, data until %s:", tab.At.Format(time.TimeOnly), du)
	for _, r := range tab.Regions {
		fmt.Fprintf(&b, "\n  %s/%s", r.Province, r.ISP)
		for _, v := range r.Vendors {
			q := "null"
			if v.Quality != nil {
				q = fmt.Sprintf("%.1f", *v.Quality)
			}
			fmt.Fprintf(&b, "  %s[%s q=%s score=%.3f ratio=%.3f bl=%t]", v.Vendor, v.Level, q, v.Score, v.Ratio, v.Blacklisted)
		}
	}
	return b.String()
}

// steerOrder is the pathway priority an HLS player of the session in the
// region gets from GET /steer/hls (public, no token).
func (s *testServe) steerOrder(t *testing.T, province, isp, session string) []string {
	t.Helper()
	resp, err := http.Get(s.url + "/steer/hls?session=" + session + "&province=" + province + "&isp=" + isp)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /steer/hls: %d %s", resp.StatusCode, b)
	}
	var m struct {
		Version  int      `json:"VERSION"`
		Priority []string `json:"PATHWAY-PRIORITY"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Version != 1 {
		t.Fatalf("GET /steer/hls: %v in %s", err, b)
	}
	return m.Priority
}

// steerPositions counts, over n sessions of a region, how often each
// pathway comes first and last.
func (s *testServe) steerPositions(t *testing.T, province, isp string, n int) (first, last map[string]int) {
	t.Helper()
	first, last = map[string]int{}, map[string]int{}
	for i := range n {
		o := s.steerOrder(t, province, isp, fmt.Sprintf("player-%03d", i))
		if len(o) > 0 {
			first[o[0]]++
			last[o[len(o)-1]]++
		}
	}
	return first, last
}

// hookCapture is a webhook receiver that records every request with the
// status it answered (setStatus makes it fail, e.g. 500).
type hookCapture struct {
	url    string
	secret []byte // nil: no signature expected (Alertmanager's webhook)
	mu     sync.Mutex
	status int
	got    []hookRequest
}

// hookRequest is one request a hookCapture received.
type hookRequest struct {
	Status int    // what the capture answered
	Key    string // Idempotency-Key
	SigOK  bool   // notify.Verify with the capture's secret
	Msg    notify.WebhookMessage
	Body   []byte
}

func newHookCapture(t *testing.T, secret string) *hookCapture {
	h := &hookCapture{status: http.StatusOK}
	if secret != "" {
		h.secret = []byte(secret)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rq := hookRequest{Key: r.Header.Get(notify.IdempotencyKeyHeader), Body: body}
		if h.secret != nil {
			rq.SigOK = notify.Verify(h.secret, body, r.Header.Get(notify.SignatureHeader))
		}
		_ = json.Unmarshal(body, &rq.Msg)
		h.mu.Lock()
		rq.Status = h.status
		h.got = append(h.got, rq)
		h.mu.Unlock()
		w.WriteHeader(rq.Status)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *hookCapture) setStatus(code int) {
	h.mu.Lock()
	h.status = code
	h.mu.Unlock()
}

// requests returns every request so far; delivered those answered 2xx.
func (h *hookCapture) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

func (h *hookCapture) delivered() []hookRequest {
	var out []hookRequest
	for _, r := range h.requests() {
		if r.Status/100 == 2 {
			out = append(out, r)
		}
	}
	return out
}

// failedSince counts the requests answered with an error after the first
// skip ones.
func (h *hookCapture) failedSince(skip int) int {
	n := 0
	for i, r := range h.requests() {
		if i >= skip && r.Status/100 != 2 {
			n++
		}
	}
	return n
}

// summary renders one notification's content (not the receiver's name,
// not its key) as "status: alertname{vendor/province/isp}=status,…".
func (r hookRequest) summary() string {
	var parts []string
	for _, a := range r.Msg.Alerts {
		where := ""
		if v := a.Labels["vendor"]; v != "" {
			where = "{" + v + "/" + a.Labels["province"] + "/" + a.Labels["isp"] + "}"
		}
		parts = append(parts, a.Labels["alertname"]+where+"="+a.Status)
	}
	sort.Strings(parts)
	return r.Msg.Status + ": " + strings.Join(parts, ",")
}

// summaries lists the summaries of requests, sorted.
func summaries(rs []hookRequest) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.summary())
	}
	sort.Strings(out)
	return out
}

// eventFeed is generated traffic (gen's --output-dir files) sorted by event
// time per ingest endpoint, posted to ingest a time slice at a time.
type eventFeed struct {
	lines map[string][]tsLine // source → lines by ts
	next  map[string]int
}

type tsLine struct {
	ts   int64
	line string
}

var tsField = regexp.MustCompile(`"ts":(\d+)`)

// loadFeed reads dir/<source>.ndjson of the given sources.
func loadFeed(t *testing.T, dir string, sources ...string) *eventFeed {
	t.Helper()
	f := &eventFeed{lines: map[string][]tsLine{}, next: map[string]int{}}
	for _, src := range sources {
		fh, err := os.Open(filepath.Join(dir, src+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			m := tsField.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Fatalf("%s: a line without ts: %s", src, sc.Text())
			}
			ts, _ := strconv.ParseInt(m[1], 10, 64)
			f.lines[src] = append(f.lines[src], tsLine{ts: ts, line: sc.Text()})
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		slices.SortStableFunc(f.lines[src], func(a, b tsLine) int { return cmp.Compare(a.ts, b.ts) })
	}
	return f
}

// postBefore sends every event not sent yet with ts < until through
// ingest (each request fully accepted), waits until the aggregator has
// them in ClickHouse, and returns how many. It first waits until the wall
// clock has passed until: events are never sent ahead of their time, so
// the aggregator's clocks never run ahead of it.
func (f *eventFeed) postBefore(t *testing.T, p *testPipeline, until time.Time) int {
	t.Helper()
	if d := time.Until(until.Add(time.Second)); d > 0 {
		time.Sleep(d)
	}
	n := 0
	for _, src := range slices.Sorted(maps.Keys(f.lines)) {
		ls := f.lines[src]
		i := f.next[src]
		var batch []string
		for ; i < len(ls) && ls[i].ts < until.UnixMilli(); i++ {
			batch = append(batch, ls[i].line)
			if len(batch) == 5000 {
				p.post(t, src, batch)
				n += len(batch)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			p.post(t, src, batch)
			n += len(batch)
		}
		f.next[src] = i
	}
	p.waitAggregated(t, slices.Sorted(maps.Keys(f.lines)))
	return n
}

// waitAggregated returns once the aggregator has checkpointed everything
// ingest wrote so far to the topics of sources: their rows are then in
// ClickHouse, and the minutes they complete are complete for the alert
// evaluator. It is the wait of all-in-one's own stop (consumedSince).
func (p *testPipeline) waitAggregated(t *testing.T, sources []string) {
	t.Helper()
	topics := map[string]string{"client": p.cfg.Kafka.Topics.Client, "cdn": p.cfg.Kafka.Topics.CDN, "origin": p.cfg.Kafka.Topics.Origin}
	var ts []string
	for _, s := range sources {
		ts = append(ts, topics[s])
	}
	kc := kafkautil.Client(p.cfg.Kafka.Brokers, p.cfg.Kafka.DialTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := consumedSince(kc, p.ch.Conn, p.cfg.Aggregator.GroupID, ts, map[partition]int64{}, 100*time.Millisecond)(ctx); err != nil {
		t.Fatalf("the aggregator did not catch up with ingest within 2 minutes: %v", err)
	}
}

// eventually polls check until it says ok; past the deadline it fails the
// test with what check last saw.
func eventually(t *testing.T, within time.Duration, what string, check func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, seen := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last seen:\n%s", what, within, seen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// syncBuffer is a log sink written by several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// tail returns the last n lines but access logs.
func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		// Access logs would bury what matters.
		if !strings.Contains(l, `"message":"request"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
