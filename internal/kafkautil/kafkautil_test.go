package kafkautil

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// topicConfig returns the value and source (DescribeConfigs v1+: 1 is a
// topic's own config) of one config of topic.
func topicConfig(t *testing.T, c *kafka.Client, topic, name string) (string, int8) {
	t.Helper()
	res, err := c.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name}}},
	})
	if err != nil {
		t.Fatalf("describe configs of %s: %v", topic, err)
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			t.Fatalf("describe configs of %s: %v", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue, e.ConfigSource
			}
		}
	}
	t.Fatalf("topic %s has no config %s", topic, name)
	return "", 0
}

func TestEnsureTopicsSetsMinInSyncReplicas(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := Client(cl.ListenAddrs(), 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	err = EnsureTopics(ctx, c,
		TopicSpec{Name: "strict", Partitions: 2, ReplicationFactor: 3, MinInSyncReplicas: 2},
		TopicSpec{Name: "default", Partitions: 1, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	if v, src := topicConfig(t, c, "strict", "min.insync.replicas"); v != "2" || src != 1 {
		t.Errorf("strict: min.insync.replicas = %q (source %d), want the topic's own 2 (source 1)", v, src)
	}
	if _, src := topicConfig(t, c, "default", "min.insync.replicas"); src == 1 {
		t.Errorf("default: min.insync.replicas was set on the topic; 0 must leave the broker default")
	}

	// More required replicas than copies: refused before anything is created.
	err = EnsureTopics(ctx, c, TopicSpec{Name: "impossible", Partitions: 1, ReplicationFactor: 2, MinInSyncReplicas: 3})
	if err == nil || !strings.Contains(err.Error(), "topic impossible: min.insync.replicas 3 exceeds the replication factor 2") {
		t.Fatalf("min ISR above RF: %v", err)
	}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"impossible"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		if tp.Name == "impossible" && tp.Error == nil {
			t.Error("topic impossible was created")
		}
	}
}
