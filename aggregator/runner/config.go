package runner

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/config"
)

// Insert modes (insert.mode).
const (
	// InsertNative sends the Arrow record's columns through clickhouse-go's
	// native-protocol batch (PrepareBatch + column appends).
	InsertNative = "native"
	// InsertArrowHTTP posts the Arrow record as `INSERT ... FORMAT
	// ArrowStream` to ClickHouse's HTTP interface.
	InsertArrowHTTP = "arrow_http"
)

// Config is the `qoscope aggregate` (streaming) configuration: the
// `aggregator:` section of the configuration file (internal/appconfig,
// deploy/config/qoscope.yaml) plus the shared kafka, clickhouse and log
// sections, which the loader copies in. YAML keys in snake_case, decoded
// strictly; QOSCOPE_AGGREGATOR_<KEY> variables override them; Validate
// names the key path of every problem.
//
//	kafka:        {brokers, client_id, dial_timeout, topics: {client, cdn, origin, deadletter}}
//	clickhouse:   {dsn, cluster, http}
//	log:          {level, format}
//	aggregator:
//	  lateness, origin_no_data_minutes, late_horizon, grouping_sets   # aggregator.Config
//	  group_id: qoscope-aggregator
//	  start_offset: first
//	  flush_interval: 5s
//	  final_delay: 50ms
//	  idle_after: 10s
//	  rollups: true
//	  metrics_listen: ":9102"
//	  shutdown_timeout: 30s
//	  consumer:   {session_timeout: 30s, heartbeat_interval: 3s, rebalance_timeout: 30s,
//	               max_bytes: 10485760, max_wait: 500ms, chunk: 512}
//	  insert:     {mode: arrow_http, timeout: 30s, max_rows: 200000,
//	               retry_min: 200ms, retry_max: 10s}
//	  deadletter: {max_raw: 8192}
type Config struct {
	// Kafka, ClickHouse and Log are the file's shared top-level sections,
	// not keys of the aggregator section.
	Kafka      config.Kafka      `yaml:"-" env:"-"`
	ClickHouse config.ClickHouse `yaml:"-" env:"-"`
	Log        config.Log        `yaml:"-" env:"-"`

	// Aggregator holds the windowing and grouping keys (lateness,
	// origin_no_data_minutes, late_horizon, grouping_sets) inline in the
	// section, as in the offline mode; env QOSCOPE_AGGREGATOR_LATENESS etc.
	Aggregator aggregator.Config `yaml:",inline"`

	// GroupID is the Kafka consumer group of the aggregators and the key of
	// their checkpoints. Default qoscope-aggregator. Env QOSCOPE_AGGREGATOR_GROUP_ID.
	GroupID string `yaml:"group_id" env:"AGGREGATOR_GROUP_ID"`
	// StartOffset is where a partition with neither a checkpoint nor a
	// committed offset starts: first or last. Default first.
	StartOffset string `yaml:"start_offset" env:"AGGREGATOR_START_OFFSET"`
	// FlushInterval is the period of provisional rows (open windows),
	// checkpoints and offset commits. Default 5s.
	FlushInterval time.Duration `yaml:"flush_interval" env:"AGGREGATOR_FLUSH_INTERVAL"`
	// FinalDelay is how long a flush waits after a window closed, so that
	// windows closing together (on every partition) share one insert.
	// Default 50ms.
	FinalDelay time.Duration `yaml:"final_delay" env:"AGGREGATOR_FINAL_DELAY"`
	// IdleAfter: a partition that is caught up (no message left to read)
	// and has had no message for this long is advanced to wall clock minus
	// IdleAfter, so its last windows (and origin no_data rows) close
	// without new events. 0 disables it (for backfills of old data that
	// may pause). Default 10s.
	IdleAfter time.Duration `yaml:"idle_after" env:"AGGREGATOR_IDLE_AFTER"`
	// Rollups maintains the hourly and daily tables (migration 0004).
	// Default true.
	Rollups bool `yaml:"rollups" env:"AGGREGATOR_ROLLUPS"`
	// MetricsListen serves /metrics and /healthz in the standalone command
	// (not used when embedded). "" disables it. Default ":9102".
	MetricsListen string `yaml:"metrics_listen" env:"AGGREGATOR_METRICS_LISTEN"`
	// ShutdownTimeout bounds the last flush, commit and group leave on
	// stop. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"AGGREGATOR_SHUTDOWN_TIMEOUT"`

	Consumer   Consumer         `yaml:"consumer" envPrefix:"AGGREGATOR_CONSUMER_"`
	Insert     Insert           `yaml:"insert" envPrefix:"AGGREGATOR_INSERT_"`
	DeadLetter DeadLetterConfig `yaml:"deadletter" envPrefix:"AGGREGATOR_DEADLETTER_"`
}

// Consumer tunes the Kafka consumer group and the partition readers.
type Consumer struct {
	// SessionTimeout: a member silent this long is removed from the group
	// (a killed aggregator's partitions move after it). Default 30s; the
	// broker bounds it (group.min/max.session.timeout.ms, 6s..30m by default).
	SessionTimeout time.Duration `yaml:"session_timeout" env:"SESSION_TIMEOUT"`
	// HeartbeatInterval is also how soon a member notices a rebalance.
	// Default 3s; must be below session_timeout/2.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" env:"HEARTBEAT_INTERVAL"`
	// RebalanceTimeout is how long the coordinator waits for members to
	// flush and rejoin. Default 30s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout" env:"REBALANCE_TIMEOUT"`
	// MaxBytes bounds one fetch per partition. Default 10 MiB.
	MaxBytes int `yaml:"max_bytes" env:"MAX_BYTES"`
	// MaxWait bounds how long the broker holds a fetch of an idle partition.
	// Default 500ms.
	MaxWait time.Duration `yaml:"max_wait" env:"MAX_WAIT"`
	// Chunk is the most messages handed from a partition's reader to its
	// aggregator at once. Default 512.
	Chunk int `yaml:"chunk" env:"CHUNK"`
}

// Insert configures the ClickHouse writes.
type Insert struct {
	// Mode: native or arrow_http (see InsertNative, InsertArrowHTTP). The
	// default is the faster one on the benchmark (README, "Insert modes").
	// arrow_http posts to clickhouse.http (default: the DSN's host on port
	// 8123, or the DSN itself when it is http[s]://), with the user,
	// password and database of clickhouse.dsn, and then sends every other
	// statement of the runner over HTTP too.
	Mode string `yaml:"mode" env:"MODE"`
	// Timeout bounds one insert. Default 30s.
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT"`
	// MaxRows splits larger batches into several inserts. Default 200000.
	MaxRows int `yaml:"max_rows" env:"MAX_ROWS"`
	// RetryMin and RetryMax bound the exponential backoff of retryable
	// failures (network, timeouts, too many parts, read-only replica).
	// Defaults 200ms and 10s.
	RetryMin time.Duration `yaml:"retry_min" env:"RETRY_MIN"`
	RetryMax time.Duration `yaml:"retry_max" env:"RETRY_MAX"`
}

// DeadLetterConfig configures the records of undecodable and too-late messages.
type DeadLetterConfig struct {
	// MaxRaw bounds the message bytes copied into a record. Default 8192.
	MaxRaw int `yaml:"max_raw" env:"MAX_RAW"`
}

// DefaultInsertMode is the measured faster mode (README, "Insert modes").
const DefaultInsertMode = InsertArrowHTTP

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Kafka:           config.DefaultKafka(),
		ClickHouse:      config.DefaultClickHouse(),
		Log:             config.DefaultLog(),
		Aggregator:      aggregator.DefaultConfig(),
		GroupID:         "qoscope-aggregator",
		StartOffset:     "first",
		FlushInterval:   5 * time.Second,
		FinalDelay:      50 * time.Millisecond,
		IdleAfter:       10 * time.Second,
		Rollups:         true,
		MetricsListen:   ":9102",
		ShutdownTimeout: 30 * time.Second,
		Consumer: Consumer{
			SessionTimeout:    30 * time.Second,
			HeartbeatInterval: 3 * time.Second,
			RebalanceTimeout:  30 * time.Second,
			MaxBytes:          10 << 20,
			MaxWait:           500 * time.Millisecond,
			Chunk:             512,
		},
		Insert: Insert{
			Mode:     DefaultInsertMode,
			Timeout:  30 * time.Second,
			MaxRows:  200_000,
			RetryMin: 200 * time.Millisecond,
			RetryMax: 10 * time.Second,
		},
		DeadLetter: DeadLetterConfig{MaxRaw: 8 << 10},
	}
}

// Section is the key of the aggregator's section in the configuration file.
const Section = "aggregator"

// Validate reports every problem at once, each prefixed by its key path in
// the configuration file (kafka.brokers, aggregator.flush_interval, ...).
func (c *Config) Validate() error {
	var errs config.Errors
	c.Kafka.Validate("kafka", &errs)
	c.ClickHouse.Validate("clickhouse", &errs)
	c.Log.Validate("log", &errs)
	c.ValidateSection(errs.In(Section))
	return errs.Err()
}

// ValidateSection checks the keys of the aggregator section only; errs
// names them relative to the section (see config.Errors.In).
func (c *Config) ValidateSection(errs *config.Errors) {
	c.Aggregator.ValidateIn(errs)
	if c.GroupID == "" {
		errs.Addf("group_id: required")
	}
	if c.StartOffset != "first" && c.StartOffset != "last" {
		errs.Addf("start_offset: %q is not first or last", c.StartOffset)
	}
	if c.FlushInterval < 100*time.Millisecond {
		errs.Addf("flush_interval: %s is below 100ms", c.FlushInterval)
	}
	if c.FinalDelay < 0 || c.FinalDelay > c.FlushInterval {
		errs.Addf("final_delay: must be between 0 and flush_interval (%s)", c.FlushInterval)
	}
	if c.IdleAfter < 0 {
		errs.Addf("idle_after: must not be negative (0 disables it)")
	}
	if c.ShutdownTimeout <= 0 {
		errs.Addf("shutdown_timeout: must be positive")
	}
	k := &c.Consumer
	if k.SessionTimeout < time.Second {
		errs.Addf("consumer.session_timeout: %s is below 1s", k.SessionTimeout)
	}
	if k.HeartbeatInterval <= 0 || k.HeartbeatInterval*2 > k.SessionTimeout {
		errs.Addf("consumer.heartbeat_interval: must be positive and at most half of consumer.session_timeout (%s)", k.SessionTimeout)
	}
	if k.RebalanceTimeout < time.Second {
		errs.Addf("consumer.rebalance_timeout: %s is below 1s", k.RebalanceTimeout)
	}
	if k.MaxBytes < 1<<16 {
		errs.Addf("consumer.max_bytes: %d is below 65536", k.MaxBytes)
	}
	if k.MaxWait < 10*time.Millisecond {
		errs.Addf("consumer.max_wait: %s is below 10ms", k.MaxWait)
	}
	if k.Chunk < 1 {
		errs.Addf("consumer.chunk: must be positive")
	}
	in := &c.Insert
	switch in.Mode {
	case InsertNative:
	case InsertArrowHTTP:
	default:
		errs.Addf("insert.mode: %q is not %s or %s", in.Mode, InsertNative, InsertArrowHTTP)
	}
	if in.Timeout <= 0 {
		errs.Addf("insert.timeout: must be positive")
	}
	if in.MaxRows < 1 {
		errs.Addf("insert.max_rows: must be positive")
	}
	if in.RetryMin <= 0 || in.RetryMax < in.RetryMin {
		errs.Addf("insert.retry_min, insert.retry_max: need 0 < retry_min <= retry_max")
	}
	if c.DeadLetter.MaxRaw < 0 {
		errs.Addf("deadletter.max_raw: must not be negative")
	}
}

// httpURL resolves clickhouse.http for arrow_http.
func (c *Config) httpURL() (string, error) {
	if c.ClickHouse.HTTP != "" {
		return strings.TrimRight(c.ClickHouse.HTTP, "/"), nil
	}
	u, err := url.Parse(c.ClickHouse.DSN)
	if err != nil {
		return "", fmt.Errorf("clickhouse.dsn: cannot parse (value not shown)")
	}
	switch u.Scheme {
	case "http", "https":
		return u.Scheme + "://" + u.Host, nil
	}
	return "http://" + u.Hostname() + ":8123", nil
}

// RecentStart is a start time for generated test data: 2h04m before the
// hour of now, so that minutes of a few-minute run straddle an hour
// boundary (rollups) and stay well inside the minute tables' 30-day TTL,
// which drops older rows at insert.
func RecentStart(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(-2*time.Hour - 4*time.Minute)
}
