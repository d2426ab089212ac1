package config

import (
	"net/url"
	"strings"
	"time"
)

// Kafka is the connection section shared by every service.
type Kafka struct {
	// Brokers is the bootstrap list (host:port). Default: 127.0.0.1:9092.
	Brokers []string `yaml:"brokers" env:"BROKERS" envSeparator:","`
	// ClientID identifies this process in broker logs. Default: qoscope.
	ClientID string `yaml:"client_id" env:"CLIENT_ID"`
	// DialTimeout bounds connection attempts. Default: 10s.
	DialTimeout time.Duration `yaml:"dial_timeout" env:"DIAL_TIMEOUT"`
	// Topics are the per-source topic names.
	Topics Topics `yaml:"topics" envPrefix:"TOPIC_"`
}

// Topics names one topic per event source plus the dead-letter topic.
type Topics struct {
	Client     string `yaml:"client" env:"CLIENT"`
	CDN        string `yaml:"cdn" env:"CDN"`
	Origin     string `yaml:"origin" env:"ORIGIN"`
	DeadLetter string `yaml:"deadletter" env:"DEADLETTER"`
}

// DefaultKafka returns the documented defaults.
func DefaultKafka() Kafka {
	return Kafka{
		Brokers:     []string{"127.0.0.1:9092"},
		ClientID:    "qoscope",
		DialTimeout: 10 * time.Second,
		Topics: Topics{
			Client:     "qoscope.client",
			CDN:        "qoscope.cdn",
			Origin:     "qoscope.origin",
			DeadLetter: "qoscope.deadletter",
		},
	}
}

// Validate checks the section; prefix is the key path, e.g. "kafka".
func (k *Kafka) Validate(prefix string, errs *Errors) {
	if len(k.Brokers) == 0 {
		errs.Addf("%s.brokers: at least one broker is required", prefix)
	}
	for i, b := range k.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			errs.Addf("%s.brokers[%d]: %q is not host:port", prefix, i, b)
		}
	}
	if k.DialTimeout <= 0 {
		errs.Addf("%s.dial_timeout: must be positive", prefix)
	}
	for name, t := range map[string]string{"client": k.Topics.Client, "cdn": k.Topics.CDN, "origin": k.Topics.Origin, "deadletter": k.Topics.DeadLetter} {
		if t == "" {
			errs.Addf("%s.topics.%s: must not be empty", prefix, name)
		}
	}
}

// ClickHouse is the connection section shared by every service.
type ClickHouse struct {
	// DSN is a clickhouse-go v2 DSN, e.g. clickhouse://user:pass@127.0.0.1:9000/qoscope.
	// The password, if any, is never logged (see Redacted). Default:
	// clickhouse://127.0.0.1:9000/qoscope.
	DSN string `yaml:"dsn" env:"DSN"`
	// Cluster, when set, makes DDL run ON CLUSTER with Replicated*/Distributed tables.
	Cluster string `yaml:"cluster" env:"CLUSTER"`
	// HTTP is the server's HTTP interface (http[s]://host:port) for writers
	// that post Arrow over HTTP. Default "": the DSN's host on port 8123.
	HTTP string `yaml:"http" env:"HTTP"`
}

// DefaultClickHouse returns the documented defaults.
func DefaultClickHouse() ClickHouse {
	return ClickHouse{DSN: "clickhouse://127.0.0.1:9000/qoscope"}
}

// Validate checks the section; prefix is the key path, e.g. "clickhouse".
func (c *ClickHouse) Validate(prefix string, errs *Errors) {
	u, err := url.Parse(c.DSN)
	switch {
	case c.DSN == "":
		errs.Addf("%s.dsn: required", prefix)
	case err != nil:
		errs.Addf("%s.dsn: cannot parse (value not shown, it may hold a password)", prefix)
	case u.Scheme != "clickhouse" && u.Scheme != "tcp" && u.Scheme != "http" && u.Scheme != "https":
		errs.Addf("%s.dsn: scheme %q is not clickhouse, tcp, http or https", prefix, u.Scheme)
	case strings.Trim(u.Path, "/") == "":
		errs.Addf("%s.dsn: must name a database (clickhouse://host:port/DATABASE)", prefix)
	}
	if c.HTTP != "" {
		if h, err := url.Parse(c.HTTP); err != nil || (h.Scheme != "http" && h.Scheme != "https") || h.Host == "" {
			errs.Addf("%s.http: must be http[s]://host:port", prefix)
		}
	}
}

// Redacted returns the DSN with its password replaced, safe to log.
func (c *ClickHouse) Redacted() string { return RedactURL(c.DSN) }

// RedactURL hides the password of a URL-shaped secret.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable>"
	}
	return u.Redacted()
}

// Log is the logging section shared by every service.
type Log struct {
	// Level: trace, debug, info, warn, error. Default: info.
	Level string `yaml:"level" env:"LEVEL"`
	// Format: json, console, or auto (console on a TTY, else JSON). Default: auto.
	Format string `yaml:"format" env:"FORMAT"`
}

// DefaultLog returns the documented defaults.
func DefaultLog() Log { return Log{Level: "info", Format: "auto"} }

// Validate checks the section.
func (l *Log) Validate(prefix string, errs *Errors) {
	switch l.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		errs.Addf("%s.level: %q is not one of trace, debug, info, warn, error", prefix, l.Level)
	}
	switch l.Format {
	case "json", "console", "auto":
	default:
		errs.Addf("%s.format: %q is not one of json, console, auto", prefix, l.Format)
	}
}
