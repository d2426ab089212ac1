package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/bench/peers/chraw"
	"github.com/qoscope/qoscope/query"
)

// The wall's questions (bench/README.md): what the war-room wall
// asks on every refresh.
const (
	WallSeries    = "series"    // the headline metric, total, one point per minute over 60 minutes
	WallBreakdown = "breakdown" // province × ISP ranking of the newest minute
	WallStreams   = "streams"   // upstream cards of the newest minute
	WallHistory   = "history"   // 000's day-by-day table over 7 days
)

// WallQueries lists the questions in the order a client asks them.
var WallQueries = []string{WallSeries, WallBreakdown, WallStreams, WallHistory}

// WallSpec fixes the parameters of the questions, the same for every kind
// of client.
type WallSpec struct {
	// SeriesFrom and SeriesTo bound the headline series (60 minutes).
	SeriesFrom, SeriesTo time.Time
	// SeriesMetric is the headline series' client metric.
	SeriesMetric string
	// BreakdownMetric ranks province × ISP; BreakdownLimit is its limit
	// (large enough for every key: the wall's map shows them all).
	BreakdownMetric string
	BreakdownLimit  int
	// HistoryDays is History's days.
	HistoryDays int
}

// DefaultWallSpec is the wall of 000/001 over the hour that ends at end.
func DefaultWallSpec(end time.Time) WallSpec {
	return WallSpec{SeriesFrom: end.Add(-time.Hour), SeriesTo: end, SeriesMetric: "stutter_rate_uv",
		BreakdownMetric: "zero_stutter_rate", BreakdownLimit: 200, HistoryDays: 7}
}

// describe is what a question asks, for the report.
func (s WallSpec) describe(q string) string {
	switch q {
	case WallSeries:
		return fmt.Sprintf("client %s, total, step 1m, 60 minutes", s.SeriesMetric)
	case WallBreakdown:
		return fmt.Sprintf("client %s by province,isp at the newest minute, sorted by users, limit %d", s.BreakdownMetric, s.BreakdownLimit)
	case WallStreams:
		return "origin cards per stream_id × line at the newest minute"
	case WallHistory:
		return fmt.Sprintf("000's day-by-day table, %d days, with day-over-day and week-over-week", s.HistoryDays)
	}
	return q
}

// WallClient asks one question and returns the size of the answer
// (points, rows, cards or days). Implementations: the query library in
// this process (libraryWall), qoscope serve over HTTP (httpWall) and raw
// SQL over the raw events (rawWall, the peer). Safe for concurrent use.
type WallClient interface {
	Ask(ctx context.Context, q string) (int, error)
}

// libraryWall asks query.Querier directly: what `qoscope serve` runs per
// request, without HTTP and JSON.
type libraryWall struct {
	q    *query.Querier
	spec WallSpec
}

func (c *libraryWall) Ask(ctx context.Context, q string) (int, error) {
	switch q {
	case WallSeries:
		s, err := c.q.Series(ctx, query.SeriesRequest{Source: "client", Metric: c.spec.SeriesMetric,
			From: c.spec.SeriesFrom, To: c.spec.SeriesTo, Step: query.Step1m})
		if err != nil {
			return 0, err
		}
		return seriesPoints(s), nil
	case WallBreakdown:
		b, err := c.q.Breakdown(ctx, query.BreakdownRequest{Source: "client", Metric: c.spec.BreakdownMetric,
			By: []string{"province", "isp"}, Sort: "users", Limit: c.spec.BreakdownLimit})
		if err != nil {
			return 0, err
		}
		return len(b.Rows), nil
	case WallStreams:
		s, err := c.q.Streams(ctx, time.Time{})
		if err != nil {
			return 0, err
		}
		return len(s.Cards), nil
	case WallHistory:
		h, err := c.q.History(ctx, c.spec.HistoryDays)
		if err != nil {
			return 0, err
		}
		return historyDays(h), nil
	}
	return 0, fmt.Errorf("unknown wall query %q", q)
}

func seriesPoints(s *query.Series) int {
	n := 0
	for _, g := range s.Groups {
		n += len(g.Points)
	}
	return n
}

// historyDays counts the days with at least one value.
func historyDays(h *query.History) int {
	n := 0
	for _, d := range h.Days {
		for _, c := range d.Cells {
			if c.Value != nil {
				n++
				break
			}
		}
	}
	return n
}

// httpWall asks qoscope serve's JSON API (/api/v1, docs/API.md) and decodes
// the answers into the query package's types, as a dashboard would.
type httpWall struct {
	base   string // e.g. http://127.0.0.1:8080
	token  string // a token with the read scope
	client *http.Client
	spec   WallSpec
}

// wallURL is the request of question q against base.
func (s WallSpec) wallURL(base, q string) (string, error) {
	v := url.Values{}
	var path string
	switch q {
	case WallSeries:
		path = "/api/v1/series"
		v.Set("source", "client")
		v.Set("metric", s.SeriesMetric)
		v.Set("from", s.SeriesFrom.UTC().Format(time.RFC3339))
		v.Set("to", s.SeriesTo.UTC().Format(time.RFC3339))
		v.Set("step", "1m")
	case WallBreakdown:
		path = "/api/v1/breakdown"
		v.Set("source", "client")
		v.Set("metric", s.BreakdownMetric)
		v.Set("by", "province,isp")
		v.Set("sort", "users")
		v.Set("limit", strconv.Itoa(s.BreakdownLimit))
	case WallStreams:
		path = "/api/v1/streams"
	case WallHistory:
		path = "/api/v1/history"
		v.Set("days", strconv.Itoa(s.HistoryDays))
	default:
		return "", fmt.Errorf("unknown wall query %q", q)
	}
	u := strings.TrimSuffix(base, "/") + path
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u, nil
}

func (c *httpWall) Ask(ctx context.Context, q string) (int, error) {
	u, err := c.spec.wallURL(c.base, q)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("cannot build the %s request: %w", q, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot get %s: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("cannot read the %s answer: %w", q, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: HTTP %d: %.200s", q, resp.StatusCode, body)
	}
	switch q {
	case WallSeries:
		var s query.Series
		err = json.Unmarshal(body, &s)
		return seriesPoints(&s), wrapDecode(q, err)
	case WallBreakdown:
		var b query.Breakdown
		err = json.Unmarshal(body, &b)
		return len(b.Rows), wrapDecode(q, err)
	case WallStreams:
		var s query.Streams
		err = json.Unmarshal(body, &s)
		return len(s.Cards), wrapDecode(q, err)
	default:
		var h query.History
		err = json.Unmarshal(body, &h)
		return historyDays(&h), wrapDecode(q, err)
	}
}

func wrapDecode(q string, err error) error {
	if err != nil {
		return fmt.Errorf("cannot decode the %s answer: %w", q, err)
	}
	return nil
}

// rawWall is the peer: the same questions answered by SQL over the raw
// events of one hour (bench/peers/chraw's table), as a wall reading raw
// events would ask them. It only has that hour, so its history covers the
// hour (qoscope's reads 7 days of daily rollups).
type rawWall struct {
	conn      driver.Conn
	sql       map[string]string
	from, end time.Time // the hour
}

// Client types of the raw table's type enum (chraw.Columns) that count a
// user as watching (docs/METRICS.md: users of the pull side).
const rawPull = "type IN ('play_start', 'first_frame', 'stall', 'heartbeat', 'play_end')"

// rawWallSQL is the peer's SQL of each question over db.table, every value
// bound (? = the hour's start, its end, the newest minute's start).
func rawWallSQL(db, table string, onMic, offMic []string, limit int) (map[string]string, error) {
	if err := chraw.CheckIdent("database", db); err != nil {
		return nil, err
	}
	if err := chraw.CheckIdent("table", table); err != nil {
		return nil, err
	}
	t := "`" + db + "`.`" + table + "`"
	stall := "type = 'stall' AND duration_ms >= 2000"
	roles := func(rs []string) string {
		q := make([]string, len(rs))
		for i, r := range rs {
			q[i] = "'" + strings.ReplaceAll(r, "'", "") + "'"
		}
		if len(q) == 0 {
			return "''"
		}
		return strings.Join(q, ", ")
	}
	div := func(n, d string) string { return "sum(" + n + ") / nullIf(sum(" + d + "), 0)" }
	return map[string]string{
		WallSeries: "SELECT toStartOfMinute(ts) AS minute, uniqExactIf(user_id, " + rawPull + ") AS users, uniqExactIf(user_id, " + stall + ") AS su," +
			" su / nullIf(users, 0) AS stutter_rate_uv FROM " + t +
			" WHERE type <= 'dns' AND ts >= ? AND ts < ? GROUP BY minute ORDER BY minute",
		WallBreakdown: "SELECT if(empty(province), 'unknown', toString(province)) AS p, if(empty(isp), 'unknown', toString(isp)) AS i," +
			" uniqExactIf(user_id, " + rawPull + ") AS users, (users - uniqExactIf(user_id, " + stall + ")) / nullIf(users, 0) AS zero_stutter_rate FROM " + t +
			" WHERE type <= 'dns' AND ts >= ? AND ts < ? + INTERVAL 1 MINUTE GROUP BY p, i ORDER BY users DESC, zero_stutter_rate DESC, p, i LIMIT " + strconv.Itoa(limit),
		WallStreams: "SELECT toString(stream_id) AS s, toString(line) AS l, count() AS samples, avg(fps), min(fps), avg(bitrate_kbps), min(bitrate_kbps), avg(rtt_ms) FROM " + t +
			" WHERE type = 'origin_stats' AND ts >= ? AND ts < ? + INTERVAL 1 MINUTE GROUP BY s, l ORDER BY s, l",
		// Per minute, then summed, as the rollups define the period's
		// numbers: distinct users per minute, summed (user-minutes).
		WallHistory: "SELECT if(seg = '', 'all', seg) AS segment," +
			" " + div("pushes_ok", "pushes") + " AS push_connect_rate, " + div("push_drops", "push_ends") + " AS push_drop_rate," +
			" " + div("relays_failed", "relays") + " AS relay_fail_rate, " + div("relay_ms_sum", "relays_ok") + " AS relay_ms_avg," +
			" " + div("push_ms_sum", "pushes_ok") + " AS push_connect_ms_avg," +
			" " + div("vb_sum", "vb_n") + " AS video_buffer_ms_avg, " + div("ab_sum", "ab_n") + " AS audio_buffer_ms_avg," +
			" " + div("stalled_samples", "samples") + " AS stutter_rate_pv," +
			" " + div("su_video", "users") + " AS stutter_rate_uv_video, " + div("su_audio", "users") + " AS stutter_rate_uv_audio," +
			" " + div("pull_ms_sum", "plays_ok") + " AS pull_connect_ms_avg, " + div("ff_sum", "first_frames") + " AS first_frame_ms_avg," +
			" " + div("plays_ok", "plays") + " AS pull_connect_rate, 1 - " + div("plays_ok", "plays") + " AS pull_fail_rate_pv" +
			" FROM (SELECT toStartOfMinute(ts) AS minute, multiIf(role IN (" + roles(onMic) + "), 'on_mic', role IN (" + roles(offMic) + "), 'off_mic', 'other') AS s," +
			" uniqExactIf(user_id, " + rawPull + ") AS users," +
			" uniqExactIf(user_id, " + stall + " AND media = 'video') AS su_video, uniqExactIf(user_id, " + stall + " AND media = 'audio') AS su_audio," +
			" countIf(type = 'heartbeat') AS samples, countIf(type = 'heartbeat' AND stalled) AS stalled_samples," +
			" countIf(type = 'play_start') AS plays, countIf(type = 'play_start' AND ok) AS plays_ok, sumIf(connect_ms, type = 'play_start' AND ok) AS pull_ms_sum," +
			" countIf(type = 'first_frame') AS first_frames, sumIf(first_frame_ms, type = 'first_frame') AS ff_sum," +
			" sumIf(video_buffer_ms, type = 'heartbeat') AS vb_sum, countIf(type = 'heartbeat' AND video_buffer_ms IS NOT NULL) AS vb_n," +
			" sumIf(audio_buffer_ms, type = 'heartbeat') AS ab_sum, countIf(type = 'heartbeat' AND audio_buffer_ms IS NOT NULL) AS ab_n," +
			" countIf(type = 'push_start') AS pushes, countIf(type = 'push_start' AND ok) AS pushes_ok, sumIf(connect_ms, type = 'push_start' AND ok) AS push_ms_sum," +
			" countIf(type = 'push_end') AS push_ends, countIf(type = 'push_end' AND dropped) AS push_drops," +
			" countIf(type = 'relay') AS relays, countIf(type = 'relay' AND NOT ok) AS relays_failed, countIf(type = 'relay' AND ok) AS relays_ok," +
			" sumIf(duration_ms, type = 'relay' AND ok) AS relay_ms_sum" +
			" FROM " + t + " WHERE type <= 'dns' AND ts >= ? AND ts < ?" +
			" GROUP BY GROUPING SETS ((minute), (minute, s)) SETTINGS group_by_use_nulls = 0)" +
			" WHERE s != 'other' GROUP BY s AS seg ORDER BY segment",
	}, nil
}

func (c *rawWall) Ask(ctx context.Context, q string) (int, error) {
	sql, ok := c.sql[q]
	if !ok {
		return 0, fmt.Errorf("unknown wall query %q", q)
	}
	newest := c.end.Add(-time.Minute)
	args := []any{c.from, c.end}
	if q == WallBreakdown || q == WallStreams {
		args = []any{newest, newest}
	}
	rows, err := c.conn.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("cannot run the raw %s query: %w", q, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("cannot read the raw %s answer: %w", q, err)
	}
	return n, nil
}

// LoadOptions shape one load run.
type LoadOptions struct {
	// Clients ask concurrently, each its own loop over Queries.
	Clients int
	// Duration: a client starts no new round once it has passed and the
	// client has done MinRounds rounds.
	Duration  time.Duration
	MinRounds int
	Queries   []string
}

// LoadRun is what one load run observed.
type LoadRun struct {
	Latencies map[string][]time.Duration
	Items     map[string]int // the size of the last answer per question
	Errors    map[string]int
	// FirstErrors is the first error per question.
	FirstErrors map[string]string
	Wall        time.Duration
	Rounds      int
}

// runLoad has o.Clients goroutines ask c every question of o.Queries in
// rounds, each client starting its rounds at a different question so that
// the mix at any moment is spread over all of them, and records each
// answer's latency (start of the call to its return, decoding included).
func runLoad(ctx context.Context, c WallClient, o LoadOptions) LoadRun {
	res := LoadRun{Latencies: map[string][]time.Duration{}, Items: map[string]int{}, Errors: map[string]int{}, FirstErrors: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.Duration)
	for i := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ctx.Err() == nil && (round < o.MinRounds || time.Now().Before(deadline)); round++ {
				for j := range o.Queries {
					q := o.Queries[(i+j)%len(o.Queries)]
					t := time.Now()
					n, err := c.Ask(ctx, q)
					d := time.Since(t)
					mu.Lock()
					if err != nil {
						if ctx.Err() == nil {
							res.Errors[q]++
							if _, ok := res.FirstErrors[q]; !ok {
								res.FirstErrors[q] = err.Error()
							}
						}
					} else {
						res.Latencies[q] = append(res.Latencies[q], d)
						res.Items[q] = n
					}
					mu.Unlock()
				}
				mu.Lock()
				res.Rounds++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Wall = time.Since(start)
	return res
}

// WallQueryStats are one question's latencies in one load run.
type WallQueryStats struct {
	Query      string  `json:"query"`
	Asks       string  `json:"asks"`
	N          int     `json:"n"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Items      int     `json:"answer_items"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	MeanMs     float64 `json:"mean_ms"`
	// P50Ms1 is the p50 with one client (N1 answers): the latency without
	// queueing behind the other clients.
	P50Ms1 float64 `json:"p50_ms_one_client"`
	N1     int     `json:"n_one_client"`
	// Per answer under load, from system.query_log: ClickHouse statements,
	// their CPU (user + system) and rows read. Zero over HTTP.
	Statements  float64 `json:"statements_per_answer,omitempty"`
	ServerCPUMs float64 `json:"server_cpu_ms_per_answer,omitempty"`
	ReadRows    float64 `json:"read_rows_per_answer,omitempty"`
	// ServerCPUMs1 and AnalysisMs1 are the one-client run's CPU and query
	// analysis time (ClickHouse's QueryAnalysisMicroseconds: parsing the
	// SQL, expanding the views; wall time) per answer.
	ServerCPUMs1 float64 `json:"server_cpu_ms_per_answer_one_client,omitempty"`
	AnalysisMs1  float64 `json:"analysis_ms_per_answer_one_client,omitempty"`
}

// stats summarises a load run per question (nearest-rank quantiles, as
// the freshness figures).
func (r LoadRun) stats(spec WallSpec, queries []string) []WallQueryStats {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	var out []WallQueryStats
	for _, q := range queries {
		ds := r.Latencies[q]
		s := WallQueryStats{Query: q, Asks: spec.describe(q), N: len(ds), Errors: r.Errors[q], FirstError: r.FirstErrors[q], Items: r.Items[q]}
		if len(ds) > 0 {
			var sum time.Duration
			for _, d := range ds {
				sum += d
			}
			s.P50Ms, s.P99Ms, s.MaxMs = ms(e2e.Quantile(ds, 0.5)), ms(e2e.Quantile(ds, 0.99)), ms(e2e.Quantile(ds, 1))
			s.MeanMs = ms(sum) / float64(len(ds))
		}
		out = append(out, s)
	}
	return out
}

// wallAgreement compares qoscope's answers (the query library) with the
// peer's where both answer over the same minutes: the series (the hour),
// the breakdown and the streams (its last minute). Rates must agree to
// 1e-9 and counts exactly (distinct users per minute are exact in both);
// means to 1e-6 (float sums in another order). History is not compared:
// qoscope's covers 7 days, the peer's its one hour.
func wallAgreement(ctx context.Context, q *query.Querier, raw *rawWall, spec WallSpec) ([]string, error) {
	var out []string
	newest := raw.end.Add(-time.Minute)

	s, err := q.Series(ctx, query.SeriesRequest{Source: "client", Metric: spec.SeriesMetric, From: raw.from, To: raw.end, Step: query.Step1m})
	if err != nil {
		return nil, err
	}
	want := map[time.Time]*float64{}
	rows, err := raw.conn.Query(ctx, raw.sql[WallSeries], raw.from, raw.end)
	if err != nil {
		return nil, fmt.Errorf("cannot run the raw series: %w", err)
	}
	for rows.Next() {
		var m time.Time
		var users, su uint64
		var v *float64
		if err := rows.Scan(&m, &users, &su, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the raw series: %w", err)
		}
		want[m.UTC()] = v
	}
	rows.Close()
	n, bad := 0, 0
	for _, g := range s.Groups {
		for _, p := range g.Points {
			n++
			if !sameRate(p.Value, want[p.Time], 1e-9) {
				bad++
			}
		}
	}
	out = append(out, fmt.Sprintf("series: %d of %d minutes equal (qoscope %d points, peer %d)", n-bad, max(n, len(want)), n, len(want)))

	b, err := q.Breakdown(ctx, query.BreakdownRequest{Source: "client", Metric: spec.BreakdownMetric, By: []string{"province", "isp"},
		Sort: "users", Limit: spec.BreakdownLimit, At: newest})
	if err != nil {
		return nil, err
	}
	type key struct{ a, b string }
	type bd struct {
		users uint64
		v     *float64
	}
	wantB := map[key]bd{}
	if rows, err = raw.conn.Query(ctx, raw.sql[WallBreakdown], newest, newest); err != nil {
		return nil, fmt.Errorf("cannot run the raw breakdown: %w", err)
	}
	for rows.Next() {
		var k key
		var x bd
		if err := rows.Scan(&k.a, &k.b, &x.users, &x.v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the raw breakdown: %w", err)
		}
		wantB[k] = x
	}
	rows.Close()
	bad = 0
	for _, r := range b.Rows {
		w, ok := wantB[key{r.Dims["province"], r.Dims["isp"]}]
		if !ok || r.Volume == nil || uint64(*r.Volume) != w.users || !sameRate(r.Value, w.v, 1e-9) {
			bad++
		}
	}
	out = append(out, fmt.Sprintf("breakdown at %s: %d of %d province×isp keys equal (users and %s; qoscope %d keys, peer %d)",
		newest.Format("15:04"), len(b.Rows)-bad, max(len(b.Rows), len(wantB)), spec.BreakdownMetric, len(b.Rows), len(wantB)))

	st, err := q.Streams(ctx, newest)
	if err != nil {
		return nil, err
	}
	type card struct {
		samples                     uint64
		fps, fpsMin, br, brMin, rtt float64
	}
	wantS := map[key]card{}
	if rows, err = raw.conn.Query(ctx, raw.sql[WallStreams], newest, newest); err != nil {
		return nil, fmt.Errorf("cannot run the raw streams: %w", err)
	}
	for rows.Next() {
		var k key
		var c card
		if err := rows.Scan(&k.a, &k.b, &c.samples, &c.fps, &c.fpsMin, &c.br, &c.brMin, &c.rtt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the raw streams: %w", err)
		}
		wantS[k] = c
	}
	rows.Close()
	bad = 0
	for _, c := range st.Cards {
		w, ok := wantS[key{c.StreamID, c.Line}]
		if !ok || c.Samples != w.samples || !sameRate(c.FPS, &w.fps, 1e-6) || !sameRate(c.FPSMin, &w.fpsMin, 1e-6) ||
			!sameRate(c.BitrateKbps, &w.br, 1e-6) || !sameRate(c.RTTMS, &w.rtt, 1e-6) {
			bad++
		}
	}
	out = append(out, fmt.Sprintf("streams at %s: %d of %d stream×line cards equal (samples, fps, bitrate, RTT; qoscope %d cards, peer %d)",
		newest.Format("15:04"), len(st.Cards)-bad, max(len(st.Cards), len(wantS)), len(st.Cards), len(wantS)))
	return out, nil
}

// sameRate: both null, or both set and within rel relative error.
func sameRate(a, b *float64, rel float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	d := *a - *b
	if d < 0 {
		d = -d
	}
	m := max(1, *a, -*a, *b, -*b)
	return d <= rel*m
}
