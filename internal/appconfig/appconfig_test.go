package appconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
)

// clearEnv removes QOSCOPE_* variables for the test (the integration
// environment exports some).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "QOSCOPE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qoscope.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const tok = "sdk-token-0123456789abcdef"

// One file, every command: each takes the shared sections and its own.
const full = `kafka:
  brokers: [k1:9092, k2:9092]
  topics: {client: c1}
clickhouse:
  dsn: clickhouse://ch:9000/q
log: {level: debug}
ingest:
  listen: 127.0.0.1:9999
  limits: {max_lines: 500}
  tokens:
    - {name: sdk, token: ` + tok + `, sources: [client]}
aggregator:
  lateness: 6m
  grouping_sets:
    client: [[], [province]]
  group_id: g1
  flush_interval: 2s
  idle_after: 0s
  insert: {mode: native, max_rows: 1000}
  consumer: {session_timeout: 10s}
all_in_one:
  migrate: false
`

func TestSectionsAndEnvOverrides(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, full)
	t.Setenv("QOSCOPE_KAFKA_BROKERS", "e1:9092")
	t.Setenv("QOSCOPE_INGEST_LIMITS_MAX_LINES", "700")
	t.Setenv("QOSCOPE_AGGREGATOR_FLUSH_INTERVAL", "3s")
	t.Setenv("QOSCOPE_AGGREGATOR_INSERT_TIMEOUT", "7s")
	t.Setenv("QOSCOPE_AGGREGATOR_LATE_HORIZON", "2h")
	t.Setenv("QOSCOPE_ALL_IN_ONE_DEMO_USERS", "50")

	in, err := LoadIngest(p)
	if err != nil {
		t.Fatal(err)
	}
	if in.Listen != "127.0.0.1:9999" || in.Limits.MaxLines != 700 || strings.Join(in.Kafka.Brokers, ",") != "e1:9092" ||
		in.Kafka.Topics.Client != "c1" || in.Kafka.Topics.CDN != "qoscope.cdn" || in.Log.Level != "debug" || len(in.Tokens) != 1 {
		t.Errorf("ingest: %+v", in)
	}

	c, err := LoadAggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Join(c.Kafka.Brokers, ",") != "e1:9092", c.ClickHouse.DSN != "clickhouse://ch:9000/q", c.Log.Level != "debug", c.GroupID != "g1":
		t.Errorf("shared sections: %+v", c)
	case c.Aggregator.Lateness != aggregator.AllLateness(6*time.Minute) || len(c.Aggregator.GroupingSets.Client) != 2:
		t.Errorf("windowing keys: %+v", c.Aggregator)
	case len(c.Aggregator.GroupingSets.CDN) != len(aggregator.DefaultGroupingSets().CDN):
		t.Errorf("a source left out keeps its default sets: %v", c.Aggregator.GroupingSets.CDN)
	case c.FlushInterval != 3*time.Second || c.Insert.Timeout != 7*time.Second || c.Aggregator.LateHorizon != 2*time.Hour:
		t.Errorf("environment overrides: flush %s timeout %s horizon %s", c.FlushInterval, c.Insert.Timeout, c.Aggregator.LateHorizon)
	case c.IdleAfter != 0 || c.Insert.Mode != runner.InsertNative || c.Insert.MaxRows != 1000 || c.Consumer.SessionTimeout != 10*time.Second:
		t.Errorf("file keys: %+v", c)
	case c.Insert.RetryMax != 10*time.Second:
		t.Errorf("unset keys keep defaults: %+v", c.Insert)
	}

	a, err := LoadAllInOne(p, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Migrate || a.Demo.Users != 50 || a.Listen != "127.0.0.1:9999" || a.Aggregator.GroupID != "g1" ||
		a.Aggregator.ClickHouse.DSN != "clickhouse://ch:9000/q" || a.Embedded() || a.OneRunToken {
		t.Errorf("all-in-one: %+v", a)
	}
}

// Each command validates only what it uses, but decodes the whole file
// strictly: a typo in another section still fails, naming line and key.
func TestOtherSectionsStrictButNotValidated(t *testing.T) {
	clearEnv(t)
	// No ingest tokens: aggregate does not care.
	p := writeFile(t, "aggregator:\n  group_id: g\ningest:\n  listen: ':1'\n")
	if _, err := LoadAggregate(p); err != nil {
		t.Fatalf("aggregate refused a file whose ingest section lacks tokens: %v", err)
	}
	p = writeFile(t, "ingest:\n  tokens: [{name: sdk, token: "+tok+", sources: [client]}]\naggregator:\n  flush_intervall: 2s\n")
	_, err := LoadIngest(p)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "flush_intervall") {
		t.Fatalf("want an error naming line 4 and flush_intervall, got %v", err)
	}
}

func TestErrorsNameKeyPaths(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "kafka:\n  brokers: [nohostport]\ningest:\n  listen: ''\naggregator:\n  flush_interval: 1ms\n  insert: {mode: csv}\n")
	_, err := LoadAggregate(p)
	if err == nil || !IsInvalid(err) {
		t.Fatalf("want an InvalidError, got %v", err)
	}
	for _, want := range []string{"kafka.brokers[0]", "aggregator.flush_interval", "aggregator.insert.mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	_, err = LoadIngest(p)
	for _, want := range []string{"kafka.brokers[0]", "ingest.listen: required", "ingest.tokens: at least one token is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// The error for a missing token says where tokens go.
func TestNoTokensSaysWhere(t *testing.T) {
	clearEnv(t)
	_, err := LoadIngest("")
	for _, want := range []string{"ingest.tokens: at least one token is required", "ingest: {tokens: [{name: sdk, token_env: QOSCOPE_TOKEN_SDK", "export QOSCOPE_TOKEN_SDK"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	// all-in-one with a file but no tokens: the same error.
	_, err = LoadAllInOne(writeFile(t, "log: {level: info}\n"), false, "")
	if err == nil || !strings.Contains(err.Error(), "ingest.tokens: at least one token is required") {
		t.Errorf("all-in-one with a tokenless file: %v", err)
	}
}

// all-in-one without any file generates a token for the run.
func TestAllInOneWithoutFile(t *testing.T) {
	clearEnv(t)
	a, err := LoadAllInOne("", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !a.OneRunToken || len(a.Tokens) != 1 || len(a.Tokens[0].Token) != 48 || !a.Embedded() || a.Demo.Enabled {
		t.Fatalf("no file: one-run token %v, tokens %d, embedded %v, demo %v", a.OneRunToken, len(a.Tokens), a.Embedded(), a.Demo.Enabled)
	}
	b, err := LoadAllInOne("", false, "")
	if err != nil || b.Tokens[0].Token == a.Tokens[0].Token {
		t.Fatalf("two runs share a token or fail: %v", err)
	}
	d, err := LoadAllInOne("", true, "/state")
	if err != nil || d.OneRunToken || !d.Demo.Enabled || d.Tokens[0].Name != "demo" || d.EmbeddedKafka.DataDir != "/state/kafka-embedded" {
		t.Fatalf("demo: %+v, %v", d.Section, err)
	}
}

// The embedded broker runs exactly when no broker is configured, unless
// all_in_one.embedded_kafka.enabled says otherwise.
func TestEmbeddedKafkaChoice(t *testing.T) {
	clearEnv(t)
	tokens := "ingest:\n  tokens: [{name: sdk, token: " + tok + ", sources: [client]}]\n"
	for _, tc := range []struct {
		name, file, env string
		embedded        bool
		err             string
	}{
		{name: "nothing configured", file: tokens, embedded: true},
		{name: "brokers in the file", file: tokens + "kafka: {brokers: [k:9092]}\n"},
		{name: "brokers in the environment", file: tokens, env: "k:9092"},
		{name: "forced on with brokers", file: tokens + "kafka: {brokers: [k:9092]}\nall_in_one: {embedded_kafka: {enabled: true}}\n",
			err: "all_in_one.embedded_kafka.enabled: true, but kafka.brokers is set too ([k:9092])"},
		{name: "forced off without brokers", file: tokens + "all_in_one: {embedded_kafka: {enabled: false}}\n",
			err: "kafka.brokers: required when all_in_one.embedded_kafka.enabled is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("QOSCOPE_KAFKA_BROKERS", tc.env)
			}
			a, err := LoadAllInOne(writeFile(t, tc.file), false, "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil || a.Embedded() != tc.embedded {
				t.Fatalf("embedded %v, want %v (%v)", a.Embedded(), tc.embedded, err)
			}
		})
	}
	t.Setenv("QOSCOPE_ALL_IN_ONE_EMBEDDED_KAFKA_ENABLED", "false")
	if _, err := LoadAllInOne(writeFile(t, tokens), false, ""); err == nil || !strings.Contains(err.Error(), "kafka.brokers: required") {
		t.Fatalf("QOSCOPE_ALL_IN_ONE_EMBEDDED_KAFKA_ENABLED=false without brokers: %v", err)
	}
}

// A file of the layout before sections says where each key moved.
func TestOldLayoutSaysWhereKeysMoved(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "listen: ':8080'\nkafka: {brokers: [k:9092]}\ntokens: []\nshutdown_timeout: 5s\nflush_interval: 1s\nembedded_kafka: {enabled: true}\nmigrate: true\n")
	_, err := LoadIngest(p)
	if err == nil {
		t.Fatal("old layout accepted")
	}
	for _, want := range []string{
		"line 1: listen: moved to ingest.listen",
		"line 3: tokens: moved to ingest.tokens",
		"line 4: shutdown_timeout: moved to ingest.shutdown_timeout or aggregator.shutdown_timeout",
		"line 5: flush_interval: moved to aggregator.flush_interval",
		"line 6: embedded_kafka: moved to all_in_one.embedded_kafka",
		"line 7: migrate: true moved to all_in_one.migrate",
		"deploy/config/qoscope.yaml",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "line 2") {
		t.Errorf("kafka is a section of the new layout too: %v", err)
	}
}

// --print-config: every default filled in, durations readable, secrets
// redacted, and the output is itself a file that loads to the same
// configuration.
func TestPrintRoundTrips(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, full)
	t.Setenv("QOSCOPE_CLICKHOUSE_DSN", "clickhouse://u:hunter2@ch:9000/q")
	a, err := LoadAllInOne(p, false, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := PrintAllInOne(&out, a); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, secret := range []string{tok, "hunter2"} {
		if strings.Contains(text, secret) {
			t.Errorf("printed config leaks %q:\n%s", secret, text)
		}
	}
	for _, want := range []string{
		"token: <redacted>", "dsn: clickhouse://u:xxxxx@ch:9000/q",
		"  flush_interval: 2s\n", "  read_timeout: 1m0s\n", // a default, as a duration
		"  retry_max: 10s\n", "    enabled: false\n", "all_in_one:\n", "  migrate: false\n",
		"    client: 6m0s\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("printed config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\nmigrate:") {
		t.Errorf("all-in-one printed the migrate command's section:\n%s", text)
	}

	// Load the printed file (with a real secret again) and print it: same text.
	clearEnv(t)
	again := strings.Replace(text, "token: <redacted>", "token: "+tok, 1)
	again = strings.Replace(again, "u:xxxxx@", "u:hunter2@", 1)
	b, err := LoadAllInOne(writeFile(t, again), false, "")
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, again)
	}
	var out2 bytes.Buffer
	if err := PrintAllInOne(&out2, b); err != nil {
		t.Fatal(err)
	}
	if out2.String() != text {
		t.Errorf("print → load → print changed the configuration:\n%s\n---\n%s", text, out2.String())
	}
}

func TestPrintIngestAndAggregateSections(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, full)
	in, err := LoadIngest(p)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := PrintIngest(&out, in); err != nil {
		t.Fatal(err)
	}
	if got := topKeys(out.String()); got != "kafka,log,ingest" {
		t.Errorf("ingest prints sections %s, want kafka,log,ingest", got)
	}
	ag, err := LoadAggregate(p)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := PrintAggregate(&out, ag); err != nil {
		t.Fatal(err)
	}
	if got := topKeys(out.String()); got != "kafka,clickhouse,log,aggregator" {
		t.Errorf("aggregate prints sections %s, want kafka,clickhouse,log,aggregator", got)
	}
}

func topKeys(yml string) string {
	var keys []string
	for _, l := range strings.Split(yml, "\n") {
		if l != "" && l[0] != ' ' {
			k, _, _ := strings.Cut(l, ":")
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, ",")
}
