package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Kafka      Kafka      `yaml:"kafka" envPrefix:"KAFKA_"`
	ClickHouse ClickHouse `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	Log        Log        `yaml:"log" envPrefix:"LOG_"`
}

func (c *testConfig) Validate() error {
	var errs Errors
	c.Kafka.Validate("kafka", &errs)
	c.ClickHouse.Validate("clickhouse", &errs)
	c.Log.Validate("log", &errs)
	return errs.Err()
}

// clearEnv removes QOSCOPE_* variables for the test (restored afterwards): the
// test harness itself exports QOSCOPE_KAFKA_BROKERS and QOSCOPE_CLICKHOUSE_DSN.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, EnvPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func defaults() *testConfig {
	return &testConfig{Kafka: DefaultKafka(), ClickHouse: DefaultClickHouse(), Log: DefaultLog()}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	clearEnv(t)
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileThenEnvOverride(t *testing.T) {
	p := writeFile(t, "kafka:\n  brokers: [a:1, b:2]\n  dial_timeout: 3s\nlog:\n  level: debug\n")
	t.Setenv("QOSCOPE_CLICKHOUSE_DSN", "clickhouse://u:secret@h:9000/db1")
	t.Setenv("QOSCOPE_KAFKA_TOPIC_CLIENT", "c2")
	c := defaults()
	if err := Load(p, c); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Kafka.Brokers, ","); got != "a:1,b:2" {
		t.Errorf("brokers = %q, want a:1,b:2 from the file", got)
	}
	if c.Kafka.DialTimeout != 3*time.Second {
		t.Errorf("dial_timeout = %v, want 3s", c.Kafka.DialTimeout)
	}
	if c.Kafka.Topics.Client != "c2" || c.Kafka.Topics.CDN != "qoscope.cdn" {
		t.Errorf("topics = %+v, want client overridden by env and cdn default", c.Kafka.Topics)
	}
	if c.ClickHouse.DSN != "clickhouse://u:secret@h:9000/db1" {
		t.Errorf("dsn not taken from env: %q", c.ClickHouse.DSN)
	}
	if strings.Contains(c.ClickHouse.Redacted(), "secret") {
		t.Errorf("Redacted leaks the password: %s", c.ClickHouse.Redacted())
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q", c.Log.Level)
	}
}

func TestEnvWinsOverFile(t *testing.T) {
	p := writeFile(t, "kafka:\n  brokers: [file:1]\n")
	t.Setenv("QOSCOPE_KAFKA_BROKERS", "env1:9092,env2:9092")
	c := defaults()
	if err := Load(p, c); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Kafka.Brokers, ","); got != "env1:9092,env2:9092" {
		t.Fatalf("brokers = %q, want the env value", got)
	}
}

func TestUnknownKeyNamesLineAndKey(t *testing.T) {
	p := writeFile(t, "kafka:\n  brokers: [a:1]\n  brokrs: [b:2]\n")
	err := Load(p, defaults())
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	for _, want := range []string{"line 3", "brokrs", p} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestValidateNamesEveryBadKey(t *testing.T) {
	p := writeFile(t, "kafka:\n  brokers: [nohostport]\nlog:\n  level: loud\nclickhouse:\n  dsn: clickhouse://h:9000\n")
	err := Load(p, defaults())
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"kafka.brokers[0]", "log.level", "clickhouse.dsn: must name a database"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBadDSNErrorHidesPassword(t *testing.T) {
	clearEnv(t)
	t.Setenv("QOSCOPE_CLICKHOUSE_DSN", "mysql://u:hunter2@h/db")
	err := Load("", defaults())
	if err == nil || !strings.Contains(err.Error(), "clickhouse.dsn") {
		t.Fatalf("want a clickhouse.dsn error, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestEmptyFileKeepsDefaults(t *testing.T) {
	c := defaults()
	if err := Load(writeFile(t, ""), c); err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Topics.DeadLetter != "qoscope.deadletter" {
		t.Fatalf("defaults lost: %+v", c.Kafka.Topics)
	}
}

func TestTwoDocumentsRejected(t *testing.T) {
	if err := Load(writeFile(t, "log:\n  level: info\n---\nlog:\n  level: debug\n"), defaults()); err == nil {
		t.Fatal("two YAML documents accepted")
	}
}

func TestBadEnvTypeNamesVariable(t *testing.T) {
	clearEnv(t)
	t.Setenv("QOSCOPE_KAFKA_DIAL_TIMEOUT", "soon")
	err := Load("", defaults())
	if err == nil || !strings.Contains(err.Error(), "QOSCOPE_KAFKA_DIAL_TIMEOUT") {
		t.Fatalf("want an error naming QOSCOPE_KAFKA_DIAL_TIMEOUT, got %v", err)
	}
}
