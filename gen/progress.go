package gen

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// startProgress reports progress until the returned function is called: a
// bar over simulated time on a terminal, periodic log lines otherwise.
func startProgress(opts *Options, p *plan, pr *progress, stderr io.Writer, log zerolog.Logger) func() {
	mode := opts.Progress
	if mode == "auto" {
		mode = "log"
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	if mode == "none" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	began := time.Now()
	total := int64(p.duration.Seconds())
	if total <= 0 {
		total = -1 // forever: a spinner
	}
	go func() {
		defer close(finished)
		switch mode {
		case "bar":
			bar := progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription("simulating"),
				progressbar.OptionSetItsString("sim s"),
				progressbar.OptionShowIts(),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
				progressbar.OptionClearOnFinish(),
			)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					_ = bar.Finish()
					return
				case <-t.C:
					_ = bar.Set64(pr.simMS.Load() / 1000)
					bar.Describe(describe(pr, began))
				}
			}
		case "log":
			t := time.NewTicker(opts.ProgressInterval)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					ev := log.Info().Dur("simulated", time.Duration(pr.simMS.Load())*time.Millisecond).
						Int64("generated", pr.generated.Load()).
						Float64("events_per_second", perSecond(pr.generated.Load(), began))
					if n := pr.written.Load(); n > 0 {
						ev = ev.Int64("written", n)
					}
					if n := pr.send.Sent.Load(); n > 0 {
						ev = ev.Int64("sent", n).Int64("accepted", pr.send.Accepted.Load()).
							Int64("rejected", pr.send.Rejected.Load()).Int64("failed", pr.send.Failed.Load()).
							Int64("retries", pr.send.Retries.Load())
					}
					ev.Msg("progress")
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func perSecond(n int64, since time.Time) float64 {
	s := time.Since(since).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(int64(float64(n) / s))
}

func describe(pr *progress, began time.Time) string {
	d := fmt.Sprintf("%s events, %s/s", si(pr.generated.Load()), si(int64(perSecond(pr.generated.Load(), began))))
	if sent := pr.send.Sent.Load(); sent > 0 {
		d += fmt.Sprintf(", accepted %s, rejected %d, failed %d", si(pr.send.Accepted.Load()), pr.send.Rejected.Load(), pr.send.Failed.Load())
	}
	return d
}

func si(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.0fM", float64(n)/1e6)
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
