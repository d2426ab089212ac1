// Package e2e drives the streaming aggregator end to end on real servers:
// it produces events to Kafka the way ingest does, reads the partitions
// back, computes the expected rows with aggregator.RunOffline, compares
// them with the ClickHouse views, and measures throughput and freshness
// (MeasureEndToEnd, for `go tool task bench`). The runner's integration
// tests use it too.
package e2e

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// Produce writes NDJSON event lines to their source's topic with ingest's
// key and partitioner (murmur2) and canonical JSON (schemas.AppendJSON),
// acks=all. It returns the count per topic.
func Produce(ctx context.Context, k config.Kafka, lines [][]byte) (map[string]int, error) {
	p := newProducer(k)
	defer p.close()
	for chunk := range slices.Chunk(lines, 20000) {
		if err := p.send(ctx, chunk); err != nil {
			return nil, err
		}
	}
	return p.counts, nil
}

// producer writes events like ingest does.
type producer struct {
	w      *kafka.Writer
	topics config.Topics
	counts map[string]int
	msgs   []kafka.Message
	arena  []byte
	ev     schemas.Event
	shift  int64 // added to every event time (ms)
}

func newProducer(k config.Kafka) *producer {
	return &producer{
		w: &kafka.Writer{
			Addr:         kafka.TCP(k.Brokers...),
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchSize:    5000,
			BatchBytes:   1_000_000,
			BatchTimeout: 2 * time.Millisecond,
			Compression:  compress.Lz4,
			MaxAttempts:  10,
			Transport:    &kafka.Transport{ClientID: "qoscope-e2e", DialTimeout: k.DialTimeout},
		},
		topics: k.Topics,
		counts: map[string]int{},
	}
}

// send writes lines and waits for their acks.
func (p *producer) send(ctx context.Context, lines [][]byte) error {
	p.msgs, p.arena = p.msgs[:0], p.arena[:0]
	for i, line := range lines {
		if err := schemas.ParseLine(line, &p.ev); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		p.ev.TS += p.shift
		topic := route.Topic(p.topics, p.ev.Type.Source())
		off := len(p.arena)
		p.arena = schemas.AppendJSON(p.arena, &p.ev)
		// Values point into arena; when it grows they keep pointing into
		// the old array, which is never written again.
		p.msgs = append(p.msgs, kafka.Message{Topic: topic, Key: route.Key(&p.ev), Value: p.arena[off:len(p.arena):len(p.arena)]})
		p.counts[topic]++
	}
	if len(p.msgs) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(ctx, p.msgs...); err != nil {
		return fmt.Errorf("cannot produce: %w", err)
	}
	return nil
}

func (p *producer) close() error { return p.w.Close() }

// ProduceRaw appends raw values to one topic (keyed by key).
func ProduceRaw(ctx context.Context, k config.Kafka, topic string, key []byte, values ...[]byte) error {
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{ClientID: "qoscope-e2e", DialTimeout: k.DialTimeout}}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Topic: topic, Key: key, Value: v}
	}
	return w.WriteMessages(ctx, msgs...)
}

// Partition is one topic-partition's messages in offset order.
type Partition struct {
	Topic     string
	Partition int
	Values    [][]byte
	End       int64 // end offset (next offset to be written)
}

func client(k config.Kafka) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Timeout: 30 * time.Second,
		Transport: &kafka.Transport{ClientID: "qoscope-e2e", DialTimeout: k.DialTimeout}}
}

// EndOffsets returns the end offset of every partition of topics.
func EndOffsets(ctx context.Context, k config.Kafka, topics ...string) (map[string]map[int]int64, error) {
	c := client(k)
	defer c.Transport.(*kafka.Transport).CloseIdleConnections()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req[t.Name] = append(req[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, err
	}
	out := map[string]map[int]int64{}
	for t, ps := range resp.Topics {
		out[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("topic %s partition %d: %w", t, p.Partition, p.Error)
			}
			out[t][p.Partition] = p.LastOffset
		}
	}
	return out, nil
}

// CommittedOffsets returns the group's committed offset of every partition
// of topics (-1 when none).
func CommittedOffsets(ctx context.Context, k config.Kafka, group string, ends map[string]map[int]int64) (map[string]map[int]int64, error) {
	c := client(k)
	defer c.Transport.(*kafka.Transport).CloseIdleConnections()
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for t, ps := range ends {
		for p := range ps {
			req.Topics[t] = append(req.Topics[t], p)
		}
	}
	resp, err := c.OffsetFetch(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[string]map[int]int64{}
	for t, ps := range resp.Topics {
		out[t] = map[int]int64{}
		for _, p := range ps {
			out[t][p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// ReadBack reads every partition of topics from the start to its current
// end: exactly what a consumer sees, in the order it sees it.
func ReadBack(ctx context.Context, k config.Kafka, topics ...string) ([]Partition, error) {
	ends, err := EndOffsets(ctx, k, topics...)
	if err != nil {
		return nil, err
	}
	var out []Partition
	for _, t := range topics {
		ps := make([]int, 0, len(ends[t]))
		for p := range ends[t] {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		for _, p := range ps {
			part := Partition{Topic: t, Partition: p, End: ends[t][p]}
			if part.End > 0 {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Topic: t, Partition: p, MinBytes: 1,
					MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond, ReadLagInterval: -1})
				if err := r.SetOffset(kafka.FirstOffset); err != nil {
					r.Close()
					return nil, err
				}
				for {
					m, err := r.FetchMessage(ctx)
					if err != nil {
						r.Close()
						return nil, fmt.Errorf("read back %s/%d: %w", t, p, err)
					}
					part.Values = append(part.Values, m.Value)
					if m.Offset >= part.End-1 {
						break
					}
				}
				r.Close()
			}
			out = append(out, part)
		}
	}
	return out, nil
}
