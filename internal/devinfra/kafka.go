package devinfra

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// log4jSLF4JVersion is the SLF4J→Log4j2 binding added beside the broker so
// that it logs (the kafka_2.13 artifact brings slf4j-api and log4j-core but no
// binding between them). It matches the log4j-core that Kafka 4.1.1 uses.
const log4jSLF4JVersion = "2.24.3"

// InstallKafka resolves org.apache.kafka:kafka_2.13:<KafkaVersion> and its
// runtime dependencies from Maven Central into the cache, once (see
// installMavenJars).
func InstallKafka(ctx context.Context, opts Options) (*JarInstall, error) {
	o := opts
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid infra options: %w", err)
	}
	dir, n, resolved, err := installMavenJars(ctx, &o, mavenJars{
		name:    "kafka",
		version: o.KafkaVersion,
		deps: []string{
			"org.apache.kafka:kafka_2.13:" + o.KafkaVersion,
			"org.apache.logging.log4j:log4j-slf4j-impl:" + log4jSLF4JVersion,
		},
		mainJar: "kafka_2.13-" + o.KafkaVersion + ".jar",
	})
	if err != nil {
		return nil, err
	}
	return newJarInstall(dir, n, resolved), nil
}

// upKafka installs (cached), formats and starts one combined broker+controller
// and waits until it serves topic admin and group coordination.
func upKafka(ctx context.Context, o *Options, record func(Server) error) error {
	inst, err := InstallKafka(ctx, *o)
	if err != nil {
		return err
	}
	dir := filepath.Join(o.StateDir, "kafka")
	return retryOnPortRace(o, "kafka", func() error {
		return startKafka(ctx, o, inst, dir, record)
	})
}

func startKafka(ctx context.Context, o *Options, inst *JarInstall, dir string, record func(Server) error) error {
	srv := Server{
		Config:  filepath.Join(dir, "server.properties"),
		DataDir: filepath.Join(dir, "data"),
		Log:     filepath.Join(dir, "kafka.log"),
	}
	if err := os.RemoveAll(srv.DataDir); err != nil {
		return fmt.Errorf("cannot clear kafka data: %w", err)
	}
	if err := os.MkdirAll(srv.DataDir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	port, controllerPort := ports[0], ports[1]
	srv.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	props := kafkaServerProperties(port, controllerPort, srv.DataDir)
	if err := os.WriteFile(srv.Config, []byte(props), 0o644); err != nil {
		return err
	}
	log4j := filepath.Join(dir, "log4j2.xml")
	if err := os.WriteFile(log4j, []byte(kafkaLog4j2), 0o644); err != nil {
		return err
	}
	// Truncate the previous run's log so that error tails show this run.
	if err := os.WriteFile(srv.Log, nil, 0o644); err != nil {
		return err
	}
	// Serial GC: on a small shared machine G1's thread start-up nearly
	// doubles the broker's time to ready (measured 5 s vs 8-9.5 s on 2
	// loaded cores), and a 512 MB test heap does not need G1.
	jvm := []string{"-XX:+UseSerialGC", "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + log4j, "-cp", inst.Classpath()}

	clusterID, err := newKafkaClusterID()
	if err != nil {
		return err
	}
	// Without --standalone: controller.quorum.voters already names the one voter.
	// The storage tool runs for a second: compiling with C2 is wasted work.
	fargs := append([]string{"-Xmx256m", "-XX:TieredStopAtLevel=1"}, jvm...)
	fargs = append(fargs, "kafka.tools.StorageTool", "format", "-t", clusterID, "-c", srv.Config)
	if _, err := runCaptured(ctx, dir, o.Java, fargs...); err != nil {
		return fmt.Errorf("cannot format kafka log dir: %w", err)
	}

	args := append([]string{"-Xms128m", "-Xmx" + o.KafkaHeap}, jvm...)
	args = append(args, "kafka.Kafka", srv.Config)
	p, err := startDetached(dir, srv.Log, o.Java, args...)
	if err != nil {
		return err
	}
	srv.PID = p.pid
	if err := record(srv); err != nil {
		abandon(o, p, srv.Config)
		return err
	}
	o.Log.Info().Int("pid", p.pid).Str("brokers", srv.Addr).Msg("kafka started, waiting until ready")
	start := time.Now()
	err = waitReady(ctx, o, "kafka", p, []string{srv.Log}, func(ctx context.Context) error {
		return probeKafka(ctx, srv.Addr, true)
	})
	if err != nil {
		abandon(o, p, srv.Config)
		return err
	}
	o.Log.Info().Int("pid", p.pid).Str("brokers", srv.Addr).Dur("took", time.Since(start)).Msg("kafka ready")
	return nil
}

func kafkaServerProperties(port, controllerPort int, dataDir string) string {
	// Single node: every replication factor and ISR is 1. Offsets and
	// transaction topics get few partitions because they are created on
	// first use inside a test and 50 partitions take seconds to create.
	return fmt.Sprintf(`# written by qoscope devinfra
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=%[3]s
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
`, port, controllerPort, dataDir)
}

// kafkaLog4j2 sends broker logs to stdout (which is the log file); request
// and state-change chatter is kept at WARN so that a long test run does not
// write hundreds of megabytes.
const kafkaLog4j2 = `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="stdout"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Logger name="kafka.cluster.Partition" level="WARN"/>
    <Logger name="kafka.server.ReplicaFetcherManager" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="WARN"/>
  </Loggers>
</Configuration>
`

// newKafkaClusterID returns a random Kafka UUID in its base64url form. Like
// Kafka's own Uuid.randomUuid it avoids a leading '-', which command-line
// parsers would take for an option.
func newKafkaClusterID() (string, error) {
	for {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		id := base64.RawURLEncoding.EncodeToString(b)
		if !strings.HasPrefix(id, "-") {
			return id, nil
		}
	}
}

// probeKafka proves that the broker does what the tests need, not merely
// that its port is open: a metadata request, a topic created and deleted
// through the controller, and (with coordinator) a group coordinator, whose
// first lookup creates __consumer_offsets.
func probeKafka(ctx context.Context, addr string, coordinator bool) error {
	tr := &kafka.Transport{DialTimeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: tr}
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return err
	}
	topic := "qoscope-ready-" + hex.EncodeToString(suffix[:])
	cr, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err == nil {
		err = cr.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	dr, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = dr.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	if !coordinator {
		return nil
	}
	fc, err := c.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: "qoscope-ready", KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err == nil {
		err = fc.Error
	}
	if err != nil {
		return fmt.Errorf("find group coordinator: %w", err)
	}
	return nil
}

// pingKafka is the cheap check used by Status and the reuse test: metadata
// from every listed broker.
func pingKafka(ctx context.Context, srv Server) error {
	brokers := strings.Split(srv.Addr, ",")
	sort.Strings(brokers)
	tr := &kafka.Transport{DialTimeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	var errs []error
	for _, b := range brokers {
		c := &kafka.Client{Addr: kafka.TCP(b), Timeout: 5 * time.Second, Transport: tr}
		if _, err := c.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b, err))
		}
	}
	return errors.Join(errs...)
}
