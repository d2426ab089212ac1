package chkafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/bench/peers/chraw"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
)

// PollPrefix is the start of MeasureFreshness's count query: its
// ClickHouse CPU is the measurement's, not the peer's.
const PollPrefix = "SELECT toInt64(intDiv(toUnixTimestamp64Milli(ts), 60000)) AS w, count() FROM"

// PacedOptions configure MeasureFreshness: the peer as Run configures it
// (Topics must exist and be empty: the run produces into them), fed by
// e2e.ProducePaced while it consumes.
type PacedOptions struct {
	Options
	// Pace: event time runs Pace times faster than the wall clock, as in
	// e2e.MeasureOptions.Pace. Required.
	Pace float64
	// Lateness is the allowed lateness of the qoscope run compared with:
	// window W closes when the producer sends the first client event with
	// ts ≥ end of W + Lateness, the event-time point at which qoscope's
	// watermark closes W. Required.
	Lateness time.Duration
	// Poll is the period of the raw table's count. Default 25ms, as
	// e2e.MeasureEndToEnd polls qoscope's rows.
	Poll time.Duration
	// AssignTimeout bounds the wait, before producing, until the engine's
	// consumers hold every partition. Default 1m.
	AssignTimeout time.Duration
}

// PacedResult is the freshness of the peer on a paced stream.
type PacedResult struct {
	Events   int
	Pace     float64
	Lateness time.Duration
	// MaxBlockRows and FlushInterval are the engine's settings used
	// (kafka_max_block_size, kafka_flush_interval_ms): the peer's
	// freshness depends on them.
	MaxBlockRows  int
	FlushInterval time.Duration
	// Produce runs from the first send to the last acknowledgement;
	// OfferedRate = Events / Produce.
	Produce     time.Duration
	OfferedRate float64
	// Run spans the first send to the last measured window's query: the
	// ClickHouse process (the engine's consumers, inserts, merges and the
	// window queries, minus PollCPU) and the broker. ClientCPU is 0: this
	// process only produced and polled.
	Run     measure.Step
	PollCPU time.Duration
	Polls   int
	// Windows are the client windows that closed, by start; Open counts the
	// windows with client events that no event closed (the last ones).
	Windows []WindowTimes
	Open    int
	// Freshness over Windows (nearest rank, like qoscope's).
	FreshnessP50, FreshnessP99, FreshnessMax time.Duration
	// Visible − close before the clamp: negative when the window's numbers
	// were computed before it closed.
	SignedP50, SignedP99 time.Duration
	// Visible − the send of the window's last client event.
	AfterLastP50, AfterLastP99 time.Duration
	// The window queries' own durations.
	QueryP50, QueryP99, QueryMax time.Duration
}

// WindowTimes is one window's times, since the first send.
type WindowTimes struct {
	// Window is the window's start (event time as produced, shifted).
	Window time.Time `json:"window"`
	// Events: client events of the file in the window.
	Events int `json:"events"`
	// LastSent: the window's last client event was handed to the producer.
	LastSent time.Duration `json:"last_sent_ns"`
	// Closed: the first client event with ts ≥ window end + lateness was
	// handed to the producer.
	Closed time.Duration `json:"closed_ns"`
	// Complete: start of the first poll that counted every client event
	// of the window in the raw table (a query reads the data as of its
	// start).
	Complete time.Duration `json:"complete_ns"`
	// Query: own duration of the window's metrics query (chraw's client
	// SQL over the window), run once the window was complete.
	Query time.Duration `json:"query_ns"`
	Rows  int           `json:"rows"`
	// Freshness = max(Complete + Query − Closed, 0).
	Freshness time.Duration `json:"freshness_ns"`
}

func (r PacedResult) String() string {
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%d events, paced x%g (%.0f events/s offered), lateness %s, kafka_max_block_size %d, kafka_flush_interval_ms %d: freshness over %d windows p50 %s p99 %s max %s (before the clamp p50 %s p99 %s; last event sent → visible p50 %s p99 %s; window query p50 %s p99 %s; %d polls)",
		r.Events, r.Pace, r.OfferedRate, r.Lateness, r.MaxBlockRows, r.FlushInterval.Milliseconds(), len(r.Windows),
		ms(r.FreshnessP50), ms(r.FreshnessP99), ms(r.FreshnessMax), ms(r.SignedP50), ms(r.SignedP99),
		ms(r.AfterLastP50), ms(r.AfterLastP99), ms(r.QueryP50), ms(r.QueryP99), r.Polls)
}

func (o *PacedOptions) defaults() {
	o.Options.defaults()
	if o.Poll <= 0 {
		o.Poll = 25 * time.Millisecond
	}
	if o.AssignTimeout <= 0 {
		o.AssignTimeout = time.Minute
	}
}

func (o *PacedOptions) validate() error {
	if err := o.Options.validate(); err != nil {
		return err
	}
	if o.Pace <= 0 {
		return fmt.Errorf("chkafka: Pace must be positive")
	}
	if o.Lateness <= 0 || o.Lateness%time.Millisecond != 0 {
		return fmt.Errorf("chkafka: Lateness must be a positive whole number of milliseconds")
	}
	return nil
}

// MeasureFreshness creates the peer's tables on empty topics, produces f
// with e2e.ProducePaced (the producer of qoscope's paced run) while the
// engine consumes, and measures, per client window W:
//
//   - close(W): when the producer sent the first client event with
//     ts ≥ end of W + Lateness (where qoscope's watermark closes W);
//   - visible(W): the first poll (every Poll) at which the raw table holds
//     every client event of W in f, plus the duration of the peer's
//     client metrics SQL over W, run then;
//   - freshness(W) = visible − close, clamped at 0.
func MeasureFreshness(ctx context.Context, opts PacedOptions, f *events.File) (PacedResult, error) {
	opts.defaults()
	res := PacedResult{Events: f.Len(), Pace: opts.Pace, Lateness: opts.Lateness, MaxBlockRows: opts.MaxBlockRows, FlushInterval: opts.FlushInterval}
	if err := opts.validate(); err != nil {
		return res, err
	}
	if f.Len() == 0 {
		return res, fmt.Errorf("chkafka: no events to produce")
	}
	db, err := chconn.Database(opts.DSN)
	if err != nil {
		return res, err
	}
	if err := chraw.CheckIdent("database", db); err != nil {
		return res, err
	}
	st, err := newPacedState(f, opts.Lateness.Milliseconds())
	if err != nil {
		return res, err
	}
	conn, err := chraw.OpenCreatingDB(ctx, opts.DSN, db)
	if err != nil {
		return res, err
	}
	defer conn.Close()

	tb := &tables{conn: conn, db: db, opts: opts.Options}
	defer tb.drop(ctx)
	if err := tb.create(ctx); err != nil {
		return res, err
	}
	if err := tb.startView(ctx); err != nil {
		return res, err
	}
	// Produce once the consumers hold their partitions, so that the
	// group's join is not part of the measurement (as qoscope's run waits
	// for its runner's assignment).
	if err := waitAssigned(ctx, conn, db, opts.Prefix+"_queue", 3*opts.Partitions, opts.AssignTimeout); err != nil {
		return res, err
	}

	stop := make(chan struct{})
	// A slot per window (shifted windows span at most one more than the
	// file's): each is queued once, so the poller never waits.
	queue := make(chan int64, (f.MaxTS-f.MinTS)/aggregator.WindowMS+2)
	var wg sync.WaitGroup
	wg.Go(func() { st.fail("the poller", st.poll(ctx, stop, conn, db, tb.raw(), opts.Poll, queue)) })
	wg.Go(func() {
		st.fail("the window queries", st.query(ctx, stop, conn, db, tb.raw(), opts.GroupingSets.Client, queue))
	})
	stopAll := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopAll()

	k := config.DefaultKafka()
	k.Brokers = opts.Brokers
	k.Topics = config.Topics{Client: opts.Topics.Client, CDN: opts.Topics.CDN, Origin: opts.Topics.Origin}
	m := measure.StartWithBroker("paced: consume + window queries", opts.ServerPID, opts.BrokerPID)
	err = e2e.ProducePaced(ctx, k, st.lines, opts.Pace, e2e.PaceHooks{Start: st.start, Sent: st.sent})
	st.mu.Lock()
	t0, last := st.t0, st.lastAck
	st.produced = err == nil
	st.mu.Unlock()
	res.Produce = last.Sub(t0)
	if res.Produce > 0 {
		res.OfferedRate = float64(res.Events) / res.Produce.Seconds()
	}
	if err == nil {
		err = st.wait(ctx, opts.Timeout)
	}
	stopAll()
	res.Run = m.Done()
	res.Run.Events = int64(res.Events)
	res.Run.ClientCPU = 0
	st.mu.Lock()
	err = errors.Join(err, st.err)
	st.mu.Unlock()
	if err != nil {
		return res, err
	}
	if res.Run.ServerProcCPU != measure.Unknown {
		c, n, err := pollCPU(ctx, conn, db, t0.Add(-time.Second), time.Now())
		switch {
		case err != nil:
			res.Run.Note = "the poller's ClickHouse CPU is not subtracted: " + err.Error()
		default:
			res.PollCPU = c
			res.Run.ServerProcCPU = max(res.Run.ServerProcCPU-c, 0)
			res.Run.Note = fmt.Sprintf("ClickHouse process (minus %s of %d count polls) + broker, from the first send to the last window query", c.Round(time.Millisecond), n)
		}
	}
	st.result(&res)
	return res, nil
}

// pacedState is what the producer's hooks, the poller and the query
// worker share.
type pacedState struct {
	lines    [][]byte
	ts       []int64 // event time as in the file (ms)
	client   []bool
	lateness int64

	mu       sync.Mutex
	started  bool
	t0       time.Time // first send
	lastAck  time.Time
	shift    int64
	want     map[int64]int // window start (shifted, ms) -> client events
	windows  []int64       // sorted
	nextOpen int           // windows[nextOpen:] are not closed yet
	maxTS    int64         // newest client event time sent (shifted)
	closed   map[int64]time.Time
	lastSent map[int64]time.Time
	complete map[int64]time.Time
	queried  map[int64]windowQuery
	produced bool
	polls    int
	err      error // of the poller or the query worker
	progress chan struct{}
}

type windowQuery struct {
	d    time.Duration
	rows int
}

func newPacedState(f *events.File, lateness int64) (*pacedState, error) {
	st := &pacedState{lines: make([][]byte, f.Len()), ts: make([]int64, f.Len()), client: make([]bool, f.Len()),
		lateness: lateness, closed: map[int64]time.Time{}, lastSent: map[int64]time.Time{},
		complete: map[int64]time.Time{}, queried: map[int64]windowQuery{}, progress: make(chan struct{}, 1)}
	var e schemas.Event
	for i := range st.lines {
		st.lines[i] = f.Line(i)
		if err := schemas.ParseLine(st.lines[i], &e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i+1, err)
		}
		st.ts[i], st.client[i] = e.TS, e.Type.Source() == schemas.SourceClient
	}
	return st, nil
}

func windowOf(ts int64) int64 { return ts - ts%aggregator.WindowMS }

// start receives the producer's shift, before its first send: the windows
// and their counts follow from it.
func (st *pacedState) start(shift int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.shift, st.want = shift, map[int64]int{}
	for i, ts := range st.ts {
		if st.client[i] {
			st.want[windowOf(ts+shift)]++
		}
	}
	for w := range st.want {
		st.windows = append(st.windows, w)
	}
	slices.Sort(st.windows)
	st.maxTS = -1 << 63
	st.started = true
}

// sent records events[from:to] handed to the producer at sent: the
// windows they close and the last send of each window.
func (st *pacedState) sent(from, to int, sent, acked time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.t0.IsZero() {
		st.t0 = sent
	}
	st.lastAck = acked
	for i := from; i < to; i++ {
		if !st.client[i] {
			continue
		}
		ts := st.ts[i] + st.shift
		st.lastSent[windowOf(ts)] = sent
		if ts <= st.maxTS {
			continue
		}
		st.maxTS = ts
		for st.nextOpen < len(st.windows) && st.windows[st.nextOpen]+aggregator.WindowMS+st.lateness <= ts {
			st.closed[st.windows[st.nextOpen]] = sent
			st.nextOpen++
		}
	}
}

// fail records the error that stopped the poller or the query worker.
func (st *pacedState) fail(who string, err error) {
	if err == nil {
		return
	}
	st.mu.Lock()
	st.err = errors.Join(st.err, fmt.Errorf("%s stopped: %w", who, err))
	st.mu.Unlock()
	st.signal()
}

func (st *pacedState) signal() {
	select {
	case st.progress <- struct{}{}:
	default:
	}
}

// poll counts the client events per window of the raw table every
// `every`, from the oldest incomplete window on, and hands each window
// that holds all its events to the query worker. It never cancels a
// query in flight (a chdb-based server terminates on the connection
// reset: see aggregator/README.md).
func (st *pacedState) poll(ctx context.Context, stop <-chan struct{}, conn driver.Conn, db, table string, every time.Duration, queue chan<- int64) error {
	q := fmt.Sprintf("%s `%s`.`%s` WHERE type <= 'dns' AND ts >= fromUnixTimestamp64Milli(?) GROUP BY w", PollPrefix, db, table)
	counts := map[int64]uint64{}
	for {
		st.mu.Lock()
		from, ok := int64(0), false
		if st.started {
			for _, w := range st.windows {
				if _, done := st.complete[w]; !done {
					from, ok = w, true
					break
				}
			}
		}
		st.mu.Unlock()
		if ok {
			clear(counts)
			at := time.Now()
			rows, err := conn.Query(context.WithoutCancel(ctx), q, from)
			if err != nil {
				return fmt.Errorf("cannot count %s.%s: %w", db, table, err)
			}
			for rows.Next() {
				var w int64
				var n uint64
				if err := rows.Scan(&w, &n); err != nil {
					rows.Close()
					return fmt.Errorf("cannot count %s.%s: %w", db, table, err)
				}
				counts[w*aggregator.WindowMS] = n
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return fmt.Errorf("cannot count %s.%s: %w", db, table, err)
			}
			st.mu.Lock()
			st.polls++
			for w, n := range counts {
				want := uint64(st.want[w])
				if n > want {
					st.mu.Unlock()
					return fmt.Errorf("%s.%s holds %d client events of window %s, more than the %d produced", db, table, n, time.UnixMilli(w).UTC().Format(time.RFC3339), want)
				}
				if _, done := st.complete[w]; !done && n == want {
					st.complete[w] = at
					queue <- w
				}
			}
			st.mu.Unlock()
		}
		select {
		case <-stop:
			return nil
		case <-time.After(every):
		}
	}
}

// query runs the peer's client metrics SQL over each complete window, one
// at a time, and records its own duration (a wait in the queue is not
// part of it).
func (st *pacedState) query(ctx context.Context, stop <-chan struct{}, conn driver.Conn, db, table string, sets [][]string, queue <-chan int64) error {
	for {
		select {
		case <-stop:
			return nil
		case w := <-queue:
			q, err := chraw.ClientWindowQuery(db, table, sets, w)
			if err != nil {
				return err
			}
			t := time.Now()
			rows, err := chraw.ReadQuery(context.WithoutCancel(ctx), conn, q)
			d := time.Since(t)
			if err != nil {
				return err
			}
			st.mu.Lock()
			st.queried[w] = windowQuery{d: d, rows: len(rows)}
			st.mu.Unlock()
			st.signal()
		}
	}
}

// wait returns once the producer is done and every closed window was
// queried, or fails after timeout.
func (st *pacedState) wait(ctx context.Context, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		st.mu.Lock()
		var missing []string
		for w := range st.closed {
			if _, ok := st.queried[w]; !ok {
				state := "not all events in the raw table"
				if _, ok := st.complete[w]; ok {
					state = "query not done"
				}
				missing = append(missing, time.UnixMilli(w).UTC().Format("15:04")+" ("+state+")")
			}
		}
		done := st.produced && len(missing) == 0
		failed := st.err != nil
		st.mu.Unlock()
		if done || failed {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			slices.Sort(missing)
			return fmt.Errorf("after %s, closed windows without all their events or their query: %s", timeout, strings.Join(missing, ", "))
		case <-st.progress:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// result fills the per-window times and their quantiles.
func (st *pacedState) result(res *PacedResult) {
	st.mu.Lock()
	defer st.mu.Unlock()
	res.Polls = st.polls
	var fresh, signed, afterLast, query []time.Duration
	for _, w := range st.windows {
		closed, ok := st.closed[w]
		if !ok {
			res.Open++
			continue
		}
		q := st.queried[w]
		c := st.complete[w]
		wt := WindowTimes{Window: time.UnixMilli(w).UTC(), Events: st.want[w], LastSent: st.lastSent[w].Sub(st.t0),
			Closed: closed.Sub(st.t0), Complete: c.Sub(st.t0), Query: q.d, Rows: q.rows}
		visible := c.Add(q.d)
		wt.Freshness = max(visible.Sub(closed), 0)
		res.Windows = append(res.Windows, wt)
		fresh = append(fresh, wt.Freshness)
		signed = append(signed, visible.Sub(closed))
		afterLast = append(afterLast, visible.Sub(st.lastSent[w]))
		query = append(query, q.d)
	}
	res.FreshnessP50, res.FreshnessP99, res.FreshnessMax = e2e.Quantile(fresh, 0.5), e2e.Quantile(fresh, 0.99), e2e.Quantile(fresh, 1)
	res.SignedP50, res.SignedP99 = e2e.Quantile(signed, 0.5), e2e.Quantile(signed, 0.99)
	res.AfterLastP50, res.AfterLastP99 = e2e.Quantile(afterLast, 0.5), e2e.Quantile(afterLast, 0.99)
	res.QueryP50, res.QueryP99, res.QueryMax = e2e.Quantile(query, 0.5), e2e.Quantile(query, 0.99), e2e.Quantile(query, 1)
}

// waitAssigned returns once the engine's consumers of table hold want
// partitions (system.kafka_consumers).
func waitAssigned(ctx context.Context, conn driver.Conn, db, table string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT toUInt64(sum(length(assignments.partition_id))) FROM system.kafka_consumers WHERE database = ? AND table = ?", db, table).Scan(&n)
		switch {
		case err != nil:
			return fmt.Errorf("cannot read system.kafka_consumers: %w", err)
		case int(n) >= want:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the kafka engine holds %d of %d partitions after %s%s", n, want, timeout, consumerErrors(ctx, conn, db))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pollCPU is the ClickHouse CPU of the count polls (PollPrefix) in db that
// started in [from, to), from system.query_log, and their number.
func pollCPU(ctx context.Context, conn driver.Conn, db string, from, to time.Time) (time.Duration, uint64, error) {
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return 0, 0, fmt.Errorf("cannot flush logs: %w", err)
	}
	var us, n uint64
	err := conn.QueryRow(ctx, `SELECT toUInt64(sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds'])), count()
		FROM system.query_log
		WHERE type = 'QueryFinish' AND startsWith(query, ?) AND current_database = ?
		  AND query_start_time_microseconds >= fromUnixTimestamp64Micro(?) AND query_start_time_microseconds < fromUnixTimestamp64Micro(?)`,
		PollPrefix, db, from.UnixMicro(), to.UnixMicro()).Scan(&us, &n)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read system.query_log: %w", err)
	}
	return time.Duration(us) * time.Microsecond, n, nil
}
