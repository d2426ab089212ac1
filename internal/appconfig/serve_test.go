package appconfig

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const readTok = "wall-token-0123456789abcdef"

// serve reads clickhouse, log, the aggregator's grouping sets and its own
// section; QOSCOPE_SERVE_* override the file; secrets never print.
func TestLoadServe(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, `clickhouse: {dsn: "clickhouse://ch:9000/q"}
aggregator:
  grouping_sets: {client: [[], [province]]}
serve:
  listen: 127.0.0.1:9100
  tokens: [{name: wall, token: `+readTok+`, scopes: [read]}]
  limits: {max_rows: 5000}
  live: {poll: 200ms}
`)
	t.Setenv("QOSCOPE_SERVE_LIMITS_MAX_GROUPS", "7")
	cfg, err := LoadServe(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9100" || cfg.Limits.MaxRows != 5000 || cfg.Limits.MaxGroups != 7 || cfg.Limits.MaxLimit != 1000 ||
		cfg.Live.Poll != 200*time.Millisecond || cfg.ClickHouse.DSN != "clickhouse://ch:9000/q" || len(cfg.Aggregator.GroupingSets.Client) != 2 {
		t.Fatalf("serve config: %+v", cfg)
	}
	var b bytes.Buffer
	if err := PrintServe(&b, cfg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, readTok) || !strings.Contains(out, "token: "+Redacted) || !strings.Contains(out, "max_rows: 5000") || strings.Contains(out, "\ningest:") {
		t.Errorf("print-config:\n%s", out)
	}
}

func TestLoadServeErrorsNameKeys(t *testing.T) {
	clearEnv(t)
	_, err := LoadServe(writeFile(t, "serve:\n  listen: nowhere\n  tokens: [{name: x, token: "+readTok+", scopes: [ingest:client]}]\n  limits: {max_rows: 0}\n"))
	if err == nil || !IsInvalid(err) {
		t.Fatalf("want an invalid config, got %v", err)
	}
	for _, want := range []string{`serve.listen: "nowhere" is not host:port`, `serve.tokens[0].scopes: "ingest:client" is not a scope of serve`,
		"serve.tokens: at least one token with scope read", "serve.limits.max_rows: must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = LoadServe(writeFile(t, "serve:\n  lisen: 127.0.0.1:1\n"))
	if err == nil || !strings.Contains(err.Error(), "lisen") {
		t.Errorf("unknown key: %v", err)
	}
}

// The scores section: off by default, validated once on, the kafka
// section shared with its topic.
func TestLoadServeScores(t *testing.T) {
	clearEnv(t)
	base := "serve:\n  tokens: [{name: wall, token: " + tok + ", scopes: [read]}]\nkafka: {brokers: [k1:9092]}\n"
	c, err := LoadServe(writeFile(t, base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Scores.Enabled() || c.Scores.Interval != time.Minute || c.Scores.HoldTime != 10*time.Minute || c.Scores.KafkaTopic != "qoscope.scores" {
		t.Errorf("defaults: %+v", c.Scores)
	}
	c, err = LoadServe(writeFile(t, base+"scores: {config: s.yaml, hold_time: 3m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Scores.Enabled() || c.Scores.HoldTime != 3*time.Minute || len(c.Scores.Kafka.Brokers) != 1 || c.Scores.Kafka.Brokers[0] != "k1:9092" {
		t.Errorf("scores: %+v", c.Scores)
	}
	_, err = LoadServe(writeFile(t, base+"scores: {config: s.yaml, interval: 5m, stale_after: 1m, hold_time: -1s}\n"))
	for _, want := range []string{"scores.stale_after: 1m0s is below interval 5m0s", "scores.hold_time: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// The alert section: decoded, overridden by QOSCOPE_ALERT_*, validated with
// key paths; kafka.brokers reach the evaluator only when configured (none:
// single-instance mode), with the aggregators' group id and topics.
func TestLoadServeAlert(t *testing.T) {
	clearEnv(t)
	base := "serve:\n  tokens: [{name: wall, token: " + readTok + ", scopes: [read]}]\n"
	cfg, err := LoadServe(writeFile(t, base+"aggregator: {group_id: aggs}\nalert:\n  rules: /etc/r.yaml\n  leader: {topic: lead}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Alert
	if a.Rules != "/etc/r.yaml" || a.Leader.Topic != "lead" || a.Leader.GroupID != "qoscope-alert-leader" || a.Brokers != nil ||
		a.AggregatorGroup != "aggs" || a.Topics.Client != "qoscope.client" || a.DiagnosisWindow != 30*time.Minute || !a.Active() {
		t.Fatalf("alert config: %+v", a)
	}
	t.Setenv("QOSCOPE_ALERT_EVALUATION_INTERVAL", "2s")
	t.Setenv("QOSCOPE_KAFKA_BROKERS", "k1:9092,k2:9092")
	cfg, err = LoadServe(writeFile(t, base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alert.Evaluation.Interval != 2*time.Second || len(cfg.Alert.Brokers) != 2 || cfg.Alert.Active() {
		t.Fatalf("alert config from env: %+v", cfg.Alert)
	}
	clearEnv(t)
	_, err = LoadServe(writeFile(t, base+"alert:\n  evaluation: {interval: 0s}\n  leader: {heartbeat_interval: 5s, session_timeout: 10s}\n  diagnosis_window: 90s\n"))
	for _, want := range []string{"alert.evaluation.interval: 0s is outside", "alert.leader.heartbeat_interval: 5s must be positive and at most a third",
		"alert.diagnosis_window: 1m30s is not a whole number of minutes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// --print-config never shows a receiver's secret nor a robot's URL (it
// carries the robot's token); a webhook's URL is shown.
func TestPrintServeRedactsReceivers(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "serve:\n  tokens: [{name: wall, token: "+readTok+", scopes: [read]}]\n"+
		"alert:\n  notify:\n    receivers:\n"+
		"      - {name: hook, type: webhook, url: 'https://hooks.example/q', secret: hmac-secret-123}\n"+
		"      - {name: ding, type: dingtalk, url: 'https://oapi.dingtalk.com/robot/send?access_token=robot-tok-456'}\n")
	cfg, err := LoadServe(p)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := PrintServe(&b, cfg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "hmac-secret-123") || strings.Contains(out, "robot-tok-456") || !strings.Contains(out, "https://hooks.example/q") {
		t.Errorf("print-config:\n%s", out)
	}
}
