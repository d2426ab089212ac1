package live

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/kafkautil"
)

// Message is one region's record: Key "province/isp", Value the region's
// document (GET /api/v1/scores?province=&isp=), nil for a tombstone.
type Message struct {
	Key   string
	Value []byte
}

// Publisher writes a snapshot's records.
type Publisher interface {
	Publish(ctx context.Context, msgs []Message) error
	Close() error
}

// kafkaPublisher writes to the compacted scores topic, creating it on first
// use (cleanup.policy=compact: a consumer reading from the start gets the
// newest document of every region, docs/SCORES.md "Kafka").
type kafkaPublisher struct {
	cfg   Config
	w     *kafka.Writer
	once  sync.Mutex
	ready bool
}

func newKafkaPublisher(cfg Config) *kafkaPublisher {
	return &kafkaPublisher{cfg: cfg, w: &kafka.Writer{
		Addr:  kafka.TCP(cfg.Kafka.Brokers...),
		Topic: cfg.KafkaTopic,
		// One region, one partition: its records stay in order and
		// compaction keeps its newest.
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		Transport:    &kafka.Transport{DialTimeout: cfg.Kafka.DialTimeout, ClientID: cfg.Kafka.ClientID},
	}}
}

func (p *kafkaPublisher) ensureTopic(ctx context.Context) error {
	p.once.Lock()
	defer p.once.Unlock()
	if p.ready {
		return nil
	}
	c := kafkautil.Client(p.cfg.Kafka.Brokers, p.cfg.Kafka.DialTimeout)
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: p.cfg.KafkaTopic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err != nil {
		return fmt.Errorf("cannot create topic %s: %w", p.cfg.KafkaTopic, err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", name, terr)
		}
	}
	p.ready = true
	return nil
}

func (p *kafkaPublisher) Publish(ctx context.Context, msgs []Message) error {
	if err := p.ensureTopic(ctx); err != nil {
		return err
	}
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Key: []byte(m.Key), Value: m.Value}
	}
	if err := p.w.WriteMessages(ctx, km...); err != nil {
		return fmt.Errorf("cannot write to topic %s: %w", p.cfg.KafkaTopic, err)
	}
	return nil
}

func (p *kafkaPublisher) Close() error { return p.w.Close() }
