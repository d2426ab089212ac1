package live

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/score"
)

// The scenario: two vendors with equal contracts (guaranteed 100, max 200)
// and identical rows in two regions, so every number is by hand: quality
// 100 (first frame 1000 ms = good, no stutter, no failure), bandwidth 50
// Mbit/s per vendor and region in both trend minutes (flat: predicted 50),
// a pool holding 100 of each vendor (below the guarantee, equal scores),
// each region's demand 100 and ratio 0.5 / 0.5. Blacklisting cdn-a in
// guangdong/telecom sends its 100 there to cdn-b (cdn-b then carries
// 150 ≤ 200: no cap) and leaves beijing/unicom at 0.5 / 0.5.
const contractsYAML = `settings:
  half_life: 5m
  lookback: 10m
  min_users: 1
  trend_minutes: 2
vendors:
  cdn-a: {guaranteed_mbps: 100, max_mbps: 200}
  cdn-b: {guaranteed_mbps: 100, max_mbps: 200}
`

var (
	t0      = time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC)
	regions = [][2]string{{"guangdong", "telecom"}, {"beijing", "unicom"}}
)

const (
	readToken    = "read-token-0123456789"
	adminToken   = "admin-token-0123456789"
	metricsToken = "metrics-token-0123456789"
)

type fakeRows struct {
	mu  sync.Mutex
	err error
}

func (f *fakeRows) ScoreInput(_ context.Context, from, to time.Time) (*score.Input, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	in := &score.Input{}
	for m := to.Add(-2 * time.Minute); m.Before(to); m = m.Add(time.Minute) {
		for _, r := range regions {
			for _, v := range []string{"cdn-a", "cdn-b"} {
				in.Client = append(in.Client, score.ClientRow{Minute: m, Vendor: v, Province: r[0], ISP: r[1],
					Users: 100, Plays: 100, PlaysOK: 100, FirstFrames: 100, FirstFrameMSSum: 100 * 1000})
				in.CDN = append(in.CDN, score.CDNRow{Minute: m, Vendor: v, Province: r[0], ISP: r[1], BandwidthMbps: 50})
			}
		}
	}
	return in, nil
}

func (f *fakeRows) fail(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

// fakeStore keeps the audit in memory and answers like the ClickHouse
// queries of store.go.
type fakeStore struct {
	mu     sync.Mutex
	alerts []AlertChange
	audit  []Change
}

func (f *fakeStore) AlertChanges(context.Context) ([]AlertChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.alerts), nil
}

func (f *fakeStore) OperatorEntries(context.Context) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := map[entryKey]Change{}
	for _, c := range f.audit {
		if c.Source == SourceOperator && (c.Action == ActionOn || c.Action == ActionOff) {
			last[entryKey{c.Vendor, c.Province, c.ISP}] = c
		}
	}
	var out []Entry
	for _, c := range last {
		if c.Action == ActionOn {
			out = append(out, Entry{Vendor: c.Vendor, Province: c.Province, ISP: c.ISP, Source: SourceOperator, Reason: c.Reason, By: c.By, Since: c.At})
		}
	}
	return out, nil
}

func (f *fakeStore) AuditState(context.Context) (map[auditKey]auditState, error) {
	return map[auditKey]auditState{}, nil
}

func (f *fakeStore) Append(_ context.Context, rows []Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append(f.audit, rows...)
	return nil
}

func (f *fakeStore) Changes(_ context.Context, limit int) ([]Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.audit)
	slices.Reverse(out)
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.audit {
		out = append(out, c.Source+" "+c.Action+" "+c.Vendor+" "+c.Province+"/"+c.ISP+" by "+c.By)
	}
	return out
}

type fakePub struct {
	mu   sync.Mutex
	msgs [][]Message
}

func (p *fakePub) Publish(_ context.Context, msgs []Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, slices.Clone(msgs))
	return nil
}
func (p *fakePub) Close() error { return nil }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

type fixture struct {
	s     *Scores
	rows  *fakeRows
	store *fakeStore
	pub   *fakePub
	clock *clock
	h     http.Handler
}

func newFixture(t *testing.T, blacklistFile string) *fixture {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Config = filepath.Join(dir, "scores.yaml")
	if err := os.WriteFile(cfg.Config, []byte(contractsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if blacklistFile != "" {
		cfg.Blacklist = filepath.Join(dir, "blacklist.yaml")
		if err := os.WriteFile(cfg.Blacklist, []byte(blacklistFile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{rows: &fakeRows{}, store: &fakeStore{}, pub: &fakePub{}, clock: &clock{t: t0.Add(10 * time.Second)}}
	s, err := New(cfg, Deps{Rows: f.rows, Store: f.store, Publisher: f.pub, Logger: zerolog.New(zerolog.NewTestWriter(t)), Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	tokens, err := httpx.NewStore([]httpx.TokenConfig{
		{Name: "wall", Token: readToken, Scopes: []string{"read"}},
		{Name: "ops", Token: adminToken, Scopes: []string{"admin"}},
		{Name: "prom", Token: metricsToken, Scopes: []string{"metrics"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	s.Mount(r, httpx.NewAuth(tokens, "test"))
	f.h = r
	return f
}

func (f *fixture) rebuild(t *testing.T) {
	t.Helper()
	if err := f.s.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type answer struct {
	code int
	h    http.Header
	body []byte
}

func (f *fixture) do(method, target, token string, hdr map[string]string, body string) answer {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return answer{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func decodeTable(t *testing.T, b []byte) *score.Table {
	t.Helper()
	var tb score.Table
	if err := json.Unmarshal(b, &tb); err != nil {
		t.Fatalf("not a table: %v: %s", err, b)
	}
	return &tb
}

// ratios maps "province/isp vendor" to the ratio of a table.
func ratios(t *score.Table) map[string]float64 {
	out := map[string]float64{}
	for _, r := range t.Regions {
		for _, v := range r.Vendors {
			out[r.Province+"/"+r.ISP+" "+v.Vendor] = v.Ratio
		}
	}
	return out
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func checkRatios(t *testing.T, what string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || !near(g, w) {
			t.Errorf("%s: ratio of %s = %v, want %v (all: %v)", what, k, g, w, got)
		}
	}
}

var even = map[string]float64{
	"guangdong/telecom cdn-a": 0.5, "guangdong/telecom cdn-b": 0.5,
	"beijing/unicom cdn-a": 0.5, "beijing/unicom cdn-b": 0.5,
}

var aOutOfGuangdong = map[string]float64{
	"guangdong/telecom cdn-a": 0, "guangdong/telecom cdn-b": 1,
	"beijing/unicom cdn-a": 0.5, "beijing/unicom cdn-b": 0.5,
}

func TestScoresBeforeFirstSnapshotIs503(t *testing.T) {
	f := newFixture(t, "")
	a := f.do("GET", "/api/v1/scores", readToken, nil, "")
	if a.code != 503 || a.h.Get("Retry-After") != "10" || !bytes.Contains(a.body, []byte(`"error":"no scores snapshot yet`)) {
		t.Fatalf("before the first snapshot: %d %v %s", a.code, a.h, a.body)
	}
	f.rows.fail(errors.New("clickhouse down"))
	if err := f.s.Rebuild(context.Background()); err == nil {
		t.Fatal("rebuild without clickhouse succeeded")
	}
	if a := f.do("GET", "/api/v1/scores", readToken, nil, ""); a.code != 503 {
		t.Fatalf("after a failed first rebuild: %d %s", a.code, a.body)
	}
}

func TestScoresJSONArrowETagFilters(t *testing.T) {
	f := newFixture(t, "")
	f.rebuild(t)

	a := f.do("GET", "/api/v1/scores", readToken, nil, "")
	if a.code != 200 || a.h.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %v", a.code, a.h)
	}
	tb := decodeTable(t, a.body)
	// The minute is 12:05 (the clock is 12:05:10); the newest row is
	// 12:04, which ends at 12:05.
	if !tb.At.Equal(t0) || tb.DataUntil == nil || !tb.DataUntil.Equal(t0) || len(tb.Regions) != 2 {
		t.Fatalf("table: %+v", tb)
	}
	if a.h.Get("X-Scores-At") != "2026-11-20T12:05:00Z" || a.h.Get("X-Data-Until") != "2026-11-20T12:05:00Z" ||
		a.h.Get("Last-Modified") != "Fri, 20 Nov 2026 12:05:10 GMT" || a.h.Get("Age") != "0" || a.h.Get("Warning") != "" {
		t.Errorf("headers: %v", a.h)
	}
	// Regions sorted by province: beijing first.
	if tb.Regions[0].Province != "beijing" || !near(tb.Regions[0].DemandMbps, 100) || *tb.Regions[0].Vendors[0].Quality != 100 {
		t.Errorf("regions: %+v", tb.Regions)
	}
	checkRatios(t, "even", ratios(tb), even)
	// The same document as json.Marshal of the snapshot's table (the
	// offline mode's output).
	want, _ := json.Marshal(f.s.Snapshot().Table)
	if !bytes.Equal(bytes.TrimSpace(a.body), want) {
		t.Errorf("body is not the table document:\n%s\n%s", a.body, want)
	}

	// ETag: same snapshot, same answer → 304 without a body.
	etag := a.h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	nm := f.do("GET", "/api/v1/scores", readToken, map[string]string{"If-None-Match": etag}, "")
	if nm.code != 304 || len(nm.body) != 0 || nm.h.Get("ETag") != etag || nm.h.Get("X-Data-Until") == "" {
		t.Errorf("If-None-Match: %d %v %q", nm.code, nm.h, nm.body)
	}
	if x := f.do("GET", "/api/v1/scores", readToken, map[string]string{"If-None-Match": `"other"`}, ""); x.code != 200 {
		t.Errorf("other etag: %d", x.code)
	}

	// Filters.
	one := f.do("GET", "/api/v1/scores?province=guangdong&isp=telecom", readToken, nil, "")
	ot := decodeTable(t, one.body)
	if one.code != 200 || len(ot.Regions) != 1 || ot.Regions[0].Province != "guangdong" || ot.Regions[0].ISP != "telecom" || one.h.Get("ETag") == etag {
		t.Errorf("filter: %d %s", one.code, one.body)
	}
	if p := decodeTable(t, f.do("GET", "/api/v1/scores?province=beijing", readToken, nil, "").body); len(p.Regions) != 1 || p.Regions[0].ISP != "unicom" {
		t.Errorf("province filter: %+v", p.Regions)
	}
	if e := f.do("GET", "/api/v1/scores?province=tibet", readToken, nil, ""); e.code != 200 || len(decodeTable(t, e.body).Regions) != 0 {
		t.Errorf("a region without rows: %d %s", e.code, e.body)
	}
	if e := f.do("GET", "/api/v1/scores?vendor=cdn-a", readToken, nil, ""); e.code != 400 || !bytes.Contains(e.body, []byte("parameter vendor")) {
		t.Errorf("unknown parameter: %d %s", e.code, e.body)
	}

	// Arrow: one row per region × vendor, in the document's order.
	ar := f.do("GET", "/api/v1/scores", readToken, map[string]string{"Accept": "application/vnd.apache.arrow.stream"}, "")
	if ar.code != 200 || ar.h.Get("Content-Type") != "application/vnd.apache.arrow.stream" || ar.h.Get("ETag") == etag {
		t.Fatalf("arrow: %d %v", ar.code, ar.h)
	}
	rows := decodeArrow(t, ar.body)
	if len(rows) != 4 {
		t.Fatalf("arrow rows: %v", rows)
	}
	if rows[0].province != "beijing" || rows[0].vendor != "cdn-a" || rows[3].province != "guangdong" || rows[3].vendor != "cdn-b" ||
		!near(rows[0].ratio, 0.5) || rows[0].quality == nil || *rows[0].quality != 100 || !rows[0].at.Equal(t0) || rows[0].reason != nil {
		t.Errorf("arrow rows: %+v", rows)
	}

	// Auth: no token 401, a token without read 403.
	if x := f.do("GET", "/api/v1/scores", "", nil, ""); x.code != 401 {
		t.Errorf("no token: %d", x.code)
	}
	if x := f.do("GET", "/api/v1/scores", metricsToken, nil, ""); x.code != 403 {
		t.Errorf("metrics token: %d", x.code)
	}
}

type arrowRow struct {
	at                    time.Time
	province, isp, vendor string
	quality               *float64
	ratio                 float64
	blacklisted           bool
	reason                *string
}

func decodeArrow(t *testing.T, b []byte) []arrowRow {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("arrow: %v", err)
	}
	defer rd.Release()
	if !rd.Schema().Equal(ArrowSchema) {
		t.Fatalf("schema %v", rd.Schema())
	}
	var out []arrowRow
	for rd.Next() {
		rec := rd.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		for i := range int(rec.NumRows()) {
			r := arrowRow{
				at:          rec.Column(col("at")).(*array.Timestamp).Value(i).ToTime(0).UTC(),
				province:    rec.Column(col("province")).(*array.String).Value(i),
				isp:         rec.Column(col("isp")).(*array.String).Value(i),
				vendor:      rec.Column(col("vendor")).(*array.String).Value(i),
				ratio:       rec.Column(col("ratio")).(*array.Float64).Value(i),
				blacklisted: rec.Column(col("blacklisted")).(*array.Boolean).Value(i),
			}
			r.at = time.UnixMilli(int64(rec.Column(col("at")).(*array.Timestamp).Value(i))).UTC()
			if q := rec.Column(col("quality")).(*array.Float64); q.IsValid(i) {
				v := q.Value(i)
				r.quality = &v
			}
			if s := rec.Column(col("reason")).(*array.String); s.IsValid(i) {
				v := s.Value(i)
				r.reason = &v
			}
			out = append(out, r)
		}
	}
	if err := rd.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return out
}

func TestScoresStaleKeepsLastSnapshotWithWarning(t *testing.T) {
	f := newFixture(t, "")
	f.rebuild(t)
	etag := f.do("GET", "/api/v1/scores", readToken, nil, "").h.Get("ETag")

	// ClickHouse goes away: the next rebuild fails, the snapshot stays and
	// says so (111) with its age.
	f.clock.add(50 * time.Second)
	f.rows.fail(errors.New("dial tcp: connection refused"))
	if err := f.s.Rebuild(context.Background()); err == nil {
		t.Fatal("rebuild succeeded")
	}
	a := f.do("GET", "/api/v1/scores", readToken, nil, "")
	w := a.h.Values("Warning")
	if a.code != 200 || a.h.Get("ETag") != etag || a.h.Get("Age") != "50" || len(w) != 2 ||
		!strings.HasPrefix(w[0], `110 qoscope "Response is Stale: scores snapshot of 2026-11-20T12:05:00Z built 50s ago"`) ||
		!strings.HasPrefix(w[1], `111 qoscope "Revalidation Failed`) || !strings.Contains(w[1], "connection refused") {
		t.Errorf("stale answer: %d %v", a.code, a.h)
	}
	if tb := decodeTable(t, a.body); !tb.At.Equal(t0) || len(tb.Regions) != 2 {
		t.Errorf("stale table: %+v", tb)
	}

	// Back: fresh, no warning.
	f.rows.fail(nil)
	f.rebuild(t)
	if a := f.do("GET", "/api/v1/scores", readToken, nil, ""); len(a.h.Values("Warning")) != 0 || a.h.Get("Age") != "0" {
		t.Errorf("fresh again: %v", a.h)
	}
	// No rebuild for longer than stale_after (2m): 110 only.
	f.clock.add(2*time.Minute + time.Second)
	if w := f.do("GET", "/api/v1/scores", readToken, nil, "").h.Values("Warning"); len(w) != 1 || !strings.HasPrefix(w[0], "110 ") {
		t.Errorf("old snapshot: %v", w)
	}
}

func TestAlertEntries(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 20, 12, m, 0, 0, time.UTC) }
	lbl := map[string]string{"vendor": "cdn-a", "province": "guangdong", "isp": "telecom", "severity": "page"}
	changes := []AlertChange{
		{Rule: "cdn_down", Fingerprint: "f1", Labels: lbl, State: "pending", At: at(0)},
		{Rule: "cdn_down", Fingerprint: "f1", Labels: lbl, State: "firing", At: at(2)},
		{Rule: "cdn_down", Fingerprint: "f1", Labels: lbl, State: "resolved", At: at(10)},
	}
	hold := 10 * time.Minute
	for _, c := range []struct {
		at    int
		on    bool
		since int
		until int // -1: none
	}{
		{1, false, 0, 0},  // pending only
		{2, true, 2, -1},  // firing
		{9, true, 2, -1},  // still firing
		{10, true, 2, 20}, // resolved at 12:10: held until 12:20
		{19, true, 2, 20}, // still held
		{20, false, 0, 0}, // 12:10 + 10m: back
	} {
		es, warns := alertEntries(changes, at(c.at), hold)
		if len(warns) != 0 {
			t.Errorf("warnings %v", warns)
		}
		if !c.on {
			if len(es) != 0 {
				t.Errorf("at 12:%02d: %+v, want none", c.at, es)
			}
			continue
		}
		if len(es) != 1 {
			t.Fatalf("at 12:%02d: %+v", c.at, es)
		}
		e := es[0]
		if e.Vendor != "cdn-a" || e.Province != "guangdong" || e.ISP != "telecom" || e.Source != SourceAlert || e.By != "alert:cdn_down" || !e.Since.Equal(at(c.since)) {
			t.Errorf("at 12:%02d: %+v", c.at, e)
		}
		if (c.until < 0) != (e.Until == nil) || (e.Until != nil && !e.Until.Equal(at(c.until))) {
			t.Errorf("at 12:%02d: until %v, want 12:%02d", c.at, e.Until, c.until)
		}
	}
	// Firing again after a resolve: since is the new firing.
	again := append(slices.Clone(changes), AlertChange{Rule: "cdn_down", Fingerprint: "f1", Labels: lbl, State: "firing", At: at(14)})
	if es, _ := alertEntries(again, at(15), hold); len(es) != 1 || !es[0].Since.Equal(at(14)) || es[0].Until != nil {
		t.Errorf("fired again: %+v", es)
	}
	// A later server's change (after at) is not seen yet.
	if es, _ := alertEntries(changes, at(5), 0); len(es) != 1 || es[0].Until != nil {
		t.Errorf("future resolve: %+v", es)
	}
	// No region labels: nothing, and a warning.
	bad := []AlertChange{{Rule: "global", Fingerprint: "f2", Labels: map[string]string{"vendor": "cdn-a"}, State: "firing", At: at(1)}}
	if es, warns := alertEntries(bad, at(3), hold); len(es) != 0 || len(warns) != 1 || !strings.Contains(warns[0], "alert global") {
		t.Errorf("no labels: %+v %v", es, warns)
	}
}

func TestAlertBlacklistsOnlyThereAndComesBackAfterHold(t *testing.T) {
	f := newFixture(t, "")
	lbl := map[string]string{"vendor": "cdn-a", "province": "guangdong", "isp": "telecom"}
	f.store.alerts = []AlertChange{{Rule: "cdn_stutter", Fingerprint: "f1", Labels: lbl, State: "firing", At: t0.Add(-time.Minute)}}
	f.rebuild(t)
	tb := decodeTable(t, f.do("GET", "/api/v1/scores", readToken, nil, "").body)
	checkRatios(t, "alert firing", ratios(tb), aOutOfGuangdong)
	v := tb.Regions[1].Vendors[0] // guangdong/telecom cdn-a
	if !v.Blacklisted || v.Reason == nil || *v.Reason != "alert cdn_stutter firing since 2026-11-20T12:04:00Z" {
		t.Errorf("guangdong cdn-a: %+v", v)
	}
	if bj := tb.Regions[0].Vendors[0]; bj.Blacklisted || bj.Reason != nil {
		t.Errorf("beijing cdn-a: %+v", bj)
	}

	// Resolved at 12:06, hold 10m: still out at 12:15, back at 12:16.
	f.store.mu.Lock()
	f.store.alerts = append(f.store.alerts, AlertChange{Rule: "cdn_stutter", Fingerprint: "f1", Labels: lbl, State: "resolved", At: t0.Add(time.Minute)})
	f.store.mu.Unlock()
	f.clock.set(time.Date(2026, 11, 20, 12, 15, 30, 0, time.UTC))
	f.rebuild(t)
	checkRatios(t, "held", ratios(f.s.Snapshot().Table), aOutOfGuangdong)
	bl := decodeBlacklist(t, f.do("GET", "/api/v1/blacklist", readToken, nil, "").body)
	if len(bl.Entries) != 1 || bl.Entries[0].Until == nil || !bl.Entries[0].Until.Equal(time.Date(2026, 11, 20, 12, 16, 0, 0, time.UTC)) || !bl.Entries[0].Applied {
		t.Errorf("held entry: %+v", bl.Entries)
	}
	f.clock.set(time.Date(2026, 11, 20, 12, 16, 30, 0, time.UTC))
	f.rebuild(t)
	checkRatios(t, "back", ratios(f.s.Snapshot().Table), even)

	want := []string{"alert on cdn-a guangdong/telecom by alert:cdn_stutter", "alert off cdn-a guangdong/telecom by alert:cdn_stutter"}
	if got := f.store.actions(); !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
}

func decodeBlacklist(t *testing.T, b []byte) blacklistAnswer {
	t.Helper()
	var a blacklistAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return a
}

func TestOperatorSwitchAuditedReversible(t *testing.T) {
	f := newFixture(t, "")
	f.rebuild(t)
	on := `{"vendor":"cdn-a","province":"guangdong","isp":"telecom","on":true,"reason":"maintenance window"}`
	if a := f.do("POST", "/api/v1/admin/blacklist", readToken, nil, on); a.code != 403 {
		t.Errorf("read token switching: %d %s", a.code, a.body)
	}
	for body, want := range map[string]string{
		`{"vendor":"cdn-a","province":"guangdong","isp":"telecom","on":true}`:                         "reason: required",
		`{"vendor":"cdn-x","province":"guangdong","isp":"telecom","on":true,"reason":"x"}`:            `cdn-x\" has no contract`,
		`{"vendor":"cdn-a","province":"guangdong","isp":"telecom","reason":"x"}`:                      "on: required",
		`{"vendor":"cdn-a","province":"guangdong","isp":"telecom","on":true,"reason":"x","who":"me"}`: "unknown field",
	} {
		if a := f.do("POST", "/api/v1/admin/blacklist", adminToken, nil, body); a.code != 400 || !bytes.Contains(a.body, []byte(want)) {
			t.Errorf("%s: %d %s, want 400 %q", body, a.code, a.body, want)
		}
	}
	a := f.do("POST", "/api/v1/admin/blacklist", adminToken, nil, on)
	var ans switchAnswer
	if err := json.Unmarshal(a.body, &ans); err != nil || a.code != 200 {
		t.Fatalf("switch on: %d %s", a.code, a.body)
	}
	if ans.Change.By != "ops" || ans.Change.Action != "on" || ans.Entry == nil || !ans.Entry.Applied || ans.Entry.Source != "operator" {
		t.Errorf("switch on answer: %s", a.body)
	}
	checkRatios(t, "operator on", ratios(f.s.Snapshot().Table), aOutOfGuangdong)
	if r := f.s.Snapshot().Table.Regions[1].Vendors[0].Reason; r == nil || *r != "operator ops: maintenance window" {
		t.Errorf("reason %v", r)
	}

	off := `{"vendor":"cdn-a","province":"guangdong","isp":"telecom","on":false,"reason":"done"}`
	if a := f.do("POST", "/api/v1/admin/blacklist", adminToken, nil, off); a.code != 200 || !bytes.Contains(a.body, []byte(`"entry":null`)) {
		t.Errorf("switch off: %d %s", a.code, a.body)
	}
	checkRatios(t, "operator off", ratios(f.s.Snapshot().Table), even)
	if a := f.do("POST", "/api/v1/admin/blacklist", adminToken, nil, off); a.code != 404 {
		t.Errorf("off twice: %d %s", a.code, a.body)
	}
	bl := decodeBlacklist(t, f.do("GET", "/api/v1/blacklist", readToken, nil, "").body)
	if len(bl.Entries) != 0 || len(bl.Changes) != 2 || bl.Changes[0].Action != "off" || bl.Changes[0].Reason != "done" || bl.Changes[1].By != "ops" {
		t.Errorf("blacklist after off: %+v", bl)
	}
}

func TestLastEligibleVendorRefused(t *testing.T) {
	// The file blacklists cdn-a in guangdong/telecom; the operator then
	// blacklists cdn-b there: applying both would leave the region
	// without a vendor, so cdn-b (applied after cdn-a, by name) is kept.
	f := newFixture(t, "- {vendor: cdn-a, province: guangdong, isp: telecom, reason: contract dispute}\n")
	f.rebuild(t)
	checkRatios(t, "file", ratios(f.s.Snapshot().Table), aOutOfGuangdong)
	a := f.do("POST", "/api/v1/admin/blacklist", adminToken, nil, `{"vendor":"cdn-b","province":"guangdong","isp":"telecom","on":true,"reason":"5xx"}`)
	var ans switchAnswer
	if err := json.Unmarshal(a.body, &ans); err != nil || a.code != 200 {
		t.Fatalf("switch: %d %s", a.code, a.body)
	}
	const note = "not blacklisted: last eligible vendor of guangdong/telecom (blacklist reason: operator ops: 5xx)"
	if ans.Entry == nil || ans.Entry.Applied || ans.Entry.Note == nil || *ans.Entry.Note != note {
		t.Errorf("answer: %s", a.body)
	}
	checkRatios(t, "refused", ratios(f.s.Snapshot().Table), aOutOfGuangdong)
	want := []string{
		"file on cdn-a guangdong/telecom by file",
		"operator on cdn-b guangdong/telecom by ops",
		"operator refused cdn-b guangdong/telecom by ops",
	}
	if got := f.store.actions(); !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
	if d := f.store.audit[2].Detail; d != note {
		t.Errorf("refusal detail %q", d)
	}
}

func TestMergeJoinsReasonsOfOneKey(t *testing.T) {
	es := []Entry{
		{Vendor: "cdn-a", Province: "p", ISP: "i", Source: SourceAlert, By: "alert:r", Reason: "alert r firing"},
		{Vendor: "cdn-a", Province: "p", ISP: "i", Source: SourceOperator, By: "ops", Reason: "maint"},
		{Vendor: "cdn-b", Province: "p", ISP: "i", Source: SourceFile, By: "file", Reason: "dispute"},
	}
	got := merge(es)
	want := score.Blacklist{
		{Vendor: "cdn-a", Province: "p", ISP: "i", Reason: "operator ops: maint; alert r firing"},
		{Vendor: "cdn-b", Province: "p", ISP: "i", Reason: "file: dispute"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("merge %+v, want %+v", got, want)
	}
}

func TestKafkaGetsChangedRegionsOnly(t *testing.T) {
	f := newFixture(t, "")
	f.rebuild(t)
	keys := func(i int) []string {
		var out []string
		for _, m := range f.pub.msgs[i] {
			out = append(out, m.Key)
		}
		return out
	}
	if len(f.pub.msgs) != 1 || !slices.Equal(keys(0), []string{"beijing/unicom", "guangdong/telecom"}) {
		t.Fatalf("first snapshot: %v", f.pub.msgs)
	}
	// The value is the filtered document, as GET ?province=&isp= answers it.
	if got := f.do("GET", "/api/v1/scores?province=beijing&isp=unicom", readToken, nil, "").body; !bytes.Equal(f.pub.msgs[0][0].Value, got) {
		t.Errorf("kafka value %s, want %s", f.pub.msgs[0][0].Value, got)
	}
	// Next minute, same data: nothing to write.
	f.clock.add(time.Minute)
	f.rebuild(t)
	if len(f.pub.msgs) != 1 {
		t.Errorf("unchanged snapshot wrote %v", f.pub.msgs[1:])
	}
	// An operator switch changes guangdong/telecom only.
	f.do("POST", "/api/v1/admin/blacklist", adminToken, nil, `{"vendor":"cdn-a","province":"guangdong","isp":"telecom","on":true,"reason":"m"}`)
	if len(f.pub.msgs) != 2 || !slices.Equal(keys(1), []string{"guangdong/telecom"}) {
		t.Errorf("after a switch: %v", f.pub.msgs)
	}
	// kafka_refresh (10m) later every region is written again.
	f.clock.add(10 * time.Minute)
	f.rebuild(t)
	if len(f.pub.msgs) != 3 || len(keys(2)) != 2 {
		t.Errorf("refresh: %v", f.pub.msgs)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "br, gzip;q=0.8": true, "deflate": false, "*": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "gzip;q=0.5": true, "identity, gzip;q=0.001": true, "x-gzip": false,
	} {
		if got := acceptsGzip(ae); got != want {
			t.Errorf("%q: %v, want %v", ae, got, want)
		}
	}
}

// A client accepting gzip gets the whole table compressed once per
// snapshot, under its own ETag; it decompresses to the same document. A
// small answer (one region) is sent as it is.
func TestScoresGzip(t *testing.T) {
	f := newFixture(t, "")
	f.rebuild(t)
	plain := f.do("GET", "/api/v1/scores", readToken, nil, "")
	f.s.snap.Load().views[filter{}].json.gz = nil // recomputed below from a large body
	big, err := newEncoded(append(bytes.Repeat([]byte(" "), gzipFrom), plain.body...), ctJSON)
	if err != nil {
		t.Fatal(err)
	}
	f.s.snap.Load().views[filter{}].json = big
	a := f.do("GET", "/api/v1/scores", readToken, map[string]string{"Accept-Encoding": "br, gzip"}, "")
	if a.code != 200 || a.h.Get("Content-Encoding") != "gzip" || a.h.Get("Vary") != "Accept, Accept-Encoding" {
		t.Fatalf("gzip: %d %v", a.code, a.h)
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, big.body) || a.h.Get("Content-Length") != strconv.Itoa(len(a.body)) {
		t.Fatalf("gzip body: %v, %d bytes for %d", err, len(got), len(big.body))
	}
	if a.h.Get("Etag") == big.etag[0] || !strings.HasSuffix(a.h.Get("Etag"), `-gz"`) {
		t.Errorf("gzip ETag %s, identity %s", a.h.Get("Etag"), big.etag[0])
	}
	if b := f.do("GET", "/api/v1/scores", readToken, map[string]string{"Accept-Encoding": "gzip", "If-None-Match": a.h.Get("Etag")}, ""); b.code != 304 {
		t.Errorf("If-None-Match of the gzip ETag: %d", b.code)
	}
	if b := f.do("GET", "/api/v1/scores", readToken, map[string]string{"Accept-Encoding": "gzip;q=0"}, ""); b.h.Get("Content-Encoding") != "" || !bytes.Equal(b.body, big.body) {
		t.Errorf("gzip;q=0 got %q", b.h.Get("Content-Encoding"))
	}
	r := f.do("GET", "/api/v1/scores?province=beijing&isp=unicom", readToken, map[string]string{"Accept-Encoding": "gzip"}, "")
	if r.code != 200 || r.h.Get("Content-Encoding") != "" || len(r.body) >= gzipFrom {
		t.Errorf("small answer: %d %q, %d bytes", r.code, r.h.Get("Content-Encoding"), len(r.body))
	}
}
