package harness

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qoscope/qoscope/bench/peers/chraw"
)

// countingWall answers every question with 1 item, fails streams, and
// counts the calls.
type countingWall struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingWall) Ask(_ context.Context, q string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[q]++
	if q == WallStreams {
		return 0, errors.New("no origin rows")
	}
	return 1, nil
}

func TestRunLoadAsksEveryQuestionOfEveryRound(t *testing.T) {
	c := &countingWall{calls: map[string]int{}}
	// Duration 0: each client stops after MinRounds rounds.
	run := runLoad(context.Background(), c, LoadOptions{Clients: 3, Duration: 0, MinRounds: 2, Queries: WallQueries})
	for _, q := range WallQueries {
		if c.calls[q] != 6 { // 3 clients × 2 rounds
			t.Errorf("%s asked %d times, want 6", q, c.calls[q])
		}
	}
	if run.Rounds != 6 {
		t.Errorf("rounds %d, want 6", run.Rounds)
	}
	if n := len(run.Latencies[WallSeries]); n != 6 {
		t.Errorf("series latencies %d, want 6", n)
	}
	if n := len(run.Latencies[WallStreams]); n != 0 {
		t.Errorf("streams latencies %d, want 0: failed answers are errors, not latencies", n)
	}
	if run.Errors[WallStreams] != 6 || run.FirstErrors[WallStreams] != "no origin rows" {
		t.Errorf("streams errors %d (%q), want 6 (no origin rows)", run.Errors[WallStreams], run.FirstErrors[WallStreams])
	}
}

func TestLoadStatsNearestRank(t *testing.T) {
	run := LoadRun{Latencies: map[string][]time.Duration{}, Items: map[string]int{WallSeries: 60}, Errors: map[string]int{}, FirstErrors: map[string]string{}}
	// 100 answers of 1..100 ms, shuffled order: p50 = rank 50 = 50 ms,
	// p99 = rank 99 = 99 ms, max 100 ms, mean 50.5 ms.
	for i := 100; i >= 1; i-- {
		run.Latencies[WallSeries] = append(run.Latencies[WallSeries], time.Duration(i)*time.Millisecond)
	}
	st := run.stats(DefaultWallSpec(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)), []string{WallSeries, WallHistory})
	s := st[0]
	if s.N != 100 || s.P50Ms != 50 || s.P99Ms != 99 || s.MaxMs != 100 || s.MeanMs != 50.5 || s.Items != 60 {
		t.Errorf("series stats %+v, want n 100, p50 50, p99 99, max 100, mean 50.5, items 60", s)
	}
	if h := st[1]; h.N != 0 || h.P99Ms != 0 {
		t.Errorf("history without answers: %+v, want zero", h)
	}
}

func TestWallURL(t *testing.T) {
	spec := DefaultWallSpec(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	want := map[string]string{
		WallSeries:    "http://h:8080/api/v1/series?from=2026-11-23T11%3A00%3A00Z&metric=stutter_rate_uv&source=client&step=1m&to=2026-11-23T12%3A00%3A00Z",
		WallBreakdown: "http://h:8080/api/v1/breakdown?by=province%2Cisp&limit=200&metric=zero_stutter_rate&sort=users&source=client",
		WallStreams:   "http://h:8080/api/v1/streams",
		WallHistory:   "http://h:8080/api/v1/history?days=7",
	}
	for q, w := range want {
		got, err := spec.wallURL("http://h:8080/", q)
		if err != nil || got != w {
			t.Errorf("%s: %q, %v; want %q", q, got, err, w)
		}
	}
	if _, err := spec.wallURL("http://h", "nope"); err == nil {
		t.Error("an unknown question gave no error")
	}
}

func TestHTTPWallDecodesAnswersAndSendsToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/series":
			// Two groups, 2 + 3 points.
			w.Write([]byte(`{"groups":[{"dims":{},"points":[{"t":"2026-11-23T11:00:00Z","v":0.1,"final":true},{"t":"2026-11-23T11:01:00Z","v":null,"final":true}]},` +
				`{"dims":{},"points":[{"t":"2026-11-23T11:00:00Z","v":1,"final":true},{"t":"2026-11-23T11:01:00Z","v":2,"final":true},{"t":"2026-11-23T11:02:00Z","v":3,"final":false}]}]}`))
		case "/api/v1/history":
			// Three days, one without any value.
			w.Write([]byte(`{"days":[{"day":"2026-11-23T00:00:00Z","cells":{"all.x":{"value":1}}},{"day":"2026-11-22T00:00:00Z","cells":{"all.x":{"value":null}}},` +
				`{"day":"2026-11-21T00:00:00Z","cells":{"all.x":{"value":0}}}]}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"metric: unknown"}`))
		}
	}))
	defer srv.Close()
	c := &httpWall{base: srv.URL, token: "secret", client: srv.Client(), spec: DefaultWallSpec(time.Now())}
	if n, err := c.Ask(context.Background(), WallSeries); err != nil || n != 5 {
		t.Errorf("series: %d, %v; want 5 points", n, err)
	}
	if n, err := c.Ask(context.Background(), WallHistory); err != nil || n != 2 {
		t.Errorf("history: %d, %v; want 2 days with values", n, err)
	}
	if _, err := c.Ask(context.Background(), WallBreakdown); err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "metric: unknown") {
		t.Errorf("breakdown: %v, want the HTTP 400 and its body", err)
	}
	c.token = "wrong"
	if _, err := c.Ask(context.Background(), WallSeries); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("wrong token: %v, want HTTP 401", err)
	}
}

func TestShiftSQL(t *testing.T) {
	cols := []chraw.Column{{Name: "window_start", Type: "DateTime('UTC')"}, {Name: "grouping", Type: "LowCardinality(String)"}, {Name: "users", Type: "UInt64"}}
	hour := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) // 1795435200
	got := shiftSQL("db", "client_minute", cols, hour, 168)
	want := "INSERT INTO `db`.`client_minute` (`window_start`, `grouping`, `users`) SELECT window_start - toIntervalHour(k), `grouping`, `users` FROM `db`.`client_minute` " +
		"ARRAY JOIN range(1, 168) AS k WHERE window_start >= toDateTime(1795435200, 'UTC') AND window_start < toDateTime(1795435200, 'UTC') + INTERVAL 1 HOUR"
	if got != want {
		t.Errorf("shiftSQL\n got %s\nwant %s", got, want)
	}
}

func TestDaySQL(t *testing.T) {
	cols := []chraw.Column{{Name: "window_start", Type: "DateTime('UTC')"}, {Name: "grouping", Type: "LowCardinality(String)"},
		{Name: "dims", Type: "Map(LowCardinality(String), String)"}, {Name: "topic", Type: "LowCardinality(String)"}, {Name: "kafka_partition", Type: "UInt32"},
		{Name: "version", Type: "UInt64"}, {Name: "written_at", Type: "DateTime64(3, 'UTC')"}, {Name: "minutes", Type: "UInt32"},
		{Name: "fps_min", Type: "Float64"}, {Name: "relay_ms_hist", Type: "Map(Int32, UInt64)"}, {Name: "user_minutes", Type: "UInt64"}}
	got := daySQL("db", "origin", cols)
	want := "INSERT INTO `db`.`origin_day` (`window_start`, `grouping`, `dims`, `topic`, `kafka_partition`, `version`, `minutes`, `fps_min`, `relay_ms_hist`, `user_minutes`) " +
		"SELECT toStartOfDay(window_start) AS day, grouping, any(dims), topic, kafka_partition, max(version), sum(`minutes`), min(`fps_min`), sumMap(`relay_ms_hist`), sum(`user_minutes`) " +
		"FROM `db`.`origin_hour` FINAL GROUP BY day, grouping, dims_key, topic, kafka_partition"
	if got != want {
		t.Errorf("daySQL\n got %s\nwant %s", got, want)
	}
}

func TestRawWallSQLRefusesNonIdentifiers(t *testing.T) {
	if _, err := rawWallSQL("db", "t; DROP TABLE x", nil, nil, 10); err == nil {
		t.Error("a table name with SQL in it was accepted")
	}
	sql, err := rawWallSQL("db", "raw", []string{"host", "co'host"}, []string{"audience"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sql[WallHistory], "role IN ('host', 'cohost')") || !strings.Contains(sql[WallHistory], "role IN ('audience')") {
		t.Errorf("history roles not quoted as literals: %s", sql[WallHistory])
	}
	if !strings.HasSuffix(sql[WallBreakdown], "LIMIT 10") {
		t.Errorf("breakdown limit: %s", sql[WallBreakdown])
	}
}

func TestWallRatiosAndGoals(t *testing.T) {
	r := &Results{Wall: &WallResult{GoalP99Ms: 50, DurationS: 30,
		Qoscope: &WallRun{Kind: "library", Clients: 20, Queries: []WallQueryStats{{Query: WallSeries, N: 100, P99Ms: 20}, {Query: WallHistory, N: 100, P99Ms: 80}}},
		Raw:     &WallRun{Kind: "raw", Clients: 20, Queries: []WallQueryStats{{Query: WallSeries, N: 20, P99Ms: 1000}, {Query: WallHistory, N: 20, P99Ms: 400}}}}}
	r.computeRatios()
	r.computeGoals()
	if len(r.Ratios) != 2 {
		t.Fatalf("ratios %+v, want 2", r.Ratios)
	}
	// Factor = peer cost / qoscope cost: 1000/20 = 50, 400/80 = 5.
	if r.Ratios[0].Factor != 50 || r.Ratios[1].Factor != 5 {
		t.Errorf("factors %g, %g; want 50, 5", r.Ratios[0].Factor, r.Ratios[1].Factor)
	}
	if len(r.Goals) != 2 || !r.Goals[0].Met || r.Goals[1].Met {
		t.Errorf("goals %+v, want series met (20 ≤ 50) and history not (80 > 50)", r.Goals)
	}
	out := renderReport(r, "x.json")
	if !strings.Contains(out, "## Query benchmark") || !strings.Contains(out, "| series |") {
		t.Errorf("report lacks the query section:\n%s", out)
	}
}

func TestQueryOptions(t *testing.T) {
	o := Options{Size: SizeDefault, BenchTime: "1s", Partitions: 1, KStreamsPartitions: 1, KStreamsTimeout: time.Minute,
		Steps: []string{StepQuery}, ClickHouseDSN: "clickhouse://h:9000/q"}
	o.sizeDefaults()
	if o.WallUsers != 4000 || o.WallHours != 168 || o.WallClients != 20 || o.WallDuration != 30*time.Second || o.WallTarget != "serve" {
		t.Errorf("zero values not filled: users %d hours %d clients %d duration %v target %q", o.WallUsers, o.WallHours, o.WallClients, o.WallDuration, o.WallTarget)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("query step with ClickHouse only: %v", err)
	}
	o.WallTarget, o.WallHours = "localhost:8080", 30*24
	err := o.Validate()
	for _, want := range []string{`--query-target: "localhost:8080"`, "--query-hours: must be between 1 and 696"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %s in %v", want, err)
		}
	}
}
