package main

import (
	"context"

	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/qoscope/qoscope/gen"
)

func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gen", stderr)
	o := gen.DefaultOptions()
	var start, tokenFile string
	fs.StringVar(&o.Scenario, "scenario", o.Scenario, "embedded scenario: "+strings.Join(gen.ScenarioNames(), ", "))
	fs.StringVar(&o.ScenarioFile, "scenario-file", "", "scenario YAML file (decoded on top of the baseline); overrides --scenario")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed: same seed and flags, same events")
	fs.IntVar(&o.Users, "users", 0, "concurrent users (default: the scenario's; realtime with --rate: sized to the rate)")
	fs.DurationVar(&o.Duration, "duration", 0, "simulated time (default: the scenario's)")
	fs.BoolVar(&o.Forever, "forever", false, "run until interrupted (realtime only)")
	fs.StringVar(&o.Mode, "mode", o.Mode, "clock: realtime (wall time, paced), fast (from --start, as fast as possible) or auto (realtime with --target, else fast)")
	fs.StringVar(&start, "start", "", "fast mode start: RFC 3339, now, or now-DURATION (default "+gen.DefaultStart.Format(time.RFC3339)+")")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 0, "heartbeat interval (default: the scenario's)")
	fs.BoolVar(&o.Geo, "geo", o.Geo, "write country/province/city/isp into events (false: leave them to ingest's enrichment)")
	fs.StringVar(&o.Output, "output", "", "NDJSON file with every event (- = stdout, .gz = gzip)")
	fs.StringVar(&o.OutputDir, "output-dir", "", "directory for client.ndjson, cdn.ndjson and origin.ndjson")
	fs.BoolVar(&o.Gzip, "gzip", false, "gzip the --output-dir files")
	fs.StringVar(&o.Target, "target", "", "ingest base URL, e.g. http://127.0.0.1:8080")
	fs.StringVar(&o.Token, "token", "", "ingest bearer token (prefer --token-file or QOSCOPE_GEN_TOKEN: flags show in ps)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the ingest bearer token")
	fs.Float64Var(&o.Rate, "rate", 0, "events per second to send (0 = as fast as ingest accepts)")
	fs.IntVar(&o.BatchLines, "batch", o.BatchLines, "events per request")
	fs.IntVar(&o.Senders, "senders", o.Senders, "concurrent requests")
	fs.IntVar(&o.MaxRetries, "max-retries", o.MaxRetries, "retries of a batch after 429/503/5xx/network errors before it counts as failed")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "timeout of one request")
	fs.DurationVar(&o.MaxRetryAfter, "max-retry-after", o.MaxRetryAfter, "cap on a Retry-After answer")
	fs.DurationVar(&o.FlushInterval, "flush-interval", o.FlushInterval, "realtime: send partial batches this often")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "after an interrupt, how long to keep sending queued batches")
	fs.StringVar(&o.Progress, "progress", o.Progress, "auto (bar on a terminal, else log lines), bar, log or none")
	fs.DurationVar(&o.ProgressInterval, "progress-interval", o.ProgressInterval, "period of log-line progress")
	fs.StringVar(&o.SummaryJSON, "summary-json", "", "also write the summary as JSON to this file (- = stdout)")
	fs.StringVar(&o.Log.Level, "log-level", o.Log.Level, "trace, debug, info, warn or error")
	fs.StringVar(&o.Log.Format, "log-format", o.Log.Format, "json, console or auto")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gen: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if start != "" {
		t, err := parseStart(start, time.Now())
		if err != nil {
			return fmt.Errorf("--start: %w", err)
		}
		o.Start = t
	}
	if tokenFile != "" {
		if o.Token != "" {
			return fmt.Errorf("--token and --token-file: give only one: %w", errUsage)
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(b))
	}
	if o.Token == "" {
		o.Token = os.Getenv("QOSCOPE_GEN_TOKEN")
	}
	return gen.Run(ctx, o, stdout, stderr)
}

// parseStart accepts RFC 3339, "now" or "now-DURATION".
func parseStart(s string, now time.Time) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "now"); ok {
		if rest == "" {
			return now.Truncate(time.Second), nil
		}
		d, err := time.ParseDuration(strings.TrimPrefix(rest, "-"))
		if err != nil || !strings.HasPrefix(rest, "-") {
			return time.Time{}, fmt.Errorf("%q is not now-DURATION (e.g. now-1h)", s)
		}
		return now.Add(-d).Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2026-01-01T00:00:00Z), now or now-DURATION", s)
	}
	return t, nil
}
