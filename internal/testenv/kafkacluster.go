package testenv

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/devinfra"
)

// EnvRequireKafkaCluster, set to 1 together with QOSCOPE_REQUIRE_INTEGRATION=1,
// turns the skip of a KafkaCluster test without a multi-broker Kafka into a
// failure. `go tool task test:kafka-cluster` sets both; `go tool task test`,
// whose Kafka has one broker, sets only the second, so such tests skip there.
const EnvRequireKafkaCluster = "QOSCOPE_REQUIRE_KAFKA_CLUSTER"

// KafkaClusterEnv is a Kafka of several brokers that `qoscope infra up
// --kafka-brokers N` started, whose brokers a test may kill and restart.
// Tests using it must not run in parallel with each other: they share the
// brokers.
type KafkaClusterEnv struct {
	// Brokers is the bootstrap list, every broker (QOSCOPE_KAFKA_BROKERS).
	Brokers []string
	// Nodes are the brokers in node.id order: Nodes[i].ID is i+1.
	Nodes []*KafkaNode

	t        testing.TB
	stateDir string
}

// KafkaNode is one broker of a KafkaClusterEnv.
type KafkaNode struct {
	// ID is the broker's node.id, as metadata (partition leaders, ISRs)
	// names it.
	ID int
	// Addr is its host:port.
	Addr string

	c      *KafkaClusterEnv
	mu     sync.Mutex
	pid    int
	killed bool
}

// KafkaCluster returns the managed Kafka of at least minBrokers brokers
// described by the environment (QOSCOPE_KAFKA_BROKERS and the state that
// QOSCOPE_INFRA_STATE_DIR names). Without one it skips the test with the
// reason, or fails it when QOSCOPE_REQUIRE_INTEGRATION=1 and
// QOSCOPE_REQUIRE_KAFKA_CLUSTER=1. Brokers the test killed and did not
// restart are restarted at cleanup, so that the next test finds the whole
// cluster.
func KafkaCluster(t testing.TB, minBrokers int) *KafkaClusterEnv {
	t.Helper()
	fail := func(msg string) {
		t.Helper()
		msg += "; run via `go tool task test:kafka-cluster`, or `qoscope infra up --kafka-brokers 3` and its env"
		if Required() && os.Getenv(EnvRequireKafkaCluster) == "1" {
			t.Fatalf("%s (%s=1 and %s=1 forbid skipping)", msg, EnvRequireIntegration, EnvRequireKafkaCluster)
		}
		t.Skip(msg)
	}
	brokers := strings.TrimSpace(os.Getenv(EnvKafkaBrokers))
	count, _ := strconv.Atoi(os.Getenv(devinfra.EnvKafkaBrokerCount))
	stateDir := strings.TrimSpace(os.Getenv(devinfra.EnvStateDir))
	switch {
	case brokers == "":
		fail("no Kafka (" + EnvKafkaBrokers + " is unset)")
	case count < minBrokers:
		got := devinfra.EnvKafkaBrokerCount + " is unset: one broker, or not started here"
		if v := os.Getenv(devinfra.EnvKafkaBrokerCount); v != "" {
			got = devinfra.EnvKafkaBrokerCount + "=" + v
		}
		fail("this test needs a Kafka of at least " + strconv.Itoa(minBrokers) + " brokers started by `qoscope infra up --kafka-brokers` (" + got + ")")
	case stateDir == "":
		fail(devinfra.EnvStateDir + " is unset: the brokers' state cannot be found")
	}
	st, err := devinfra.ReadState(stateDir)
	if err != nil {
		t.Fatalf("testenv: kafka cluster state in %s: %v", stateDir, err)
	}
	nodes := st.KafkaNodes()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	// The environment was read when the test run started; the state file
	// is what the brokers are now. They must be the same cluster.
	if want := strings.Split(brokers, ","); len(nodes) < minBrokers || !slices.Equal(addrs, want) {
		t.Fatalf("testenv: %s=%s but the state in %s records brokers %v", EnvKafkaBrokers, brokers, stateDir, addrs)
	}
	c := &KafkaClusterEnv{Brokers: addrs, t: t, stateDir: stateDir}
	for i, n := range nodes {
		c.Nodes = append(c.Nodes, &KafkaNode{ID: i + 1, Addr: n.Addr, c: c, pid: n.PID})
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.mu.Lock()
			killed := n.killed
			n.mu.Unlock()
			if killed {
				n.restart(t.Errorf)
			}
		}
	})
	return c
}

// Node returns the broker whose node.id is id.
func (c *KafkaClusterEnv) Node(id int) *KafkaNode {
	c.t.Helper()
	if id < 1 || id > len(c.Nodes) {
		c.t.Fatalf("testenv: no kafka broker %d (the cluster has 1 to %d)", id, len(c.Nodes))
	}
	return c.Nodes[id-1]
}

// PID is the broker's current process id (it changes on Restart).
func (n *KafkaNode) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pid
}

// Kill sends SIGKILL to the broker, without any shutdown, and returns once
// its process is gone.
func (n *KafkaNode) Kill() {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := devinfra.KillKafkaBroker(ctx, n.c.stateDir, n.ID); err != nil {
		t.Fatalf("testenv: kill kafka broker %d: %v", n.ID, err)
	}
	n.killed = true
}

// Restart starts the killed broker again with its config and data, and
// returns once it is back in the cluster (metadata lists every broker); it
// may still be catching up as a follower. The state file records its new
// PID, so `qoscope infra down` stops it.
func (n *KafkaNode) Restart() {
	n.c.t.Helper()
	n.restart(n.c.t.Fatalf)
}

func (n *KafkaNode) restart(fail func(string, ...any)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := devinfra.RestartKafkaBroker(ctx, n.c.stateDir, n.ID, 2*time.Minute)
	if err != nil {
		fail("testenv: restart kafka broker %d: %v", n.ID, err)
		return
	}
	n.pid, n.killed = srv.PID, false
}
