package devinfra

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
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

// MaxKafkaBrokers bounds Options.KafkaBrokerCount: three brokers make a
// controller quorum that survives one loss and hold the three replicas of a
// production-like topic; each is a JVM of up to KafkaHeap.
const MaxKafkaBrokers = 3

// kafkaNodeName is the name, and the state-dir subdirectory, of broker
// nodeID (1-based, its node.id) of n brokers. A single broker keeps the
// name and directory it had before there could be several.
func kafkaNodeName(n, nodeID int) string {
	if n == 1 {
		return "kafka"
	}
	return "kafka-broker" + strconv.Itoa(nodeID)
}

// kafkaCommandFile, in a broker's directory, holds the command line that
// started it (a JSON array), so that RestartKafkaBroker starts the very same
// JVM again.
const kafkaCommandFile = "command.json"

// upKafka installs (cached), formats and starts o.KafkaBrokerCount combined
// broker+controllers and waits until they serve topic admin and group
// coordination. record(i, srv) records broker i (0-based) as soon as its
// process exists.
func upKafka(ctx context.Context, o *Options, record func(int, Server) error) error {
	inst, err := InstallKafka(ctx, *o)
	if err != nil {
		return err
	}
	// A broker that loses a race for its port takes all of them with it:
	// every broker's config names every controller's port.
	return retryOnPortRace(o, "kafka", func() error {
		return startKafka(ctx, o, inst, record)
	})
}

// kafkaBrokerStart is one broker being started by startKafka.
type kafkaBrokerStart struct {
	name string
	dir  string
	srv  Server
	p    *process
}

func startKafka(ctx context.Context, o *Options, inst *JarInstall, record func(int, Server) error) error {
	n := o.KafkaBrokerCount
	// Every port is chosen before any config is written: the quorum voters
	// name all controllers.
	ports, err := freePorts(2 * n)
	if err != nil {
		return err
	}
	listen, controller := ports[:n], ports[n:]
	voters := make([]string, n)
	for i := range n {
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", i+1, controller[i])
	}
	// One cluster id for all: a broker formatted with another id refuses
	// to join.
	clusterID, err := newKafkaClusterID()
	if err != nil {
		return err
	}

	brokers := make([]*kafkaBrokerStart, n)
	for i := range n {
		name := kafkaNodeName(n, i+1)
		dir := filepath.Join(o.StateDir, name)
		b := &kafkaBrokerStart{name: name, dir: dir, srv: Server{
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(listen[i])),
			Config:  filepath.Join(dir, "server.properties"),
			DataDir: filepath.Join(dir, "data"),
			Log:     filepath.Join(dir, "kafka.log"),
		}}
		if err := os.RemoveAll(b.srv.DataDir); err != nil {
			return fmt.Errorf("cannot clear %s data: %w", name, err)
		}
		if err := os.MkdirAll(b.srv.DataDir, 0o755); err != nil {
			return err
		}
		props := kafkaServerProperties(i+1, n, listen[i], controller[i], strings.Join(voters, ","), b.srv.DataDir)
		if err := os.WriteFile(b.srv.Config, []byte(props), 0o644); err != nil {
			return err
		}
		// Truncate the previous run's log so that error tails show this run.
		if err := os.WriteFile(b.srv.Log, nil, 0o644); err != nil {
			return err
		}
		brokers[i] = b
	}

	// Formatting runs a JVM per broker for a second or two; in parallel.
	fg, fctx := errgroup.WithContext(ctx)
	for _, b := range brokers {
		fg.Go(func() error { return formatKafka(fctx, o, inst, b.dir, b.srv.Config, clusterID) })
	}
	if err := fg.Wait(); err != nil {
		return err
	}

	abandonAll := func() {
		var wg sync.WaitGroup
		for _, b := range brokers {
			if b.p != nil {
				wg.Go(func() { abandon(o, b.p, b.srv.Config) })
			}
		}
		wg.Wait()
	}
	for i, b := range brokers {
		args := kafkaCommand(o, inst, b.dir, b.srv.Config)
		if err := writeKafkaCommand(b.dir, args); err != nil {
			abandonAll()
			return err
		}
		p, err := startDetached(b.dir, b.srv.Log, args[0], args[1:]...)
		if err != nil {
			abandonAll()
			return err
		}
		b.p, b.srv.PID = p, p.pid
		if err := record(i, b.srv); err != nil {
			abandonAll()
			return err
		}
		o.Log.Info().Str("server", b.name).Int("pid", p.pid).Str("broker", b.srv.Addr).Msg("kafka started, waiting until ready")
	}

	start := time.Now()
	wg, wctx := errgroup.WithContext(ctx)
	for _, b := range brokers {
		wg.Go(func() error {
			return waitReady(wctx, o, b.name, b.p, []string{b.srv.Log}, func(ctx context.Context) error {
				if n == 1 {
					return probeKafka(ctx, b.srv.Addr, true)
				}
				return probeKafkaBroker(ctx, b.srv.Addr, n)
			})
		})
	}
	err = wg.Wait()
	if err == nil && n > 1 {
		// Every broker is registered: the cluster as a whole can now create
		// topics (and __consumer_offsets, replicated to min(3, n) brokers).
		first := brokers[0]
		err = waitReady(ctx, o, "kafka", first.p, []string{first.srv.Log}, func(ctx context.Context) error {
			return probeKafka(ctx, first.srv.Addr, true)
		})
	}
	if err != nil {
		abandonAll()
		return err
	}
	addrs := make([]string, n)
	for i, b := range brokers {
		addrs[i] = b.srv.Addr
	}
	o.Log.Info().Int("count", n).Str("brokers", strings.Join(addrs, ",")).Dur("took", time.Since(start)).Msg("kafka ready")
	return nil
}

// kafkaJVM is the JVM part of the broker and storage-tool command lines.
func kafkaJVM(inst *JarInstall, dir string) []string {
	// Serial GC: on a small shared machine G1's thread start-up nearly
	// doubles the broker's time to ready (measured 5 s vs 8-9.5 s on 2
	// loaded cores), and a 512 MB test heap does not need G1.
	return []string{"-XX:+UseSerialGC", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(dir, "log4j2.xml"), "-cp", inst.Classpath()}
}

// kafkaCommand is the command line of the broker whose directory and
// config are dir and config.
func kafkaCommand(o *Options, inst *JarInstall, dir, config string) []string {
	args := []string{o.Java, "-Xms128m", "-Xmx" + o.KafkaHeap}
	args = append(args, kafkaJVM(inst, dir)...)
	return append(args, "kafka.Kafka", config)
}

// formatKafka writes the log4j config of the broker in dir and formats its
// log dir for clusterID.
func formatKafka(ctx context.Context, o *Options, inst *JarInstall, dir, config, clusterID string) error {
	if err := os.WriteFile(filepath.Join(dir, "log4j2.xml"), []byte(kafkaLog4j2), 0o644); err != nil {
		return err
	}
	// Without --standalone or --initial-controllers: controller.quorum.voters
	// already names every voter (a static quorum).
	// The storage tool runs for a second: compiling with C2 is wasted work.
	fargs := append([]string{"-Xmx256m", "-XX:TieredStopAtLevel=1"}, kafkaJVM(inst, dir)...)
	fargs = append(fargs, "kafka.tools.StorageTool", "format", "-t", clusterID, "-c", config)
	if _, err := runCaptured(ctx, dir, o.Java, fargs...); err != nil {
		return fmt.Errorf("cannot format kafka log dir %s: %w", dir, err)
	}
	return nil
}

func writeKafkaCommand(dir string, args []string) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, kafkaCommandFile), b, 0o644)
}

func readKafkaCommand(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, kafkaCommandFile))
	if err != nil {
		return nil, fmt.Errorf("cannot read the broker's command line (was it started by this version of infra up?): %w", err)
	}
	var args []string
	if err := json.Unmarshal(b, &args); err != nil || len(args) == 0 {
		return nil, fmt.Errorf("%s: not a command line: %v", filepath.Join(dir, kafkaCommandFile), err)
	}
	return args, nil
}

// kafkaServerProperties is the config of broker nodeID of n, whose
// controller quorum is voters (id@host:port,...).
func kafkaServerProperties(nodeID, n, port, controllerPort int, voters, dataDir string) string {
	// Offsets and transaction topics get few partitions because they are
	// created on first use inside a test and 50 partitions take seconds to
	// create. Their ISR minimum stays 1, like min.insync.replicas: a test
	// that kills a broker sets its own topics' minimum, and the internal
	// topics must keep working while a broker is down.
	internalRF := min(3, n)
	extra := ""
	if n > 1 {
		// Brokers stopped together (`infra down`) must not wait for a
		// controlled shutdown: the last one to ask finds the controller
		// quorum gone with the others and waits for minutes, until
		// StopTimeout's SIGKILL (measured: 30 s instead of 6). Their data is
		// deleted anyway, and tests crash brokers with SIGKILL.
		extra = "controlled.shutdown.enable=false\n"
	}
	return fmt.Sprintf(`# written by qoscope devinfra
process.roles=broker,controller
node.id=%[1]d
controller.quorum.voters=%[4]s
listeners=PLAINTEXT://127.0.0.1:%[2]d,CONTROLLER://127.0.0.1:%[3]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[2]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=%[5]s
num.partitions=1
default.replication.factor=%[6]d
min.insync.replicas=1
offsets.topic.replication.factor=%[7]d
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=%[7]d
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=%[7]d
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
`, nodeID, port, controllerPort, voters, dataDir, n, internalRF) + extra
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

// probeKafkaBroker checks that the broker at addr answers metadata and
// lists all n brokers of its cluster: a broker appears there once the
// controller has registered and unfenced it, i.e. once it can lead and
// follow partitions.
func probeKafkaBroker(ctx context.Context, addr string, n int) error {
	tr := &kafka.Transport{DialTimeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: tr}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(md.Brokers) != n {
		return fmt.Errorf("metadata lists %d of %d brokers", len(md.Brokers), n)
	}
	return nil
}

// KillKafkaBroker sends SIGKILL to broker nodeID (its node.id, 1-based) of
// the Kafka recorded in stateDir, without any shutdown: the crash that a
// failover test needs. It returns once the process is gone. The state keeps
// the dead PID, which `infra down` and Status report as gone; bring the
// broker back with RestartKafkaBroker.
func KillKafkaBroker(ctx context.Context, stateDir string, nodeID int) error {
	unlock, err := lockFile(filepath.Join(stateDir, "lock"))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := ReadState(stateDir)
	if err != nil {
		return err
	}
	b, name, err := st.kafkaBroker(nodeID)
	if err != nil {
		return err
	}
	if ps := inspectPID(b.PID, b.Config); ps != procOurs {
		return fmt.Errorf("cannot kill %s: pid %d is %s", name, b.PID, ps)
	}
	if err := signalGroup(b.PID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("cannot kill %s: %w", name, err)
	}
	if !waitGone(ctx, b.PID, b.Config, 10*time.Second) {
		return fmt.Errorf("%s (pid %d) still alive after SIGKILL", name, b.PID)
	}
	return nil
}

// RestartKafkaBroker starts broker nodeID (1-based) of the Kafka recorded
// in stateDir again after it died or was killed: the same command line,
// config and data directory as Up used, its output appended to the same
// log. The new PID is recorded at once, so that `infra down` stops it. It
// returns the broker once it is back in the cluster (it answers metadata
// listing every broker), or an error after readyTimeout (default 90s), in
// which case the new process is stopped. A broker still running is an
// error: two JVMs must never share a data directory.
func RestartKafkaBroker(ctx context.Context, stateDir string, nodeID int, readyTimeout time.Duration) (Server, error) {
	o := &Options{StateDir: stateDir, ReadyTimeout: readyTimeout, StopTimeout: 30 * time.Second}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	p, srv, name, n, err := restartKafkaProcess(stateDir, nodeID)
	if err != nil {
		return Server{}, err
	}
	err = waitReady(ctx, o, name, p, []string{srv.Log}, func(ctx context.Context) error {
		return probeKafkaBroker(ctx, srv.Addr, n)
	})
	if err != nil {
		abandon(o, p, srv.Config)
		return Server{}, err
	}
	return srv, nil
}

// restartKafkaProcess starts the broker process and records its PID, under
// the state lock, which is released before the long wait for readiness.
func restartKafkaProcess(stateDir string, nodeID int) (p *process, srv Server, name string, n int, err error) {
	unlock, err := lockFile(filepath.Join(stateDir, "lock"))
	if err != nil {
		return nil, Server{}, "", 0, err
	}
	defer unlock()
	st, err := ReadState(stateDir)
	if err != nil {
		return nil, Server{}, "", 0, err
	}
	b, name, err := st.kafkaBroker(nodeID)
	if err != nil {
		return nil, Server{}, "", 0, err
	}
	if ps := inspectPID(b.PID, b.Config); ps == procOurs {
		return nil, Server{}, "", 0, fmt.Errorf("cannot restart %s: it is still running (pid %d)", name, b.PID)
	}
	dir := filepath.Dir(b.Config)
	args, err := readKafkaCommand(dir)
	if err != nil {
		return nil, Server{}, "", 0, fmt.Errorf("cannot restart %s: %w", name, err)
	}
	p, err = startDetached(dir, b.Log, args[0], args[1:]...)
	if err != nil {
		return nil, Server{}, "", 0, err
	}
	b.PID = p.pid
	if err := writeState(stateDir, st); err != nil {
		o := &Options{StopTimeout: 30 * time.Second}
		abandon(o, p, b.Config)
		return nil, Server{}, "", 0, err
	}
	return p, *b, name, max(1, len(st.KafkaBrokers)), nil
}
