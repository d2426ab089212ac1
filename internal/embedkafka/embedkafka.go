// Package embedkafka runs a Kafka-protocol broker inside the qoscope process
// (franz-go's kfake) for the single-binary demo. It persists to a data
// directory so a restarted demo resumes where it stopped. Production and the
// integration tests use a real Apache Kafka cluster instead; the services
// cannot tell the difference because they only speak the Kafka protocol.
package embedkafka

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configures the embedded broker.
type Options struct {
	// DataDir persists topics, data and committed offsets. Empty keeps
	// everything in memory (lost on exit).
	DataDir string
	// Port to listen on (127.0.0.1 only); 0 picks a free port.
	Port int
	// Topics are created at every start (kfake ignores seeds once state was saved).
	Topics []string
	// Partitions per created topic. Default 4.
	Partitions int
}

// Broker is a running embedded broker.
type Broker struct {
	c *kfake.Cluster
}

// Start launches the broker.
func Start(o Options) (*Broker, error) {
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.Port),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.SeedTopics(int32(o.Partitions), o.Topics...),
	}
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create kafka data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start embedded kafka: %w", err)
	}
	if o.DataDir != "" {
		// Loading a large data dir leaves garbage behind; give it back now
		// rather than carrying it for the life of the demo.
		debug.FreeOSMemory()
	}
	return &Broker{c: c}, nil
}

// Addrs returns the host:port list to bootstrap from.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker, flushing its data dir.
func (b *Broker) Close() { b.c.Close() }
