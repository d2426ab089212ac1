package harness

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
)

// e2eDatabase holds the end-to-end step's minute tables (migrated here,
// dropped before and after); the paced run uses e2eDatabase + "_paced".
const e2eDatabase = "qoscope_bench_e2e"

// freshnessPollPrefix is the start of e2e.MeasureEndToEnd's freshness
// poll query: its ClickHouse CPU is the measurement's, not the pipeline's.
const freshnessPollPrefix = "SELECT toInt64(toUnixTimestamp(window_start)) FROM client_minute_metrics"

// e2eEnv is one end-to-end run's topics and database, created empty.
type e2eEnv struct {
	env      e2e.Env
	dsn, db  string
	topics   []string
	preamble time.Duration // a no-op migration: see runEndToEnd
}

// newE2EEnv creates fresh topics and a migrated database. close removes
// them.
func newE2EEnv(ctx context.Context, o *Options, prefix, db string) (*e2eEnv, error) {
	dsn, err := withDatabase(o.ClickHouseDSN, db)
	if err != nil {
		return nil, err
	}
	k := config.DefaultKafka()
	k.Brokers = o.KafkaBrokers
	k.Topics = config.Topics{Client: prefix + ".client", CDN: prefix + ".cdn", Origin: prefix + ".origin", DeadLetter: prefix + ".deadletter"}
	e := &e2eEnv{dsn: dsn, db: db, topics: []string{k.Topics.Client, k.Topics.CDN, k.Topics.Origin, k.Topics.DeadLetter},
		env: e2e.Env{Kafka: k, ClickHouse: config.ClickHouse{DSN: dsn}, HTTP: o.ClickHouseHTTP, GroupID: prefix + ".group"}}
	if err := events.EnsureTopics(ctx, k.Brokers, o.Partitions, e.topics...); err != nil {
		return nil, err
	}
	if err := dropDatabase(ctx, o.ClickHouseDSN, db); err != nil {
		e.close(ctx, o)
		return nil, err
	}
	// Migrate first, and time a no-op migration: MeasureEndToEnd migrates
	// again before producing, and that no-op is the offset between the
	// call's start and its produce phase (see runEndToEnd).
	if err := e2e.Migrate(ctx, dsn); err != nil {
		e.close(ctx, o)
		return nil, fmt.Errorf("cannot migrate %s: %w", db, err)
	}
	t := time.Now()
	if err := e2e.Migrate(ctx, dsn); err != nil {
		e.close(ctx, o)
		return nil, fmt.Errorf("cannot migrate %s: %w", db, err)
	}
	e.preamble = time.Since(t)
	return e, nil
}

func (e *e2eEnv) close(ctx context.Context, o *Options) {
	ctx = context.WithoutCancel(ctx)
	_ = events.DeleteTopics(ctx, o.KafkaBrokers, e.topics...)
	_ = dropDatabase(ctx, o.ClickHouseDSN, e.db)
}

// runEndToEnd runs the streaming aggregator over the file through real
// Kafka and ClickHouse with e2e.MeasureEndToEnd (the runner's own
// measurement): first over a backlog (sustained rate; the CPU of the
// three processes sampled meanwhile; the ClickHouse views checked against
// qoscope's offline rows), then, with Options.E2EPace, paced like a live
// stream (freshness).
func runEndToEnd(ctx context.Context, o *Options, ds *Dataset, ref *OfflineResult, prefix string) *E2EResult {
	r := &E2EResult{Partitions: o.Partitions}
	lines := make([][]byte, ds.Events)
	for i := range lines {
		lines[i] = ds.file.Line(i)
	}
	env, err := newE2EEnv(ctx, o, prefix, e2eDatabase)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer env.close(ctx, o)

	smp := startSampler(100*time.Millisecond, o.ClickHousePID, o.KafkaPID)
	t0 := time.Now()
	res, err := e2e.MeasureEndToEnd(ctx, env.env, lines, e2e.MeasureOptions{})
	samples := smp.stop()
	r.Events, r.InsertMode, r.Instances = res.Events, res.InsertMode, res.Instances
	r.ProduceSec, r.ConsumeSec, r.EventsPerSecond = res.Produce.Seconds(), res.Consume.Seconds(), res.EventsPerSecond
	r.Windows = res.Windows
	r.FreshnessP50Sec, r.FreshnessP99Sec, r.FreshnessMaxSec = res.FreshnessP50.Seconds(), res.FreshnessP99.Seconds(), res.FreshnessMax.Seconds()
	r.AckP50Sec, r.AckP99Sec = res.AckP50.Seconds(), res.AckP99.Seconds()
	r.Summary = res.String()
	if err != nil {
		r.Error = err.Error()
		return r
	}

	// The consume phase starts after the call's no-op migration and its
	// produce phase.
	from := t0.Add(env.preamble + res.Produce)
	st := consumeWindow(samples, from, from.Add(res.Consume), o.ClickHousePID > 0, o.KafkaPID > 0)
	st.Events = int64(res.Events)
	if st.ServerProcCPU != measure.Unknown {
		poll, err := pollCPU(ctx, o.ClickHouseDSN, env.db, from, from.Add(res.Consume))
		switch {
		case err != nil:
			st.Note = "freshness poller's ClickHouse CPU not subtracted: " + err.Error()
		default:
			st.ServerProcCPU = max(st.ServerProcCPU-poll, 0)
			st.Note = fmt.Sprintf("runner in this process + ClickHouse process (minus %s of the freshness poller's queries) + broker, sampled every 100 ms over the consume phase", poll.Round(time.Millisecond))
		}
	}
	r.Consume = stepOf(st)
	r.check(ctx, env.dsn, ref)

	if o.E2EPace > 0 {
		r.Paced = runPaced(ctx, o, lines, prefix+"-paced")
	}
	return r
}

// check compares the ClickHouse views with qoscope's offline rows.
func (r *E2EResult) check(ctx context.Context, dsn string, ref *OfflineResult) {
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		r.Notes = append(r.Notes, "cannot read the views to check them: "+err.Error())
		return
	}
	defer conn.Close()
	got, nonFinal, err := e2e.ViewRows(ctx, conn)
	if err != nil {
		r.Notes = append(r.Notes, "cannot read the views to check them: "+err.Error())
		return
	}
	if nonFinal > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d view rows were not final at the end", nonFinal))
	}
	if ref == nil {
		r.Notes = append(r.Notes, "not checked: qoscope's offline rows are missing")
		return
	}
	b, err := os.ReadFile(ref.path)
	if err != nil {
		r.Notes = append(r.Notes, "cannot read the offline rows: "+err.Error())
		return
	}
	want, err := e2e.ParseOffline(b)
	if err != nil {
		r.Notes = append(r.Notes, "cannot parse the offline rows: "+err.Error())
		return
	}
	diffs := e2e.Compare(got, want, 1<<30)
	r.Agreement = &Agreement{OK: len(diffs) == 0, WantRows: len(want), GotRows: len(got), Diffs: len(diffs)}
	for k, w := range want {
		if _, ok := got[k]; ok {
			r.Agreement.MatchedRows++
			r.Agreement.Metrics += len(w)
		}
	}
	for _, d := range diffs[:min(len(diffs), 20)] {
		r.Agreement.FirstDiffs = append(r.Agreement.FirstDiffs, d)
	}
}

// runPaced is the paced end-to-end run, for freshness. Its last windows
// stay open (their event time is ahead of the wall clock's watermark), so
// its rows are not compared: the backlog run checked the same code.
func runPaced(ctx context.Context, o *Options, lines [][]byte, prefix string) *E2EPaced {
	p := &E2EPaced{Pace: o.E2EPace, LatenessSec: e2eLateness().Seconds()}
	env, err := newE2EEnv(ctx, o, prefix, e2eDatabase+"_paced")
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer env.close(ctx, o)
	res, err := e2e.MeasureEndToEnd(ctx, env.env, lines, e2e.MeasureOptions{Pace: o.E2EPace})
	p.OfferedRate, p.ProduceSec, p.ConsumeSec, p.EventsPerSecond = res.OfferedRate, res.Produce.Seconds(), res.Consume.Seconds(), res.EventsPerSecond
	p.Windows = res.Windows
	p.FreshnessP50Sec, p.FreshnessP99Sec, p.FreshnessMaxSec = res.FreshnessP50.Seconds(), res.FreshnessP99.Seconds(), res.FreshnessMax.Seconds()
	p.AckP50Sec, p.AckP99Sec = res.AckP50.Seconds(), res.AckP99.Seconds()
	p.Summary = res.String()
	if err != nil {
		p.Error = err.Error()
	}
	return p
}

// e2eLateness is the allowed lateness of the end-to-end runs: that of the
// runner configuration e2e.MeasureEndToEnd uses.
func e2eLateness() time.Duration {
	return e2e.TestLateness
}

func dropDatabase(ctx context.Context, dsn, db string) error {
	admin, err := withDatabase(dsn, "")
	if err != nil {
		return err
	}
	conn, err := chconn.Open(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"` SYNC"); err != nil {
		return fmt.Errorf("cannot drop database %s: %w", db, err)
	}
	return nil
}

// pollCPU is the ClickHouse CPU of the freshness poller's queries that
// started in [from, to), from system.query_log.
func pollCPU(ctx context.Context, dsn, db string, from, to time.Time) (time.Duration, error) {
	admin, err := withDatabase(dsn, "")
	if err != nil {
		return 0, err
	}
	conn, err := chconn.Open(ctx, admin)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return 0, fmt.Errorf("cannot flush logs: %w", err)
	}
	var us uint64
	err = conn.QueryRow(ctx, `SELECT toUInt64(sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']))
		FROM system.query_log
		WHERE type = 'QueryFinish' AND startsWith(query, ?) AND current_database = ?
		  AND query_start_time_microseconds >= fromUnixTimestamp64Micro(?) AND query_start_time_microseconds < fromUnixTimestamp64Micro(?)`,
		freshnessPollPrefix, db, from.UnixMicro(), to.UnixMicro()).Scan(&us)
	if err != nil {
		return 0, fmt.Errorf("cannot read system.query_log: %w", err)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// cpuSample is the CPU used so far by this process, the ClickHouse server
// and the broker, at one instant.
type cpuSample struct {
	at               time.Time
	self, ch, broker time.Duration
	chOK, brokerOK   bool
}

// sampler records cpuSamples periodically. The end-to-end measurement
// reports its phases' durations but not their CPU, and produce and consume
// run in the same call: sampling lets the consume phase's CPU be read off
// afterwards.
type sampler struct {
	chPID, brokerPID int
	stopc            chan struct{}
	done             chan struct{}
	mu               sync.Mutex
	samples          []cpuSample
}

func startSampler(every time.Duration, chPID, brokerPID int) *sampler {
	s := &sampler{chPID: chPID, brokerPID: brokerPID, stopc: make(chan struct{}), done: make(chan struct{})}
	s.take()
	go func() {
		defer close(s.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-s.stopc:
				s.take()
				return
			case <-tk.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *sampler) take() {
	c := cpuSample{at: time.Now(), self: measure.SelfCPU()}
	if s.chPID > 0 {
		v, err := measure.ProcCPU(s.chPID)
		c.ch, c.chOK = v, err == nil
	}
	if s.brokerPID > 0 {
		v, err := measure.ProcCPU(s.brokerPID)
		c.broker, c.brokerOK = v, err == nil
	}
	s.mu.Lock()
	s.samples = append(s.samples, c)
	s.mu.Unlock()
}

func (s *sampler) stop() []cpuSample {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// consumeWindow is the CPU used in [from, to), each counter interpolated
// linearly between the samples around the bounds (the error is at most
// one sampling period's CPU at each end).
func consumeWindow(samples []cpuSample, from, to time.Time, haveCH, haveBroker bool) measure.Step {
	st := measure.Step{Name: "consume", Wall: to.Sub(from), ServerCPU: measure.Unknown,
		ServerProcCPU: measure.Unknown, BrokerProcCPU: measure.Unknown}
	at := func(t time.Time, get func(cpuSample) (time.Duration, bool)) (time.Duration, bool) {
		if len(samples) == 0 {
			return 0, false
		}
		i := 0
		for i+1 < len(samples) && !samples[i+1].at.After(t) {
			i++
		}
		a, aok := get(samples[i])
		if i+1 == len(samples) || !samples[i].at.Before(t) {
			return a, aok
		}
		b, bok := get(samples[i+1])
		span := samples[i+1].at.Sub(samples[i].at)
		frac := float64(t.Sub(samples[i].at)) / float64(span)
		return a + time.Duration(frac*float64(b-a)), aok && bok
	}
	diff := func(get func(cpuSample) (time.Duration, bool)) (time.Duration, bool) {
		a, aok := at(from, get)
		b, bok := at(to, get)
		return b - a, aok && bok
	}
	st.ClientCPU, _ = diff(func(c cpuSample) (time.Duration, bool) { return c.self, true })
	if haveCH {
		if v, ok := diff(func(c cpuSample) (time.Duration, bool) { return c.ch, c.chOK }); ok {
			st.ServerProcCPU = v
		}
	}
	if haveBroker {
		if v, ok := diff(func(c cpuSample) (time.Duration, bool) { return c.broker, c.brokerOK }); ok {
			st.BrokerProcCPU = v
		}
	}
	return st
}
