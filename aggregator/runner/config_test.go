package runner

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.FlushInterval != 5*time.Second || c.Insert.Mode != DefaultInsertMode || c.GroupID == "" || !c.Rollups {
		t.Errorf("defaults: %+v", c)
	}
}

// Loading the aggregator section from the configuration file (keys,
// environment overrides, unknown keys) is tested in internal/appconfig.

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
