package devinfra

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Names of the variables in the state file. The first three are what tests,
// the demo and users read (they are also the config's env overrides); the
// QOSCOPE_INFRA_* ones let `infra down` find what to stop, and are kept out of
// the config's QOSCOPE_<SECTION>_<KEY> namespace.
const (
	EnvKafkaBrokers   = "QOSCOPE_KAFKA_BROKERS"
	EnvClickHouseDSN  = "QOSCOPE_CLICKHOUSE_DSN"
	EnvClickHouseHTTP = "QOSCOPE_CLICKHOUSE_HTTP"

	// The cluster of Options.ClusterNodes, for tests (internal/testenv):
	// its name, and its nodes' DSNs and HTTP URLs, comma-separated in
	// shard order. They are written only once every node is recorded, so
	// that a reader never sees part of a cluster. Deliberately not
	// QOSCOPE_CLICKHOUSE_*: every test and service reads those as config
	// overrides, and QOSCOPE_CLICKHOUSE_CLUSTER would switch the
	// single-server tests to cluster DDL.
	EnvClusterName = "QOSCOPE_INFRA_CLUSTER_NAME"
	EnvClusterDSNs = "QOSCOPE_INFRA_CLUSTER_DSNS"
	EnvClusterHTTP = "QOSCOPE_INFRA_CLUSTER_HTTP"
	// EnvZooKeeperAddr is the cluster's ZooKeeper, host:port.
	EnvZooKeeperAddr = "QOSCOPE_INFRA_ZOOKEEPER_ADDR"
	// EnvStateDir is the state directory itself: how a test that kills and
	// restarts brokers (KillKafkaBroker, RestartKafkaBroker) finds the
	// state to update.
	EnvStateDir = "QOSCOPE_INFRA_STATE_DIR"
	// EnvKafkaBrokerCount is the number of brokers of a managed Kafka of
	// more than one broker (Options.KafkaBrokerCount). Broker i (1-based,
	// its node.id) then has QOSCOPE_INFRA_KAFKA_BROKER<i>_{ADDR,PID,CONFIG,
	// DATA_DIR,LOG} (see brokerVar) instead of the QOSCOPE_INFRA_KAFKA_*
	// of a single broker, and QOSCOPE_KAFKA_BROKERS lists them all once
	// every one was started.
	EnvKafkaBrokerCount = "QOSCOPE_INFRA_KAFKA_BROKER_COUNT"

	envKafkaPID     = "QOSCOPE_INFRA_KAFKA_PID"
	envKafkaConfig  = "QOSCOPE_INFRA_KAFKA_CONFIG"
	envKafkaDataDir = "QOSCOPE_INFRA_KAFKA_DATA_DIR"
	envKafkaLog     = "QOSCOPE_INFRA_KAFKA_LOG"
	envCHPID        = "QOSCOPE_INFRA_CLICKHOUSE_PID"
	envCHConfig     = "QOSCOPE_INFRA_CLICKHOUSE_CONFIG"
	envCHDataDir    = "QOSCOPE_INFRA_CLICKHOUSE_DATA_DIR"
	envCHLog        = "QOSCOPE_INFRA_CLICKHOUSE_LOG"
	envZKPID        = "QOSCOPE_INFRA_ZOOKEEPER_PID"
	envZKConfig     = "QOSCOPE_INFRA_ZOOKEEPER_CONFIG"
	envZKDataDir    = "QOSCOPE_INFRA_ZOOKEEPER_DATA_DIR"
	envZKLog        = "QOSCOPE_INFRA_ZOOKEEPER_LOG"
	// envClusterNodes is the node count; each node i (1-based) has
	// QOSCOPE_INFRA_CLUSTER_NODE<i>_{PID,CONFIG,DATA_DIR,LOG} (see nodeVar):
	// one variable per value, because paths may contain commas.
	envClusterNodes   = "QOSCOPE_INFRA_CLUSTER_NODES"
	stateFileName     = "env"
	stateFileHeader   = "# written by `qoscope infra up`; read by `qoscope infra down|status|env` and the Taskfile.\n"
	externalPIDString = "external"
)

// State records the servers that Up started or adopted, as stored in the
// state file <StateDir>/env.
type State struct {
	// Kafka is what clients use: Addr is the bootstrap list
	// (QOSCOPE_KAFKA_BROKERS). An external Kafka has PID 0, a single
	// managed broker is Kafka itself. With KafkaBrokers, Kafka holds only
	// the list (use KafkaNodes, not Kafka.External, to tell them apart).
	Kafka Server
	// KafkaBrokers are the brokers of a managed Kafka of more than one
	// broker, KafkaBrokers[i] having node.id i+1; empty otherwise. An
	// element without PID is a broker Up has not started yet.
	KafkaBrokers []Server
	ClickHouse   Server
	// ZooKeeper and ClusterNodes are the cluster of Options.ClusterNodes:
	// empty without one. ClusterNodes[i] is shard i+1 of ClusterName; an
	// element without Addr is a node not started yet (Up was interrupted),
	// or one whose address was not written because another node was not.
	ZooKeeper    Server
	ClusterNodes []Server
	// Dir is the state directory as Up recorded it (EnvStateDir); empty in
	// state files older than it.
	Dir string
}

// brokerVar names the state variable key (ADDR, PID, CONFIG, DATA_DIR, LOG)
// of Kafka broker i (0-based) of a multi-broker Kafka.
func brokerVar(i int, key string) string {
	return "QOSCOPE_INFRA_KAFKA_BROKER" + strconv.Itoa(i+1) + "_" + key
}

// NamedServer is a server with its name in logs, Status and the state-dir
// layout: "kafka" or "kafka-broker<i>", "clickhouse", "clickhouse-node<i>",
// "zookeeper".
type NamedServer struct {
	Name string
	Server
}

// KafkaNodes returns the managed Kafka brokers in node.id order: the one
// broker named "kafka", or the brokers "kafka-broker1"... of a multi-broker
// Kafka; none for an external Kafka or none at all.
func (s *State) KafkaNodes() []NamedServer {
	if len(s.KafkaBrokers) > 0 {
		nodes := make([]NamedServer, len(s.KafkaBrokers))
		for i, b := range s.KafkaBrokers {
			nodes[i] = NamedServer{kafkaNodeName(len(s.KafkaBrokers), i+1), b}
		}
		return nodes
	}
	if s.Kafka.Addr != "" && !s.Kafka.External() {
		return []NamedServer{{kafkaNodeName(1, 1), s.Kafka}}
	}
	return nil
}

// kafkaBroker returns broker nodeID (1-based) of the managed Kafka of s, to
// be updated in place, and its name.
func (s *State) kafkaBroker(nodeID int) (*Server, string, error) {
	if n := len(s.KafkaBrokers); n > 0 {
		if nodeID < 1 || nodeID > n {
			return nil, "", fmt.Errorf("kafka broker %d: the recorded kafka has brokers 1 to %d", nodeID, n)
		}
		return &s.KafkaBrokers[nodeID-1], kafkaNodeName(n, nodeID), nil
	}
	if s.Kafka.Addr != "" && !s.Kafka.External() && nodeID == 1 {
		return &s.Kafka, kafkaNodeName(1, 1), nil
	}
	return nil, "", fmt.Errorf("kafka broker %d: no such broker was started here", nodeID)
}

// nodeVar names the state variable key (PID, CONFIG, DATA_DIR, LOG) of
// cluster node i (0-based).
func nodeVar(i int, key string) string {
	return "QOSCOPE_INFRA_CLUSTER_NODE" + strconv.Itoa(i+1) + "_" + key
}

// Server is one server in the state file. PID 0 means external: Up did not
// start it and Down leaves it alone.
type Server struct {
	// Addr is what clients use: the broker list for Kafka, the native DSN
	// for ClickHouse.
	Addr string
	// HTTP is ClickHouse's HTTP endpoint; empty for Kafka and possibly for
	// an external ClickHouse.
	HTTP string
	// PID leads the server's process group; 0 if external.
	PID int
	// Config is the server's config file. It appears in the process's
	// command line, which is how a recorded PID is told apart from a reused
	// one before it is signalled.
	Config string
	// DataDir and Log are removed or kept by Down; informational.
	DataDir string
	Log     string
}

// External reports whether the server was given, not started.
func (s Server) External() bool { return s.PID == 0 }

// StatePath returns the path of the state file in stateDir.
func StatePath(stateDir string) string { return filepath.Join(stateDir, stateFileName) }

// ErrNoState is returned by ReadState when no servers are recorded.
var ErrNoState = errors.New("no servers recorded (run `qoscope infra up`)")

// ReadState reads the state file in stateDir; ErrNoState if there is none.
func ReadState(stateDir string) (*State, error) {
	b, err := os.ReadFile(StatePath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read state: %w", err)
	}
	vars, err := parseEnvFile(b)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", StatePath(stateDir), err)
	}
	var st State
	var errs []error
	pid := func(key string) int {
		v := vars[key]
		if v == "" || v == externalPIDString {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a PID", key, v))
			return 0
		}
		return n
	}
	st.Dir = vars[EnvStateDir]
	if v := vars[EnvKafkaBrokerCount]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > MaxKafkaBrokers {
			errs = append(errs, fmt.Errorf("%s: %q is not a broker count (2-%d)", EnvKafkaBrokerCount, v, MaxKafkaBrokers))
			n = 0
		}
		if vars[envKafkaPID] != "" {
			errs = append(errs, fmt.Errorf("%s and %s: a single broker and a multi-broker kafka", envKafkaPID, EnvKafkaBrokerCount))
		}
		st.Kafka = Server{Addr: vars[EnvKafkaBrokers]}
		for i := range n {
			st.KafkaBrokers = append(st.KafkaBrokers, Server{
				Addr: vars[brokerVar(i, "ADDR")], PID: pid(brokerVar(i, "PID")), Config: vars[brokerVar(i, "CONFIG")],
				DataDir: vars[brokerVar(i, "DATA_DIR")], Log: vars[brokerVar(i, "LOG")],
			})
		}
	} else {
		st.Kafka = Server{
			Addr: vars[EnvKafkaBrokers], PID: pid(envKafkaPID), Config: vars[envKafkaConfig],
			DataDir: vars[envKafkaDataDir], Log: vars[envKafkaLog],
		}
	}
	st.ClickHouse = Server{
		Addr: vars[EnvClickHouseDSN], HTTP: vars[EnvClickHouseHTTP], PID: pid(envCHPID),
		Config: vars[envCHConfig], DataDir: vars[envCHDataDir], Log: vars[envCHLog],
	}
	st.ZooKeeper = Server{
		Addr: vars[EnvZooKeeperAddr], PID: pid(envZKPID), Config: vars[envZKConfig],
		DataDir: vars[envZKDataDir], Log: vars[envZKLog],
	}
	if v := vars[envClusterNodes]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxClusterNodes {
			errs = append(errs, fmt.Errorf("%s: %q is not a node count (1-%d)", envClusterNodes, v, MaxClusterNodes))
			n = 0
		}
		list := func(key string) []string {
			if vars[key] == "" {
				return nil
			}
			l := strings.Split(vars[key], ",")
			if len(l) != n {
				errs = append(errs, fmt.Errorf("%s: %d entries for %d nodes", key, len(l), n))
				return nil
			}
			return l
		}
		dsns, https := list(EnvClusterDSNs), list(EnvClusterHTTP)
		for i := range n {
			node := Server{
				PID: pid(nodeVar(i, "PID")), Config: vars[nodeVar(i, "CONFIG")],
				DataDir: vars[nodeVar(i, "DATA_DIR")], Log: vars[nodeVar(i, "LOG")],
			}
			if dsns != nil {
				node.Addr = dsns[i]
			}
			if https != nil {
				node.HTTP = https[i]
			}
			st.ClusterNodes = append(st.ClusterNodes, node)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", StatePath(stateDir), err)
	}
	return &st, nil
}

// Vars returns the state as variables. Empty values are left out so that a
// half-written state (Up interrupted between the servers) stays readable.
func (s *State) Vars() map[string]string {
	m := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	pidString := func(srv Server) string {
		if srv.Addr == "" {
			return ""
		}
		if srv.External() {
			return externalPIDString
		}
		return strconv.Itoa(srv.PID)
	}
	put(EnvStateDir, s.Dir)
	if len(s.KafkaBrokers) > 0 {
		put(EnvKafkaBrokerCount, strconv.Itoa(len(s.KafkaBrokers)))
		addrs := make([]string, len(s.KafkaBrokers))
		started := true
		for i, b := range s.KafkaBrokers {
			// Brokers are never external: a broker is recorded with its PID.
			if b.PID > 0 {
				put(brokerVar(i, "PID"), strconv.Itoa(b.PID))
			}
			put(brokerVar(i, "ADDR"), b.Addr)
			put(brokerVar(i, "CONFIG"), b.Config)
			put(brokerVar(i, "DATA_DIR"), b.DataDir)
			put(brokerVar(i, "LOG"), b.Log)
			addrs[i] = b.Addr
			started = started && b.PID > 0 && b.Addr != ""
		}
		// Like the ClickHouse cluster: readers see all brokers or none.
		if started {
			put(EnvKafkaBrokers, strings.Join(addrs, ","))
		}
	} else {
		put(EnvKafkaBrokers, s.Kafka.Addr)
		put(envKafkaPID, pidString(s.Kafka))
		put(envKafkaConfig, s.Kafka.Config)
		put(envKafkaDataDir, s.Kafka.DataDir)
		put(envKafkaLog, s.Kafka.Log)
	}
	put(EnvClickHouseDSN, s.ClickHouse.Addr)
	put(EnvClickHouseHTTP, s.ClickHouse.HTTP)
	put(envCHPID, pidString(s.ClickHouse))
	put(envCHConfig, s.ClickHouse.Config)
	put(envCHDataDir, s.ClickHouse.DataDir)
	put(envCHLog, s.ClickHouse.Log)
	put(EnvZooKeeperAddr, s.ZooKeeper.Addr)
	put(envZKPID, pidString(s.ZooKeeper))
	put(envZKConfig, s.ZooKeeper.Config)
	put(envZKDataDir, s.ZooKeeper.DataDir)
	put(envZKLog, s.ZooKeeper.Log)
	if len(s.ClusterNodes) == 0 {
		return m
	}
	put(envClusterNodes, strconv.Itoa(len(s.ClusterNodes)))
	dsns := make([]string, len(s.ClusterNodes))
	https := make([]string, len(s.ClusterNodes))
	complete, withHTTP := true, true
	for i, node := range s.ClusterNodes {
		// Nodes are never external: a node is recorded with its PID.
		if node.PID > 0 {
			put(nodeVar(i, "PID"), strconv.Itoa(node.PID))
		}
		put(nodeVar(i, "CONFIG"), node.Config)
		put(nodeVar(i, "DATA_DIR"), node.DataDir)
		put(nodeVar(i, "LOG"), node.Log)
		dsns[i], https[i] = node.Addr, node.HTTP
		complete = complete && node.Addr != ""
		withHTTP = withHTTP && node.HTTP != ""
	}
	if complete {
		put(EnvClusterName, ClusterName)
		put(EnvClusterDSNs, strings.Join(dsns, ","))
		if withHTTP {
			put(EnvClusterHTTP, strings.Join(https, ","))
		}
	}
	return m
}

// WriteEnv writes the state as KEY=value lines that both a POSIX shell
// (`set -a; . file`) and dotenv readers (go-task's `dotenv:`) accept. With
// export set, every line starts with "export ", for `eval "$(qoscope infra env)"`.
func (s *State) WriteEnv(w io.Writer, export bool) error {
	vars := s.Vars()
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	prefix := ""
	if export {
		prefix = "export "
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%s=%s\n", prefix, k, shellQuote(vars[k]))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeState replaces the state file atomically. It is private (0600): an
// external DSN may carry a password.
func writeState(stateDir string, st *State) error {
	var b bytes.Buffer
	b.WriteString(stateFileHeader)
	if err := st.WriteEnv(&b, false); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(stateDir, ".env-*")
	if err != nil {
		return fmt.Errorf("cannot write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write state: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), StatePath(stateDir)); err != nil {
		return fmt.Errorf("cannot write state: %w", err)
	}
	return nil
}

// shellQuote leaves plain values bare (dotenv readers then see exactly the
// value) and single-quotes anything else.
func shellQuote(v string) string {
	plain := v != ""
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:@,+=%", r)) {
			plain = false
			break
		}
	}
	if plain {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// parseEnvFile reads what WriteEnv writes: comments, blank lines, optional
// "export ", bare or single-quoted values (with the '\” idiom).
func parseEnvFile(b []byte) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, raw, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: want KEY=value", n)
		}
		v, err := shellUnquote(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, k, err)
		}
		vars[k] = v
	}
	return vars, sc.Err()
}

func shellUnquote(s string) (string, error) {
	var out strings.Builder
	for len(s) > 0 {
		switch {
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			out.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case s[0] == '\\':
			if len(s) == 1 {
				return "", errors.New("trailing backslash")
			}
			out.WriteByte(s[1])
			s = s[2:]
		default:
			i := strings.IndexAny(s, `'\`)
			if i < 0 {
				i = len(s)
			}
			out.WriteString(s[:i])
			s = s[i:]
		}
	}
	return out.String(), nil
}
