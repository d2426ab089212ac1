// Command qoscope-bench runs qoscope's benchmarks against its peers on one
// machine in one run and writes bench/results/<date>.json and
// bench/REPORT.md. `go tool task bench` starts the servers and runs it;
// by hand, with servers from `qoscope infra up`:
//
//	eval "$(qoscope infra env)"
//	go run ./bench/cmd/qoscope-bench --size small
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qoscope/qoscope/bench/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "qoscope-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, render, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if render != "" {
		if err := o.ResolvePaths(ctx); err != nil {
			return err
		}
		return harness.Render(render, o.ReportPath)
	}
	_, err = harness.Run(ctx, o, stdout)
	return err
}

// parseFlags returns the options and, with --render, the results file to
// render the report from instead of running.
func parseFlags(args []string, stderr io.Writer) (harness.Options, string, error) {
	o := harness.DefaultOptions()
	fs := flag.NewFlagSet("qoscope-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Size, "size", o.Size, "default (≈1M events, -count 3) or small (≈100k events, -count 1)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "gen seed")
	fs.StringVar(&o.Scenario, "scenario", o.Scenario, "gen scenario")
	fs.IntVar(&o.Users, "users", 0, "gen users (default by --size: 5000 or 1000)")
	fs.DurationVar(&o.Duration, "duration", 0, "simulated time (default by --size: 11m or 6m)")
	start := fs.String("start", "", "simulated start, RFC 3339 (default: a recent hour, kept by the minute tables' TTL)")
	steps := fs.String("steps", "", "comma-separated steps to run (default all: "+strings.Join(harness.AllSteps, ",")+")")
	skip := fs.String("skip", "", "comma-separated steps to leave out")
	fs.IntVar(&o.Count, "count", 0, "go test -count for the micro-benchmarks (default by --size: 3 or 1)")
	fs.StringVar(&o.BenchTime, "benchtime", o.BenchTime, "go test -benchtime")
	fs.IntVar(&o.Partitions, "partitions", o.Partitions, "partitions of the topics the Kafka steps create")
	fs.IntVar(&o.KStreamsPartitions, "kstreams-partitions", o.KStreamsPartitions, "partitions of the Kafka Streams peer's topics (1: see bench/README.md)")
	brokers := fs.String("kafka-brokers", os.Getenv("QOSCOPE_KAFKA_BROKERS"), "Kafka bootstrap servers (env QOSCOPE_KAFKA_BROKERS)")
	fs.StringVar(&o.ClickHouseDSN, "clickhouse-dsn", os.Getenv("QOSCOPE_CLICKHOUSE_DSN"), "ClickHouse native DSN (env QOSCOPE_CLICKHOUSE_DSN)")
	fs.StringVar(&o.ClickHouseHTTP, "clickhouse-http", os.Getenv("QOSCOPE_CLICKHOUSE_HTTP"), "ClickHouse HTTP URL (env QOSCOPE_CLICKHOUSE_HTTP)")
	fs.IntVar(&o.ClickHousePID, "clickhouse-pid", envPID("QOSCOPE_INFRA_CLICKHOUSE_PID"), "local ClickHouse PID, to measure its CPU (env QOSCOPE_INFRA_CLICKHOUSE_PID)")
	fs.IntVar(&o.KafkaPID, "kafka-pid", envPID("QOSCOPE_INFRA_KAFKA_PID"), "local Kafka broker PID, to measure its CPU (env QOSCOPE_INFRA_KAFKA_PID)")
	fs.StringVar(&o.KafkaLog, "kafka-log", os.Getenv("QOSCOPE_INFRA_KAFKA_LOG"), "the broker's log, for its version (env QOSCOPE_INFRA_KAFKA_LOG)")
	fs.StringVar(&o.RepoDir, "repo", "", "module root (default: found with go env GOMOD)")
	fs.StringVar(&o.ResultsDir, "results-dir", "", "where <date>.json goes (default <repo>/bench/results)")
	fs.StringVar(&o.ReportPath, "report", "", "the Markdown report (default <repo>/bench/REPORT.md)")
	fs.StringVar(&o.WorkDir, "work-dir", "", "event file and rows (default a temporary directory, removed)")
	fs.BoolVar(&o.KeepWork, "keep-work", false, "keep the temporary work directory")
	fs.Float64Var(&o.E2EPace, "e2e-pace", o.E2EPace, "also run the end-to-end step paced, event time this many times faster than the wall clock, for live freshness (0: backlog only)")
	fs.IntVar(&o.CHKafkaPacedBlockRows, "chkafka-paced-block-rows", o.CHKafkaPacedBlockRows, "kafka_max_block_size of the chkafka peer's paced freshness run (0: the same as its backlog run)")
	fs.DurationVar(&o.KStreamsTimeout, "kstreams-timeout", o.KStreamsTimeout, "bound on the Kafka Streams job")
	fs.IntVar(&o.WallUsers, "query-users", o.WallUsers, "query step: gen users of the generated hour")
	fs.IntVar(&o.WallHours, "query-hours", o.WallHours, "query step: hours of rows (the generated hour and its copies)")
	fs.IntVar(&o.WallClients, "query-clients", o.WallClients, "query step: concurrent clients")
	fs.DurationVar(&o.WallDuration, "query-duration", o.WallDuration, "query step: how long each side is asked")
	fs.DurationVar(&o.WallMergeWait, "query-merge-wait", o.WallMergeWait, "query step: bound on the wait for ClickHouse merges after the load")
	fs.StringVar(&o.WallTarget, "query-target", o.WallTarget, "query step: serve (qoscope serve started in its own process; default), library (the query library in process) or the URL of a qoscope serve reading database "+"qoscope_bench_wall")
	fs.StringVar(&o.WallToken, "query-token", os.Getenv("QOSCOPE_BENCH_READ_TOKEN"), "query step: bearer token (read scope) for --query-target URL (env QOSCOPE_BENCH_READ_TOKEN)")
	steerConns := fs.String("steer-connections", "4,16,64", "steer step: wrk connection counts, comma-separated (one run of each server per count)")
	fs.DurationVar(&o.SteerDuration, "steer-duration", o.SteerDuration, "steer step: length of each wrk run")
	fs.IntVar(&o.SteerWrkThreads, "steer-wrk-threads", o.SteerWrkThreads, "steer step: wrk threads")
	fs.IntVar(&o.SteerProcs, "steer-procs", 0, "steer step: GOMAXPROCS of the servers (default: the cores, shared with wrk)")
	fs.DurationVar(&o.AlertsDuration, "alerts-duration", o.AlertsDuration, "alerts step: live traffic measured, whole minutes (≥ 2m)")
	fs.IntVar(&o.AlertsUsers, "alerts-users", o.AlertsUsers, "alerts step: simulated viewers of the demo traffic")
	render := fs.String("render", "", "only rewrite the report (--report) from this results file; measure nothing")
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	if fs.NArg() > 0 {
		return o, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return o, "", fmt.Errorf("--start: %w", err)
		}
		o.Start = t
	}
	o.Steps, o.Skip = list(*steps), list(*skip)
	o.KafkaBrokers = list(*brokers)
	o.SteerConnections = nil
	for _, c := range list(*steerConns) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return o, "", fmt.Errorf("--steer-connections: %q is not a positive number", c)
		}
		o.SteerConnections = append(o.SteerConnections, n)
	}
	o.Command = strings.TrimSpace("qoscope-bench " + strings.Join(args, " "))
	o.Log = stderr
	return o, *render, nil
}

func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// envPID reads a PID variable of the infra state file; "external" or
// anything else not a PID means the server is not local.
func envPID(name string) int {
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
