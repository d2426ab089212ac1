package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// worker owns one assigned topic-partition: a kafka.Reader pinned to the
// partition (fetch goroutine) and an aggregator.Partition (process
// goroutine). The flusher reaches the Partition only through collect,
// under mu.
type worker struct {
	r  *Runner
	id aggregator.PartitionID

	mu           sync.Mutex
	p            *aggregator.Partition
	restoredNext int64     // offsets below were accounted for before the restored checkpoint
	next         int64     // offset after the last message processed
	lastMsg      time.Time // wall time of the last message processed
	dirty        bool      // changed since the last Snapshot
	closedAt     time.Time // when a window closed that is not drained yet
	// minute is the minute (Unix ms / 60000) of the partition's clock when
	// it last crossed into a new one (minuteCrossed).
	minute    int64
	dl        []kafka.Message
	badLogged int
	// Per chunk (process): decoded events, their offsets and AddBatch
	// results, and the decoding error of each message.
	evs  []schemas.Event
	offs []int64
	res  []aggregator.Result
	errs []error

	// Owned by the flusher goroutine.
	lastState []byte // checkpoint state last written
	cpVersion uint64 // its version
	resume    int64  // its resume offset
	committed int64  // offset last committed to Kafka (-1: none)
	end       int64  // end offset from the last probe (-1: unknown)

	reader *kafka.Reader
	chunks chan []kafka.Message
	free   chan []kafka.Message

	consumed   prometheus.Counter
	outcomes   [7]prometheus.Counter // by outcome index, see outcomeNames
	lateBySrc  [3]prometheus.Counter
	dlCounters [2]prometheus.Counter // undecodable, too_late
}

// Outcome labels: the core's outcomes plus undecodable.
var outcomeNames = [7]string{"applied", "late", "too_late", "replayed", "rejected", "duplicate", "undecodable"}

const outUndecodable = 6

func (r *Runner) newWorker(id aggregator.PartitionID, start int64, cp *storedCheckpoint) (*worker, error) {
	w := &worker{
		r:            r,
		id:           id,
		p:            aggregator.NewPartition(r.plan, id, route.TopicSource(r.cfg.Kafka.Topics, id.Topic)),
		restoredNext: -1,
		next:         start,
		lastMsg:      time.Now(),
		committed:    -1,
		end:          -1,
		chunks:       make(chan []kafka.Message, 4),
		free:         make(chan []kafka.Message, 6),
		consumed:     r.m.consumed.WithLabelValues(id.Topic),
	}
	for i, n := range outcomeNames {
		w.outcomes[i] = r.m.outcomes.WithLabelValues(n)
	}
	for i, s := range []schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin} {
		w.lateBySrc[i] = r.m.late.WithLabelValues(s.String())
	}
	w.dlCounters[0] = r.m.deadLettered.WithLabelValues(ClassUndecodable)
	w.dlCounters[1] = r.m.deadLettered.WithLabelValues(ClassTooLate)
	if cp != nil {
		err := w.p.Restore(cp.cp)
		if err != nil {
			// The grouping configuration changed: the origin presence of
			// the old sets cannot be mapped to the new ones. Late counters
			// and the watermark still hold; origin no_data rows restart.
			r.log.Warn().Err(err).Str("topic", id.Topic).Int32("partition", id.Partition).
				Msg("checkpoint does not fit the grouping configuration; restoring it without origin presence")
			c := cp.cp
			c.OriginSeen = nil
			w.p = aggregator.NewPartition(r.plan, id, route.TopicSource(r.cfg.Kafka.Topics, id.Topic))
			if err := w.p.Restore(c); err != nil {
				return nil, permanent(fmt.Errorf("cannot restore checkpoint of %s/%d: %w", id.Topic, id.Partition, err))
			}
		}
		w.restoredNext = cp.cp.Next
		w.lastState = nil // rewritten at the first flush, with the new owner's version base
		w.cpVersion = cp.version
	}
	return w, nil
}

// fetch reads the partition and hands messages to process in chunks: a
// chunk is sent when full or when the reader has caught up (lag 0), so a
// trickle of events is not held back.
func (w *worker) fetch(ctx context.Context) {
	chunkSize := w.r.cfg.Consumer.Chunk
	var chunk []kafka.Message
	newChunk := func() {
		select {
		case chunk = <-w.free:
			chunk = chunk[:0]
		default:
			chunk = make([]kafka.Message, 0, chunkSize)
		}
	}
	newChunk()
	failures := 0
	for {
		m, err := w.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// kafka-go retries network errors itself; what reaches here is
			// a broker error for the partition. Back off and try again.
			failures++
			if failures == 1 || failures%100 == 0 {
				w.r.log.Warn().Err(err).Str("topic", w.id.Topic).Int32("partition", w.id.Partition).Int("failures", failures).
					Msg("cannot fetch; retrying")
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 5*time.Second)):
			}
			continue
		}
		failures = 0
		chunk = append(chunk, m)
		if len(chunk) >= chunkSize || w.reader.Lag() <= 0 {
			select {
			case w.chunks <- chunk:
			case <-ctx.Done():
				return
			}
			newChunk()
		}
	}
}

// run applies chunks until ctx ends; pending reports closed windows to the
// flusher, crossed a live clock passing into a new minute.
func (w *worker) run(ctx context.Context, pending, crossed chan<- struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-w.chunks:
			w.r.gate.RLock()
			p := w.process(c)
			w.mu.Lock()
			x := minuteCrossed(&w.minute, w.p.Clock(), time.Now())
			w.mu.Unlock()
			w.r.gate.RUnlock()
			if x {
				select {
				case crossed <- struct{}{}:
				default:
				}
			}
			clear(c) // drop the message buffers before reuse
			select {
			case w.free <- c:
			default:
			}
			if p {
				select {
				case pending <- struct{}{}:
				default:
				}
			}
		}
	}
}

// maxLoggedBad bounds the per-partition log lines about undecodable
// messages; all of them are counted and dead-lettered.
const maxLoggedBad = 5

// process applies one chunk and reports whether windows closed. The
// messages are decoded first, then the events applied with one AddBatch
// (the same effect as one Add per event, faster), then outcomes counted
// and dead letters built in message order.
func (w *worker) process(msgs []kafka.Message) bool {
	var counts [7]uint64
	var late [3]uint64
	var dl [2]uint64
	w.mu.Lock()
	defer w.mu.Unlock()
	if cap(w.evs) < len(msgs) {
		w.evs = make([]schemas.Event, len(msgs))
		w.offs = make([]int64, len(msgs))
		w.res = make([]aggregator.Result, len(msgs))
		w.errs = make([]error, len(msgs))
	}
	evs, offs, errs := w.evs[:0], w.offs[:0], w.errs[:len(msgs)]
	for i := range msgs {
		m := &msgs[i]
		evs = evs[:len(evs)+1]
		if errs[i] = schemas.ParseLine(m.Value, &evs[len(evs)-1]); errs[i] != nil {
			evs = evs[:len(evs)-1]
			w.p.Skip(m.Offset)
			continue
		}
		offs = append(offs, m.Offset)
	}
	res := w.res[:len(evs)]
	w.p.AddBatch(offs, evs, res)
	j := 0 // index of the next decoded event
	for i := range msgs {
		m := &msgs[i]
		if err := errs[i]; err != nil {
			errs[i] = nil
			if m.Offset < w.restoredNext {
				// Dead-lettered before the checkpoint was written.
				counts[aggregator.Replayed]++
				continue
			}
			counts[outUndecodable]++
			d := DeadLetter{Class: ClassUndecodable, Topic: w.id.Topic, Partition: w.id.Partition, Offset: m.Offset}
			var fe *schemas.FieldError
			if errors.As(err, &fe) {
				d.Field, d.Reason = fe.Field, fe.Reason
			} else {
				d.Reason = err.Error()
			}
			w.dl = append(w.dl, deadLetterMessage(w.r.cfg.Kafka.Topics.DeadLetter, d, m.Value, w.r.cfg.DeadLetter.MaxRaw))
			dl[0]++
			if w.badLogged < maxLoggedBad {
				w.badLogged++
				w.r.log.Warn().Str("topic", w.id.Topic).Int32("partition", w.id.Partition).Int64("offset", m.Offset).
					Str("field", d.Field).Str("reason", d.Reason).Msg("undecodable message dead-lettered")
				if w.badLogged == maxLoggedBad {
					w.r.log.Warn().Str("topic", w.id.Topic).Int32("partition", w.id.Partition).
						Msg("further undecodable messages of this partition are counted, not logged")
				}
			}
			continue
		}
		e, r := &evs[j], res[j]
		j++
		counts[r.Outcome]++
		switch r.Outcome {
		case aggregator.Late:
			if si := route.Index(e.Type.Source()); si >= 0 {
				late[si]++
			}
		case aggregator.TooLate:
			d := DeadLetter{Class: ClassTooLate, Source: e.Type.Source().String(), Topic: w.id.Topic,
				Partition: w.id.Partition, Offset: m.Offset, WindowStart: route.WindowStart(e.TS), Watermark: r.Watermark,
				Reason: "window closed more than late_horizon before the watermark"}
			w.dl = append(w.dl, deadLetterMessage(w.r.cfg.Kafka.Topics.DeadLetter, d, m.Value, w.r.cfg.DeadLetter.MaxRaw))
			dl[1]++
		}
	}
	if n := len(msgs); n > 0 {
		w.next = msgs[n-1].Offset + 1
		w.lastMsg = time.Now()
		w.dirty = true
	}
	pending := w.p.Pending()
	if pending && w.closedAt.IsZero() {
		w.closedAt = time.Now()
	}
	w.consumed.Add(float64(len(msgs)))
	for i, n := range counts {
		if n > 0 {
			w.outcomes[i].Add(float64(n))
		}
	}
	for i, n := range late {
		if n > 0 {
			w.lateBySrc[i].Add(float64(n))
		}
	}
	for i, n := range dl {
		if n > 0 {
			w.dlCounters[i].Add(float64(n))
		}
	}
	return pending
}

// catchUpChunks: a partition more than this many chunks behind its end
// offset gets no provisional rows.
const catchUpChunks = 20

// collected is one worker's share of a flush.
type collected struct {
	w         *worker
	batch     aggregator.Batch
	prov      []aggregator.Row
	dl        []kafka.Message
	closedAt  time.Time
	watermark int64
	state     []byte // checkpoint state when it changed since the last write, else nil
	drained   bool
}

// collect drains the partition for a flush: final rows, late counters and
// checkpoint, plus provisional rows when snapshot is set and something
// changed. An idle partition (caught up with end, no message for
// idle_after) is first advanced to the wall clock. finalOnly skips
// partitions without closed windows or dead letters.
func (w *worker) collect(snapshot, finalOnly bool, now time.Time) collected {
	w.mu.Lock()
	defer w.mu.Unlock()
	idle := w.r.cfg.IdleAfter
	if snapshot && idle > 0 && w.end >= 0 && w.next >= w.end && now.Sub(w.lastMsg) >= idle {
		before := w.p.Checkpoint().ClosedThrough
		w.p.Advance(now.Add(-idle).UnixMilli())
		if w.p.Checkpoint().ClosedThrough != before {
			w.dirty = true
		}
		if w.p.Pending() && w.closedAt.IsZero() {
			w.closedAt = now
		}
	}
	c := collected{w: w, watermark: w.p.Watermark()}
	if finalOnly && !w.p.Pending() && len(w.dl) == 0 {
		return c
	}
	c.drained = true
	c.batch = w.p.Drain()
	c.closedAt, w.closedAt = w.closedAt, time.Time{}
	// A partition catching up on a backlog closes its windows within
	// seconds: previews of them only cost inserts.
	behind := w.end >= 0 && w.end-w.next > int64(catchUpChunks*w.r.cfg.Consumer.Chunk)
	if snapshot && w.dirty && !behind {
		c.prov = w.p.SnapshotChanged()
		w.dirty = false
	}
	c.dl, w.dl = w.dl, nil
	return c
}

// watermarkSeconds renders a watermark for the gauge.
func watermarkSeconds(wm int64) (float64, bool) {
	if wm == math.MinInt64 {
		return 0, false
	}
	return float64(wm) / 1000, true
}

// readerLogger adapts kafka-go's error logger to zerolog, at most one line
// per interval per reader: a broker outage must not flood the log.
type readerLogger struct {
	log   zerolog.Logger
	mu    sync.Mutex
	last  time.Time
	every time.Duration
}

func (l *readerLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < l.every {
		l.mu.Unlock()
		return
	}
	l.last = now
	l.mu.Unlock()
	// kafka-go's messages name topics, partitions and offsets, never
	// message contents.
	l.log.Warn().Str("detail", fmt.Sprintf(format, args...)).Msg("kafka client error")
}

// liveClock: a clock within this much of the wall clock is live data, whose
// minute crossings are flushed at once (Runner's boundary flush); an older
// one is a backlog being replayed, flushed on the ticker only.
const liveClock = 2 * time.Minute

// minuteCrossed reports whether clock (Unix ms), live, has passed into a
// minute later than *minute, and records it. The first clock seen is
// recorded without a report: a restart does not flush at once.
func minuteCrossed(minute *int64, clock int64, now time.Time) bool {
	m := clock / 60_000
	if clock <= 0 || m <= *minute {
		return false
	}
	first := *minute == 0
	*minute = m
	return !first && now.Sub(time.UnixMilli(clock)) < liveClock
}

// boundaryGather is how long the flush after a minute crossing waits for
// the other partitions to cross too (their events arrive within about a
// second of each other).
const boundaryGather = 1500 * time.Millisecond
