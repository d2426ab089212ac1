package harness

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/bench/peers/measure"
)

const benchOutput = `goos: linux
goarch: amd64
pkg: github.com/qoscope/qoscope/internal/ipdb
cpu: AMD EPYC
BenchmarkLookup/uniform-2    	12818660	        86.66 ns/op	        85.94 cpu-ns/op	       0 B/op	       0 allocs/op
BenchmarkLookup/uniform-2    	12000000	        90.00 ns/op	        88.00 cpu-ns/op	       0 B/op	       0 allocs/op
BenchmarkLookup/uniform-2    	11000000	        95.00 ns/op	        91.00 cpu-ns/op	       0 B/op	       0 allocs/op
BenchmarkDecode   	     381	   3123344 ns/op	  89.60 MB/s	    320174 events/s	  123 B/op	    1002 allocs/op
BenchmarkDecode is a log line of the benchmark, not a result
BenchmarkPeerRangeSearch/uniform-2         	  759223	       268.9 ns/op	       255.7 cpu-ns/op	    458167 ranges	       0 B/op	       0 allocs/op
--- SKIP: BenchmarkHTTPToKafka/kafka
    bench_test.go:25: set QOSCOPE_KAFKA_BROKERS to benchmark the real broker
BenchmarkEndToEnd/native-2   	       1	 0 ns/op	  1234 events/s	 0.5 fresh-p50-s
PASS
ok  	github.com/qoscope/qoscope/internal/ipdb	7.298s
`

func TestParseBenchOutput(t *testing.T) {
	res, order, skipped, err := parseBenchOutput(strings.NewReader(benchOutput), "internal/ipdb")
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"BenchmarkLookup/uniform", "BenchmarkDecode", "BenchmarkPeerRangeSearch/uniform", "BenchmarkEndToEnd/native"}
	if strings.Join(order, ",") != strings.Join(wantOrder, ",") {
		t.Fatalf("order %v, want %v", order, wantOrder)
	}
	l := res["BenchmarkLookup/uniform"]
	if l.Runs != 3 || l.Procs != 2 || l.Package != "internal/ipdb" {
		t.Errorf("lookup: runs %d procs %d package %q", l.Runs, l.Procs, l.Package)
	}
	if got := l.Median["ns/op"]; got != 90 {
		t.Errorf("median ns/op %v, want 90", got)
	}
	if got := l.Median["cpu-ns/op"]; got != 88 {
		t.Errorf("median cpu-ns/op %v, want 88", got)
	}
	if got := l.Iterations; len(got) != 3 || got[0] != 12818660 {
		t.Errorf("iterations %v", got)
	}
	d := res["BenchmarkDecode"]
	if d.Procs != 1 || d.Median["events/s"] != 320174 || d.Median["MB/s"] != 89.6 || d.Median["allocs/op"] != 1002 {
		t.Errorf("decode: %+v", d)
	}
	if got := res["BenchmarkPeerRangeSearch/uniform"].Median["ranges"]; got != 458167 {
		t.Errorf("custom metric ranges %v", got)
	}
	if len(skipped) != 1 || skipped[0] != "BenchmarkHTTPToKafka/kafka: set QOSCOPE_KAFKA_BROKERS to benchmark the real broker" {
		t.Errorf("skipped %q", skipped)
	}
}

func TestParseBenchOutputBadValue(t *testing.T) {
	_, _, _, err := parseBenchOutput(strings.NewReader("BenchmarkX-2  10  abc ns/op\n"), "p")
	if err == nil || !strings.Contains(err.Error(), `value "abc"`) {
		t.Fatalf("err %v", err)
	}
}

func TestSplitProcs(t *testing.T) {
	for in, want := range map[string]struct {
		name  string
		procs int
	}{
		"BenchmarkX-8":          {"BenchmarkX", 8},
		"BenchmarkX":            {"BenchmarkX", 1},
		"BenchmarkX/a-b-2":      {"BenchmarkX/a-b", 2},
		"BenchmarkX/arrow_http": {"BenchmarkX/arrow_http", 1},
		"BenchmarkX/a-b":        {"BenchmarkX/a-b", 1},
	} {
		n, p := splitProcs(in)
		if n != want.name || p != want.procs {
			t.Errorf("splitProcs(%q) = %q, %d; want %q, %d", in, n, p, want.name, want.procs)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("odd: %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("even: %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("empty: %v", m)
	}
}

func TestConsumeWindowInterpolates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(ms int, self, ch, broker time.Duration) cpuSample {
		return cpuSample{at: t0.Add(time.Duration(ms) * time.Millisecond), self: self, ch: ch, broker: broker, chOK: true, brokerOK: true}
	}
	samples := []cpuSample{
		s(0, 0, 0, 0),
		s(100, 100*time.Millisecond, 200*time.Millisecond, 0),
		s(200, 200*time.Millisecond, 400*time.Millisecond, 50*time.Millisecond),
	}
	// [50 ms, 150 ms): half of each interval.
	st := consumeWindow(samples, t0.Add(50*time.Millisecond), t0.Add(150*time.Millisecond), true, true)
	if st.Wall != 100*time.Millisecond {
		t.Errorf("wall %v", st.Wall)
	}
	if st.ClientCPU != 100*time.Millisecond {
		t.Errorf("self %v, want 100ms", st.ClientCPU)
	}
	if st.ServerProcCPU != 200*time.Millisecond {
		t.Errorf("clickhouse %v, want 200ms", st.ServerProcCPU)
	}
	if st.BrokerProcCPU != 25*time.Millisecond {
		t.Errorf("broker %v, want 25ms", st.BrokerProcCPU)
	}
	// Without a PID the server CPU is unknown, not 0.
	st = consumeWindow(samples, t0, t0.Add(200*time.Millisecond), false, false)
	if st.ServerProcCPU != measure.Unknown || st.BrokerProcCPU != measure.Unknown {
		t.Errorf("unknown server/broker: %v %v", st.ServerProcCPU, st.BrokerProcCPU)
	}
	// Bounds outside the samples clamp to the first/last one.
	st = consumeWindow(samples, t0.Add(-time.Second), t0.Add(time.Second), true, true)
	if st.ClientCPU != 200*time.Millisecond || st.ServerProcCPU != 400*time.Millisecond {
		t.Errorf("clamped: %v %v", st.ClientCPU, st.ServerProcCPU)
	}
}

func TestSumCostTreatsUnmeasuredAsZero(t *testing.T) {
	consume := measure.Step{Name: "consume", Wall: 2 * time.Second, ClientCPU: 0, ServerCPU: measure.Unknown,
		ServerProcCPU: 3 * time.Second, BrokerProcCPU: time.Second}
	query := measure.Step{Name: "query", Wall: time.Second, ClientCPU: 100 * time.Millisecond, ServerCPU: 500 * time.Millisecond,
		ServerCPUFrom: "profile_events", ServerProcCPU: time.Second, BrokerProcCPU: measure.Unknown}
	c := sumCost("cost", 2_000_000, consume, query)
	if c.Wall != 3*time.Second || c.BrokerProcCPU != time.Second || c.ServerProcCPU != 4*time.Second || c.ServerCPU != 500*time.Millisecond {
		t.Fatalf("%+v", c.Step)
	}
	// client 0.1 + server process 4 + broker 1 = 5.1 CPU-s over 2M events.
	if got := c.CPUSecondsPerMillion; got < 2.5499 || got > 2.5501 {
		t.Errorf("cpu-s per million %v, want 2.55", got)
	}
	none := sumCost("x", 1, measure.Step{ServerCPU: measure.Unknown, ServerProcCPU: measure.Unknown, BrokerProcCPU: measure.Unknown})
	if none.ServerProcCPU != measure.Unknown || none.BrokerProcCPU != measure.Unknown {
		t.Errorf("all unknown must stay unknown: %+v", none.Step)
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("clickhouse://u:p@127.0.0.1:9000/qoscope?dial_timeout=1s", "bench")
	if err != nil {
		t.Fatal(err)
	}
	if got != "clickhouse://u:p@127.0.0.1:9000/bench?dial_timeout=1s" {
		t.Errorf("got %s", got)
	}
	if _, err := withDatabase("://bad", "x"); err == nil || strings.Contains(err.Error(), "bad") {
		t.Errorf("a bad dsn must fail without echoing it: %v", err)
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1234567: "1,234,567", -12345.6: "-12,346", 123.4: "123", 12.34: "12.3", 1.234: "1.23", 0.01234: "0.0123",
	} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions()
	o.sizeDefaults()
	err := o.Validate()
	if err == nil {
		t.Fatal("no servers: want errors")
	}
	for _, want := range []string{"--kafka-brokers", "--clickhouse-dsn", "--clickhouse-http"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
	o.Steps = []string{StepMicro, "bogus"}
	o.Size = "huge"
	err = o.Validate()
	for _, want := range []string{`"bogus" is not one of`, `--size: "huge"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %s in %v", want, err)
		}
	}
	o = DefaultOptions()
	o.Size = SizeSmall
	o.Steps = []string{StepOffline}
	o.sizeDefaults()
	if err := o.Validate(); err != nil {
		t.Errorf("offline needs no server: %v", err)
	}
	if o.Users != 1000 || o.Count != 1 || o.Duration != 6*time.Minute {
		t.Errorf("small defaults: users %d count %d duration %v", o.Users, o.Count, o.Duration)
	}
}

// results builds a run's results with hand-picked numbers.
func testResults() *Results {
	b := func(pkg, name string, m map[string]float64) *BenchResult {
		return &BenchResult{Package: pkg, Name: name, Procs: 1, Runs: 1, Median: m}
	}
	step := func(name string, events int64, wall, client, server, broker time.Duration) Step {
		return stepOf(measure.Step{Name: name, Events: events, Wall: wall, ClientCPU: client, ServerCPU: measure.Unknown,
			ServerProcCPU: server, BrokerProcCPU: broker})
	}
	r := &Results{Date: "2026-11-23", Command: "qoscope-bench --size small", Options: OptionsUsed{Size: SizeSmall, Count: 1, BenchTime: "1s", Partitions: 3},
		Environment: Environment{CPUModel: "Test CPU", Cores: 2}}
	r.Micro = []*BenchResult{
		b("ingest", "BenchmarkDecode", map[string]float64{"events/s": 300_000}),
		b("schemas", "BenchmarkBaseline/encoding_json", map[string]float64{"ns/op": 10_000}),
		b("schemas", "BenchmarkParseLine/heartbeat", map[string]float64{"ns/op": 2_000}),
		b("internal/ipdb", "BenchmarkLookup/uniform", map[string]float64{"cpu-ns/op": 100}),
		b("internal/ipdb", "BenchmarkLookupMany/mainland", map[string]float64{"cpu-ns/op": 18}),
		b("internal/ipdb", "BenchmarkPeerRangeSearch/uniform", map[string]float64{"cpu-ns/op": 300}),
		b("aggregator", "BenchmarkAggregate", map[string]float64{"cpu-ns/event": 1_250}),
		b("aggregator", "BenchmarkBytesPerUser", map[string]float64{"B/user": 158}),
	}
	r.Offline = &OfflineResult{Step: step("qoscope_offline", 1_000_000, 3*time.Second, 3*time.Second, measure.Unknown, measure.Unknown)}
	native := &PeerResult{Name: "chraw-native", Cost: step("load+queries", 1_000_000, 8*time.Second, 4*time.Second, 5*time.Second, measure.Unknown)}
	q := step("queries", 1_000_000, time.Second, 0, 2*time.Second, measure.Unknown)
	native.Query = &q
	native.Agreement = &Agreement{OK: true, WantRows: 10, GotRows: 10, MatchedRows: 10, Metrics: 300}
	kafka := &PeerResult{Name: "chkafka", Flagged: true, Cost: step("consume+queries", 1_000_000, 50*time.Second, 0, 50*time.Second, 10*time.Second),
		Agreement: &Agreement{OK: false, WantRows: 10, GotRows: 9, MatchedRows: 9, Metrics: 270, Diffs: 1, FirstDiffs: []string{"missing_row: x"}}}
	kafka.Paced = &PeerPaced{Pace: 20, LatenessSec: 120, BlockRows: 100_000, FlushIntervalSec: 1, Windows: 9, OpenWindows: 3, FreshnessP50Sec: 1, FreshnessP99Sec: 5, FreshnessMaxSec: 5,
		SignedP50Sec: 1, SignedP99Sec: 5, Run: step("paced", 1_000_000, 40*time.Second, 0, 20*time.Second, 5*time.Second)}
	r.Peers = []*PeerResult{native, kafka}
	r.EndToEnd = &E2EResult{Events: 1_000_000, EventsPerSecond: 100_000, Windows: 10, FreshnessP99Sec: 1.5,
		Consume: step("consume", 1_000_000, 10*time.Second, 8*time.Second, 4*time.Second, 3*time.Second),
		Paced:   &E2EPaced{Pace: 20, LatenessSec: 120, Windows: 10, FreshnessP99Sec: 2.5}}
	return r
}

func ratio(t *testing.T, r *Results, name, peer string) Ratio {
	t.Helper()
	for _, x := range r.Ratios {
		if x.Name == name && x.PeerIs == peer {
			return x
		}
	}
	t.Fatalf("no ratio %q vs %q in %+v", name, peer, r.Ratios)
	return Ratio{}
}

func TestComputeRatios(t *testing.T) {
	r := testResults()
	r.computeRatios()
	near := func(what string, got, want float64) {
		t.Helper()
		if got < want*0.9999 || got > want*1.0001 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	// 300k events/s vs 1e9/10,000 ns = 100k events/s.
	x := ratio(t, r, "ingest decode+validate+enrich, one core", "encoding_json decode of a heartbeat line")
	near("decode factor", x.Factor, 3)
	near("lookup factor", ratio(t, r, "IP lookup, uniform addresses", "binary search over the same table's sorted ranges (ip2region's layout)").Factor, 3)
	// qoscope 3 CPU-s per 1M; chraw native (4 + 5) = 9.
	x = ratio(t, r, "aggregation of the file (parse + one-minute metrics)", "chraw-native: load + SQL in ClickHouse")
	near("file factor", x.Factor, 3)
	if x.Flagged {
		t.Error("an agreeing peer is not flagged")
	}
	// Core: 1,250 ns/event = 1.25 CPU-s per 1M; queries 2 CPU-s per 1M.
	near("core factor", ratio(t, r, "aggregation core, decoded events (no load, no parse)", "ClickHouse GROUPING SETS queries over the loaded raw table").Factor, 1.6)
	// e2e (8+4+3)=15 CPU-s per 1M vs chkafka 60; 100k events/s vs 20k.
	x = ratio(t, r, "streaming aggregation from a Kafka backlog", "chkafka")
	near("stream cpu factor", x.Factor, 4)
	if !x.Flagged {
		t.Error("a disagreeing peer's ratio must be flagged")
	}
	// Freshness is a cost: peer 5 s / qoscope 2.5 s = 2, qoscope better;
	// flagged because this chkafka disagreed on the file.
	x = ratio(t, r, "freshness p99 (paced)", "chkafka")
	near("freshness factor", x.Factor, 2)
	if x.Qoscope != 2.5 || x.Peer != 5 || x.Unit != "s" || !x.Flagged {
		t.Errorf("freshness ratio %+v", x)
	}
	r.computeGoals()
	var agg, lookup, many, fresh Goal
	for _, g := range r.Goals {
		switch g.Name {
		case "aggregation core per core":
			agg = g
		case "IP lookup one at a time (uniform addresses)":
			lookup = g
		case "IP lookup as ingest does it, batched (mainland addresses)":
			many = g
		case "freshness p99 (window close → final rows visible)":
			fresh = g
		}
	}
	// Freshness is judged on the paced run, not the backlog's 1.5 s.
	if fresh.Measured != 2.5 || fresh.Met || !strings.Contains(fresh.Source, "paced") {
		t.Errorf("freshness goal %+v", fresh)
	}
	if agg.Measured != 800_000 || agg.Met {
		t.Errorf("aggregation goal %+v", agg)
	}
	if lookup.Measured != 100 || lookup.Met {
		t.Errorf("lookup goal %+v", lookup)
	}
	if many.Measured != 18 || !many.Met {
		t.Errorf("batched lookup goal %+v", many)
	}
}

// The freshness ratio is peer/qoscope whichever side is fresher, keeps a
// peer at 0 (every window computed before it closed), and is flagged when
// the two runs were not paced alike.
func TestFreshnessRatio(t *testing.T) {
	fresh := func(r *Results) (Ratio, bool) {
		r.computeRatios()
		for _, x := range r.Ratios {
			if x.Name == "freshness p99 (paced)" {
				return x, true
			}
		}
		return Ratio{}, false
	}
	r := testResults()
	r.peer("chkafka").Flagged = false
	r.peer("chkafka").Paced.FreshnessP99Sec = 0.5
	x, ok := fresh(r)
	if !ok || x.Factor != 0.2 || x.Flagged {
		t.Errorf("a fresher peer: %+v (want factor 0.2 = qoscope worse, not flagged)", x)
	}
	r.peer("chkafka").Paced.FreshnessP99Sec = 0
	if x, ok = fresh(r); !ok || x.Factor != 0 || x.Peer != 0 {
		t.Errorf("a peer at 0: %+v, present %v", x, ok)
	}
	r.peer("chkafka").Paced.FreshnessP99Sec = 5
	r.peer("chkafka").Paced.Pace = 10
	if x, ok = fresh(r); !ok || !x.Flagged || !strings.Contains(x.Note, "not the same stream") {
		t.Errorf("another pace: %+v", x)
	}
	r.peer("chkafka").Paced.Error = "boom"
	if x, ok = fresh(r); ok {
		t.Errorf("a failed peer run has no ratio: %+v", x)
	}
	r = testResults()
	r.EndToEnd.Paced = nil
	if x, ok = fresh(r); ok {
		t.Errorf("no ratio without qoscope's paced run: %+v", x)
	}
}

func TestRenderReport(t *testing.T) {
	r := testResults()
	r.computeRatios()
	r.computeGoals()
	r.NotRun = []NotRun{{What: "kstreams", Why: "cannot build the job | mvn failed"}}
	out := renderReport(r, "results/2026-11-23.json")
	for _, want := range []string{
		"# qoscope benchmark report",
		"[`results/2026-11-23.json`](results/2026-11-23.json)",
		"| chraw-native | 10 / 10 | 10 | 300 | 0 |  | agrees |",
		"⚠ disagrees",
		"- `missing_row: x`",
		"⚠ 4.00×",
		"- **kstreams**: cannot build the job \\| mvn failed",
		"Test CPU, 2 logical CPUs",
		"| freshness p99 (paced) | s | 2.50 | chkafka | 5.00 | ⚠ 2.00× |",
		"| ⚠ chkafka | ×20 | 120 s | 0 | 9 (+3 open) | 1.00 / 5.00 / 5.00 s | 1.00 / 5.00 s |",
		"| qoscope end to end | ×20 | 120 s |",
		"**The chkafka peer on the same stream**",
		"kafka_max_block_size 100,000, kafka_flush_interval_ms 1,000; 0 count polls",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// The report rendered again from the results file is the report of the run.
func TestRenderFromResultsFile(t *testing.T) {
	r := testResults()
	r.Schema = SchemaVersion
	r.computeRatios()
	r.computeGoals()
	dir := t.TempDir()
	jsonPath, reportPath := dir+"/results/2026-11-23.json", dir+"/REPORT.md"
	if err := writeJSON(jsonPath, r); err != nil {
		t.Fatal(err)
	}
	if err := Render(jsonPath, reportPath); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := renderReport(r, "results/2026-11-23.json"); string(got) != want {
		t.Errorf("rendered from the file differs from the run's report:\n%s\n---\n%s", got, want)
	}
	r.Schema = SchemaVersion + 1
	if err := writeJSON(jsonPath, r); err != nil {
		t.Fatal(err)
	}
	if err := Render(jsonPath, reportPath); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("another schema must be refused: %v", err)
	}
}
