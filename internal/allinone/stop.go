package allinone

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
)

// Stopping the pipeline in one process (docs/ARCHITECTURE.md, all-in-one):
// ingest first — it stops accepting, answers its in-flight requests (each
// waits for its Kafka acks) and flushes its producer — then the aggregator
// is given the time to consume and flush what ingest wrote, and only then
// stopped. Stopping both at once, as an errgroup context would, let the
// aggregator leave before the last 2xx events were even in Kafka; they were
// not lost (they stay uncommitted in Kafka for the next start) but missing
// from the output at shutdown.

// pipeline is the ingest and aggregator pair and how to stop it.
type pipeline struct {
	// ingest serves until its ctx ends, then drains and returns.
	ingest component
	// consumed, when set, returns once the aggregator has committed every
	// record ingest wrote (it is called after ingest returned), or ctx's
	// error.
	consumed func(ctx context.Context) error
	// consumeTimeout bounds consumed.
	consumeTimeout time.Duration
	agg            component
	log            zerolog.Logger
}

// start runs the pair in g: ingest on gctx, the aggregator on a context of
// its own that ends only after ingest drained and the aggregator caught up
// (or consumeTimeout passed). An aggregator failure still stops ingest
// through gctx.
func (p pipeline) start(g *errgroup.Group, gctx context.Context) {
	aggCtx, stopAgg := context.WithCancel(context.WithoutCancel(gctx))
	aggDone := make(chan struct{})
	g.Go(func() error {
		defer stopAgg()
		err := p.ingest(gctx)
		if p.consumed == nil {
			return err
		}
		cctx, cancel := context.WithTimeout(aggCtx, p.consumeTimeout)
		defer cancel()
		// A stopped aggregator consumes nothing more: do not wait for it.
		go func() {
			select {
			case <-aggDone:
				cancel()
			case <-cctx.Done():
			}
		}()
		if cerr := p.consumed(cctx); cerr != nil {
			p.log.Warn().Err(cerr).Dur("timeout", p.consumeTimeout).
				Msg("aggregator did not consume everything ingest wrote before stopping; the rest stays in kafka for the next start")
		}
		return err
	})
	g.Go(func() error {
		defer close(aggDone)
		return p.agg(aggCtx)
	})
}

// partition is a topic partition.
type partition struct {
	topic string
	id    int
}

// endOffsets returns the next offset to be written of every partition of
// topics.
func endOffsets(ctx context.Context, kc *kafka.Client, topics []string) (map[partition]int64, error) {
	md, err := kc.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("cannot read topic metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("cannot read metadata of topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := kc.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("cannot list offsets: %w", err)
	}
	out := map[partition]int64{}
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("cannot list offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			out[partition{topic, p.Partition}] = p.LastOffset
		}
	}
	return out, nil
}

// checkpointedNext returns, per partition of parts, the offset after the
// last message the aggregator group has accounted for in a stored
// checkpoint (-1 where it has none). The committed Kafka offset is no such
// signal: it is the first offset of the oldest open window, which trails
// the end for as long as the allowed lateness keeps windows open.
func checkpointedNext(ctx context.Context, ch driver.Conn, group string, parts []partition) (map[partition]int64, error) {
	rows, err := ch.Query(ctx, "SELECT topic, kafka_partition, argMax(next, version) FROM aggregator_checkpoints WHERE group_id = ? GROUP BY topic, kafka_partition", group)
	if err != nil {
		return nil, fmt.Errorf("cannot read the checkpoints of group %s: %w", group, err)
	}
	defer rows.Close()
	want := map[partition]bool{}
	for _, p := range parts {
		want[p] = true
	}
	out := map[partition]int64{}
	for rows.Next() {
		var (
			topic string
			id    uint32
			next  int64
		)
		if err := rows.Scan(&topic, &id, &next); err != nil {
			return nil, fmt.Errorf("cannot read the checkpoints of group %s: %w", group, err)
		}
		if p := (partition{topic, int(id)}); want[p] {
			out[p] = next
		}
	}
	return out, rows.Err()
}

// written lists the partitions whose end offset moved from before to after:
// those this run wrote to. Partitions nobody wrote to need no wait (and a
// group started at the last offset may never commit them).
func written(before, after map[partition]int64) []partition {
	var out []partition
	for p, end := range after {
		if end > before[p] {
			out = append(out, p)
		}
	}
	return out
}

// behind returns a partition of parts whose committed offset is below its
// end offset in after, or false when the group has caught up on all.
func behind(parts []partition, after, committed map[partition]int64) (partition, bool) {
	for _, p := range parts {
		if c, ok := committed[p]; !ok || c < after[p] {
			return p, true
		}
	}
	return partition{}, false
}

// consumedSince returns the pipeline's consumed function: it waits until
// group has checkpointed, on every partition of topics that was written to
// since before (end offsets taken at start-up), the end offset as it was
// when consumed was called, polling every poll.
func consumedSince(kc *kafka.Client, ch driver.Conn, group string, topics []string, before map[partition]int64, poll time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		after, err := endOffsets(ctx, kc, topics)
		if err != nil {
			return err
		}
		parts := written(before, after)
		for {
			// Not cancelled half-way: the test ClickHouse (libchdb) aborts
			// when a client drops a connection in the middle of a query,
			// and this query takes milliseconds. ctx is checked between polls.
			committed, err := checkpointedNext(context.WithoutCancel(ctx), ch, group, parts)
			if err == nil {
				p, late := behind(parts, after, committed)
				if !late {
					return nil
				}
				err = fmt.Errorf("group %s has checkpointed %d of %d records on %s/%d", group, committed[p], after[p], p.topic, p.id)
			}
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(poll):
			}
		}
	}
}
