package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/kafkautil"
)

// Producer is where accepted events and dead letters go. The server calls
// Produce once per request with all of that request's messages.
type Producer interface {
	// Produce returns nil only when Kafka acknowledged every message. After
	// an error some messages may have been written anyway (see docs/INGEST.md,
	// "Durability"); the caller reports the whole request as not accepted.
	// Produce must not keep msgs (or the slices they point to) after it
	// returns nil or a non-context error.
	Produce(ctx context.Context, msgs []kafka.Message) error
	// Ping reports whether Kafka answers and every topic exists with a
	// leader for each partition.
	Ping(ctx context.Context) error
	// Close flushes pending batches and releases connections.
	Close() error
}

// KafkaProducer is the Producer used in production: one kafka-go Writer
// shared by every request. The Writer keeps one batch per topic-partition and
// appends the messages of concurrent WriteMessages calls to it, so many small
// HTTP requests share one produce request; each call still waits for the
// acks of exactly the batches holding its own messages.
type KafkaProducer struct {
	w       *kafka.Writer
	brokers []string
	kcfg    config.Kafka
	pcfg    ProducerConfig
	topics  []string
}

// NewKafkaProducer builds the writer; it does not connect yet.
func NewKafkaProducer(k config.Kafka, p ProducerConfig) (*KafkaProducer, error) {
	var codec compress.Compression
	switch p.Compression {
	case "none":
	case "gzip":
		codec = compress.Gzip
	case "snappy":
		codec = compress.Snappy
	case "lz4":
		codec = compress.Lz4
	case "zstd":
		codec = compress.Zstd
	default:
		return nil, fmt.Errorf("producer.compression: unknown codec %q", p.Compression)
	}
	kp := &KafkaProducer{
		brokers: k.Brokers,
		kcfg:    k,
		pcfg:    p,
		topics:  []string{k.Topics.Client, k.Topics.CDN, k.Topics.Origin, k.Topics.DeadLetter},
	}
	kp.w = &kafka.Writer{
		Addr: kafka.TCP(k.Brokers...),
		// Murmur2 is the Java client's (and franz-go's) default partitioner:
		// a user's events land in the same partition whichever of those
		// clients produced them. The aggregator relies on it for UV counts.
		Balancer:        &kafka.Murmur2Balancer{},
		MaxAttempts:     p.MaxAttempts,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: time.Second,
		BatchSize:       p.BatchSize,
		BatchBytes:      p.BatchBytes,
		BatchTimeout:    p.BatchTimeout,
		ReadTimeout:     p.ProduceTimeout,
		WriteTimeout:    p.ProduceTimeout,
		RequiredAcks:    kafka.RequireAll,
		Compression:     codec,
		// Topics are created (or not) at startup with the configured
		// partitions; auto-creation would use the broker's defaults.
		AllowAutoTopicCreation: false,
		Transport: &kafka.Transport{
			ClientID:    k.ClientID,
			DialTimeout: k.DialTimeout,
			IdleTimeout: 5 * time.Minute,
			MetadataTTL: 10 * time.Second,
		},
	}
	return kp, nil
}

// EnsureTopics creates the missing topics (when producer.create_topics) and
// then requires every topic to exist, so a misconfigured cluster fails at
// startup instead of on the first request.
func (kp *KafkaProducer) EnsureTopics(ctx context.Context) error {
	if kp.pcfg.CreateTopics {
		c := kafkautil.Client(kp.brokers, kp.kcfg.DialTimeout)
		var specs []kafkautil.TopicSpec
		for _, t := range kp.topics {
			specs = append(specs, kafkautil.TopicSpec{Name: t, Partitions: kp.pcfg.Partitions,
				ReplicationFactor: kp.pcfg.ReplicationFactor, MinInSyncReplicas: kp.pcfg.EffectiveMinInSyncReplicas()})
		}
		err := kafkautil.EnsureTopics(ctx, c, specs...)
		if tr, ok := c.Transport.(*kafka.Transport); ok {
			tr.CloseIdleConnections()
		}
		if err != nil {
			return fmt.Errorf("cannot create ingest topics (producer.partitions=%d, producer.replication_factor=%d, min.insync.replicas=%d): %w",
				kp.pcfg.Partitions, kp.pcfg.ReplicationFactor, kp.pcfg.EffectiveMinInSyncReplicas(), err)
		}
	}
	// A freshly created topic may need a moment to elect its leaders.
	var err error
	for {
		if err = kp.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ingest topics not ready: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Produce writes msgs and waits for all their acks.
func (kp *KafkaProducer) Produce(ctx context.Context, msgs []kafka.Message) error {
	return kp.w.WriteMessages(ctx, msgs...)
}

// Ping asks a broker for fresh metadata of the topics. The writer's own
// transport answers metadata from a cache, so a dedicated short-lived
// transport is used: the answer must come from the cluster now.
func (kp *KafkaProducer) Ping(ctx context.Context) error {
	tr := &kafka.Transport{ClientID: kp.kcfg.ClientID, DialTimeout: kp.kcfg.DialTimeout, MetadataTopics: kp.topics}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(kp.brokers...), Transport: tr, Timeout: kp.kcfg.DialTimeout}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: kp.topics})
	if err != nil {
		return fmt.Errorf("cannot reach kafka: %w", err)
	}
	found := map[string]bool{}
	for _, t := range md.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("topic %s does not exist", t.Name)
		}
		if t.Error != nil {
			return fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions", t.Name)
		}
		for _, p := range t.Partitions {
			if p.Error != nil && !errors.Is(p.Error, kafka.ReplicaNotAvailable) {
				return fmt.Errorf("topic %s partition %d: %w", t.Name, p.ID, p.Error)
			}
			if p.Leader.Host == "" {
				return fmt.Errorf("topic %s partition %d has no leader", t.Name, p.ID)
			}
		}
		found[t.Name] = true
	}
	for _, t := range kp.topics {
		if !found[t] {
			return fmt.Errorf("topic %s does not exist", t)
		}
	}
	return nil
}

// Close flushes the writer's pending batches (waiting for their acks).
func (kp *KafkaProducer) Close() error {
	err := kp.w.Close()
	// The writer only closes transports it created itself.
	if tr, ok := kp.w.Transport.(*kafka.Transport); ok {
		tr.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("cannot flush kafka writer: %w", err)
	}
	return nil
}

// Stats exposes the writer's counters (batch sizes, retries) to benchmarks.
func (kp *KafkaProducer) Stats() kafka.WriterStats { return kp.w.Stats() }
