package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/internal/appconfig"
	"github.com/qoscope/qoscope/query"
)

const alertUsage = `usage: qoscope alert eval --rules RULES.yaml --input ROWS.ndjson[.gz] [--input ...] [--output -|FILE] [--config FILE]

eval: reads the rows 'qoscope aggregate --output' writes (plain or gzip; - is
stdin), evaluates the alert rules at every minute from the first to the last
in order, and prints one NDJSON line per state change (pending, firing,
inactive, resolved), sorted by at, rule, fingerprint (docs/ALERTS.md).
The rules are validated against the metric catalogue of the grouping sets of
--config's aggregator section (default: the default grouping sets).

flags:
`

func runAlert(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "eval" {
		fmt.Fprint(stderr, alertUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return fmt.Errorf("alert: the subcommand is eval: %w", errUsage)
	}
	fs := newFlagSet("alert eval", stderr)
	var inputs stringList
	fs.Var(&inputs, "input", "rows of 'qoscope aggregate --output', NDJSON, .gz allowed, - for stdin (repeatable)")
	rulesFile := fs.String("rules", "", "alert rules YAML file (required; docs/ALERTS.md, deploy/alerts/)")
	output := fs.String("output", "-", "output file, - for stdout")
	configFile := fs.String("config", "", configFlagUsage+"; alert eval reads the aggregator section's grouping sets")
	fs.Usage = func() {
		fmt.Fprint(stderr, alertUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("alert eval: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if *rulesFile == "" || len(inputs) == 0 {
		fs.Usage()
		return fmt.Errorf("alert eval: --rules and at least one --input are required: %w", errUsage)
	}
	cfg, err := appconfig.LoadWindowing(*configFile)
	if err != nil {
		return err
	}
	plan, err := aggregator.NewPlan(cfg)
	if err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	rules, err := alert.LoadRules(*rulesFile, query.NewCatalog(plan))
	if err != nil {
		return err
	}
	return alert.RunOffline(alert.OfflineOptions{Rules: rules, Inputs: inputs, Output: *output}, os.Stdin, stdout)
}
