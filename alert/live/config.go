package live

import (
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/notify"
)

// Section is the key of the alert section in the configuration file; its
// environment overrides are QOSCOPE_ALERT_<KEY>.
const Section = "alert"

// Config is the alert section (deploy/config/qoscope.yaml documents every
// key), plus what internal/appconfig copies in from the shared sections:
// the Kafka brokers (leadership) and topics, and the aggregators' group id
// (their checkpoints hold the watermarks).
type Config struct {
	// Rules is the rules file (docs/ALERTS.md, "Rules"); "" runs no
	// evaluator. Reloaded when it changes.
	Rules string `yaml:"rules" env:"RULES"`
	// Enabled runs the evaluator when Rules is set. Default true; false
	// keeps GET /api/v1/alerts (history) without evaluating here.
	Enabled bool `yaml:"enabled" env:"ENABLED"`
	// Evaluation tunes the loop.
	Evaluation Evaluation `yaml:"evaluation" envPrefix:"EVALUATION_"`
	// Leader tunes the election between serve instances.
	Leader Leader `yaml:"leader" envPrefix:"LEADER_"`
	// DiagnosisWindow is how far before the minute an alert went pending
	// the diagnosis takes its baseline rate from. Default 30m.
	DiagnosisWindow time.Duration `yaml:"diagnosis_window" env:"DIAGNOSIS_WINDOW"`
	// ExternalURL is the wall's address, for each notification's
	// generatorURL ("" leaves it empty).
	ExternalURL string `yaml:"external_url" env:"EXTERNAL_URL"`
	// Notify is where notifications go (docs/ALERTS.md, "Delivery"): with
	// receivers, the leader runs a notify.Dispatcher and every instance
	// serves the silences API; without, notifications are only logged.
	Notify notify.Config `yaml:"notify" env:"-"`

	// Copied in by the loader: kafka.brokers when set in the file or the
	// environment (none: single-instance mode), kafka.topics, and
	// aggregator.group_id.
	Brokers          []string      `yaml:"-" env:"-"`
	Topics           config.Topics `yaml:"-" env:"-"`
	AggregatorGroup  string        `yaml:"-" env:"-"`
	KafkaDialTimeout time.Duration `yaml:"-" env:"-"`
}

// Evaluation tunes the loop.
type Evaluation struct {
	// Interval is how often the aggregators' watermarks are read to find
	// minutes that became complete or final. Default 1s.
	Interval time.Duration `yaml:"interval" env:"INTERVAL"`
	// CatchUp bounds how far back minutes missed while no instance
	// evaluated are caught up, in order; older ones are skipped (logged).
	// Default 24h.
	CatchUp time.Duration `yaml:"catch_up" env:"CATCH_UP"`
	// Timeout bounds one minute's reads, writes and hand-over to delivery.
	// Default 30s.
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT"`
	// ReloadInterval is how often the rules file is checked for changes
	// (modification time and content hash). Default 5s.
	ReloadInterval time.Duration `yaml:"reload_interval" env:"RELOAD_INTERVAL"`
}

// Leader tunes the election (internal/leader).
type Leader struct {
	// Topic is the one-partition topic whose partition 0 is the
	// leadership; created when missing. Default qoscope.alert-leader.
	Topic string `yaml:"topic" env:"TOPIC"`
	// GroupID is the candidates' consumer group, also the evaluator's name
	// in the alert_state table. Default qoscope-alert-leader.
	GroupID string `yaml:"group_id" env:"GROUP_ID"`
	// SessionTimeout: how long after a leader stops heartbeating another
	// instance takes over. Default 10s (the broker's minimum is 6s by default).
	SessionTimeout time.Duration `yaml:"session_timeout" env:"SESSION_TIMEOUT"`
	// HeartbeatInterval is also how soon a leader notices it lost the
	// leadership. Default 1s; below session_timeout / 3.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" env:"HEARTBEAT_INTERVAL"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	d := config.DefaultKafka()
	return Config{
		Enabled: true,
		Evaluation: Evaluation{Interval: time.Second, CatchUp: 24 * time.Hour, Timeout: 30 * time.Second,
			ReloadInterval: 5 * time.Second},
		Leader: Leader{Topic: "qoscope.alert-leader", GroupID: "qoscope-alert-leader",
			SessionTimeout: 10 * time.Second, HeartbeatInterval: time.Second},
		DiagnosisWindow:  30 * time.Minute,
		Notify:           notify.DefaultConfig(),
		Topics:           d.Topics,
		AggregatorGroup:  "qoscope-aggregator",
		KafkaDialTimeout: d.DialTimeout,
	}
}

// Active reports whether this configuration runs an evaluator.
func (c *Config) Active() bool { return c.Enabled && c.Rules != "" }

// ValidateSection checks the keys of the alert section; errs prefixes them
// with "alert.". The rules file itself is validated when it is loaded (its
// errors name the file, rule and key).
func (c *Config) ValidateSection(errs *config.Errors) {
	for _, d := range []struct {
		key       string
		v, lo, hi time.Duration
	}{
		{"evaluation.interval", c.Evaluation.Interval, 100 * time.Millisecond, time.Minute},
		{"evaluation.catch_up", c.Evaluation.CatchUp, time.Minute, 30 * 24 * time.Hour},
		{"evaluation.timeout", c.Evaluation.Timeout, time.Second, 10 * time.Minute},
		{"evaluation.reload_interval", c.Evaluation.ReloadInterval, 100 * time.Millisecond, time.Hour},
		{"diagnosis_window", c.DiagnosisWindow, time.Minute, 24 * time.Hour},
		{"leader.session_timeout", c.Leader.SessionTimeout, time.Second, 30 * time.Minute},
	} {
		if d.v < d.lo || d.v > d.hi {
			errs.Addf("%s: %s is outside %s–%s", d.key, d.v, d.lo, d.hi)
		}
	}
	if c.DiagnosisWindow%time.Minute != 0 {
		errs.Addf("diagnosis_window: %s is not a whole number of minutes", c.DiagnosisWindow)
	}
	if c.Leader.HeartbeatInterval <= 0 || c.Leader.HeartbeatInterval*3 > c.Leader.SessionTimeout {
		errs.Addf("leader.heartbeat_interval: %s must be positive and at most a third of leader.session_timeout (%s)", c.Leader.HeartbeatInterval, c.Leader.SessionTimeout)
	}
	if c.Leader.Topic == "" || strings.ContainsAny(c.Leader.Topic, " /") {
		errs.Addf("leader.topic: %q is not a Kafka topic name", c.Leader.Topic)
	}
	if c.Leader.GroupID == "" {
		errs.Addf("leader.group_id: must not be empty")
	}
	if c.ExternalURL != "" && !strings.Contains(c.ExternalURL, "://") {
		errs.Addf("external_url: %q is not scheme://host[:port][/path]", c.ExternalURL)
	}
	c.Notify.Validate(errs.In("notify"))
}
