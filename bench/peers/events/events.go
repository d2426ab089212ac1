// Package events prepares one event file for every benchmark peer: the same
// canonical NDJSON bytes (schemas.AppendJSON, what ingest writes to Kafka)
// for the ClickHouse loaders, and the same keyed records in the same Kafka
// topics for the consumers (ClickHouse's Kafka engine, Kafka Streams).
package events

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// File is an event file decoded, validated and re-encoded canonically.
type File struct {
	// NDJSON holds one canonical event per line, in input order.
	NDJSON []byte
	// Lines indexes NDJSON: line i is NDJSON[Lines[i]:Lines[i+1]-1].
	Lines []int
	// Sources counts events per source.
	Sources map[schemas.Source]int
	// MinTS, MaxTS bound the event times (Unix ms).
	MinTS, MaxTS int64
}

// Len is the number of events.
func (f *File) Len() int { return len(f.Lines) - 1 }

// Line returns the i-th canonical line without its newline.
func (f *File) Line(i int) []byte { return f.NDJSON[f.Lines[i] : f.Lines[i+1]-1] }

// Count returns the events of one source.
func (f *File) Count(s schemas.Source) int { return f.Sources[s] }

// Read reads an NDJSON file, plain or gzip (detected by content), and
// returns it canonical. A bad line is an error naming it: peers must all
// see exactly the same events.
func Read(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer fh.Close()
	f, err := Decode(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Decode is Read on a stream.
func Decode(r io.Reader) (*File, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("cannot read gzip: %w", err)
		}
		defer gz.Close()
		br = bufio.NewReaderSize(gz, 1<<20)
	}
	f := &File{Lines: []int{0}, Sources: map[schemas.Source]int{}, MinTS: 1<<63 - 1, MaxTS: -1 << 63}
	var e schemas.Event
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: collect it whole.
			full := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if perr := schemas.ParseLine(t, &e); perr != nil {
				return nil, fmt.Errorf("line %d: %w", n, perr)
			}
			f.NDJSON = schemas.AppendJSON(f.NDJSON, &e)
			f.NDJSON = append(f.NDJSON, '\n')
			f.Lines = append(f.Lines, len(f.NDJSON))
			f.Sources[e.Type.Source()]++
			f.MinTS, f.MaxTS = min(f.MinTS, e.TS), max(f.MaxTS, e.TS)
		}
		if err == io.EOF {
			return f, nil
		}
	}
}

// Topics names the three source topics (DeadLetter is not used).
type Topics = config.Topics

// ProduceStats reports a Produce run.
type ProduceStats struct {
	Records int
	Bytes   int64
	Wall    time.Duration
}

// Produce writes every event of f to its source's topic with ingest's key
// and partitioner (murmur2, the Java client's default), lz4-compressed,
// acks=all, in file order. It returns once every record is acknowledged.
func Produce(ctx context.Context, brokers []string, topics Topics, f *File) (ProduceStats, error) {
	start := time.Now()
	w := &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Balancer:               &kafka.Murmur2Balancer{},
		BatchSize:              5000,
		BatchBytes:             4 << 20,
		BatchTimeout:           20 * time.Millisecond,
		RequiredAcks:           kafka.RequireAll,
		Compression:            kafka.Lz4,
		AllowAutoTopicCreation: false,
		MaxAttempts:            10,
	}
	defer w.Close()
	var st ProduceStats
	var e schemas.Event
	const chunk = 20000
	msgs := make([]kafka.Message, 0, chunk)
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("cannot produce: %w", err)
		}
		msgs = msgs[:0]
		return nil
	}
	for i := 0; i < f.Len(); i++ {
		line := f.Line(i)
		if err := schemas.ParseLine(line, &e); err != nil {
			return st, fmt.Errorf("event %d: %w", i+1, err)
		}
		topic := route.Topic(topics, e.Type.Source())
		if topic == "" {
			return st, fmt.Errorf("event %d: no topic for source %s", i+1, e.Type.Source())
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: route.Key(&e), Value: line})
		st.Records++
		st.Bytes += int64(len(line))
		if len(msgs) == chunk {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	st.Wall = time.Since(start)
	return st, nil
}

// EnsureTopics creates the topics with the given partition count
// (replication factor: the cluster's default) unless they exist.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, names ...string) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	var cfgs []kafka.TopicConfig
	for _, n := range names {
		cfgs = append(cfgs, kafka.TopicConfig{Topic: n, NumPartitions: partitions, ReplicationFactor: -1})
	}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: cfgs})
	if err != nil {
		return fmt.Errorf("cannot create topics: %w", err)
	}
	for n, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", n, err)
		}
	}
	// Wait until every partition has a leader: producing earlier fails.
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		ready := err == nil
		if ready {
			for _, t := range md.Topics {
				if t.Error != nil || len(t.Partitions) == 0 {
					ready = false
				}
				for _, p := range t.Partitions {
					if p.Error != nil || p.Leader.Host == "" {
						ready = false
					}
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v not ready: %w", names, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DeleteTopics deletes topics, ignoring ones that do not exist.
func DeleteTopics(ctx context.Context, brokers []string, names ...string) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("cannot delete topics: %w", err)
	}
	for n, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("cannot delete topic %s: %w", n, err)
		}
	}
	return nil
}
