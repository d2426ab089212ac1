// Package allinone runs the whole pipeline in one process: an optional
// embedded Kafka broker, schema migrations, and the pipeline components. It is
// what `go tool task demo` runs; production runs the components as separate
// processes (qoscope ingest, qoscope aggregate, qoscope serve) against real
// clusters with the same code.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/embedkafka"
	"github.com/qoscope/qoscope/internal/kafkautil"
	"github.com/qoscope/qoscope/internal/logging"
)

// Config is the all-in-one configuration (YAML keys in snake_case, env
// overrides QOSCOPE_<SECTION>_<KEY>).
type Config struct {
	Kafka         config.Kafka      `yaml:"kafka" envPrefix:"KAFKA_"`
	EmbeddedKafka EmbeddedKafka     `yaml:"embedded_kafka" envPrefix:"EMBEDDED_KAFKA_"`
	ClickHouse    config.ClickHouse `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	Log           config.Log        `yaml:"log" envPrefix:"LOG_"`
	// Partitions of each topic created at start. Default 4.
	Partitions int `yaml:"partitions" env:"PARTITIONS"`
	// ShutdownTimeout bounds the graceful stop. Default 20s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`
}

// EmbeddedKafka runs franz-go's kfake in-process instead of dialing kafka.brokers.
type EmbeddedKafka struct {
	// Enabled starts the embedded broker. Default false.
	Enabled bool `yaml:"enabled" env:"ENABLED"`
	// DataDir persists its data; empty = memory only. Default "".
	DataDir string `yaml:"data_dir" env:"DATA_DIR"`
	// Port on 127.0.0.1; 0 = any free port. Default 0.
	Port int `yaml:"port" env:"PORT"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Kafka:           config.DefaultKafka(),
		ClickHouse:      config.DefaultClickHouse(),
		Log:             config.DefaultLog(),
		Partitions:      4,
		ShutdownTimeout: 20 * time.Second,
	}
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs config.Errors
	if !c.EmbeddedKafka.Enabled {
		c.Kafka.Validate("kafka", &errs)
	}
	if c.EmbeddedKafka.Port < 0 || c.EmbeddedKafka.Port > 65535 {
		errs.Addf("embedded_kafka.port: %d is not a TCP port", c.EmbeddedKafka.Port)
	}
	c.ClickHouse.Validate("clickhouse", &errs)
	c.Log.Validate("log", &errs)
	if c.Partitions <= 0 {
		errs.Addf("partitions: must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		errs.Addf("shutdown_timeout: must be positive")
	}
	return errs.Err()
}

// Options are the command-line inputs of `qoscope all-in-one`.
type Options struct {
	// ConfigFile is an optional YAML file; defaults and env apply without it.
	ConfigFile string
	// Stderr receives logs. Default os.Stderr.
	Stderr io.Writer
	// Ready, when non-nil, is closed once every component runs (tests).
	Ready chan<- struct{}
}

// Run starts everything, blocks until ctx is cancelled, then stops cleanly.
func Run(ctx context.Context, opts Options) error {
	cfg := DefaultConfig()
	if err := config.Load(opts.ConfigFile, &cfg); err != nil {
		return err
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	log := logging.New(opts.Stderr, cfg.Log).With().Str("component", "all-in-one").Logger()
	return run(ctx, cfg, log, opts.Ready)
}

func run(ctx context.Context, cfg Config, log zerolog.Logger, ready chan<- struct{}) error {
	brokers := cfg.Kafka.Brokers
	if cfg.EmbeddedKafka.Enabled {
		b, err := embedkafka.Start(embedkafka.Options{
			DataDir:    cfg.EmbeddedKafka.DataDir,
			Port:       cfg.EmbeddedKafka.Port,
			Partitions: cfg.Partitions,
		})
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = b.Addrs()
		log.Info().Strs("brokers", brokers).Str("data_dir", cfg.EmbeddedKafka.DataDir).Msg("embedded kafka started")
	}

	kc := kafkautil.Client(brokers, cfg.Kafka.DialTimeout)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := kafkautil.WaitReady(wctx, kc, 500*time.Millisecond)
	cancel()
	if err != nil {
		return err
	}
	t := cfg.Kafka.Topics
	var specs []kafkautil.TopicSpec
	for _, name := range []string{t.Client, t.CDN, t.Origin, t.DeadLetter} {
		specs = append(specs, kafkautil.TopicSpec{Name: name, Partitions: cfg.Partitions, ReplicationFactor: 1})
	}
	if err := kafkautil.EnsureTopics(ctx, kc, specs...); err != nil {
		return err
	}
	log.Info().Strs("brokers", brokers).Msg("kafka ready")

	ch, err := chconn.Open(ctx, cfg.ClickHouse.DSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	log.Info().Str("clickhouse", cfg.ClickHouse.Redacted()).Str("server_version", serverVersion(ch)).Msg("clickhouse ready")

	if ready != nil {
		close(ready)
	}
	log.Info().Msg("all components running; press Ctrl-C to stop")
	<-ctx.Done()
	log.Info().Msg("stopping")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("all-in-one stopped: %w", err)
	}
	return nil
}

func serverVersion(ch driver.Conn) string {
	v, err := ch.ServerVersion()
	if err != nil {
		return "unknown"
	}
	return v.Version.String()
}
