package allinone

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/gen"
)

// historySpan is one stretch of generated past traffic.
type historySpan struct {
	name     string
	from, to time.Time
}

// historySpans are the stretches the demo backfills so that the wall's
// "vs yesterday" and "vs last week" and the 60-minute sparklines have data
// from the first minute: the `span` before start today, and the span
// before and after start's minute yesterday and a week ago. The current
// minute and later belong to the streaming aggregator.
func historySpans(start time.Time, span time.Duration) []historySpan {
	m := start.UTC().Truncate(time.Minute)
	spans := []historySpan{{"today", m.Add(-span), m}}
	for _, p := range []struct {
		name string
		back time.Duration
	}{{"yesterday", 24 * time.Hour}, {"last week", 7 * 24 * time.Hour}} {
		spans = append(spans, historySpan{p.name, m.Add(-p.back - span), m.Add(-p.back + span)})
	}
	return spans
}

// backfillHistory generates baseline traffic (no incident) for each span
// and writes its rows with the backfill, the path `qoscope aggregate
// --output clickhouse` takes (aggregator/README.md, "Backfill"): the
// generator's NDJSON is piped straight into the offline aggregator, so
// nothing lands on disk.
func backfillHistory(ctx context.Context, cfg Config, start time.Time, stdout io.Writer, log zerolog.Logger) error {
	rc := cfg.Aggregator
	rc.Kafka, rc.ClickHouse, rc.Log = cfg.Kafka, cfg.ClickHouse, cfg.Log
	rc.MetricsListen = ""
	began := time.Now()
	rows := 0
	for _, s := range historySpans(start, cfg.Demo.History) {
		n, err := backfillSpan(ctx, &rc, cfg.Demo, s)
		if err != nil {
			return fmt.Errorf("cannot backfill %s's traffic: %w", s.name, err)
		}
		rows += n
		log.Info().Str("span", s.name).Time("from", s.from).Time("to", s.to).Int("rows", n).Msg("demo history backfilled")
	}
	fmt.Fprintf(stdout, "qoscope demo: backfilled %s of baseline traffic before now, and around this time yesterday and a week ago (%d rows in %s), so comparisons are not empty\n",
		cfg.Demo.History, rows, time.Since(began).Round(100*time.Millisecond))
	return nil
}

func backfillSpan(ctx context.Context, rc *runner.Config, d Demo, s historySpan) (int, error) {
	pr, pw := io.Pipe()
	o := gen.DefaultOptions()
	// The live run's seed: the same simulated world (viewers per province,
	// rooms, vendors), so yesterday's concurrency compares like for like.
	o.Scenario, o.Users, o.Seed = "baseline", d.Users, d.Seed
	o.Mode, o.Start, o.Duration = gen.ModeFast, s.from, s.to.Sub(s.from)
	o.Output, o.Progress = "-", "none"
	genErr := make(chan error, 1)
	go func() {
		err := gen.Run(ctx, o, pw, io.Discard)
		pw.CloseWithError(err)
		genErr <- err
	}()
	rep, err := runner.Backfill(ctx, runner.BackfillOptions{
		Offline: aggregator.OfflineOptions{Inputs: []string{"-"}, Stdin: pr, LogOutput: io.Discard},
		Config:  rc,
	})
	// A failed backfill stops reading: unblock the generator.
	pr.CloseWithError(io.ErrClosedPipe)
	if gerr := <-genErr; gerr != nil && err == nil {
		err = fmt.Errorf("generator: %w", gerr)
	}
	if err != nil {
		return 0, err
	}
	return rep.Rows, nil
}
