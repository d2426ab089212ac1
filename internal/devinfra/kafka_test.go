package devinfra

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKafkaServerProperties(t *testing.T) {
	one := kafkaServerProperties(1, 1, 9092, 9093, "1@127.0.0.1:9093", "/s/kafka/data")
	three := kafkaServerProperties(2, 3, 9094, 9095, "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097", "/s/kafka-broker2/data")
	for _, c := range []struct {
		name, props string
		want        []string
	}{
		{"one broker", one, []string{
			"node.id=1\n", "controller.quorum.voters=1@127.0.0.1:9093\n",
			"listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n",
			"default.replication.factor=1\n", "offsets.topic.replication.factor=1\n",
			"transaction.state.log.replication.factor=1\n", "min.insync.replicas=1\n",
		}},
		{"broker 2 of 3", three, []string{
			"node.id=2\n", "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097\n",
			"listeners=PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095\n",
			"advertised.listeners=PLAINTEXT://127.0.0.1:9094\n", "log.dirs=/s/kafka-broker2/data\n",
			"default.replication.factor=3\n", "offsets.topic.replication.factor=3\n",
			"transaction.state.log.replication.factor=3\n", "share.coordinator.state.topic.replication.factor=3\n",
			// Left at 1: topics that need more set it themselves.
			"min.insync.replicas=1\n",
			"controlled.shutdown.enable=false\n",
		}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.props, "\n"+w) {
				t.Errorf("%s: properties lack %q:\n%s", c.name, w, c.props)
			}
		}
	}
	if strings.Contains(one, "controlled.shutdown") {
		t.Errorf("one broker: controlled shutdown changed:\n%s", one)
	}
	if kafkaNodeName(1, 1) != "kafka" || kafkaNodeName(3, 2) != "kafka-broker2" {
		t.Errorf("names: %s %s", kafkaNodeName(1, 1), kafkaNodeName(3, 2))
	}
}

func TestReusableReplacesOnAChangedBrokerCount(t *testing.T) {
	// Nothing here runs or answers: the broker count alone must decide.
	broker := Server{Addr: "127.0.0.1:1", PID: 1 << 30, Config: "/nonexistent/server.properties"}
	single := &State{Kafka: broker}
	three := &State{Kafka: Server{Addr: "127.0.0.1:1,127.0.0.1:1,127.0.0.1:1"}, KafkaBrokers: []Server{broker, broker, broker}}
	for _, c := range []struct {
		old    *State
		want   int
		reason string
	}{
		{single, 3, "kafka has 1 managed brokers, want 3"},
		{three, 1, "kafka has 3 managed brokers, want 1"},
		{three, 2, "kafka has 3 managed brokers, want 2"},
		{&State{}, 3, "kafka has 0 managed brokers, want 3"},
	} {
		o := Options{CacheDir: "c", StateDir: "s", KafkaBrokerCount: c.want}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := reusable(context.Background(), &o, c.old); got != c.reason {
			t.Errorf("%d brokers recorded, %d wanted: reusable = %q, want %q", len(c.old.KafkaNodes()), c.want, got, c.reason)
		}
	}
	// The same count goes on to check the brokers themselves.
	o := Options{CacheDir: "c", StateDir: "s", KafkaBrokerCount: 3}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := reusable(context.Background(), &o, three); !strings.Contains(got, "kafka-broker1 (pid") {
		t.Errorf("three gone brokers: reusable = %q, want it to name kafka-broker1", got)
	}
	// An external Kafka never reuses managed brokers.
	o = Options{CacheDir: "c", StateDir: "s", KafkaBrokers: "127.0.0.1:1,127.0.0.1:1,127.0.0.1:1"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := reusable(context.Background(), &o, three); got != "kafka was not the given external server" {
		t.Errorf("external wanted, brokers recorded: reusable = %q", got)
	}
}

// TestKillAndRestartKafkaBroker runs the kill/restart bookkeeping on
// stand-in brokers (shells whose command line carries the config path, as
// a broker's does): the state follows each new PID, a running broker is
// never started twice, and Down stops whatever runs at the end.
func TestKillAndRestartKafkaBroker(t *testing.T) {
	stateDir := t.TempDir()
	st := &State{Dir: stateDir}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		dir := filepath.Join(stateDir, kafkaNodeName(3, i+1))
		b := Server{Addr: "127.0.0.1:1", Config: filepath.Join(dir, "server.properties"), DataDir: filepath.Join(dir, "data"), Log: filepath.Join(dir, "kafka.log")}
		if err := os.MkdirAll(b.DataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeKafkaCommand(dir, []string{"sh", "-c", "sleep 60; exit 0", b.Config}); err != nil {
			t.Fatal(err)
		}
		if i != 1 {
			b.PID = dead.Process.Pid // killed earlier; broker 2 never started
		}
		st.KafkaBrokers = append(st.KafkaBrokers, b)
	}
	if err := writeState(stateDir, st); err != nil {
		t.Fatal(err)
	}
	var started []*process
	t.Cleanup(func() {
		for _, p := range started {
			_ = signalGroup(p.pid, 9)
			<-p.exited
		}
	})
	restart := func(nodeID int) *process {
		t.Helper()
		p, srv, name, n, err := restartKafkaProcess(stateDir, nodeID)
		if err != nil {
			t.Fatalf("restart broker %d: %v", nodeID, err)
		}
		started = append(started, p)
		if name != kafkaNodeName(3, nodeID) || n != 3 || srv.PID != p.pid {
			t.Fatalf("restart broker %d: %s of %d, pid %d (process %d)", nodeID, name, n, srv.PID, p.pid)
		}
		waitFor(t, "the stand-in broker to start", func() bool { return inspectPID(p.pid, srv.Config) == procOurs })
		return p
	}
	recorded := func(nodeID int) int {
		t.Helper()
		got, err := ReadState(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		return got.KafkaBrokers[nodeID-1].PID
	}

	first := restart(2)
	if pid := recorded(2); pid != first.pid {
		t.Fatalf("state records pid %d for broker 2, want %d", pid, first.pid)
	}
	if _, _, _, _, err := restartKafkaProcess(stateDir, 2); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("restart of a running broker: %v", err)
	}
	if err := KillKafkaBroker(context.Background(), stateDir, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed broker did not exit")
	}
	if err := KillKafkaBroker(context.Background(), stateDir, 2); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("kill of a dead broker: %v", err)
	}
	if err := KillKafkaBroker(context.Background(), stateDir, 4); err == nil {
		t.Fatal("kill of broker 4 of 3: no error")
	}
	second := restart(2)
	if pid := recorded(2); pid != second.pid || second.pid == first.pid {
		t.Fatalf("state records pid %d for broker 2 after the restart, want %d", pid, second.pid)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "kafka-broker2", "kafka.log")); err != nil {
		t.Errorf("the restarted broker has no log: %v", err)
	}

	o := Options{CacheDir: t.TempDir(), StateDir: stateDir, StopTimeout: 5 * time.Second}
	sts, err := Status(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sts {
		names = append(names, s.Name+"="+s.State)
	}
	if got, want := strings.Join(names, " "), "kafka-broker1=gone kafka-broker2=running kafka-broker3=gone clickhouse=not recorded"; got != want {
		t.Errorf("status:\n got %s\nwant %s", got, want)
	}
	if err := Down(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Down did not stop the restarted broker")
	}
	if _, err := os.Stat(filepath.Join(stateDir, "kafka-broker2", "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("broker 2's data dir not removed: %v", err)
	}
	if _, err := ReadState(stateDir); !errors.Is(err, ErrNoState) {
		t.Errorf("state after down: %v, want ErrNoState", err)
	}
}
