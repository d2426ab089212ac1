package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// GoBench is one invocation of go test -bench.
type GoBench struct {
	// Package is the import path relative to the module (./ingest).
	Package string `json:"package"`
	// Bench is the -bench regexp; CPU the -cpu list ("" = GOMAXPROCS);
	// BenchTime overrides the run's -benchtime ("" = the run's).
	Bench     string `json:"bench"`
	CPU       string `json:"cpu,omitempty"`
	BenchTime string `json:"benchtime,omitempty"`
	// Why says what the benchmarks measure, for the report.
	Why string `json:"why"`
}

// microBenchmarks are qoscope's hot paths beside their in-run peers.
func microBenchmarks() []GoBench {
	return []GoBench{
		{Package: "./ingest", Bench: "^BenchmarkDecode$", CPU: "1",
			Why: "ingest decode+validate+enrich+encode of 1,000-event NDJSON bodies on one core"},
		{Package: "./schemas", Bench: "^(BenchmarkParseLine|BenchmarkBaseline)$/^(mix|heartbeat|encoding_json|fastjson)$", CPU: "1",
			Why: "schemas.ParseLine vs the peer baselines encoding/json and fastjson (decode only, no validation)"},
		{Package: "./internal/ipdb", Bench: "^(BenchmarkLookup|BenchmarkLookupMany|BenchmarkPeerRangeSearch)$",
			Why: "IP lookup in the /24 array vs binary search over the same table's ranges"},
		{Package: "./aggregator", Bench: "^(BenchmarkAggregate|BenchmarkAggregateAdd|BenchmarkParseAndAggregate)$",
			Why: "aggregation core (AddBatch of 512-event chunks as the runner does, or Add per event; + Drain; default grouping sets), without and with JSON decode"},
		{Package: "./aggregator", Bench: "^BenchmarkBytesPerUser$", BenchTime: "1x",
			Why: "heap per active user-minute (100k users, one window)"},
		{Package: "./ingest", Bench: "^BenchmarkHTTPToKafka$/^kafka$",
			Why: "HTTP POST → decode → Kafka (acks=all) → 200, on the real broker"},
		{Package: "./aggregator/runner", Bench: "^(BenchmarkBuildRecords|BenchmarkInsert)$",
			Why: "aggregator rows → Arrow records; insert native vs ArrowStream over HTTP into the real ClickHouse"},
		{Package: "./bench/harness", Bench: "^BenchmarkWallLibrary$",
			Why: "the wall's questions through the query library on a small fixture in the real ClickHouse, one at a time (allocations per answer; the query step measures 20 clients over 7 days)"},
	}
}

// BenchResult is one benchmark's lines over -count runs.
type BenchResult struct {
	Package string `json:"package"`
	// Name without the -GOMAXPROCS suffix, e.g. BenchmarkLookup/uniform.
	Name  string `json:"name"`
	Procs int    `json:"procs"`
	Runs  int    `json:"runs"`
	// Iterations per run.
	Iterations []int64 `json:"iterations"`
	// Samples: unit (ns/op, B/op, events/s, cpu-ns/op, ...) → one value per
	// run; Median: unit → their median (what the report shows).
	Samples map[string][]float64 `json:"samples"`
	Median  map[string]float64   `json:"median"`
}

// GoTestRun is the record of one go test invocation.
type GoTestRun struct {
	GoBench
	Args    []string `json:"args"`
	WallSec float64  `json:"wall_s"`
	// Skipped lists "--- SKIP" benchmarks with their reason.
	Skipped []string `json:"skipped,omitempty"`
	Error   string   `json:"error,omitempty"`
	// Output is the tail of go test's output when it failed.
	Output string `json:"output,omitempty"`
}

// parseBenchOutput reads go test -bench output: the result lines
// ("BenchmarkX/sub-2  100  12.5 ns/op  3 events/s  0 B/op ..."), the
// "--- SKIP:" lines with their indented reasons, and "pkg:" lines.
func parseBenchOutput(r io.Reader, pkg string) (map[string]*BenchResult, []string, []string, error) {
	results := map[string]*BenchResult{}
	var order, skipped []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	var lastSkip int = -1
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--- SKIP: "):
			name := strings.TrimPrefix(trimmed, "--- SKIP: ")
			if i := strings.IndexByte(name, ' '); i >= 0 {
				name = name[:i]
			}
			skipped = append(skipped, name)
			lastSkip = len(skipped) - 1
			continue
		case lastSkip >= 0 && strings.HasPrefix(line, "    ") && trimmed != "":
			// The skip's reason: "    file_test.go:25: set X to ...".
			reason := trimmed
			if i := strings.Index(reason, ": "); i >= 0 && strings.Contains(reason[:i], ".go:") {
				reason = reason[i+2:]
			}
			if !strings.Contains(skipped[lastSkip], ": ") {
				skipped[lastSkip] += ": " + reason
			}
			continue
		}
		lastSkip = -1
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// name, iterations, then value/unit pairs.
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		iters, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a benchmark's own log line that starts with its name
		}
		name, procs := splitProcs(f[0])
		br := results[name]
		if br == nil {
			br = &BenchResult{Package: pkg, Name: name, Procs: procs, Samples: map[string][]float64{}}
			results[name] = br
			order = append(order, name)
		}
		br.Runs++
		br.Iterations = append(br.Iterations, iters)
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("benchmark line %q: value %q: %w", line, f[i], err)
			}
			br.Samples[f[i+1]] = append(br.Samples[f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, nil, err
	}
	for _, br := range results {
		br.Median = map[string]float64{}
		for u, s := range br.Samples {
			br.Median[u] = median(s)
		}
	}
	return results, order, skipped, nil
}

// splitProcs splits "BenchmarkX/sub-8" into the name and GOMAXPROCS (1
// when there is no suffix, which is how go test names -cpu 1 runs).
func splitProcs(s string) (string, int) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return s, 1
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n <= 0 {
		return s, 1
	}
	return s[:i], n
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runGoBench runs one go test -bench invocation in dir with env added to
// the process environment, and parses its output. A failing or partly
// skipped run is recorded, not returned as an error: the other benchmarks
// still run.
func runGoBench(ctx context.Context, dir string, env []string, gb GoBench, count int, benchTime string, log io.Writer) (GoTestRun, []*BenchResult) {
	bt := benchTime
	if gb.BenchTime != "" {
		bt = gb.BenchTime
	}
	args := []string{"test", "-run", "^$", "-bench", gb.Bench, "-benchmem", "-count", strconv.Itoa(count), "-benchtime", bt}
	if gb.CPU != "" {
		args = append(args, "-cpu", gb.CPU)
	}
	// The test binary's own timeout: a stuck server must not hang the run.
	args = append(args, "-timeout", "20m", gb.Package)
	run := GoTestRun{GoBench: gb, Args: append([]string{"go"}, args...)}
	fmt.Fprintf(log, "  go %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	run.WallSec = time.Since(start).Seconds()
	results, order, skipped, perr := parseBenchOutput(bytes.NewReader(out.Bytes()), strings.TrimPrefix(gb.Package, "./"))
	run.Skipped = skipped
	switch {
	case err != nil:
		run.Error = fmt.Sprintf("go test %s: %v", gb.Package, err)
		run.Output = tail(out.String(), 4000)
	case perr != nil:
		run.Error = fmt.Sprintf("cannot parse the output of go test %s: %v", gb.Package, perr)
		run.Output = tail(out.String(), 4000)
	case len(order) == 0:
		run.Error = fmt.Sprintf("go test %s -bench %q ran no benchmark", gb.Package, gb.Bench)
		run.Output = tail(out.String(), 4000)
	}
	var list []*BenchResult
	for _, name := range order {
		list = append(list, results[name])
	}
	return run, list
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
