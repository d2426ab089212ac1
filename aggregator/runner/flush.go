package runner

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/retry"
)

// generation runs one assignment: restore, consume, flush on ticks and
// when windows close, and a last flush when the generation or ctx ends.
func (r *Runner) generation(ctx, gctx context.Context, gen *kafka.Generation) error {
	r.m.generations.Inc()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(gctx, cancel)
	defer stop()

	workers, err := r.assign(wctx, gen)
	if err != nil {
		if wctx.Err() != nil && Classify(err) != Permanent {
			return nil // the generation ended while we were restoring
		}
		return err
	}
	r.m.assigned.Set(float64(len(workers)))
	defer func() {
		for _, w := range workers {
			r.m.commitLag.DeleteLabelValues(w.id.Topic, partLabel(w.id.Partition))
			r.m.watermark.DeleteLabelValues(w.id.Topic, partLabel(w.id.Partition))
		}
		r.m.assigned.Set(0)
	}()
	ids := make([]string, 0, len(workers))
	for _, w := range workers {
		ids = append(ids, w.id.Topic+"/"+partLabel(w.id.Partition))
	}
	r.log.Info().Int32("generation", gen.ID).Strs("partitions", ids).Msg("partitions assigned")

	pending := make(chan struct{}, 1)
	crossed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(2)
		go func() { defer wg.Done(); w.fetch(wctx) }()
		go func() { defer wg.Done(); w.run(wctx, pending, crossed) }()
	}
	stopWorkers := func() {
		cancel()
		wg.Wait()
		for _, w := range workers {
			if err := w.reader.Close(); err != nil {
				r.log.Debug().Err(err).Msg("cannot close partition reader")
			}
		}
	}

	f := &flusher{r: r, gen: gen, workers: workers}
	ticker := time.NewTicker(r.cfg.FlushInterval)
	defer ticker.Stop()
	var finalTimer, boundaryTimer <-chan time.Time
	var loopErr error
loop:
	for {
		select {
		case <-wctx.Done():
			break loop
		case <-ticker.C:
			f.probe(wctx)
			loopErr = f.flush(wctx, true, false)
		case <-pending:
			if finalTimer == nil {
				finalTimer = time.After(r.cfg.FinalDelay)
			}
		case <-finalTimer:
			finalTimer = nil
			loopErr = f.flush(wctx, false, true)
		case <-crossed:
			// A live partition's clock passed a minute's end: the minute is
			// complete once every partition's checkpoint says so, which is
			// when the alert evaluator takes it (docs/ALERTS.md, "Live").
			// Flushing then, rather than up to flush_interval later, is
			// most of a minute's end → on-call latency. The other
			// partitions cross within about a second; one flush takes them
			// all.
			if boundaryTimer == nil {
				boundaryTimer = time.After(min(boundaryGather, r.cfg.FlushInterval))
			}
		case <-boundaryTimer:
			boundaryTimer = nil
			f.probe(wctx)
			loopErr = f.flush(wctx, true, false)
		}
		if loopErr != nil {
			break loop
		}
	}
	stopWorkers()
	if loopErr != nil && Classify(loopErr) == Permanent {
		r.log.Error().Err(loopErr).Msg("write failed permanently; stopping without committing the failed flush")
		return loopErr
	}
	if f.broken {
		// A flush was cut short: its drained rows may be missing, so no
		// later checkpoint may claim them. The next owner replays from the
		// last checkpoint written.
		r.log.Warn().Msg("last flush incomplete; leaving the partitions to be replayed from their last checkpoint")
		return nil
	}
	// Last flush: everything processed so far, with the generation still
	// valid for the commit (the coordinator accepts commits of the ending
	// generation while it rebalances).
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownTimeout)
	defer scancel()
	if err := f.flush(sctx, true, false); err != nil {
		if Classify(err) == Permanent {
			return err
		}
		r.log.Warn().Err(err).Msg("last flush failed; the partitions will be replayed from their last checkpoint")
		return nil
	}
	r.log.Info().Int32("generation", gen.ID).Msg("partitions flushed and released")
	return nil
}

// assign restores the assigned partitions and opens their readers.
func (r *Runner) assign(ctx context.Context, gen *kafka.Generation) ([]*worker, error) {
	var cps map[aggregator.PartitionID]storedCheckpoint
	f := &flusher{r: r}
	err := f.retry(ctx, "restore", func(ctx context.Context) error {
		var err error
		cps, err = loadCheckpoints(ctx, r.ch, r.db, r.cfg.GroupID)
		return err
	})
	if err != nil {
		return nil, err
	}
	type todo struct {
		id    aggregator.PartitionID
		start int64
		cp    *storedCheckpoint
	}
	var list []todo
	symbolic := map[string][]kafka.OffsetRequest{}
	for topic, parts := range gen.Assignments {
		for _, pa := range parts {
			id := aggregator.PartitionID{Topic: topic, Partition: int32(pa.ID)}
			t := todo{id: id, start: pa.Offset}
			if sc, ok := cps[id]; ok {
				// The checkpoint wins over the committed offset: it is
				// written with the rows, and the commit only trails it.
				t.cp, t.start = &sc, sc.cp.Resume
				if sc.planHash != r.hash {
					r.log.Warn().Str("topic", topic).Int("partition", pa.ID).
						Msg("checkpoint was written with another windowing configuration")
				}
			} else if pa.Offset < 0 {
				req := kafka.FirstOffsetOf(pa.ID)
				if pa.Offset == kafka.LastOffset {
					req = kafka.LastOffsetOf(pa.ID)
				}
				symbolic[topic] = append(symbolic[topic], req)
			}
			list = append(list, t)
		}
	}
	// Resolve first/last now, so that "caught up" can be decided from offsets.
	if len(symbolic) > 0 {
		var resp *kafka.ListOffsetsResponse
		err := f.retry(ctx, "list-offsets", func(ctx context.Context) error {
			var err error
			resp, err = r.kc.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: symbolic})
			return err
		})
		if err != nil {
			return nil, err
		}
		for i := range list {
			t := &list[i]
			if t.cp != nil || t.start >= 0 {
				continue
			}
			for _, po := range resp.Topics[t.id.Topic] {
				if po.Partition == int(t.id.Partition) {
					if po.Error != nil {
						return nil, po.Error
					}
					if t.start == kafka.LastOffset {
						t.start = po.LastOffset
					} else {
						t.start = po.FirstOffset
					}
				}
			}
			if t.start < 0 {
				return nil, errors.New("kafka returned no offsets for " + t.id.Topic)
			}
		}
	}
	slices.SortFunc(list, func(a, b todo) int {
		if a.id.Topic != b.id.Topic {
			if a.id.Topic < b.id.Topic {
				return -1
			}
			return 1
		}
		return int(a.id.Partition - b.id.Partition)
	})
	workers := make([]*worker, 0, len(list))
	for _, t := range list {
		w, err := r.newWorker(t.id, t.start, t.cp)
		if err != nil {
			return nil, err
		}
		w.reader = kafka.NewReader(kafka.ReaderConfig{
			Brokers:         r.cfg.Kafka.Brokers,
			Topic:           t.id.Topic,
			Partition:       int(t.id.Partition),
			Dialer:          r.dialer,
			MinBytes:        1,
			MaxBytes:        r.cfg.Consumer.MaxBytes,
			MaxWait:         r.cfg.Consumer.MaxWait,
			ReadLagInterval: -1,
			QueueCapacity:   r.cfg.Consumer.Chunk * 2,
			ErrorLogger:     &readerLogger{log: r.log.With().Str("topic", t.id.Topic).Int32("partition", t.id.Partition).Logger(), every: 10 * time.Second},
		})
		if err := w.reader.SetOffset(t.start); err != nil {
			return nil, err
		}
		r.log.Debug().Str("topic", t.id.Topic).Int32("partition", t.id.Partition).Int64("start", t.start).
			Bool("checkpoint", t.cp != nil).Msg("partition restored")
		workers = append(workers, w)
	}
	return workers, nil
}

// flusher writes what the workers collected. It runs on the generation's
// goroutine only.
type flusher struct {
	r              *Runner
	gen            *kafka.Generation
	workers        []*worker
	broken         bool // a flush was cut short after draining
	commitFailures int
}

// probe reads the end offsets of the assigned partitions: it decides which
// partitions are caught up (for the idle rule) and sets the lag gauges.
func (f *flusher) probe(ctx context.Context) {
	req := map[string][]kafka.OffsetRequest{}
	for _, w := range f.workers {
		req[w.id.Topic] = append(req[w.id.Topic], kafka.LastOffsetOf(int(w.id.Partition)))
	}
	if len(req) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, f.r.cfg.Kafka.DialTimeout)
	defer cancel()
	resp, err := f.r.kc.ListOffsets(pctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		// Unknown ends: no partition is treated as idle this round.
		for _, w := range f.workers {
			w.end = -1
		}
		return
	}
	for _, w := range f.workers {
		w.end = -1
		for _, po := range resp.Topics[w.id.Topic] {
			if po.Partition == int(w.id.Partition) && po.Error == nil {
				w.end = po.LastOffset
			}
		}
		if w.end >= 0 && w.committed >= 0 {
			f.r.m.commitLag.WithLabelValues(w.id.Topic, partLabel(w.id.Partition)).Set(float64(w.end - w.committed))
		}
	}
}

// flush collects from every worker and writes: dead letters, rows,
// rollups, checkpoints, then commits the offsets. snapshot adds provisional
// rows of open windows (and lets idle partitions advance); finalOnly
// touches only partitions with closed windows.
func (f *flusher) flush(ctx context.Context, snapshot, finalOnly bool) error {
	r := f.r
	start := time.Now()
	parts := make([]collected, 0, len(f.workers))
	var dl []kafka.Message
	var rows []aggregator.Row
	var late []aggregator.LateRow
	var cps []checkpointRow
	for _, w := range f.workers {
		c := w.collect(snapshot, finalOnly, start)
		if wm, ok := watermarkSeconds(c.watermark); ok {
			r.m.watermark.WithLabelValues(w.id.Topic, partLabel(w.id.Partition)).Set(wm)
		}
		if !c.drained {
			continue
		}
		parts = append(parts, c)
		dl = append(dl, c.dl...)
		rows = append(rows, c.batch.Final...)
		rows = append(rows, c.prov...)
		late = append(late, c.batch.Late...)
		state, err := json.Marshal(c.batch.Checkpoint)
		if err != nil {
			return permanent(err)
		}
		if !slices.Equal(state, w.lastState) {
			v := nextCheckpointVersion(w.cpVersion, c.batch.Checkpoint.Next)
			cps = append(cps, checkpointRow{id: w.id, version: v, cp: c.batch.Checkpoint, state: state})
		}
	}
	if len(dl) == 0 && len(rows) == 0 && len(late) == 0 && len(cps) == 0 {
		return f.commit(ctx)
	}
	// From here on, drained windows exist only in this flush.
	f.broken = true

	if len(dl) > 0 {
		if err := f.retry(ctx, "deadletter", func(ctx context.Context) error { return r.dl.WriteMessages(ctx, dl...) }); err != nil {
			return err
		}
	}
	f.hook("after-deadletters")

	recs := BuildRecords(r.mem, rows, late, r.cfg.Insert.MaxRows)
	defer func() {
		for _, tr := range recs {
			tr.Record.Release()
		}
	}()
	for _, tr := range recs {
		t0 := time.Now()
		if err := f.retry(ctx, tr.Table(), func(ctx context.Context) error { return r.ins.Insert(ctx, tr) }); err != nil {
			return err
		}
		r.m.insertSeconds.WithLabelValues(tr.Table()).Observe(time.Since(t0).Seconds())
		r.m.rowsWritten.WithLabelValues(tr.Table()).Add(float64(tr.Record.NumRows()))
	}
	acked := time.Now()
	f.hook("after-rows")

	if r.cfg.Rollups {
		if err := f.rollups(ctx, parts); err != nil {
			return err
		}
	}
	if len(cps) > 0 {
		if err := f.retry(ctx, tableCheckpoints, func(ctx context.Context) error {
			return writeCheckpoints(ctx, r.ch, r.db, r.cfg.GroupID, r.hash, cps)
		}); err != nil {
			return err
		}
		byID := map[aggregator.PartitionID]*checkpointRow{}
		for i := range cps {
			byID[cps[i].id] = &cps[i]
		}
		for _, w := range f.workers {
			if c, ok := byID[w.id]; ok {
				w.lastState, w.cpVersion, w.resume = c.state, c.version, c.cp.Resume
			}
		}
	}
	f.broken = false
	f.hook("after-checkpoint")
	if r.deps.Flushed != nil {
		r.deps.Flushed()
	}

	for _, c := range parts {
		if c.closedAt.IsZero() || len(c.batch.Final) == 0 {
			continue
		}
		lat := acked.Sub(c.closedAt)
		var last int64 = -1
		for i := range c.batch.Final {
			ws := c.batch.Final[i].WindowStart
			if ws == last {
				continue
			}
			last = ws
			r.m.freshness.Observe(lat.Seconds())
			if r.deps.Observer != nil {
				r.deps.Observer.FinalWritten(c.w.id, ws, c.closedAt, acked)
			}
		}
	}
	err := f.commit(ctx)
	f.hook("after-commit")
	r.m.flushSeconds.Observe(time.Since(start).Seconds())
	return err
}

// commit commits every partition's written resume offset that moved. A
// failed commit is not an error: the checkpoint already holds the state,
// and the next flush commits again.
func (f *flusher) commit(ctx context.Context) error {
	if f.gen == nil {
		return nil
	}
	offsets := map[string]map[int]int64{}
	var ws []*worker
	for _, w := range f.workers {
		if w.lastState == nil || w.resume == w.committed {
			continue
		}
		if offsets[w.id.Topic] == nil {
			offsets[w.id.Topic] = map[int]int64{}
		}
		offsets[w.id.Topic][int(w.id.Partition)] = w.resume
		ws = append(ws, w)
	}
	if len(offsets) == 0 || ctx.Err() != nil {
		return nil
	}
	if err := f.gen.CommitOffsets(offsets); err != nil {
		f.commitFailures++
		f.r.m.flushErrors.WithLabelValues("commit", Classify(err).String()).Inc()
		if f.commitFailures == 1 || f.commitFailures%20 == 0 {
			f.r.log.Warn().Err(err).Int("failures", f.commitFailures).Msg("cannot commit offsets; the checkpoints hold them, retrying at the next flush")
		}
		return nil
	}
	f.commitFailures = 0
	for _, w := range ws {
		w.committed = offsets[w.id.Topic][int(w.id.Partition)]
		if w.end >= 0 {
			f.r.m.commitLag.WithLabelValues(w.id.Topic, partLabel(w.id.Partition)).Set(float64(max(w.end-w.committed, 0)))
		}
	}
	return nil
}

type rollupKey struct {
	spec  *tableSpec
	start int64 // Unix seconds
	topic string
}

// rollups recomputes the hour (then day) rows of the periods in which
// final rows were just written, for the partitions that wrote them.
func (f *flusher) rollups(ctx context.Context, parts []collected) error {
	hours := map[rollupKey][]int32{}
	for _, c := range parts {
		seen := map[rollupKey]bool{}
		for i := range c.batch.Final {
			row := &c.batch.Final[i]
			k := rollupKey{specFor(row.Source), row.WindowStart / 1000 / 3600 * 3600, row.Partition.Topic}
			if k.spec == nil || seen[k] {
				continue
			}
			seen[k] = true
			hours[k] = append(hours[k], row.Partition.Partition)
		}
	}
	days := map[rollupKey][]int32{}
	for _, k := range sortedKeys(hours) {
		sql := rollupSQL(f.r.db, k.spec, "hour", k.start, hours[k])
		if err := f.retry(ctx, "rollup_hour", func(ctx context.Context) error { return f.r.ch.Exec(ctx, sql, k.topic) }); err != nil {
			return err
		}
		d := rollupKey{k.spec, k.start / 86400 * 86400, k.topic}
		for _, p := range hours[k] {
			if !slices.Contains(days[d], p) {
				days[d] = append(days[d], p)
			}
		}
	}
	for _, k := range sortedKeys(days) {
		sql := rollupSQL(f.r.db, k.spec, "day", k.start, days[k])
		if err := f.retry(ctx, "rollup_day", func(ctx context.Context) error { return f.r.ch.Exec(ctx, sql, k.topic) }); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[rollupKey][]int32) []rollupKey {
	keys := make([]rollupKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupKey) int {
		switch {
		case a.start != b.start:
			return int(a.start - b.start)
		case a.spec.name != b.spec.name:
			if a.spec.name < b.spec.name {
				return -1
			}
			return 1
		case a.topic < b.topic:
			return -1
		case a.topic > b.topic:
			return 1
		}
		return 0
	})
	return keys
}

func (f *flusher) hook(point string) {
	if f.r.deps.CrashHook != nil {
		f.r.deps.CrashHook(point)
	}
}

// retry runs op until it succeeds, fails permanently, or ctx ends. A
// repeated failure is logged once when it starts and once when it ends;
// consumption pauses meanwhile (Runner.gate).
func (f *flusher) retry(ctx context.Context, stage string, op func(context.Context) error) error {
	r := f.r
	backoff := retry.Backoff{Min: r.cfg.Insert.RetryMin, Max: r.cfg.Insert.RetryMax}
	var failingSince time.Time
	attempts := 0
	defer func() {
		if !failingSince.IsZero() {
			r.gate.Unlock()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A request in flight is never cancelled, only timed out: a stop
		// or rebalance waits for it (at most insert.timeout). clickhouse-go
		// answers a cancelled context by closing the connection mid-query,
		// which wastes the write, and a ClickHouse host built on chdb
		// terminates on the resulting connection reset.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Insert.Timeout)
		err := op(octx)
		cancel()
		if err == nil {
			if !failingSince.IsZero() {
				r.log.Info().Str("stage", stage).Int("attempts", attempts+1).Dur("after", time.Since(failingSince)).
					Msg("write recovered")
			}
			return nil
		}
		attempts++
		cls := Classify(err)
		if ctx.Err() != nil {
			cls, err = Canceled, errors.Join(ctx.Err(), err)
		}
		r.m.flushErrors.WithLabelValues(stage, cls.String()).Inc()
		switch cls {
		case Permanent:
			return err
		case Canceled:
			return err
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
			r.log.Warn().Err(err).Str("stage", stage).
				Msg("write failed; retrying with backoff and pausing consumption until it succeeds")
			r.gate.Lock()
		}
		if !retry.Sleep(ctx, backoff.Wait(attempts)) {
			return errors.Join(ctx.Err(), err)
		}
	}
}
