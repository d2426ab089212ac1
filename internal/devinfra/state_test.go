package devinfra

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestStateRoundTripThroughEnvFile(t *testing.T) {
	dir := t.TempDir()
	want := &State{
		Kafka: Server{Addr: "127.0.0.1:9092", PID: 42, Config: "/s/kafka/server.properties", DataDir: "/s/kafka/data", Log: "/s/kafka/kafka.log"},
		ClickHouse: Server{
			// External, with characters a shell or dotenv reader must not interpret.
			Addr: "clickhouse://u:p'a ss$x@db.example:9440/qo?secure=true",
			HTTP: "https://db.example:8443",
		},
	}
	if err := writeState(dir, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(StatePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600 (it may hold a password)", st.Mode().Perm())
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, *want)
	}
	if !got.ClickHouse.External() || got.Kafka.External() {
		t.Errorf("External: kafka %v clickhouse %v, want false true", got.Kafka.External(), got.ClickHouse.External())
	}
	b, _ := os.ReadFile(StatePath(dir))
	for _, line := range []string{
		"QOSCOPE_KAFKA_BROKERS=127.0.0.1:9092\n",
		"QOSCOPE_INFRA_KAFKA_PID=42\n",
		"QOSCOPE_INFRA_CLICKHOUSE_PID=external\n",
		`QOSCOPE_CLICKHOUSE_DSN='clickhouse://u:p'\''a ss$x@db.example:9440/qo?secure=true'` + "\n",
	} {
		if !bytes.Contains(b, []byte(line)) {
			t.Errorf("state file lacks %q:\n%s", line, b)
		}
	}
}

func TestStateRoundTripWithCluster(t *testing.T) {
	dir := t.TempDir()
	node := func(i int, tcp, http string) Server {
		d := "/s,x/clickhouse-node" + string(rune('0'+i)) // a comma in a path must survive
		return Server{
			Addr: "clickhouse://127.0.0.1:" + tcp + "/qoscope", HTTP: "http://127.0.0.1:" + http,
			PID: 100 + i, Config: d + "/config.xml", DataDir: d + "/data", Log: d + "/host.log",
		}
	}
	want := &State{
		Kafka:        Server{Addr: "127.0.0.1:9092", PID: 42, Config: "/s/kafka/server.properties"},
		ClickHouse:   Server{Addr: "clickhouse://127.0.0.1:9000/qoscope", HTTP: "http://127.0.0.1:8123", PID: 43, Config: "/s/clickhouse/config.xml"},
		ZooKeeper:    Server{Addr: "127.0.0.1:2182", PID: 44, Config: "/s/zookeeper/zoo.cfg", DataDir: "/s/zookeeper/data", Log: "/s/zookeeper/zookeeper.log"},
		ClusterNodes: []Server{node(1, "9001", "8124"), node(2, "9002", "8125")},
	}
	if err := writeState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, *want)
	}
	b, _ := os.ReadFile(StatePath(dir))
	for _, line := range []string{
		"QOSCOPE_INFRA_CLUSTER_NAME=qoscope_cluster\n",
		"QOSCOPE_INFRA_CLUSTER_DSNS=clickhouse://127.0.0.1:9001/qoscope,clickhouse://127.0.0.1:9002/qoscope\n",
		"QOSCOPE_INFRA_CLUSTER_HTTP=http://127.0.0.1:8124,http://127.0.0.1:8125\n",
		"QOSCOPE_INFRA_CLUSTER_NODE2_PID=102\n",
		"QOSCOPE_INFRA_ZOOKEEPER_PID=44\n",
		"QOSCOPE_INFRA_ZOOKEEPER_ADDR=127.0.0.1:2182\n",
	} {
		if !bytes.Contains(b, []byte(line)) {
			t.Errorf("state file lacks %q:\n%s", line, b)
		}
	}
	// Every variable but the three the config reads stays out of the
	// config's QOSCOPE_<SECTION>_<KEY> namespace.
	for k := range want.Vars() {
		if k != EnvKafkaBrokers && k != EnvClickHouseDSN && k != EnvClickHouseHTTP && !strings.HasPrefix(k, "QOSCOPE_INFRA_") {
			t.Errorf("state variable %s is in the config's env namespace", k)
		}
	}
}

func TestStateRoundTripWithKafkaBrokers(t *testing.T) {
	dir := t.TempDir()
	broker := func(i int) Server {
		d := "/s,x/kafka-broker" + string(rune('0'+i)) // a comma in a path must survive
		return Server{Addr: "127.0.0.1:" + string(rune('0'+i)) + "9092", PID: 200 + i,
			Config: d + "/server.properties", DataDir: d + "/data", Log: d + "/kafka.log"}
	}
	want := &State{
		Kafka:        Server{Addr: "127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"},
		KafkaBrokers: []Server{broker(1), broker(2), broker(3)},
		ClickHouse:   Server{Addr: "clickhouse://127.0.0.1:9000/qoscope", PID: 43, Config: "/s/clickhouse/config.xml"},
		Dir:          "/s,x",
	}
	if err := writeState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, *want)
	}
	b, _ := os.ReadFile(StatePath(dir))
	for _, line := range []string{
		"QOSCOPE_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092\n",
		"QOSCOPE_INFRA_KAFKA_BROKER_COUNT=3\n",
		"QOSCOPE_INFRA_KAFKA_BROKER2_PID=202\n",
		"QOSCOPE_INFRA_KAFKA_BROKER3_ADDR=127.0.0.1:39092\n",
		"QOSCOPE_INFRA_STATE_DIR=/s,x\n",
	} {
		if !bytes.Contains(b, []byte(line)) {
			t.Errorf("state file lacks %q:\n%s", line, b)
		}
	}
	// The single-broker variables would make an older `infra down` stop
	// one broker of three; they are not written.
	if bytes.Contains(b, []byte("QOSCOPE_INFRA_KAFKA_PID=")) {
		t.Errorf("state file has the single-broker QOSCOPE_INFRA_KAFKA_PID:\n%s", b)
	}
	for k := range want.Vars() {
		if k != EnvKafkaBrokers && k != EnvClickHouseDSN && !strings.HasPrefix(k, "QOSCOPE_INFRA_") {
			t.Errorf("state variable %s is in the config's env namespace", k)
		}
	}
	nodes := got.KafkaNodes()
	if len(nodes) != 3 || nodes[0].Name != "kafka-broker1" || nodes[2].Name != "kafka-broker3" || nodes[1].PID != 202 {
		t.Errorf("KafkaNodes = %+v", nodes)
	}
	if b, name, err := got.kafkaBroker(2); err != nil || name != "kafka-broker2" || b != &got.KafkaBrokers[1] {
		t.Errorf("kafkaBroker(2) = %v %q %v", b, name, err)
	}
	for _, id := range []int{0, 4} {
		if _, _, err := got.kafkaBroker(id); err == nil {
			t.Errorf("kafkaBroker(%d) of 3: no error", id)
		}
	}

	// A single managed broker is broker 1, an external Kafka has none.
	single := &State{Kafka: Server{Addr: "127.0.0.1:9092", PID: 42, Config: "/s/kafka/server.properties"}}
	if nodes := single.KafkaNodes(); len(nodes) != 1 || nodes[0].Name != "kafka" || nodes[0].PID != 42 {
		t.Errorf("single broker: KafkaNodes = %+v", nodes)
	}
	if b, _, err := single.kafkaBroker(1); err != nil || b != &single.Kafka {
		t.Errorf("single broker: kafkaBroker(1) = %v, %v", b, err)
	}
	external := &State{Kafka: Server{Addr: "kafka.example:9092"}}
	if nodes := external.KafkaNodes(); len(nodes) != 0 {
		t.Errorf("external kafka: KafkaNodes = %+v", nodes)
	}
	if _, _, err := external.kafkaBroker(1); err == nil {
		t.Error("external kafka: kafkaBroker(1) found a broker")
	}

	// Up interrupted after broker 2 started: down finds it, readers see no
	// broker list.
	partial := &State{KafkaBrokers: []Server{{}, broker(2), {}}}
	if v, ok := partial.Vars()[EnvKafkaBrokers]; ok {
		t.Errorf("%s=%q written before every broker started", EnvKafkaBrokers, v)
	}
	if err := writeState(dir, partial); err != nil {
		t.Fatal(err)
	}
	got, err = ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if nodes := got.KafkaNodes(); len(nodes) != 3 || nodes[1].PID != 202 || nodes[0].PID != 0 || got.Kafka.Addr != "" {
		t.Errorf("partial cluster read back: %+v", got)
	}
}

func TestStateWithPartOfTheClusterHidesItFromReaders(t *testing.T) {
	// Up was interrupted after node 2 started and before node 1 did: down
	// must find node 2 and ZooKeeper, tests must not see a cluster.
	dir := t.TempDir()
	st := &State{
		ClickHouse:   Server{Addr: "clickhouse://127.0.0.1:9000/qoscope", PID: 43, Config: "/s/clickhouse/config.xml"},
		ZooKeeper:    Server{Addr: "127.0.0.1:2182", PID: 44, Config: "/s/zookeeper/zoo.cfg"},
		ClusterNodes: []Server{{}, {Addr: "clickhouse://127.0.0.1:9002/qoscope", HTTP: "http://127.0.0.1:8125", PID: 102, Config: "/s/clickhouse-node2/config.xml", DataDir: "/s/clickhouse-node2/data"}},
	}
	vars := st.Vars()
	for _, k := range []string{EnvClusterName, EnvClusterDSNs, EnvClusterHTTP} {
		if v, ok := vars[k]; ok {
			t.Errorf("%s=%q written for an incomplete cluster", k, v)
		}
	}
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ClusterNodes) != 2 || got.ClusterNodes[0].PID != 0 || got.ClusterNodes[1].PID != 102 ||
		got.ClusterNodes[1].Config != "/s/clickhouse-node2/config.xml" || got.ClusterNodes[1].DataDir != "/s/clickhouse-node2/data" {
		t.Errorf("nodes read back: %+v", got.ClusterNodes)
	}
	if got.ZooKeeper.PID != 44 || got.ZooKeeper.Config != "/s/zookeeper/zoo.cfg" {
		t.Errorf("zookeeper read back: %+v", got.ZooKeeper)
	}
}

func TestWriteEnvExportLinesEvaluateInAShell(t *testing.T) {
	st := &State{Kafka: Server{Addr: "127.0.0.1:1"}, ClickHouse: Server{Addr: "a b'c"}}
	var b bytes.Buffer
	if err := st.WriteEnv(&b, true); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !strings.HasPrefix(l, "export QOSCOPE_") {
			t.Errorf("line %q is not an export", l)
		}
	}
	vars, err := parseEnvFile(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if vars[EnvClickHouseDSN] != "a b'c" || vars[EnvKafkaBrokers] != "127.0.0.1:1" {
		t.Errorf("parsed %v", vars)
	}
	// What `eval "$(qoscope infra env)"` does, with a child reading the result.
	out, err := exec.Command("sh", "-c", `eval "$1"; sh -c 'printf "%s|%s" "$QOSCOPE_CLICKHOUSE_DSN" "$QOSCOPE_KAFKA_BROKERS"'`, "sh", b.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	if string(out) != "a b'c|127.0.0.1:1" {
		t.Errorf("after eval a child sees %q, want %q", out, "a b'c|127.0.0.1:1")
	}
}

func TestReadStateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadState(dir); !errors.Is(err, ErrNoState) {
		t.Errorf("missing state: err %v, want ErrNoState", err)
	}
	for name, content := range map[string]string{
		"bad pid":     "QOSCOPE_KAFKA_BROKERS=x:1\nQOSCOPE_INFRA_KAFKA_PID=abc\n",
		"no equals":   "QOSCOPE_KAFKA_BROKERS\n",
		"open quote":  "QOSCOPE_KAFKA_BROKERS='x\n",
		"negative":    "QOSCOPE_INFRA_CLICKHOUSE_PID=-4\n",
		"trailing bs": "QOSCOPE_KAFKA_BROKERS=x\\\n",
		"node count":  "QOSCOPE_INFRA_CLUSTER_NODES=5\n",
		"bad count":   "QOSCOPE_INFRA_CLUSTER_NODES=two\n",
		"dsns count":  "QOSCOPE_INFRA_CLUSTER_NODES=2\nQOSCOPE_INFRA_CLUSTER_DSNS=clickhouse://a:1/q\n",
		"http count":  "QOSCOPE_INFRA_CLUSTER_NODES=1\nQOSCOPE_INFRA_CLUSTER_HTTP=http://a:1,http://b:2\n",
		"node pid":    "QOSCOPE_INFRA_CLUSTER_NODES=1\nQOSCOPE_INFRA_CLUSTER_NODE1_PID=x\n",
		"zk pid":      "QOSCOPE_INFRA_ZOOKEEPER_PID=0\n",
		"brokers":     "QOSCOPE_INFRA_KAFKA_BROKER_COUNT=4\n",
		"one broker":  "QOSCOPE_INFRA_KAFKA_BROKER_COUNT=1\n",
		"broker pid":  "QOSCOPE_INFRA_KAFKA_BROKER_COUNT=2\nQOSCOPE_INFRA_KAFKA_BROKER1_PID=x\n",
		"both kafkas": "QOSCOPE_INFRA_KAFKA_BROKER_COUNT=2\nQOSCOPE_INFRA_KAFKA_PID=4\n",
	} {
		if err := os.WriteFile(StatePath(dir), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadState(dir); err == nil || errors.Is(err, ErrNoState) {
			t.Errorf("%s: err %v, want a parse error", name, err)
		}
	}
}

func TestDefaultDirs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		env         map[string]string
		cache, stat string
	}{
		{map[string]string{"HOME": "/h"}, "/h/.cache/qoscope", "/h/.local/state/qoscope"},
		{map[string]string{"HOME": "/h", "XDG_CACHE_HOME": "/x", "XDG_STATE_HOME": "/y"}, "/x/qoscope", "/y/qoscope"},
		{map[string]string{"HOME": "/h", "XDG_CACHE_HOME": "/x", "QOSCOPE_CACHE_DIR": "/q", "QOSCOPE_STATE_DIR": "/r"}, "/q", "/r"},
	}
	for _, c := range cases {
		cache, err := DefaultCacheDir(env(c.env))
		if err != nil || cache != c.cache {
			t.Errorf("DefaultCacheDir(%v) = %q, %v; want %q", c.env, cache, err, c.cache)
		}
		state, err := DefaultStateDir(env(c.env))
		if err != nil || state != c.stat {
			t.Errorf("DefaultStateDir(%v) = %q, %v; want %q", c.env, state, err, c.stat)
		}
	}
	if _, err := DefaultCacheDir(env(nil)); err == nil {
		t.Error("DefaultCacheDir without HOME: want an error")
	}
}

func TestValidate(t *testing.T) {
	o := Options{CacheDir: "c", StateDir: "s"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(o.CacheDir) || !filepath.IsAbs(o.StateDir) {
		t.Errorf("dirs not made absolute: %q %q", o.CacheDir, o.StateDir)
	}
	if o.KafkaVersion != DefaultKafkaVersion || o.ReadyTimeout <= 0 || o.StopTimeout <= 0 || o.Java == "" {
		t.Errorf("defaults not filled: %+v", o)
	}
	if o.ClusterNodes != 0 {
		t.Errorf("ClusterNodes defaults to %d, want 0 (no cluster)", o.ClusterNodes)
	}
	for _, n := range []int{1, MaxClusterNodes} {
		ok := Options{CacheDir: "c", StateDir: "s", ClusterNodes: n}
		if err := ok.Validate(); err != nil {
			t.Errorf("ClusterNodes %d: %v", n, err)
		}
	}
	for _, n := range []int{-1, MaxClusterNodes + 1} {
		bad := Options{CacheDir: "c", StateDir: "s", ClusterNodes: n}
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "cluster nodes") {
			t.Errorf("ClusterNodes %d: err %v, want one about cluster nodes", n, err)
		}
	}
	if o.KafkaBrokerCount != 1 {
		t.Errorf("KafkaBrokerCount defaults to %d, want 1", o.KafkaBrokerCount)
	}
	for _, bad := range []Options{
		{CacheDir: "c", StateDir: "s", KafkaBrokerCount: MaxKafkaBrokers + 1},
		{CacheDir: "c", StateDir: "s", KafkaBrokerCount: -1},
		{CacheDir: "c", StateDir: "s", KafkaBrokerCount: 3, KafkaBrokers: "k:9092"},
		{CacheDir: "c", StateDir: "s", KafkaBrokerCount: 3, NoKafka: true},
	} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "kafka broker count") {
			t.Errorf("%+v: err %v, want one about the kafka broker count", bad, err)
		}
	}
	bad := Options{KafkaBrokers: "nohostport", ClickHouseHTTP: "http://x"}
	err := bad.Validate()
	for _, want := range []string{"cache dir", "state dir", "nohostport", "clickhouse http"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v does not mention %q", err, want)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/s/kafka/data", true},
		{"/s", false},
		{"/s/../etc", false},
		{"/other", false},
		{"", false},
		{"/s2/x", false},
	} {
		if got := within("/s", c.path); got != c.want {
			t.Errorf("within(/s, %q) = %v, want %v", c.path, got, c.want)
		}
	}
}
