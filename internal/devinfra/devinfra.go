// Package devinfra installs, starts and stops the real servers that the
// integration tests and the demo run against: one Apache Kafka broker (KRaft,
// broker+controller in one JVM) and one ClickHouse 26.x server (the engine
// from libchdb.so, hosted by a small C program), both on free loopback ports.
//
// With Options.KafkaBrokerCount = N > 1 (`qoscope infra up --kafka-brokers
// N`, which `go tool task test:kafka-cluster` passes with 3) Up starts N
// such brokers instead, node.id 1..N, all voters of one static controller
// quorum, formatted with one cluster id, in state-dir subdirectories
// kafka-broker1..N; topics are replicated to all N by default, the internal
// ones to min(3, N), and min.insync.replicas stays 1 unless a topic sets it.
// QOSCOPE_KAFKA_BROKERS lists every broker; EnvKafkaBrokerCount and
// QOSCOPE_INFRA_KAFKA_BROKER<i>_* record each one. KillKafkaBroker and
// RestartKafkaBroker let a test crash one and bring it back (see
// internal/testenv.KafkaCluster); the state file follows the new PID.
//
// Downloads go to a cache directory outside the repository and are verified
// and reused; everything per run (configs, data, logs, the state file) goes to
// a state directory. Servers run in their own sessions so that they outlive
// `qoscope infra up` and are stopped by PID by `qoscope infra down`.
//
// A server given by the caller (Options.KafkaBrokers, Options.ClickHouseDSN;
// the command fills them from QOSCOPE_KAFKA_BROKERS and QOSCOPE_CLICKHOUSE_DSN)
// is recorded, never started or stopped: that is how tests run against a real
// cluster.
//
// With Options.ClusterNodes = N > 0 (`qoscope infra up --clickhouse-cluster
// N`, which `go tool task test` passes with 2) Up also starts a ClickHouse
// cluster for tests of sharded tables: a standalone ZooKeeper (jars from
// Maven Central, cached like Kafka's) and N more ClickHouse servers,
// state-dir subdirectories clickhouse-node1..N, forming ClusterName (N
// shards of one replica, macros {shard}=s<i> and {replica}=r1), each with
// the database qoscope. The main ClickHouse is not part of it. The state
// file gives the nodes to tests as QOSCOPE_INFRA_CLUSTER_NAME, _DSNS and
// _HTTP (see EnvClusterDSNs and internal/testenv.ClickHouseCluster); `down`
// stops them and ZooKeeper. The nodes are clickhouse-local, which limits
// what they do: Distributed tables work (inserts spread over the shards,
// reads gather them); ON CLUSTER DDL is refused and there is no
// system.zookeeper, so DDL runs on each node in turn; Replicated*MergeTree
// tables can be created (in ZooKeeper) but stay read-only, because
// clickhouse-local never sets the interserver address a replica needs to
// become active, so inserts into them fail (TestClusterReplicatedTablesAreReadOnly).
package devinfra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Options configures Up, Down and Status. The zero value plus a StateDir and
// a CacheDir is valid; Validate fills the documented defaults.
type Options struct {
	// CacheDir holds the downloaded Kafka jars, libchdb.so and the compiled
	// host. Required; the command defaults it to DefaultCacheDir.
	CacheDir string
	// StateDir holds the state file, server configs, data and logs of one
	// set of servers. Required; the command defaults it to DefaultStateDir.
	StateDir string

	// KafkaBrokers, if set, names an external Kafka (host:port[,host:port]);
	// Up then starts no broker and records this list.
	KafkaBrokers string
	// ClickHouseDSN, if set, names an external ClickHouse (clickhouse-go
	// DSN); Up then starts no server and records it.
	ClickHouseDSN string
	// ClickHouseHTTP is recorded beside an external ClickHouseDSN. Optional.
	ClickHouseHTTP string
	// NoKafka starts (and records) no Kafka at all: the demo runs its own
	// in-process broker and needs only ClickHouse.
	NoKafka bool
	// KafkaBrokerCount is the number of Kafka brokers to start, each a
	// combined broker+controller (KRaft) and all of them voters of a static
	// controller quorum: 1 (the default) or up to MaxKafkaBrokers, for
	// tests that kill a broker (see KillKafkaBroker). Topics are then
	// replicated to every broker by default; the internal topics to
	// min(3, N); min.insync.replicas stays at its default 1 unless a topic
	// sets it. Only without an external Kafka and without NoKafka.
	KafkaBrokerCount int
	// ClusterNodes, if > 0, also starts ZooKeeper and that many more
	// ClickHouse servers forming the cluster ClusterName, one shard each
	// (see the package doc). Default 0: no cluster. At most MaxClusterNodes.
	ClusterNodes int

	// KafkaVersion is the org.apache.kafka:kafka_2.13 version resolved from
	// Maven Central. Default: DefaultKafkaVersion (4.0.0 is not usable: it
	// dropped JoinGroup v0/v1, which segmentio/kafka-go's consumer groups use;
	// 4.1 restored them).
	KafkaVersion string
	// KafkaHeap is each broker JVM's -Xmx. Default: 512m.
	KafkaHeap string

	// Java, Maven, NPM and CC are the tools used; default java, mvn, npm, gcc
	// from PATH.
	Java, Maven, NPM, CC string

	// ReadyTimeout bounds the wait for a started server to answer. Default: 90s.
	ReadyTimeout time.Duration
	// StopTimeout is how long Down waits after SIGTERM before SIGKILL. Default: 30s.
	StopTimeout time.Duration

	// Log receives progress; the zero Logger discards it.
	Log zerolog.Logger
}

// DefaultKafkaVersion is the Kafka release whose broker the project tests against.
const DefaultKafkaVersion = "4.1.1"

// ClickHouseDatabase is the database Up creates and names in the DSN of a
// ClickHouse it starts.
const ClickHouseDatabase = "qoscope"

// Validate fills defaults and checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.CacheDir == "" {
		errs = append(errs, errors.New("cache dir: required"))
	}
	if o.StateDir == "" {
		errs = append(errs, errors.New("state dir: required"))
	}
	for _, d := range []*string{&o.CacheDir, &o.StateDir} {
		if *d != "" {
			abs, err := filepath.Abs(*d)
			if err != nil {
				errs = append(errs, err)
			}
			*d = abs
		}
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.KafkaVersion, DefaultKafkaVersion)
	def(&o.KafkaHeap, "512m")
	def(&o.Java, "java")
	def(&o.Maven, "mvn")
	def(&o.NPM, "npm")
	def(&o.CC, "gcc")
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 90 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if strings.ContainsAny(o.KafkaVersion, "<>&\"' /") {
		errs = append(errs, fmt.Errorf("kafka version %q: not a version", o.KafkaVersion))
	}
	for _, b := range strings.Split(o.KafkaBrokers, ",") {
		if o.KafkaBrokers != "" && !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("kafka brokers: %q is not host:port", b))
		}
	}
	if o.KafkaBrokerCount == 0 {
		o.KafkaBrokerCount = 1
	}
	switch {
	case o.KafkaBrokerCount < 1 || o.KafkaBrokerCount > MaxKafkaBrokers:
		errs = append(errs, fmt.Errorf("kafka broker count: %d is not between 1 and %d", o.KafkaBrokerCount, MaxKafkaBrokers))
	case o.KafkaBrokerCount > 1 && (o.NoKafka || o.KafkaBrokers != ""):
		errs = append(errs, fmt.Errorf("kafka broker count: %d brokers are only started without an external kafka (%s) and without no-kafka", o.KafkaBrokerCount, EnvKafkaBrokers))
	}
	if o.ClusterNodes < 0 || o.ClusterNodes > MaxClusterNodes {
		errs = append(errs, fmt.Errorf("clickhouse cluster nodes: %d is not between 0 and %d", o.ClusterNodes, MaxClusterNodes))
	}
	if o.ClickHouseHTTP != "" && o.ClickHouseDSN == "" {
		errs = append(errs, errors.New("clickhouse http: only meaningful with an external clickhouse dsn"))
	}
	return errors.Join(errs...)
}

// Up makes sure the servers are running and returns their addresses, which
// it also writes to the state file. Servers recorded by an earlier Up that
// still answer are kept (Up is idempotent); otherwise whatever is left of
// them is stopped and fresh servers with empty data directories are started.
// On error nothing Up started is left running.
func Up(ctx context.Context, opts Options) (*State, error) {
	o := opts
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid infra options: %w", err)
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create state dir: %w", err)
	}
	unlock, err := lockFile(filepath.Join(o.StateDir, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	old, err := ReadState(o.StateDir)
	switch {
	case err == nil:
		reason := reusable(ctx, &o, old)
		if reason == "" {
			o.Log.Info().Str("state", StatePath(o.StateDir)).Msg("servers already running")
			return old, nil
		}
		o.Log.Info().Str("reason", reason).Msg("replacing recorded servers")
		if err := stopRecorded(ctx, &o, old); err != nil {
			return nil, err
		}
	case !errors.Is(err, ErrNoState):
		return nil, err
	}

	// The state file is rewritten as soon as each process exists, so that
	// `infra down` can stop it even if this Up is killed half-way.
	st := &State{Dir: o.StateDir}
	var mu sync.Mutex
	record := func(update func(*State)) error {
		mu.Lock()
		defer mu.Unlock()
		update(st)
		return writeState(o.StateDir, st)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if o.NoKafka {
			return nil
		}
		if o.KafkaBrokers != "" {
			o.Log.Info().Str("brokers", o.KafkaBrokers).Msg("using external kafka")
			return record(func(s *State) { s.Kafka = Server{Addr: o.KafkaBrokers} })
		}
		n := o.KafkaBrokerCount
		return upKafka(gctx, &o, func(i int, srv Server) error {
			return record(func(s *State) {
				if n == 1 {
					s.Kafka = srv
					return
				}
				if len(s.KafkaBrokers) != n {
					s.KafkaBrokers = make([]Server, n)
				}
				s.KafkaBrokers[i] = srv
				addrs := make([]string, n)
				for j, b := range s.KafkaBrokers {
					if b.PID == 0 {
						addrs = nil
						break
					}
					addrs[j] = b.Addr
				}
				s.Kafka = Server{Addr: strings.Join(addrs, ",")}
			})
		})
	})
	g.Go(func() error {
		if o.ClickHouseDSN != "" {
			o.Log.Info().Msg("using external clickhouse")
			return record(func(s *State) { s.ClickHouse = Server{Addr: o.ClickHouseDSN, HTTP: o.ClickHouseHTTP} })
		}
		return upClickHouse(gctx, &o, func(srv Server) error { return record(func(s *State) { s.ClickHouse = srv }) })
	})
	if o.ClusterNodes > 0 {
		g.Go(func() error { return upCluster(gctx, &o, record) })
	}
	if err := g.Wait(); err != nil {
		// ctx may be what failed; cleaning up must not depend on it.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*o.StopTimeout)
		defer cancel()
		mu.Lock()
		started := *st
		mu.Unlock()
		if stopErr := stopRecorded(cleanup, &o, &started); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return st, nil
}

// reusable returns "" if old matches the options and its servers answer, or
// why not.
func reusable(ctx context.Context, o *Options, old *State) string {
	check := func(name string, srv Server, external string, ping func(context.Context, Server) error) string {
		switch {
		case external != "" && (!srv.External() || srv.Addr != external):
			return name + " was not the given external server"
		case external != "":
			return ""
		case srv.Addr == "" || srv.External():
			return name + " was not started here"
		}
		if st := inspectPID(srv.PID, srv.Config); st != procOurs {
			return fmt.Sprintf("%s (pid %d) is %s", name, srv.PID, st)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := ping(pctx, srv); err != nil {
			return fmt.Sprintf("%s (pid %d) does not answer: %v", name, srv.PID, err)
		}
		return ""
	}
	// The cheap comparisons first: a changed node or broker count replaces
	// everything without pinging anything.
	if n := len(old.ClusterNodes); n != o.ClusterNodes {
		return fmt.Sprintf("the clickhouse cluster has %d nodes, want %d", n, o.ClusterNodes)
	}
	if o.ClusterNodes == 0 && old.ZooKeeper.Addr != "" {
		return "zookeeper is not wanted"
	}
	oldBrokers := old.KafkaNodes()
	switch {
	case o.NoKafka && (old.Kafka.Addr != "" || len(old.KafkaBrokers) > 0):
		return "kafka is not wanted"
	case o.NoKafka:
	case o.KafkaBrokers != "":
		if len(old.KafkaBrokers) > 0 {
			return "kafka was not the given external server"
		}
		if r := check("kafka", old.Kafka, o.KafkaBrokers, pingKafka); r != "" {
			return r
		}
	case len(oldBrokers) != o.KafkaBrokerCount:
		return fmt.Sprintf("kafka has %d managed brokers, want %d", len(oldBrokers), o.KafkaBrokerCount)
	default:
		for _, b := range oldBrokers {
			if r := check(b.Name, b.Server, "", pingKafka); r != "" {
				return r
			}
		}
	}
	if r := check("clickhouse", old.ClickHouse, o.ClickHouseDSN, pingClickHouse); r != "" {
		return r
	}
	if o.ClusterNodes == 0 {
		return ""
	}
	if r := check("zookeeper", old.ZooKeeper, "", pingZooKeeper); r != "" {
		return r
	}
	for i, node := range old.ClusterNodes {
		if r := check(clusterNodeName(i), node, "", pingClickHouse); r != "" {
			return r
		}
	}
	return ""
}

// Down stops the servers recorded in the state file (external ones are left
// alone), removes their data directories and the state file. A server that
// is already gone, or whose PID now belongs to another program, is not an
// error. Without a state file it does nothing.
func Down(ctx context.Context, opts Options) error {
	o := opts
	if err := o.Validate(); err != nil {
		return fmt.Errorf("invalid infra options: %w", err)
	}
	if _, err := os.Stat(o.StateDir); errors.Is(err, os.ErrNotExist) {
		o.Log.Info().Str("state_dir", o.StateDir).Msg("nothing to stop")
		return nil
	}
	unlock, err := lockFile(filepath.Join(o.StateDir, "lock"))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := ReadState(o.StateDir)
	if errors.Is(err, ErrNoState) {
		o.Log.Info().Str("state_dir", o.StateDir).Msg("nothing to stop")
		return nil
	}
	if err != nil {
		return err
	}
	return stopRecorded(ctx, &o, st)
}

// stopRecorded stops the managed servers of st (even if stopping one fails),
// removes their data, and removes the state file once nothing recorded can
// still be running. The servers stop in parallel, except ZooKeeper, which
// the cluster nodes may still be talking to while they shut down.
func stopRecorded(ctx context.Context, o *Options, st *State) error {
	first := st.KafkaNodes()
	first = append(first, NamedServer{"clickhouse", st.ClickHouse})
	for i, node := range st.ClusterNodes {
		first = append(first, NamedServer{clusterNodeName(i), node})
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	stop := func(s NamedServer) {
		if s.External() {
			return
		}
		fail := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}
		before := inspectPID(s.PID, s.Config)
		if err := stopPID(ctx, s.PID, s.Config, o.StopTimeout); err != nil {
			fail(fmt.Errorf("cannot stop %s: %w", s.Name, err))
			return
		}
		if n, last := chhostRestarts(s.Log); n > 0 {
			// Restarts keep a test suite going, so nothing fails because
			// of them: this is the only trace a CI log gets.
			o.Log.Warn().Str("server", s.Name).Int("restarts", n).Strs("last", last).Str("log", s.Log).
				Msg("the clickhouse server crashed and was restarted during this run")
		}
		if before == procOurs {
			o.Log.Info().Str("server", s.Name).Int("pid", s.PID).Msg("stopped")
		} else {
			o.Log.Info().Str("server", s.Name).Int("pid", s.PID).Str("was", before.String()).Msg("not running")
		}
		if within(o.StateDir, s.DataDir) {
			if err := os.RemoveAll(s.DataDir); err != nil {
				fail(fmt.Errorf("cannot remove %s data: %w", s.Name, err))
			}
		}
	}
	var wg sync.WaitGroup
	for _, s := range first {
		wg.Go(func() { stop(s) })
	}
	wg.Wait()
	stop(NamedServer{"zookeeper", st.ZooKeeper})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(StatePath(o.StateDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot remove state: %w", err)
	}
	return nil
}

// chhostRestarts counts the restarts chhost logged in a ClickHouse host log
// and returns the lines before the last one (the server's last words: why
// it died). 0 for any other log, or one that cannot be read.
func chhostRestarts(logPath string) (int, []string) {
	if logPath == "" {
		return 0, nil
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, nil
	}
	lines := strings.Split(string(b), "\n")
	n, at := 0, -1
	for i, l := range lines {
		if strings.HasPrefix(l, "chhost: ") && strings.Contains(l, "restarting it") {
			n, at = n+1, i
		}
	}
	if n == 0 {
		return 0, nil
	}
	return n, lines[max(0, at-3) : at+1]
}

// within reports whether path is strictly inside dir; Down only deletes data
// directories it created itself, whatever a (hand-edited) state file says.
func within(dir, path string) bool {
	if path == "" {
		return false
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel)
}

// ServerStatus is one line of Status.
type ServerStatus struct {
	// Name is "kafka" (or "kafka-broker1"... for several brokers),
	// "clickhouse", and with a cluster "zookeeper" and "clickhouse-node1"...
	Name string
	// State is "running", "external", "gone", "gone (pid reused by another
	// process)" or "not recorded".
	State string
	// Addr is the broker list or the DSN with its password hidden.
	Addr string
	HTTP string
	PID  int
	Log  string
	// Ready is nil if the server answered a ping.
	Ready error
}

// Status reports on the recorded servers, pinging each one.
func Status(ctx context.Context, opts Options) ([]ServerStatus, error) {
	o := opts
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid infra options: %w", err)
	}
	st, err := ReadState(o.StateDir)
	if errors.Is(err, ErrNoState) {
		return []ServerStatus{{Name: "kafka", State: "not recorded"}, {Name: "clickhouse", State: "not recorded"}}, nil
	}
	if err != nil {
		return nil, err
	}
	one := func(name string, srv Server, ping func(context.Context, Server) error) ServerStatus {
		s := ServerStatus{Name: name, Addr: srv.Addr, HTTP: srv.HTTP, PID: srv.PID, Log: srv.Log}
		if strings.HasPrefix(name, "clickhouse") {
			s.Addr = redact(srv.Addr)
		}
		switch {
		case srv.Addr == "" && srv.PID == 0:
			s.State = "not recorded"
			return s
		case srv.Addr == "":
			// A cluster node of an interrupted Up: stoppable, not usable.
			s.State = inspectPID(srv.PID, srv.Config).String()
			s.Ready = errors.New("address not recorded (the cluster was not completely started)")
			return s
		case srv.External():
			s.State = "external"
		default:
			s.State = inspectPID(srv.PID, srv.Config).String()
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s.Ready = ping(pctx, srv)
		return s
	}
	var sts []ServerStatus
	if len(st.KafkaBrokers) > 0 {
		for _, b := range st.KafkaNodes() {
			if b.PID == 0 {
				// Not started yet by an interrupted Up; its address is
				// known beforehand, but nothing serves it.
				sts = append(sts, ServerStatus{Name: b.Name, State: "not recorded"})
				continue
			}
			sts = append(sts, one(b.Name, b.Server, pingKafka))
		}
	} else {
		sts = append(sts, one("kafka", st.Kafka, pingKafka))
	}
	sts = append(sts, one("clickhouse", st.ClickHouse, pingClickHouse))
	if st.ZooKeeper.Addr != "" || st.ZooKeeper.PID != 0 || len(st.ClusterNodes) > 0 {
		sts = append(sts, one("zookeeper", st.ZooKeeper, pingZooKeeper))
	}
	for i, node := range st.ClusterNodes {
		sts = append(sts, one(clusterNodeName(i), node, pingClickHouse))
	}
	return sts, nil
}

// retryOnPortRace runs start up to three times while it fails because a port
// chosen by freePorts was taken in the meantime.
func retryOnPortRace(o *Options, name string, start func() error) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		err = start()
		var pe *portTakenError
		if !errors.As(err, &pe) {
			return err
		}
		o.Log.Warn().Str("server", name).Int("attempt", attempt).Msg("port taken, retrying with new ports")
	}
	return err
}

// portTakenError marks a start that failed because a port was in use.
type portTakenError struct{ err error }

func (e *portTakenError) Error() string { return e.err.Error() }
func (e *portTakenError) Unwrap() error { return e.err }

func looksLikePortTaken(logs ...string) bool {
	for _, l := range logs {
		if strings.Contains(l, "Address already in use") || strings.Contains(l, "BindException") {
			return true
		}
	}
	return false
}

// waitReady polls ping until it succeeds, the process exits, or the timeout.
// The returned error carries the tail of the server's logs.
func waitReady(ctx context.Context, o *Options, name string, p *process, logs []string, ping func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	logTails := func() string {
		var b strings.Builder
		for _, l := range logs {
			fmt.Fprintf(&b, "\n  last lines of %s:\n%s", l, fileTail(l, 30))
		}
		return b.String()
	}
	var lastErr error
	for {
		select {
		case <-p.exited:
			t := logTails()
			err := fmt.Errorf("%s exited before it was ready (%v)%s", name, p.waitErr, t)
			if looksLikePortTaken(t) {
				return &portTakenError{err}
			}
			return err
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		lastErr = ping(pctx)
		pcancel()
		if lastErr == nil {
			return nil
		}
		o.Log.Debug().Str("server", name).Err(lastErr).Msg("not ready yet")
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready after %v: %v%s", name, p.pid, o.ReadyTimeout, lastErr, logTails())
		case <-p.exited:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// abandon stops a process that Up started but will not record as ready.
func abandon(o *Options, p *process, marker string) {
	ctx, cancel := context.WithTimeout(context.Background(), o.StopTimeout+15*time.Second)
	defer cancel()
	if err := stopPID(ctx, p.pid, marker, o.StopTimeout); err != nil {
		o.Log.Error().Err(err).Int("pid", p.pid).Msg("cannot stop abandoned server")
		return
	}
	// Reap it: this process is its parent until Up returns.
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}
