// Command qoscope is the single binary of the pipeline. main only dispatches:
// each subcommand parses its flags into its package's Options and calls that
// package's Run(ctx, opts), which returns errors instead of exiting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: run parses args and calls the package's Run.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"migrate":    {"apply, roll back or show ClickHouse schema migrations", runMigrate},
		"all-in-one": {"run ingest, aggregator and (with --demo) serve in one process (the demo)", runAllInOne},
		"infra":      {"install, start and stop local Kafka and ClickHouse for tests and the demo", runInfra},
		"ingest":     {"serve the HTTP ingest API: validate events and write them to Kafka", runIngest},
		"aggregate":  {"aggregator: Kafka → ClickHouse one-minute windows (streaming), or NDJSON in → rows out (--input)", runAggregate},
		"gen":        {"generate realistic synthetic QoS events into files or the ingest API", runGen},
		"ipdb":       {"build and inspect the IP→region table", runIpdb},
		"serve":      {"serve the query API (/api/v1: metrics, series, breakdown, history, streams, live SSE)", runServe},
		"query":      {"ask a running qoscope serve: series, breakdown, streams, history as tables or --json", runQuery},
		"scores":     {"scheduler scores offline: aggregate rows + contracts → the per-region vendor table (--input)", runScores},
		"alert":      {"alert rules: evaluate them offline over aggregate rows (eval), one NDJSON line per state change", runAlert},
		"steer":      {"content steering server for players (HLS /steer/hls, DASH /steer/dash) from serve's scores (or --scores-file)", runSteer},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "qoscope:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q: %w", args[0], errUsage)
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: qoscope <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'qoscope <command> -h' for the flags of one command")
}

// Shared flag texts: every service command reads the one configuration
// file (internal/appconfig, deploy/config/qoscope.yaml).
const (
	configFlagUsage  = "YAML config file (deploy/config/qoscope.yaml documents every section; optional; QOSCOPE_<SECTION>_<KEY> env vars override it)"
	printConfigUsage = "print the effective configuration (file, env and defaults; secrets redacted) as YAML and exit"
)

// printConfigThen prints the configuration, then returns the validation
// error, if any: a configuration that does not validate is still printed
// (a first run without tokens wants to see the defaults), but the command
// exits 1 so that a script checking a file notices.
func printConfigThen(print func() error, invalid error) error {
	if err := print(); err != nil {
		return err
	}
	return invalid
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("qoscope "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
