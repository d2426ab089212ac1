package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/config"
)

// DefaultTopics returns the logical topics Kafka creates unless told
// otherwise: the pipeline's per-source topics and its dead-letter topic,
// named as in config.Topics.
func DefaultTopics() []string { return []string{"client", "cdn", "origin", "deadletter"} }

// DefaultPartitions is the partition count of each topic unless told
// otherwise; more than one so that tests meet partition assignment.
const DefaultPartitions = 3

// KafkaEnv is one test's view of the shared Kafka: its brokers and its own
// topics, which exist when Kafka returns and are deleted when the test ends.
type KafkaEnv struct {
	// Brokers is the bootstrap list from QOSCOPE_KAFKA_BROKERS.
	Brokers []string
	// Prefix starts every topic and group name of this test.
	Prefix string
	// Partitions is the partition count of the topics created by Kafka.
	Partitions int

	t      testing.TB
	topics map[string]string
}

// KafkaOption changes what Kafka creates.
type KafkaOption func(*kafkaOptions)

type kafkaOptions struct {
	topics     []string
	partitions int
}

// WithTopics replaces DefaultTopics by the given logical names.
func WithTopics(names ...string) KafkaOption {
	return func(o *kafkaOptions) { o.topics = names }
}

// WithPartitions sets the partition count (default DefaultPartitions).
func WithPartitions(n int) KafkaOption {
	return func(o *kafkaOptions) { o.partitions = n }
}

// Kafka returns the shared broker with a fresh, uniquely named topic per
// logical name, created with the requested partitions and deleted in
// t.Cleanup. It skips (or fails, see package doc) when no Kafka is
// configured.
func Kafka(t testing.TB, opts ...KafkaOption) *KafkaEnv {
	t.Helper()
	brokers := need(t, EnvKafkaBrokers, "Kafka")
	o := kafkaOptions{topics: DefaultTopics(), partitions: DefaultPartitions}
	for _, opt := range opts {
		opt(&o)
	}
	if o.partitions < 1 {
		t.Fatalf("testenv.Kafka: %d partitions", o.partitions)
	}
	k := &KafkaEnv{
		Brokers:    strings.Split(brokers, ","),
		Prefix:     uniqueName(t, "qs", '-'),
		Partitions: o.partitions,
		t:          t,
		topics:     map[string]string{},
	}
	for _, name := range o.topics {
		k.CreateTopic(name, o.partitions)
	}
	return k
}

// Topic returns the real name of a logical topic created for this test.
func (k *KafkaEnv) Topic(name string) string {
	k.t.Helper()
	real, ok := k.topics[name]
	if !ok {
		k.t.Fatalf("testenv: no topic %q was created for this test", name)
	}
	return real
}

// GroupID returns a consumer group id unique to this test.
func (k *KafkaEnv) GroupID(name string) string { return k.Prefix + ".group." + name }

// Config returns config.DefaultKafka with this test's brokers and, for each
// of client, cdn, origin and deadletter that was created, its topic.
func (k *KafkaEnv) Config() config.Kafka {
	c := config.DefaultKafka()
	c.Brokers = append([]string(nil), k.Brokers...)
	for name, p := range map[string]*string{
		"client": &c.Topics.Client, "cdn": &c.Topics.CDN, "origin": &c.Topics.Origin, "deadletter": &c.Topics.DeadLetter,
	} {
		if real, ok := k.topics[name]; ok {
			*p = real
		}
	}
	return c
}

// Client returns a kafka-go admin client for the shared brokers.
func (k *KafkaEnv) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Timeout: 30 * time.Second}
}

// CreateTopic creates one more topic for this test (deleted at cleanup) and
// returns its real name, once every partition has a leader.
func (k *KafkaEnv) CreateTopic(name string, partitions int) string {
	t := k.t
	t.Helper()
	if _, dup := k.topics[name]; dup {
		t.Fatalf("testenv: topic %q already created", name)
	}
	real := k.Prefix + "." + name
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := k.Client()
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: real, NumPartitions: partitions,
		// -1: the cluster's default replication factor, so that the same
		// test runs on a single broker and on a real cluster.
		ReplicationFactor: -1,
	}}})
	if err == nil {
		err = resp.Errors[real]
	}
	if err != nil {
		t.Fatalf("testenv: cannot create topic %s: %v", real, err)
	}
	k.topics[name] = real
	k.deleteAtCleanup(real)
	if err := waitForLeaders(ctx, c, real, partitions); err != nil {
		t.Fatalf("testenv: topic %s: %v", real, err)
	}
	return real
}

// ReserveTopic returns a unique name for a topic that the code under test
// creates itself (with its own partitions, replication and configs, as
// ingest's EnsureTopics does) and deletes that topic, if it exists, when
// the test ends. Config names it like a created topic.
func (k *KafkaEnv) ReserveTopic(name string) string {
	k.t.Helper()
	if _, dup := k.topics[name]; dup {
		k.t.Fatalf("testenv: topic %q already created", name)
	}
	real := k.Prefix + "." + name
	k.topics[name] = real
	k.deleteAtCleanup(real)
	return real
}

func (k *KafkaEnv) deleteAtCleanup(topic string) {
	t := k.t
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := k.Client().DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
		if err == nil {
			err = resp.Errors[topic]
		}
		if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Errorf("testenv: cannot delete topic %s: %v", topic, err)
		}
	})
}

// waitForLeaders returns once metadata shows every partition with a leader:
// CreateTopics returns before the brokers know the topic, and a producer
// that races ahead gets UNKNOWN_TOPIC_OR_PARTITION.
func waitForLeaders(ctx context.Context, c *kafka.Client, topic string, partitions int) error {
	var last error
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		last = err
		if err == nil {
			last = fmt.Errorf("not in metadata yet")
			for _, tp := range md.Topics {
				if tp.Name != topic {
					continue
				}
				last = tp.Error
				if last == nil && len(tp.Partitions) != partitions {
					last = fmt.Errorf("%d of %d partitions in metadata", len(tp.Partitions), partitions)
				}
				for _, p := range tp.Partitions {
					if last == nil && (p.Error != nil || p.Leader.Host == "") {
						last = fmt.Errorf("partition %d has no leader yet (%v)", p.ID, p.Error)
					}
				}
			}
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("partitions not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
