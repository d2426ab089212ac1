package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
)

const aggregateUsage = `usage: qoscope aggregate [--config FILE]                          (streaming)
       qoscope aggregate --input FILE [--input FILE ...] [flags]    (offline)
       qoscope aggregate --input FILE ... --output clickhouse [--replace] [--config FILE]
                                                                    (backfill)

Streaming mode (no --input): joins the Kafka consumer group (group_id) over
the client, CDN and origin topics, aggregates one-minute windows per
partition and writes provisional and final rows, late counters, rollups and
checkpoints to ClickHouse, committing offsets only after ClickHouse
acknowledged them. --config names its YAML file (kafka, clickhouse, log, the
windowing keys, group_id, flush_interval, insert, ...; aggregator/README.md);
QOSCOPE_* variables override it. Serves /metrics on metrics_listen. Stops
cleanly on SIGINT/SIGTERM (last flush, commit, group leave).

Offline mode (--input): reads client, CDN and origin events (NDJSON, plain or
gzip; - is stdin), runs the same windowing and metric code as the Kafka
aggregator with every window final at the end of the input, and prints one
NDJSON row per (window, source, grouping key), sorted by window, source
(client, cdn, origin, then late-event rows), grouping set and dimension
values. Its --config holds only the windowing keys (lateness,
origin_no_data_minutes, late_horizon, grouping_sets).

Backfill (--output clickhouse): the same offline rows, written into the
ClickHouse minute tables, late_events and hour/day rollups the streaming
aggregator writes, under the topics backfill:client, backfill:cdn and
backfill:origin (partition 0). --config is then the service config
(clickhouse.dsn is required there or in QOSCOPE_CLICKHOUSE_DSN; insert,
rollups and the windowing keys apply). Re-running on the same input leaves
the same rows. Minutes that already hold rows of the streaming aggregator are
refused, naming them, unless --replace: then the streaming rows of those
minutes (minute tables and late_events) are deleted after the backfill's rows
are written, and their hour/day rollups recomputed (aggregator/README.md,
"Backfill into ClickHouse").

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
	fs.StringVar(&opts.ConfigFile, "config", "", "YAML config file: the service config in streaming mode and backfill, the windowing keys offline")
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
			if f.Name != "config" {
				offlineOnly = append(offlineOnly, "--"+f.Name)
			}
		})
		if len(offlineOnly) > 0 {
			fs.Usage()
			return fmt.Errorf("aggregate: %s only apply with --input (streaming mode reads log and windowing settings from --config and QOSCOPE_*): %w",
				strings.Join(offlineOnly, ", "), errUsage)
		}
		return runner.Run(ctx, runner.Options{ConfigFile: opts.ConfigFile, Stderr: stderr})
	}
	opts.Inputs = inputs
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "lateness" {
			opts.Lateness = &lateness
		}
	})
	opts.LogOutput = stderr
	if opts.Output == outputClickHouse {
		_, err := runner.Backfill(ctx, runner.BackfillOptions{Offline: opts, ConfigFile: opts.ConfigFile, Replace: *replace})
		return err
	}
	if *replace {
		fs.Usage()
		return fmt.Errorf("aggregate: --replace only applies with --output %s: %w", outputClickHouse, errUsage)
	}
	return aggregator.RunOffline(ctx, opts, stdout)
}
