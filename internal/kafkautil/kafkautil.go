// Package kafkautil holds the small Kafka administration steps every service
// needs at start-up: checking the cluster answers and creating topics.
package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicSpec describes a topic to create when absent.
type TopicSpec struct {
	Name       string
	Partitions int
	// ReplicationFactor of the topic; 0 means 1.
	ReplicationFactor int
	// MinInSyncReplicas is sent as the topic config min.insync.replicas:
	// how many replicas must have a record before an acks=all produce
	// succeeds. 0 leaves the broker's default (1 unless configured), with
	// which acks=all is satisfied by the leader alone and losing that
	// leader can lose acknowledged records.
	MinInSyncReplicas int
}

// Client returns a kafka-go admin client for brokers.
func Client(brokers []string, timeout time.Duration) *kafka.Client {
	return &kafka.Client{
		Addr:      kafka.TCP(brokers...),
		Timeout:   timeout,
		Transport: &kafka.Transport{DialTimeout: timeout, IdleTimeout: 30 * time.Second},
	}
}

// Ping asks the cluster for its metadata: it proves a broker answers the Kafka
// protocol, not merely that a port is open.
func Ping(ctx context.Context, c *kafka.Client) error {
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		return fmt.Errorf("cannot reach kafka at %s: %w", c.Addr, err)
	}
	return nil
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left alone (their partition count, replication and min.insync.replicas
// are the operator's decision).
func EnsureTopics(ctx context.Context, c *kafka.Client, specs ...TopicSpec) error {
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		if s.Partitions <= 0 {
			return fmt.Errorf("topic %s: partitions must be positive", s.Name)
		}
		rf := s.ReplicationFactor
		if rf <= 0 {
			rf = 1
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: rf}
		switch {
		case s.MinInSyncReplicas < 0:
			return fmt.Errorf("topic %s: min.insync.replicas must not be negative", s.Name)
		case s.MinInSyncReplicas > rf:
			// The broker would create the topic, and then refuse every
			// acks=all produce to it.
			return fmt.Errorf("topic %s: min.insync.replicas %d exceeds the replication factor %d", s.Name, s.MinInSyncReplicas, rf)
		case s.MinInSyncReplicas > 0:
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(s.MinInSyncReplicas)}}
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("cannot create topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", name, terr)
		}
	}
	return nil
}

// WaitReady pings until the cluster answers or ctx ends; brokers that are still
// starting refuse connections for a few seconds.
func WaitReady(ctx context.Context, c *kafka.Client, every time.Duration) error {
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, every*4)
		last = Ping(pctx, c)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka not ready: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(every):
		}
	}
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
