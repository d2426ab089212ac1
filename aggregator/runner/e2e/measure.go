package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
)

// Env is where a measurement runs: Kafka with the four topics created and
// empty, a ClickHouse database of its own (migrated here), the HTTP
// interface for arrow_http, and a fresh consumer group.
type Env struct {
	Kafka      config.Kafka
	ClickHouse config.ClickHouse
	HTTP       string
	GroupID    string
}

// MeasureOptions shape a measurement.
type MeasureOptions struct {
	// Instances is the number of runners in the group. Default 1.
	Instances int
	// InsertMode: runner.InsertNative or runner.InsertArrowHTTP (default
	// runner.DefaultInsertMode; native when Env.HTTP is empty).
	InsertMode string
	// Poll is how often the view is polled for final rows. Default 25ms.
	Poll time.Duration
	// Pace, when > 0, produces the events while the runners consume, at
	// Pace times the rate of their own event time (event time then runs
	// Pace times faster than the wall clock): a steady live stream instead
	// of a backlog. 0: produce everything first, then consume the backlog.
	Pace float64
}

// Result of MeasureEndToEnd.
type Result struct {
	Events     int
	InsertMode string
	Instances  int
	// Produce is the time to write the events to Kafka (acks=all).
	Produce time.Duration
	// Consume is from the runners' start (backlog) or the first produced
	// event (paced) until every partition's checkpoint included its last
	// message (read, aggregated, written, checkpointed);
	// EventsPerSecond = Events / Consume.
	Consume         time.Duration
	EventsPerSecond float64
	// Pace is the options' Pace; paced runs also report the offered rate.
	Pace        float64
	OfferedRate float64
	// Windows is the number of client windows whose freshness was measured.
	Windows int
	// Freshness of a window: the time its total row became final in
	// client_minute_metrics (polled) minus the time the last client
	// partition's watermark passed the window's end.
	FreshnessP50, FreshnessP99, FreshnessMax time.Duration
	// Ack: the runner's own view, from the watermark passing a window's end
	// to ClickHouse acknowledging its final rows, over every partition.
	AckP50, AckP99 time.Duration
	// PerWindow details the freshness: for each measured window, when its
	// last client partition closed it and when it read final, both since
	// the runners started.
	PerWindow []WindowTimes
}

// WindowTimes is one window's close and visibility, relative to the start.
type WindowTimes struct {
	Window          time.Time
	Closed, Visible time.Duration
}

func (r Result) String() string {
	mode := "backlog"
	if r.Pace > 0 {
		mode = fmt.Sprintf("paced x%.0f (%.0f events/s offered)", r.Pace, r.OfferedRate)
	}
	return fmt.Sprintf("%d events, %s, %d instance(s), %s: produce %s, consume %s = %.0f events/s; freshness over %d windows p50 %s p99 %s max %s (ack p50 %s p99 %s)",
		r.Events, mode, r.Instances, r.InsertMode, r.Produce.Round(time.Millisecond), r.Consume.Round(time.Millisecond), r.EventsPerSecond,
		r.Windows, r.FreshnessP50.Round(time.Millisecond), r.FreshnessP99.Round(time.Millisecond), r.FreshnessMax.Round(time.Millisecond),
		r.AckP50.Round(time.Millisecond), r.AckP99.Round(time.Millisecond))
}

// closeTimes records, per client partition and window, when the watermark
// passed the window's end, and when ClickHouse acknowledged its rows.
type closeTimes struct {
	topic string
	mu    sync.Mutex
	close map[int64]time.Time // window -> latest close over the topic's partitions
	acks  []time.Duration
}

func (c *closeTimes) FinalWritten(id aggregator.PartitionID, ws int64, closedAt, ackedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks = append(c.acks, ackedAt.Sub(closedAt))
	if id.Topic != c.topic {
		return
	}
	if t, ok := c.close[ws]; !ok || closedAt.After(t) {
		c.close[ws] = closedAt
	}
}

// MeasureEndToEnd produces events (NDJSON lines, e.g. from Generate) to
// env's topics as ingest does, then runs the aggregator over the backlog
// and measures the sustained rate and the freshness of final rows. The
// events' timestamps should be recent (RecentStart): the minute tables'
// TTL drops rows older than 30 days.
func MeasureEndToEnd(ctx context.Context, env Env, events [][]byte, opts MeasureOptions) (Result, error) {
	if opts.Instances <= 0 {
		opts.Instances = 1
	}
	if opts.Poll <= 0 {
		opts.Poll = 25 * time.Millisecond
	}
	cfg := TestConfig(env.Kafka, env.ClickHouse, env.HTTP, env.GroupID)
	cfg.FlushInterval = runner.DefaultConfig().FlushInterval
	if opts.InsertMode != "" {
		cfg.Insert.Mode = opts.InsertMode
	}
	res := Result{Events: len(events), InsertMode: cfg.Insert.Mode, Instances: opts.Instances}
	if err := Migrate(ctx, env.ClickHouse.DSN); err != nil {
		return res, err
	}
	// The measurement's own queries (freshness polls, checkpoints) go over
	// HTTP when there is an HTTP interface, like the runner's in arrow_http
	// mode: a ClickHouse host built on chdb terminates when a native
	// connection is reset (see aggregator/README.md, "Flush, checkpoint,
	// commit").
	dsn := env.ClickHouse.DSN
	if env.HTTP != "" {
		if d, err := HTTPDSN(env.HTTP, env.ClickHouse.DSN); err == nil {
			dsn = d
		}
	}
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		return res, err
	}
	defer conn.Close()

	res.Pace = opts.Pace
	t := env.Kafka.Topics
	if opts.Pace <= 0 {
		t0 := time.Now()
		if _, err := Produce(ctx, env.Kafka, events); err != nil {
			return res, err
		}
		res.Produce = time.Since(t0)
	}

	ct := &closeTimes{topic: t.Client, close: map[int64]time.Time{}}
	visible := map[int64]time.Time{}
	stop := make(chan struct{})
	stopPoll := sync.OnceFunc(func() { close(stop) })
	polled := make(chan error, 1)
	go func() { polled <- pollFinal(ctx, stop, conn, opts.Poll, visible) }()

	fail := make(chan error, opts.Instances)
	var ins []*Instance
	stopAll := func() error {
		var errs []error
		for _, in := range ins {
			errs = append(errs, in.Stop())
		}
		return errors.Join(errs...)
	}
	t0 := time.Now()
	for range opts.Instances {
		in, err := Start(ctx, cfg, runner.Deps{Logger: NopLogger(), Observer: ct})
		if err != nil {
			stopPoll()
			<-polled
			return res, errors.Join(err, stopAll())
		}
		ins = append(ins, in)
		go func() {
			if err := in.Err(); err != nil {
				fail <- err
			}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if opts.Pace > 0 {
		// Start producing once the group has its partitions, so that the
		// join is not part of the measurement.
		err = waitAssigned(wctx, ins, fail)
		if err == nil {
			t0 = time.Now()
			err = ProducePaced(wctx, env.Kafka, events, opts.Pace, PaceHooks{})
			res.Produce = time.Since(t0)
			res.OfferedRate = float64(len(events)) / res.Produce.Seconds()
		}
	}
	var ends map[string]map[int]int64
	if err == nil {
		ends, err = EndOffsets(ctx, env.Kafka, t.Client, t.CDN, t.Origin)
	}
	if err == nil {
		err = WaitCheckpointed(wctx, conn, env.GroupID, ends, fail)
	}
	res.Consume = time.Since(t0)
	res.EventsPerSecond = float64(len(events)) / res.Consume.Seconds()
	// A backlog run ends with every window closed (the idle rule); a paced
	// run's last windows lie in the future and stay open.
	if err == nil && opts.Pace <= 0 {
		err = WaitCommitted(wctx, env.Kafka, env.GroupID, ends, fail)
	}
	// Let the poller see the last windows.
	time.Sleep(4 * opts.Poll)
	stopPoll()
	perr := <-polled
	if err = errors.Join(err, stopAll()); err != nil {
		return res, err
	}
	if perr != nil {
		return res, perr
	}

	ct.mu.Lock()
	defer ct.mu.Unlock()
	var fresh []time.Duration
	for ws, closed := range ct.close {
		if v, ok := visible[ws/1000]; ok {
			fresh = append(fresh, max(v.Sub(closed), 0))
			res.PerWindow = append(res.PerWindow, WindowTimes{time.UnixMilli(ws).UTC(), closed.Sub(t0), v.Sub(t0)})
		}
	}
	slices.SortFunc(res.PerWindow, func(a, b WindowTimes) int { return a.Window.Compare(b.Window) })
	res.Windows = len(fresh)
	res.FreshnessP50, res.FreshnessP99, res.FreshnessMax = Quantile(fresh, 0.5), Quantile(fresh, 0.99), Quantile(fresh, 1)
	res.AckP50, res.AckP99 = Quantile(ct.acks, 0.5), Quantile(ct.acks, 0.99)
	return res, nil
}

// HTTPDSN turns a native DSN into a clickhouse-go DSN for the HTTP
// interface at base, keeping user, password and database.
func HTTPDSN(base, dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("cannot parse the clickhouse dsn")
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("cannot parse the clickhouse http url")
	}
	b.User, b.Path = u.User, u.Path
	return b.String(), nil
}

// waitAssigned returns once the instances hold every partition.
func waitAssigned(ctx context.Context, ins []*Instance, fail <-chan error) error {
	for {
		n := 0.0
		for _, in := range ins {
			n += in.Metric("qoscope_aggregator_assigned_partitions")
		}
		if n > 0 && allAssigned(ins) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-fail:
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allAssigned(ins []*Instance) bool {
	for _, in := range ins {
		if in.Metric("qoscope_aggregator_group_generations_total") == 0 {
			return false
		}
	}
	return true
}

// PaceHooks observe a ProducePaced run (the benchmark's peers measure
// their freshness on the same stream). Nil hooks are not called; both run
// on the producing goroutine.
type PaceHooks struct {
	// Start receives the shift (ms) added to every event time, before the
	// first send.
	Start func(shiftMS int64)
	// Sent reports that events[from:to] were handed to the producer at
	// sent and acknowledged at acked.
	Sent func(from, to int, sent, acked time.Time)
}

// ProducePaced sends events at pace times the rate of their event time,
// in batches every 10 ms, with event times shifted so that the first event
// is stamped now: event time then runs ahead of the wall clock, as in a
// live stream sped up pace times, and the idle rule never fires meanwhile.
func ProducePaced(ctx context.Context, k config.Kafka, events [][]byte, pace float64, hooks PaceHooks) error {
	p := newProducer(k)
	defer p.close()
	var ev schemas.Event
	if len(events) == 0 {
		return nil
	}
	if err := schemas.ParseLine(events[0], &ev); err != nil {
		return err
	}
	first := ev.TS
	start := time.Now()
	p.shift = start.UnixMilli() - first
	if hooks.Start != nil {
		hooks.Start(p.shift)
	}
	i := 0
	for i < len(events) {
		j := i
		now := time.Since(start)
		for j < len(events) {
			if err := schemas.ParseLine(events[j], &ev); err != nil {
				return err
			}
			due := time.Duration(float64(ev.TS-first)/pace) * time.Millisecond
			if due > now && j > i {
				break
			}
			j++
		}
		sent := time.Now()
		if err := p.send(ctx, events[i:j]); err != nil {
			return err
		}
		if hooks.Sent != nil {
			hooks.Sent(i, j, sent, time.Now())
		}
		i = j
		if i < len(events) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// pollFinal records when each window's total client row first reads final,
// until stop is closed (never cancelling a query: see flusher.retry).
func pollFinal(ctx context.Context, stop <-chan struct{}, conn driver.Conn, every time.Duration, visible map[int64]time.Time) error {
	for {
		// A query reads the data as of its start: a row it returns was
		// visible by then.
		now := time.Now()
		rows, err := conn.Query(context.WithoutCancel(ctx), "SELECT toInt64(toUnixTimestamp(window_start)) FROM client_minute_metrics WHERE grouping = '' AND final = 1")
		if err != nil {
			return err
		}
		for rows.Next() {
			var ws int64
			if err := rows.Scan(&ws); err != nil {
				rows.Close()
				return err
			}
			if _, ok := visible[ws]; !ok {
				visible[ws] = now
			}
		}
		rows.Close()
		select {
		case <-stop:
			return nil
		case <-time.After(every):
		}
	}
}

// Quantile is the nearest-rank p-quantile of ds (0 when empty): the value
// at rank ⌈p·n⌉, as the freshness figures report it.
func Quantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
