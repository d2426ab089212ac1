package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/internal/appconfig"
)

const aggregateUsage = `usage: qoscope aggregate [--config FILE]                          (streaming)
       qoscope aggregate --input FILE [--input FILE ...] [flags]    (offline)

Streaming mode (no --input): joins the Kafka consumer group (group_id) over
the client, CDN and origin topics, aggregates one-minute windows per
partition and writes provisional and final rows, late counters, rollups and
checkpoints to ClickHouse, committing offsets only after ClickHouse
acknowledged them. --config names the configuration file (it reads the
kafka, clickhouse, log and aggregator sections; deploy/config/qoscope.yaml,
aggregator/README.md); QOSCOPE_* variables override it. Serves /metrics on
aggregator.metrics_listen. Stops cleanly on SIGINT/SIGTERM (last flush,
commit, group leave). --print-config prints the effective configuration.

Offline mode (--input): reads client, CDN and origin events (NDJSON, plain or
gzip; - is stdin), runs the same windowing and metric code as the Kafka
aggregator with every window final at the end of the input, and prints one
NDJSON row per (window, source, grouping key), sorted by window, source
(client, cdn, origin, then late-event rows), grouping set and dimension
values. From --config it uses only the aggregator section's windowing keys
(lateness, origin_no_data_minutes, late_horizon, grouping_sets).

Backfill (--output clickhouse): the same offline rows, written into the
ClickHouse minute tables, late_events and hour/day rollups the streaming
aggregator writes, under the topics backfill:client, backfill:cdn and
backfill:origin (partition 0). --config is then read like the streaming
mode's (clickhouse.dsn is required there or in QOSCOPE_CLICKHOUSE_DSN;
aggregator.insert, aggregator.rollups and the windowing keys apply).
Re-running on the same input leaves the same rows. Minutes that already hold
rows of the streaming aggregator are refused, naming them, unless --replace:
then the streaming rows of those minutes (minute tables and late_events) are
deleted after the backfill's rows are written, and their hour/day rollups
recomputed (aggregator/README.md, "Backfill into ClickHouse").

flags:
`

// outputClickHouse as --output selects the backfill into ClickHouse.
const outputClickHouse = "clickhouse"

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runAggregate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("aggregate", stderr)
	var (
		opts     aggregator.OfflineOptions
		inputs   stringList
		lateness = aggregator.DefaultLateness()
	)
	fs.Var(&inputs, "input", "input NDJSON file, .gz allowed, - for stdin (repeatable; read in order)")
	fs.StringVar(&opts.Output, "output", "-", "output file, - for stdout, or clickhouse (backfill; ./clickhouse for a file of that name)")
	replace := fs.Bool("replace", false, "backfill: replace the rows of minutes the streaming aggregator already wrote instead of refusing")
	fs.StringVar(&opts.ConfigFile, "config", "", configFlagUsage+"; aggregate reads kafka, clickhouse, log and aggregator (offline: aggregator's windowing keys)")
	printConfig := fs.Bool("print-config", false, "streaming: "+printConfigUsage)
	fs.TextVar(&lateness, "lateness", &lateness, "offline: allowed lateness, one duration for every source or client=10m,cdn=30m,origin=10m; overrides the config file")
	fs.BoolVar(&opts.PartitionPerFile, "partition-per-file", false, "offline: treat each input as its own partition (own watermark), summing partitions like the queries do")
	fs.BoolVar(&opts.SkipBad, "skip-bad", false, "offline: skip and count lines that fail to parse instead of stopping at the first")
	fs.StringVar(&opts.Log.Level, "log-level", "info", "offline: log level: trace, debug, info, warn, error")
	fs.StringVar(&opts.Log.Format, "log-format", "auto", "offline: log format: json, console, auto")
	fs.Usage = func() {
		fmt.Fprint(stderr, aggregateUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("aggregate: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if len(inputs) == 0 {
		var offlineOnly []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" && f.Name != "print-config" {
				offlineOnly = append(offlineOnly, "--"+f.Name)
			}
		})
		if len(offlineOnly) > 0 {
			fs.Usage()
			return fmt.Errorf("aggregate: %s only apply with --input (streaming mode reads log and windowing settings from --config and QOSCOPE_*): %w",
				strings.Join(offlineOnly, ", "), errUsage)
		}
		cfg, err := appconfig.LoadAggregate(opts.ConfigFile)
		if *printConfig && (err == nil || appconfig.IsInvalid(err)) {
			return printConfigThen(func() error { return appconfig.PrintAggregate(stdout, cfg) }, err)
		}
		if err != nil {
			return err
		}
		return runner.Run(ctx, runner.Options{Config: cfg, Stderr: stderr})
	}
	if *printConfig {
		fs.Usage()
		return fmt.Errorf("aggregate: --print-config applies to the streaming mode (without --input): %w", errUsage)
	}
	opts.Inputs = inputs
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "lateness" {
			opts.Lateness = &lateness
		}
	})
	opts.LogOutput = stderr
	if opts.Output == outputClickHouse {
		cfg, err := appconfig.LoadBackfill(opts.ConfigFile)
		if err != nil {
			return err
		}
		_, err = runner.Backfill(ctx, runner.BackfillOptions{Offline: opts, Config: &cfg, Replace: *replace})
		return err
	}
	if *replace {
		fs.Usage()
		return fmt.Errorf("aggregate: --replace only applies with --output %s: %w", outputClickHouse, errUsage)
	}
	if opts.ConfigFile != "" {
		w, err := appconfig.LoadWindowing(opts.ConfigFile)
		if err != nil {
			return err
		}
		opts.Config = &w
	}
	return aggregator.RunOffline(ctx, opts, stdout)
}
