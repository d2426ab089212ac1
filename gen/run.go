package gen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/schemas"
)

// Summary is the final report of a run (also written as JSON).
type Summary struct {
	Scenario    string           `json:"scenario"`
	Seed        uint64           `json:"seed"`
	Mode        string           `json:"mode"`
	Users       int              `json:"users"`
	Start       time.Time        `json:"start"`
	SimulatedS  float64          `json:"simulated_seconds"`
	Generated   int64            `json:"generated"`
	BySource    map[string]int64 `json:"by_source"`
	ByType      map[string]int64 `json:"by_type"`
	Written     int64            `json:"written"`
	Sent        int64            `json:"sent"`
	Accepted    int64            `json:"accepted"`
	Rejected    int64            `json:"rejected"`
	Failed      int64            `json:"failed"`
	Retries     int64            `json:"retries"`
	Requests    int64            `json:"requests"`
	BytesSent   int64            `json:"bytes_sent"`
	ElapsedS    float64          `json:"elapsed_seconds"`
	Rate        float64          `json:"events_per_second"`
	Interrupted bool             `json:"interrupted"`
}

// progress is what the progress reporter reads while the run goes on.
type progress struct {
	simMS     atomic.Int64 // simulated ms done
	generated atomic.Int64
	written   atomic.Int64
	send      SendStats
}

// plan is a run resolved from options and scenario.
type plan struct {
	sc       *Scenario
	mode     string
	users    int
	start    time.Time
	duration time.Duration // 0 with forever
	hb       time.Duration
}

func resolve(opts *Options, now time.Time) (*plan, error) {
	sc, err := LoadScenario(opts.Scenario, opts.ScenarioFile)
	if err != nil {
		return nil, err
	}
	p := &plan{sc: sc, mode: opts.mode(), users: opts.Users, duration: opts.Duration, hb: opts.Heartbeat}
	if p.hb == 0 {
		p.hb = sc.HeartbeatInterval
	}
	if p.duration == 0 && !opts.Forever {
		p.duration = sc.Duration
	}
	if p.users == 0 {
		p.users = sc.Users
		if p.mode == ModeRealtime && opts.Rate > 0 {
			p.users = usersForRate(sc, p.hb, opts.Rate)
		}
	}
	switch {
	case p.mode == ModeRealtime:
		p.start = now.Truncate(time.Second)
	case opts.Start.IsZero():
		p.start = DefaultStart
	default:
		p.start = opts.Start
	}
	return p, nil
}

// usersForRate sizes the audience for about rate events/s: per playing
// user one heartbeat per interval and one CDN record per cdn_log_interval,
// plus a few session events; origin_stats come on top, per room and line.
func usersForRate(sc *Scenario, hb time.Duration, rate float64) int {
	pb := &sc.Playback
	watch, gap := lognormalMean(pb.WatchS), lognormalMean(pb.GapS)
	playing := watch / (watch + gap)
	perUser := playing*(1/hb.Seconds()+1/sc.CDNLogInterval.Seconds()+pb.RebuffersPerMin/60) + 5/(watch+gap)
	origin := float64(sc.Streams.Count*len(sc.Origin.Lines)) / sc.OriginInterval.Seconds()
	n := int(math.Ceil((rate - origin) / perUser))
	return max(n, 2*sc.Streams.Count+10, 1)
}

// Run generates the scenario's events and writes or sends them, then
// prints the summary to stdout (stderr when stdout carries the events).
func Run(ctx context.Context, opts Options, stdout, stderr io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	log := logging.New(stderr, opts.Log).With().Str("component", "gen").Logger()
	p, err := resolve(&opts, time.Now())
	if err != nil {
		return err
	}
	table := opts.IPTable
	if table == nil {
		t, err := ipdb.Default()
		if err != nil {
			return err
		}
		table = t
	}
	w, err := buildWorld(p.sc, p.users, opts.Seed, table, opts.Geo)
	if err != nil {
		return fmt.Errorf("scenario %s: %w", p.sc.Name, err)
	}
	durMS := p.duration.Milliseconds()
	if durMS == 0 {
		durMS = math.MaxInt64 / 4 // forever: ends by interrupt
	}
	s := newSim(w, simControl{start: p.start.UnixMilli(), duration: durMS, hbMS: p.hb.Milliseconds()})

	var pr progress
	sinks, send, err := openSinks(ctx, &opts, p, stdout, &pr, log)
	if err != nil {
		return err
	}
	log.Info().Str("scenario", p.sc.Name).Str("mode", p.mode).Int("users", p.users).Uint64("seed", opts.Seed).
		Time("start", p.start).Dur("duration", p.duration).Int("streams", len(w.streams)).Int("incidents", len(w.incidents)).
		Msg("generating")

	began := time.Now()
	stopProgress := startProgress(&opts, p, &pr, stderr, log)
	genErr := generate(ctx, s, p, sinks, &pr)
	var closeErr error
	for _, sk := range sinks {
		closeErr = errors.Join(closeErr, sk.close())
	}
	stopProgress()
	elapsed := time.Since(began)

	sum := Summary{
		Scenario: p.sc.Name, Seed: opts.Seed, Mode: p.mode, Users: p.users, Start: p.start,
		SimulatedS:  float64(pr.simMS.Load()) / 1000,
		Generated:   pr.generated.Load(),
		BySource:    map[string]int64{},
		ByType:      s.typeCounts(),
		Written:     pr.written.Load(),
		Sent:        pr.send.Sent.Load(),
		Accepted:    pr.send.Accepted.Load(),
		Rejected:    pr.send.Rejected.Load(),
		Failed:      pr.send.Failed.Load(),
		Retries:     pr.send.Retries.Load(),
		Requests:    pr.send.Requests.Load(),
		BytesSent:   pr.send.Bytes.Load(),
		ElapsedS:    elapsed.Seconds(),
		Interrupted: ctx.Err() != nil,
	}
	for _, t := range schemas.Types() {
		sum.BySource[t.Source().String()] += s.counts[t]
	}
	if elapsed > 0 {
		sum.Rate = float64(sum.Generated) / elapsed.Seconds()
	}
	out := stdout
	if opts.Output == "-" {
		out = stderr
	}
	writeSummary(out, &sum, send != nil)
	if opts.SummaryJSON != "" {
		if err := writeSummaryJSON(opts.SummaryJSON, stdout, &sum); err != nil {
			closeErr = errors.Join(closeErr, err)
		}
	}
	if err := errors.Join(genErr, closeErr); err != nil {
		return err
	}
	if sum.Failed > 0 || sum.Rejected > 0 {
		return fmt.Errorf("%d events failed to send and %d were rejected by ingest (see the summary)", sum.Failed, sum.Rejected)
	}
	return nil
}

func openSinks(ctx context.Context, opts *Options, p *plan, stdout io.Writer, pr *progress, log zerolog.Logger) ([]sink, *sender, error) {
	var sinks []sink
	fail := func(err error) ([]sink, *sender, error) {
		for _, s := range sinks {
			_ = s.close()
		}
		return nil, nil, err
	}
	if opts.Output != "" {
		fs, err := newFileSink(opts.Output, stdout, &pr.written)
		if err != nil {
			return fail(err)
		}
		sinks = append(sinks, fs)
	}
	if opts.OutputDir != "" {
		ds, err := newDirSink(opts.OutputDir, opts.Gzip, &pr.written)
		if err != nil {
			return fail(err)
		}
		sinks = append(sinks, ds)
	}
	var snd *sender
	if opts.Target != "" {
		var id [6]byte
		_, _ = rand.Read(id[:])
		snd = newSender(senderConfig{
			target: opts.Target, token: opts.Token, workers: opts.Senders, batchLines: opts.BatchLines,
			maxRetries: opts.MaxRetries, timeout: opts.RequestTimeout, rate: opts.Rate,
			maxRetryAfter: opts.MaxRetryAfter, backoff: 500 * time.Millisecond,
			client: opts.HTTPClient, log: log, runID: hex.EncodeToString(id[:]),
		}, &pr.send)
		hs := &httpSink{s: snd, batchLines: opts.BatchLines, lastFlush: time.Now(),
			interrupted: func() bool { return ctx.Err() != nil }, drain: opts.DrainTimeout}
		if p.mode == ModeRealtime {
			hs.flushEvery = opts.FlushInterval
		}
		sinks = append(sinks, hs)
	}
	return sinks, snd, nil
}

// generate runs the simulation on this goroutine and hands each tick's
// chunk to a writer goroutine, so that encoding the next tick overlaps
// writing or sending the previous one. Only the writer touches the sinks.
func generate(ctx context.Context, s *sim, p *plan, sinks []sink, pr *progress) error {
	const inFlight = 4
	full := make(chan *chunk, inFlight)
	free := make(chan *chunk, inFlight)
	for range inFlight {
		free <- &chunk{}
	}
	var writeErr error
	var wg sync.WaitGroup
	wg.Add(1)
	stop := make(chan struct{})
	var stopOnce sync.Once
	go func() {
		defer wg.Done()
		for c := range full {
			if writeErr == nil {
				for _, sk := range sinks {
					if err := sk.write(c); err != nil {
						writeErr = err
						stopOnce.Do(func() { close(stop) })
						break
					}
				}
			}
			pr.simMS.Store(c.tickEnd - s.start)
			free <- c
		}
	}()

	var err error
	realtime := p.mode == ModeRealtime
loop:
	for k := int64(0); k < s.ticks(); k++ {
		if realtime {
			// Virtual time is wall time: tick k is simulated once its second
			// is over, so no event is stamped in the future.
			due := time.UnixMilli(min(s.start+(k+1)*tickMS, s.end))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					break loop
				case <-stop:
					t.Stop()
					break loop
				}
			}
		}
		var c *chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			break loop
		case <-stop:
			break loop
		}
		c.reset()
		s.tick(k, c)
		pr.generated.Add(int64(c.lines()))
		full <- c
	}
	close(full)
	wg.Wait()
	if writeErr != nil {
		err = writeErr
	}
	return err
}

func writeSummary(w io.Writer, s *Summary, sending bool) {
	fmt.Fprintf(w, "qoscope gen: scenario %s, seed %d, %s mode, %d users\n", s.Scenario, s.Seed, s.Mode, s.Users)
	fmt.Fprintf(w, "  simulated   %s from %s%s\n", time.Duration(s.SimulatedS*float64(time.Second)).Round(time.Millisecond),
		s.Start.UTC().Format(time.RFC3339), map[bool]string{true: " (interrupted)", false: ""}[s.Interrupted])
	fmt.Fprintf(w, "  generated   %d events (client %d, cdn %d, origin %d) in %s, %.0f events/s\n",
		s.Generated, s.BySource["client"], s.BySource["cdn"], s.BySource["origin"],
		time.Duration(s.ElapsedS*float64(time.Second)).Round(time.Millisecond), s.Rate)
	if s.Written > 0 {
		fmt.Fprintf(w, "  written     %d lines\n", s.Written)
	}
	if sending {
		fmt.Fprintf(w, "  sent        %d (accepted %d, rejected %d, failed %d) in %d requests, %d retries, %.1f MB on the wire\n",
			s.Sent, s.Accepted, s.Rejected, s.Failed, s.Requests, s.Retries, float64(s.BytesSent)/1e6)
	}
}

func writeSummaryJSON(path string, stdout io.Writer, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("cannot write summary: %w", err)
	}
	return nil
}
