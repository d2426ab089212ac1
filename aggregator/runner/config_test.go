package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "aggregator.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.FlushInterval != 5*time.Second || c.Insert.Mode != DefaultInsertMode || c.GroupID == "" || !c.Rollups {
		t.Errorf("defaults: %+v", c)
	}
}

// clearEnv removes every QOSCOPE_* variable for the test (the integration
// environment sets some).
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "QOSCOPE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestLoadConfigYAMLAndEnv(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, `
kafka:
  brokers: [k1:9092, k2:9092]
clickhouse:
  dsn: clickhouse://ch:9000/q
lateness: 1m
grouping_sets:
  client: [[], [province]]
group_id: g1
flush_interval: 2s
idle_after: 0s
insert:
  mode: native
  max_rows: 1000
consumer:
  session_timeout: 10s
`)
	t.Setenv("QOSCOPE_AGGREGATOR_FLUSH_INTERVAL", "3s")
	t.Setenv("QOSCOPE_AGGREGATOR_INSERT_TIMEOUT", "7s")
	t.Setenv("QOSCOPE_AGGREGATOR_LATE_HORIZON", "2h")
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(c.Kafka.Brokers) != 2, c.ClickHouse.DSN != "clickhouse://ch:9000/q", c.GroupID != "g1":
		t.Errorf("sections: %+v", c)
	case c.Aggregator.Lateness != aggregator.AllLateness(time.Minute) || len(c.Aggregator.GroupingSets.Client) != 2 || c.Aggregator.GroupingSets.CDN != nil:
		t.Errorf("windowing keys: %+v", c.Aggregator)
	case c.FlushInterval != 3*time.Second || c.Insert.Timeout != 7*time.Second || c.Aggregator.LateHorizon != 2*time.Hour:
		t.Errorf("environment overrides: flush %s timeout %s horizon %s", c.FlushInterval, c.Insert.Timeout, c.Aggregator.LateHorizon)
	case c.IdleAfter != 0 || c.Insert.Mode != InsertNative || c.Insert.MaxRows != 1000 || c.Consumer.SessionTimeout != 10*time.Second:
		t.Errorf("file keys: %+v", c)
	case c.Insert.RetryMax != 10*time.Second:
		t.Errorf("unset keys keep defaults: %+v", c.Insert)
	}
}

func TestLoadConfigRejectsUnknownKeys(t *testing.T) {
	clearEnv(t)
	_, err := LoadConfig(writeFile(t, "flush_intervall: 2s\n"))
	if err == nil || !strings.Contains(err.Error(), "flush_intervall") || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("want an error naming the key and line, got %v", err)
	}
}

func TestValidateNamesKeys(t *testing.T) {
	c := DefaultConfig()
	c.GroupID = ""
	c.StartOffset = "middle"
	c.FlushInterval = time.Millisecond
	c.IdleAfter = -time.Second
	c.Consumer.HeartbeatInterval = 20 * time.Second
	c.Insert.Mode = "csv"
	c.Insert.RetryMin = 0
	c.Aggregator.OriginNoDataMinutes = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"group_id", "start_offset", "flush_interval", "idle_after", "consumer.heartbeat_interval",
		"insert.mode", "insert.retry_min", "origin_no_data_minutes"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	c = DefaultConfig()
	c.ClickHouse.HTTP = "ftp://x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "clickhouse.http") {
		t.Errorf("bad clickhouse.http: %v", err)
	}
}

func TestHTTPURL(t *testing.T) {
	c := DefaultConfig()
	c.ClickHouse.HTTP = "http://h:8124/"
	if got, _ := c.httpURL(); got != "http://h:8124" {
		t.Errorf("clickhouse.http: %q", got)
	}
	for dsn, want := range map[string]string{
		"clickhouse://u:p@db.example:9000/q": "http://db.example:8123",
		"http://db.example:8124/q":           "http://db.example:8124",
		"https://db.example/q":               "https://db.example",
	} {
		c := DefaultConfig()
		c.ClickHouse.DSN = dsn
		if got, err := c.httpURL(); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", dsn, got, err, want)
		}
	}
}

func TestCrashHookFromEnv(t *testing.T) {
	t.Setenv(EnvCrashAt, "")
	if h, err := CrashHookFromEnv(); h != nil || err != nil {
		t.Fatalf("unset: %v %v", h != nil, err)
	}
	for _, bad := range []string{"somewhere", "after-rows:0", "after-rows:x"} {
		t.Setenv(EnvCrashAt, bad)
		if _, err := CrashHookFromEnv(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	t.Setenv(EnvCrashAt, "after-rows:2")
	h, err := CrashHookFromEnv()
	if err != nil || h == nil {
		t.Fatal(err)
	}
	h("after-checkpoint") // another point: ignored
	h("after-rows")       // first hit: not yet (the second one would kill the test)
}
