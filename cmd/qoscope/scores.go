package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/score"
)

const scoresUsage = `usage: qoscope scores --config SCORES.yaml --input ROWS.ndjson[.gz] [--input …] --at 2026-11-20T12:05:00Z [--blacklist FILE] [--output -]

Offline mode of the scheduler scores (docs/SCORES.md): reads the rows
` + "`qoscope aggregate --output`" + ` writes and prints the table for minute --at as one JSON line.

flags:
`

// runScores is `qoscope scores` (offline mode only for now).
func runScores(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scores", stderr)
	var (
		opts   score.Options
		inputs stringList
		at     string
		logCfg = config.Log{Level: "info", Format: "auto"}
	)
	fs.StringVar(&opts.Config, "config", "", "scores file: contracts and settings (deploy/config/scores.yaml documents every key)")
	fs.Var(&inputs, "input", "rows of `qoscope aggregate --output`, NDJSON, .gz allowed, - for stdin (repeatable)")
	fs.StringVar(&at, "at", "", "the minute to score, RFC 3339 on a minute boundary (rows of minutes closed by then are read)")
	fs.StringVar(&opts.Blacklist, "blacklist", "", "optional YAML list of {vendor, province, isp, reason} to blacklist")
	fs.StringVar(&opts.Output, "output", "-", "output file, - for stdout")
	fs.StringVar(&logCfg.Level, "log-level", logCfg.Level, "log level: trace, debug, info, warn, error")
	fs.StringVar(&logCfg.Format, "log-format", logCfg.Format, "log format: json, console, auto")
	fs.Usage = func() {
		fmt.Fprint(stderr, scoresUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("scores: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return fmt.Errorf("scores: --at %q: not RFC 3339: %w", at, err)
		}
		opts.At = t
	}
	var errs config.Errors
	logCfg.Validate("log", &errs)
	if err := errs.Err(); err != nil {
		return fmt.Errorf("scores: %w", err)
	}
	opts.Inputs = inputs
	if err := score.Run(ctx, opts, stdout, logging.New(stderr, logCfg)); err != nil {
		return fmt.Errorf("scores: %w", err)
	}
	return nil
}
