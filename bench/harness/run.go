package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// notSelected is the reason of a step left out by the options.
const notSelected = "not selected (--steps/--skip)"

// Run runs the selected steps, writes <ResultsDir>/<date>.json and the
// report, prints the headline to stdout and returns the results. A step
// that fails is recorded (Results.NotRun) and the run goes on; Run
// returns an error only for bad options, an interrupted run, or results
// it cannot write.
func Run(ctx context.Context, opts Options, stdout io.Writer) (*Results, error) {
	opts.sizeDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.ResolvePaths(ctx); err != nil {
		return nil, err
	}
	log := opts.Log
	logf := func(format string, args ...any) {
		fmt.Fprintf(log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	start := opts.Now()
	r := &Results{Schema: SchemaVersion, Date: start.UTC().Format("2006-01-02"), StartedAt: start.UTC(), Command: opts.Command,
		Options: OptionsUsed{Size: opts.Size, Count: opts.Count, BenchTime: opts.BenchTime, Partitions: opts.Partitions,
			KStreamsPartitions: opts.KStreamsPartitions, WallClients: opts.WallClients}}
	fileSteps := []string{StepOffline, StepCHRawNative, StepCHRawHTTP, StepCHKafka, StepKStreams, StepEndToEnd}
	needFile := false
	for _, s := range fileSteps {
		needFile = needFile || opts.runs(s)
	}
	for _, s := range AllSteps {
		// qoscope's offline rows are the reference of every agreement
		// check: they are computed whenever a step needs the file.
		if opts.runs(s) || (s == StepOffline && needFile) {
			r.Options.Steps = append(r.Options.Steps, s)
		} else {
			r.NotRun = append(r.NotRun, NotRun{What: s, Why: notSelected})
		}
	}
	notRun := func(what, why string) {
		r.NotRun = append(r.NotRun, NotRun{What: what, Why: why})
		logf("NOT RUN %s: %s", what, firstLine(why))
	}

	r.Environment = collectEnvironment(ctx, &opts)
	e := r.Environment
	logf("environment: %s, %d CPUs, %.1f GiB, %s, %s; %s; %s; ClickHouse %s; Kafka %s; commit %.12s (+%d changed files); load %.2f",
		e.CPUModel, e.Cores, e.MemoryGiB, e.Kernel, e.Go, e.Java, e.Maven, e.ClickHouse, e.Kafka, e.GitCommit, e.GitDirty, e.LoadAvgStart)
	for _, er := range e.Errors {
		logf("environment: %s", er)
	}

	work := opts.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "qoscope-bench-"); err != nil {
			return nil, fmt.Errorf("cannot create a work directory: %w", err)
		}
		if !opts.KeepWork {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", work, err)
	}

	if opts.runs(StepMicro) {
		logf("micro-benchmarks (go test -bench, -count %d)", opts.Count)
		env := opts.testEnv()
		for _, gb := range microBenchmarks() {
			run, list := runGoBench(ctx, opts.RepoDir, env, gb, opts.Count, opts.BenchTime, log)
			r.GoTests = append(r.GoTests, run)
			r.Micro = append(r.Micro, list...)
			for _, b := range list {
				logf("  %s %s: %s", b.Package, b.Name, brief(b))
			}
			if run.Error != "" {
				notRun(fmt.Sprintf("go test %s -bench %s", gb.Package, gb.Bench), run.Error+"\n"+run.Output)
			}
			for _, s := range run.Skipped {
				notRun("benchmark "+gb.Package+" "+s, "skipped by the benchmark")
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}

	var ds *Dataset
	if needFile {
		logf("generating %s × %s of scenario %s (seed %d)", strconv.Itoa(opts.Users)+" users", opts.Duration, opts.Scenario, opts.Seed)
		var err error
		ds, err = generate(ctx, &opts, work)
		if err != nil {
			for _, s := range fileSteps {
				if opts.runs(s) {
					notRun(s, err.Error())
				}
			}
		} else {
			r.Dataset = ds
			logf("  %d events (%d client, %d cdn, %d origin), %.0f MB, canonical %v, %.1f s", ds.Events, ds.Client, ds.CDN, ds.Origin, float64(ds.Bytes)/1e6, ds.Canonical, ds.GenWall)
		}
	}

	if ds != nil {
		logf("qoscope offline aggregation")
		off, err := runOffline(ctx, ds, work)
		if err != nil {
			notRun(StepOffline, err.Error())
		} else {
			r.Offline = off
			logf("  %s; %d rows", off.Step.Step, off.Rows)
		}
		peerStep := func(p *PeerResult) {
			r.Peers = append(r.Peers, p)
			for _, s := range p.Steps {
				logf("  %s", s.Step)
			}
			if p.Agreement != nil {
				logf("  agreement: %d/%d rows, %d metrics, %d differences", p.Agreement.MatchedRows, p.Agreement.WantRows, p.Agreement.Metrics, p.Agreement.Diffs)
			}
			for _, n := range p.Notes {
				logf("  note: %s", firstLine(n))
			}
			if p.Error != "" {
				notRun(p.Name, p.Error)
			}
		}
		for _, l := range []struct{ step, loader string }{{StepCHRawNative, "native"}, {StepCHRawHTTP, "http"}} {
			if opts.runs(l.step) {
				logf("peer %s", l.step)
				peerStep(runCHRaw(ctx, &opts, ds, r.Offline, l.loader))
			}
		}
		prefix := fmt.Sprintf("qoscope-bench-%d", start.Unix())
		// produce writes the file into fresh topics for the Kafka peers;
		// nil when it failed (the peers are then recorded as not run).
		produce := func(name string, partitions int, peers ...string) *peerTopics {
			logf("producing the file into %s topics (%d partitions)", name, partitions)
			pt, err := producePeerTopics(ctx, &opts, ds, prefix+"-"+name, partitions)
			if err != nil {
				for _, p := range peers {
					notRun(p, "cannot produce its topics: "+err.Error())
				}
				return nil
			}
			r.PeerTopicsProduce = append(r.PeerTopicsProduce, pt.produce)
			logf("  %s", pt.produce.Step)
			return pt
		}
		release := func(pt *peerTopics) {
			if err := pt.delete(ctx, opts.KafkaBrokers); err != nil {
				logf("cannot delete topics: %v", err)
			}
		}
		var chkTopics, ksTopics *peerTopics
		switch {
		case opts.runs(StepCHKafka) && opts.runs(StepKStreams) && opts.KStreamsPartitions == opts.Partitions:
			chkTopics = produce("peers", opts.Partitions, StepCHKafka, StepKStreams)
			ksTopics = chkTopics
		case opts.runs(StepCHKafka):
			chkTopics = produce("chkafka", opts.Partitions, StepCHKafka)
		}
		if chkTopics != nil {
			logf("peer chkafka")
			peerStep(runCHKafka(ctx, &opts, ds, r.Offline, chkTopics))
			if ksTopics == nil {
				release(chkTopics)
			}
		}
		if opts.runs(StepEndToEnd) {
			logf("qoscope end to end (Kafka → aggregator → ClickHouse)")
			r.EndToEnd = runEndToEnd(ctx, &opts, ds, r.Offline, prefix+"-e2e")
			x := r.EndToEnd
			if x.Error != "" {
				notRun(StepEndToEnd, x.Error)
			} else {
				logf("  %s", x.Summary)
				logf("  %s", x.Consume.Step)
			}
			if x.Agreement != nil {
				logf("  agreement: %d/%d rows, %d differences", x.Agreement.GotRows, x.Agreement.WantRows, x.Agreement.Diffs)
			}
			for _, n := range x.Notes {
				logf("  note: %s", n)
			}
			if p := x.Paced; p != nil {
				if p.Error != "" {
					notRun(StepEndToEnd+" (paced)", p.Error)
				} else {
					logf("  paced: %s", p.Summary)
				}
			}
		}
		// The peer's freshness on the same paced stream, right after
		// qoscope's paced run.
		if p := r.peer("chkafka"); p != nil && opts.E2EPace > 0 {
			logf("peer chkafka paced ×%g (freshness)", opts.E2EPace)
			p.Paced = runCHKafkaPaced(ctx, &opts, ds, prefix+"-chkafka-paced")
			if p.Paced.Error != "" {
				notRun(StepCHKafka+" (paced)", p.Paced.Error)
			} else {
				logf("  paced: %s", p.Paced.Summary)
			}
		}
		if opts.runs(StepKStreams) {
			if ksTopics == nil {
				ksTopics = produce("kstreams", opts.KStreamsPartitions, StepKStreams)
			}
			if ksTopics != nil {
				logf("peer kstreams (Maven build, then the job)")
				peerStep(runKStreams(ctx, &opts, ds, r.Offline, ksTopics, work))
				release(ksTopics)
			}
		}
	}
	if opts.runs(StepQuery) {
		logf("query benchmark: %d hours of rows from one generated hour (%d users), %d clients", opts.WallHours, opts.WallUsers, opts.WallClients)
		r.Wall = runWall(ctx, &opts, work, logf)
		if r.Wall.Error != "" {
			notRun(StepQuery, r.Wall.Error)
		}
	}
	if opts.runs(StepSteer) {
		logf("steering load test: qoscope steer and a static-JSON net/http server under wrk (%v connections, %s each)", opts.SteerConnections, opts.SteerDuration)
		run, list := runGoBench(ctx, opts.RepoDir, nil, steerMicro, opts.Count, opts.BenchTime, log)
		r.GoTests = append(r.GoTests, run)
		r.Micro = append(r.Micro, list...)
		for _, b := range list {
			logf("  %s %s: %s", b.Package, b.Name, brief(b))
		}
		if run.Error != "" {
			notRun("go test "+steerMicro.Package+" -bench "+steerMicro.Bench, run.Error+"\n"+run.Output)
		}
		r.Steer = runSteer(ctx, &opts, work, logf)
		if r.Steer.Error != "" {
			notRun(StepSteer, r.Steer.Error)
		}
	}
	if opts.runs(StepAlerts) {
		logf("alert notifications: qoscope all-in-one --demo (%d users, realtime) for %s, webhook direct and through Alertmanager", opts.AlertsUsers, opts.AlertsDuration)
		run, list := runGoBench(ctx, opts.RepoDir, nil, alertsMicro, opts.Count, opts.BenchTime, log)
		r.GoTests = append(r.GoTests, run)
		r.Micro = append(r.Micro, list...)
		for _, b := range list {
			logf("  %s %s: %s", b.Package, b.Name, brief(b))
		}
		if run.Error != "" {
			notRun("go test "+alertsMicro.Package+" -bench "+alertsMicro.Bench, run.Error+"\n"+run.Output)
		}
		r.Alerts = runAlerts(ctx, &opts, work, logf)
		if a := r.Alerts; a.Error != "" {
			notRun(StepAlerts, a.Error)
		} else {
			for _, p := range a.Paths {
				logf("  %s: %d changes (%d expected, %d missing), minute end → webhook p50 %s s, p99 %s s, max %s s", p.Name, p.Changes, p.Expected, p.Missing,
					num(p.Latency.P50), num(p.Latency.P99), num(p.Latency.Max))
			}
		}
	}
	if opts.runs(StepScores) {
		logf("scores: GET /api/v1/scores of qoscope all-in-one --demo at %d requests/s, open loop, %s per kind, and the same bytes from net/http", scoresRate, scoresDuration)
		r.Scores = runScores(ctx, &opts, work, logf)
		if r.Scores.Error != "" {
			notRun(StepScores, r.Scores.Error)
		}
	}
	if ctx.Err() != nil {
		// A partial run must not replace the last complete results.
		return nil, ctx.Err()
	}

	r.computeRatios()
	r.computeGoals()
	r.Environment.LoadAvgEnd = loadAvg()
	r.FinishedAt = opts.Now().UTC()
	r.WallSec = r.FinishedAt.Sub(r.StartedAt).Seconds()

	jsonPath := filepath.Join(opts.ResultsDir, r.Date+".json")
	if err := writeJSON(jsonPath, r); err != nil {
		return r, err
	}
	if err := writeReport(opts.ReportPath, jsonPath, r); err != nil {
		return r, err
	}
	printHeadline(stdout, r, jsonPath, opts.ReportPath)
	return r, nil
}

// Render rewrites the report at reportPath from a results file, without
// measuring anything (after a change to the report's layout).
func Render(jsonPath, reportPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return fmt.Errorf("cannot read the results: %w", err)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("cannot decode %s: %w", jsonPath, err)
	}
	if r.Schema != SchemaVersion {
		return fmt.Errorf("%s has schema %d, this harness renders %d", jsonPath, r.Schema, SchemaVersion)
	}
	// Ratios and goals are derived from the measurements: derived again,
	// so that a change to which ones are judged shows too.
	r.computeRatios()
	r.computeGoals()
	return writeReport(reportPath, jsonPath, &r)
}

func writeReport(reportPath, jsonPath string, r *Results) error {
	rel := jsonPath
	// The link is relative to the report, so that it works on any checkout.
	if ar, err := filepath.Abs(reportPath); err == nil {
		if aj, err := filepath.Abs(jsonPath); err == nil {
			if x, err := filepath.Rel(filepath.Dir(ar), aj); err == nil {
				rel = x
			}
		}
	}
	if err := os.WriteFile(reportPath, []byte(renderReport(r, filepath.ToSlash(rel))), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", reportPath, err)
	}
	return nil
}

// ResolvePaths fills RepoDir, ResultsDir and ReportPath when empty.
func (o *Options) ResolvePaths(ctx context.Context) error {
	if o.RepoDir == "" {
		gomod, err := output(ctx, "", "go", "env", "GOMOD")
		if err != nil || gomod == "" || gomod == os.DevNull {
			return fmt.Errorf("cannot find the module root (run from the repository, or pass --repo): %v", err)
		}
		o.RepoDir = filepath.Dir(gomod)
	}
	if o.ResultsDir == "" {
		o.ResultsDir = filepath.Join(o.RepoDir, "bench", "results")
	}
	if o.ReportPath == "" {
		o.ReportPath = filepath.Join(o.RepoDir, "bench", "REPORT.md")
	}
	return nil
}

// testEnv is the environment of the go test runs: the servers, and
// integration required so that a missing server fails instead of
// skipping.
func (o *Options) testEnv() []string {
	env := []string{"QOSCOPE_REQUIRE_INTEGRATION=1"}
	if len(o.KafkaBrokers) > 0 {
		env = append(env, "QOSCOPE_KAFKA_BROKERS="+strings.Join(o.KafkaBrokers, ","))
	}
	if o.ClickHouseDSN != "" {
		env = append(env, "QOSCOPE_CLICKHOUSE_DSN="+o.ClickHouseDSN)
	}
	if o.ClickHouseHTTP != "" {
		env = append(env, "QOSCOPE_CLICKHOUSE_HTTP="+o.ClickHouseHTTP)
	}
	if o.ClickHousePID > 0 {
		env = append(env, "QOSCOPE_INFRA_CLICKHOUSE_PID="+strconv.Itoa(o.ClickHousePID))
	}
	return env
}

// brief renders a benchmark's main numbers for the log.
func brief(b *BenchResult) string {
	var parts []string
	for _, u := range []string{"ns/op", "cpu-ns/op", "events/s", "cpu-ns/event", "rows/s", "B/user", "MB/s", "allocs/op"} {
		if v, ok := b.Median[u]; ok {
			parts = append(parts, num(v)+" "+u)
		}
	}
	return strings.Join(parts, ", ")
}

func printHeadline(w io.Writer, r *Results, jsonPath, reportPath string) {
	fmt.Fprintf(w, "\nqoscope benchmark %s (%s), %s wall\n", r.Date, r.Options.Size, (time.Duration(r.WallSec * float64(time.Second))).Round(time.Second))
	for _, x := range r.Ratios {
		flag := ""
		if x.Flagged {
			flag = "  ⚠ peer disagrees"
		}
		fmt.Fprintf(w, "  %-60s %12s vs %12s %-24s → %s×%s\n", x.Name+" ("+x.Unit+")", num(x.Qoscope), num(x.Peer), "("+x.PeerIs+")", num(x.Factor), flag)
	}
	for _, g := range r.Goals {
		met := "not met"
		if g.Met {
			met = "met"
		}
		fmt.Fprintf(w, "  goal %-55s %12s %s (goal %s): %s\n", g.Name, num(g.Measured), g.Unit, g.Goal, met)
	}
	for _, n := range r.NotRun {
		if n.Why != notSelected {
			fmt.Fprintf(w, "  not run: %s: %s\n", n.What, firstLine(n.Why))
		}
	}
	fmt.Fprintf(w, "results: %s\nreport:  %s\n", jsonPath, reportPath)
}
