package live

import (
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

// Section is the key of the scores section in the configuration file; its
// environment overrides are QOSCOPE_SCORES_<KEY>.
const Section = "scores"

// Config is the scores section (deploy/config/qoscope.yaml documents every
// key). `qoscope serve` runs the snapshot loop when Config (the scores
// file) is set.
type Config struct {
	// Config is the scores file (contracts and settings, docs/SCORES.md);
	// empty (default) turns the live scores off.
	Config string `yaml:"config" env:"CONFIG"`
	// Blacklist is an optional blacklist file (the offline mode's format),
	// read once at start.
	Blacklist string `yaml:"blacklist" env:"BLACKLIST"`
	// Interval between two snapshot rebuilds. Default 1m.
	Interval time.Duration `yaml:"interval" env:"INTERVAL"`
	// RetryInterval is the wait after a failed rebuild (ClickHouse
	// unreachable). Default 10s.
	RetryInterval time.Duration `yaml:"retry_interval" env:"RETRY_INTERVAL"`
	// StaleAfter: a snapshot older than this is served with a Warning.
	// Default 2m (two intervals); it must not be below interval.
	StaleAfter time.Duration `yaml:"stale_after" env:"STALE_AFTER"`
	// HoldTime keeps a vendor blacklisted by an alert this long after the
	// alert resolved. Default 10m.
	HoldTime time.Duration `yaml:"hold_time" env:"HOLD_TIME"`
	// Timeout bounds one rebuild's queries and one Kafka write. Default 30s.
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT"`
	// KafkaTopic receives each region's document, keyed "province/isp"
	// (compacted; created with cleanup.policy=compact when missing).
	// Default qoscope.scores; empty turns the topic off, as do empty
	// kafka.brokers.
	KafkaTopic string `yaml:"kafka_topic" env:"KAFKA_TOPIC"`
	// KafkaRefresh rewrites a region's record even when unchanged, so that
	// a consumer can tell a region that still has data from one that
	// stopped. Default 10m.
	KafkaRefresh time.Duration `yaml:"kafka_refresh" env:"KAFKA_REFRESH"`

	// Kafka is the shared kafka section, copied in by internal/appconfig.
	Kafka config.Kafka `yaml:"-" env:"-"`
}

// DefaultConfig returns the documented defaults (live scores off).
func DefaultConfig() Config {
	return Config{
		Interval:      time.Minute,
		RetryInterval: 10 * time.Second,
		StaleAfter:    2 * time.Minute,
		HoldTime:      10 * time.Minute,
		Timeout:       30 * time.Second,
		KafkaTopic:    "qoscope.scores",
		KafkaRefresh:  10 * time.Minute,
		Kafka:         config.DefaultKafka(),
	}
}

// Enabled reports whether serve runs the live scores.
func (c *Config) Enabled() bool { return c.Config != "" }

// kafkaOn reports whether snapshots go to Kafka.
func (c *Config) kafkaOn() bool { return c.KafkaTopic != "" && len(c.Kafka.Brokers) > 0 }

// ValidateSection checks the keys of the scores section; errs prefixes them
// with "scores.". Nothing is checked while the section is off.
func (c *Config) ValidateSection(errs *config.Errors) {
	if !c.Enabled() {
		return
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"interval", c.Interval}, {"retry_interval", c.RetryInterval}, {"stale_after", c.StaleAfter},
		{"timeout", c.Timeout}, {"kafka_refresh", c.KafkaRefresh}} {
		if d.v <= 0 {
			errs.Addf("%s: must be positive", d.key)
		}
	}
	if c.Interval > 0 && c.Interval%time.Second != 0 {
		errs.Addf("interval: %s is not a whole number of seconds", c.Interval)
	}
	if c.StaleAfter > 0 && c.StaleAfter < c.Interval {
		errs.Addf("stale_after: %s is below interval %s (every snapshot would be stale before the next)", c.StaleAfter, c.Interval)
	}
	if c.HoldTime < 0 {
		errs.Addf("hold_time: must not be negative")
	}
}
