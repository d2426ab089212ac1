package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/query"
	"github.com/qoscope/qoscope/query/api"
	"github.com/qoscope/qoscope/score"
)

// runDemo sends generated traffic to this process's ingest and prints a
// compact minute report read back from ClickHouse, so the whole path
// ingest → Kafka → aggregator → ClickHouse → query is what the user sees.
func runDemo(ctx context.Context, d Demo, liveFrom time.Time, target, token string, ch driver.Conn, srv *api.Server, stdout, stderr io.Writer, log zerolog.Logger) error {
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(liveFrom)):
		}
		o := gen.DefaultOptions()
		o.Scenario, o.Seed, o.Users = d.Scenario, d.Seed, d.Users
		o.Mode, o.Forever = gen.ModeRealtime, true
		o.Target, o.Token = target, token
		o.Progress = "none"
		// On Ctrl-C ingest stops with everything else: demo batches still
		// queued have nowhere to go, so do not retry them for long.
		o.DrainTimeout = 100 * time.Millisecond
		err := gen.Run(ctx, o, io.Discard, stderr)
		if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			// The report goes on: an empty minute is itself informative.
			log.Error().Err(err).Msg("demo load generator stopped")
		}
	}()
	log.Info().Str("scenario", d.Scenario).Int("users", d.Users).Msg("demo traffic started")
	fmt.Fprintf(stdout, "qoscope demo: ingest at %s, scenario %q with %d simulated viewers from %s UTC (the next whole minute); a report every %s; Ctrl-C stops everything\n",
		target, d.Scenario, d.Users, liveFrom.UTC().Format(time.TimeOnly), d.ReportEvery)
	printIngest(stdout, target, token)

	r := query.NewReader(ch)
	var watch scoreWatch
	t := time.NewTicker(d.ReportEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if err := report(ctx, r, now, stdout); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("demo report failed")
			}
			if srv != nil {
				readSideReport(ctx, srv, &watch, stdout, log)
			}
		}
	}
}

// report prints the last five minutes' totals and the worst keys of the
// newest minute that has ended. Minutes within the aggregator's lateness are
// provisional and marked so.
func report(ctx context.Context, r *query.Reader, now time.Time, w io.Writer) error {
	last := now.UTC().Truncate(time.Minute).Add(-time.Minute)
	totals, err := r.ClientTotals(ctx, last.Add(-4*time.Minute), last.Add(time.Minute))
	if err != nil {
		return err
	}
	worstPI, err := r.WorstKeys(ctx, last, "province,isp", 20, 3)
	if err != nil {
		return err
	}
	worstVPI, err := r.WorstKeys(ctx, last, "vendor,province,isp", 20, 3)
	if err != nil {
		return err
	}
	return writeReport(w, now, totals, worstPI, worstVPI)
}

func writeReport(w io.Writer, now time.Time, totals []query.MinuteTotal, worstPI, worstVPI []query.KeyMinute) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n── qoscope demo · %s UTC ──\n", now.UTC().Format(time.TimeOnly))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "minute\tusers\tstutter UV\tfirst-frame p90\tpull connect\t\t")
	for _, m := range totals {
		state := "final"
		if !m.Final {
			state = "provisional"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", m.Window.Format("15:04"), m.Users,
			pct(m.StutterRateUV), ms(m.FirstFrameP90MS), pct(m.PullConnectRate), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(totals) == 0 {
		b.WriteString("(no minutes yet: the aggregator writes the first rows within seconds of traffic)\n")
	}
	keys := func(title string, ks []query.KeyMinute, dims ...string) {
		fmt.Fprintf(&b, "worst %s (≥20 users):", title)
		if len(ks) == 0 {
			b.WriteString(" none yet")
		}
		for _, k := range ks {
			vals := make([]string, len(dims))
			for i, d := range dims {
				vals[i] = k.Dims[d]
			}
			fmt.Fprintf(&b, "  %s %s (%d users)", strings.Join(vals, "×"), pct(k.StutterRateUV), k.Users)
		}
		b.WriteString("\n")
	}
	keys("province×ISP", worstPI, "province", "isp")
	keys("vendor×province×ISP", worstVPI, "vendor", "province", "isp")
	_, err := io.WriteString(w, b.String())
	return err
}

func pct(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

func ms(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f ms", *v)
}

// printIngest shows the demo's ingest token and a request a user can paste
// to post an event of their own into the running pipeline (docs/INGEST.md).
func printIngest(w io.Writer, target, token string) {
	fmt.Fprintf(w, "  this run's ingest token (sources client, cdn, origin, cmcd) is %s\n", token)
	fmt.Fprintf(w, "  post your own event: curl -H 'Authorization: Bearer %s' -H 'Content-Type: application/x-ndjson' \\\n"+
		"    --data-binary \"{\\\"v\\\":1,\\\"type\\\":\\\"heartbeat\\\",\\\"ts\\\":$(date +%%s%%3N),\\\"user_id\\\":\\\"me\\\",\\\"stream_id\\\":\\\"my-stream\\\",\\\"stalled\\\":true}\" \\\n"+
		"    %s/v1/events/client\n", token, target)
}

// readSideReport prints the active alerts and the scores' changes, read
// through serve's own services (what GET /api/v1/alerts and
// /api/v1/scores answer).
func readSideReport(ctx context.Context, srv *api.Server, w *scoreWatch, out io.Writer, log zerolog.Logger) {
	var b strings.Builder
	if a, err := srv.Alerts().Active(ctx); err != nil {
		log.Warn().Err(err).Msg("demo report: cannot read the active alerts")
	} else {
		b.WriteString(alertLines(a))
	}
	if sc := srv.Scores(); sc != nil {
		var t *score.Table
		if sn := sc.Snapshot(); sn != nil {
			t = sn.Table
		}
		b.WriteString(w.lines(t))
	}
	_, _ = io.WriteString(out, b.String())
}
