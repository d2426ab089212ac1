package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/qoscope/qoscope/aggregator"
)

const aggregateUsage = `usage: qoscope aggregate --input FILE [--input FILE ...] [flags]

Offline mode of the aggregator: reads client, CDN and origin events (NDJSON,
plain or gzip; - is stdin), runs the same windowing and metric code as the
Kafka aggregator with every window final at the end of the input, and prints
one NDJSON row per (window, source, grouping key), sorted by window, source
(client, cdn, origin, then late-event rows), grouping set and dimension values.

flags:
`

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runAggregate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("aggregate", stderr)
	var (
		opts     aggregator.OfflineOptions
		inputs   stringList
		lateness time.Duration
	)
	fs.Var(&inputs, "input", "input NDJSON file, .gz allowed, - for stdin (repeatable; read in order)")
	fs.StringVar(&opts.Output, "output", "-", "output file, - for stdout")
	fs.StringVar(&opts.ConfigFile, "config", "", "YAML file with the aggregator keys (lateness, origin_no_data_minutes, grouping_sets)")
	fs.DurationVar(&lateness, "lateness", 2*time.Minute, "allowed lateness; overrides the config file")
	fs.BoolVar(&opts.PartitionPerFile, "partition-per-file", false, "treat each input as its own partition (own watermark), summing partitions like the queries do")
	fs.BoolVar(&opts.SkipBad, "skip-bad", false, "skip and count lines that fail to parse instead of stopping at the first")
	fs.StringVar(&opts.Log.Level, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.StringVar(&opts.Log.Format, "log-format", "auto", "log format: json, console, auto")
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
		fs.Usage()
		return fmt.Errorf("aggregate: --input is required: %w", errUsage)
	}
	opts.Inputs = inputs
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "lateness" {
			opts.Lateness = &lateness
		}
	})
	opts.LogOutput = stderr
	return aggregator.RunOffline(ctx, opts, stdout)
}
