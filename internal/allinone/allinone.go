// Package allinone runs the whole pipeline in one process: an optional
// embedded Kafka broker, schema migrations, the ingest HTTP service, the
// aggregator, and for the demo a load generator plus a minute report read
// back from ClickHouse. It is what `go tool task demo` runs; production runs
// the components as separate processes (qoscope ingest, qoscope aggregate)
// against real clusters with the same code.
package allinone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/embedkafka"
	"github.com/qoscope/qoscope/internal/kafkautil"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/internal/migrate"
)

// Config is the all-in-one configuration: the ingest service's keys at the
// top level (listen, kafka, log, producer, tokens, limits, ...; see
// docs/INGEST.md) plus the sections below. Env overrides are the services'
// own (QOSCOPE_KAFKA_BROKERS, QOSCOPE_CLICKHOUSE_DSN, QOSCOPE_INGEST_*, ...).
type Config struct {
	ingest.Config `yaml:",inline"`

	EmbeddedKafka EmbeddedKafka     `yaml:"embedded_kafka" envPrefix:"EMBEDDED_KAFKA_"`
	ClickHouse    config.ClickHouse `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	// Migrate applies pending schema migrations before starting. Default true.
	Migrate bool `yaml:"migrate" env:"MIGRATE"`
	// Aggregator configures the streaming aggregator (runner keys: group_id,
	// lateness, grouping_sets, flush_interval, insert, consumer, ...). Its
	// kafka, clickhouse and log are the top-level sections.
	Aggregator runner.Config `yaml:"aggregator"`
	// Demo runs the load generator against this process's ingest and prints
	// a minute report. Default off (on with `all-in-one --demo`).
	Demo Demo `yaml:"demo" envPrefix:"DEMO_"`
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

// Demo configures the demo traffic and report.
type Demo struct {
	// Enabled turns the demo on. Default false.
	Enabled bool `yaml:"enabled" env:"ENABLED"`
	// Scenario is an embedded gen scenario. Default vendor-degradation.
	Scenario string `yaml:"scenario" env:"SCENARIO"`
	// Users is the number of concurrent simulated viewers. Default 2000.
	Users int `yaml:"users" env:"USERS"`
	// Seed makes the traffic reproducible. Default 1.
	Seed uint64 `yaml:"seed" env:"SEED"`
	// ReportEvery is the period of the printed minute report. Default 1m.
	ReportEvery time.Duration `yaml:"report_every" env:"REPORT_EVERY"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Config:     ingest.DefaultConfig(),
		ClickHouse: config.DefaultClickHouse(),
		Aggregator: runner.DefaultConfig(),
		Migrate:    true,
		Demo: Demo{
			Scenario:    "vendor-degradation",
			Users:       2000,
			Seed:        1,
			ReportEvery: time.Minute,
		},
	}
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs config.Errors
	if err := c.Config.Validate(); err != nil {
		errs.Addf("%v", err)
	}
	if c.EmbeddedKafka.Port < 0 || c.EmbeddedKafka.Port > 65535 {
		errs.Addf("embedded_kafka.port: %d is not a TCP port", c.EmbeddedKafka.Port)
	}
	c.ClickHouse.Validate("clickhouse", &errs)
	checkAggregatorSections(c, &errs)
	// An event stamped up to max_future_skew ahead is accepted; its window
	// must still be open when the clock catches up with it, or the client's
	// own events would turn late (docs/METRICS.md, "Late data").
	if l := c.Aggregator.Aggregator.Lateness.Client; c.MaxFutureSkew >= l {
		errs.Addf("max_future_skew: %s must be below aggregator.lateness.client (%s)", c.MaxFutureSkew, l)
	}
	if c.Demo.Enabled {
		if c.Demo.Users <= 0 {
			errs.Addf("demo.users: must be positive")
		}
		if c.Demo.ReportEvery < time.Second {
			errs.Addf("demo.report_every: must be at least 1s")
		}
		if c.Demo.Scenario == "" {
			errs.Addf("demo.scenario: must name a scenario")
		}
	}
	return errs.Err()
}

// Options are the command-line inputs of `qoscope all-in-one`.
type Options struct {
	// ConfigFile is an optional YAML file; defaults and env apply without it.
	ConfigFile string
	// Demo forces demo.enabled and, when no config file is given, the demo
	// defaults: embedded Kafka, a generated one-run ingest token.
	Demo bool
	// StateDir keeps the demo's embedded Kafka data across runs; "" = memory.
	StateDir string
	// Stdout receives the demo report. Default os.Stdout.
	Stdout io.Writer
	// Stderr receives logs. Default os.Stderr.
	Stderr io.Writer
	// Ready, when non-nil, receives the ingest address once every component runs.
	Ready chan<- net.Addr
}

// Run starts everything, blocks until ctx is cancelled, then stops cleanly.
func Run(ctx context.Context, opts Options) error {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	cfg := DefaultConfig()
	if opts.Demo {
		if err := demoDefaults(&cfg, opts.StateDir); err != nil {
			return err
		}
	}
	if err := config.Load(opts.ConfigFile, &cfg); err != nil {
		return err
	}
	return run(ctx, cfg, logging.New(opts.Stderr, cfg.Log), opts)
}

// demoDefaults makes `all-in-one --demo` work with no file: the embedded
// broker (unless QOSCOPE_KAFKA_BROKERS names a real one, applied later as an
// env override), a loopback listener and a random token that only the
// in-process generator knows.
func demoDefaults(cfg *Config, stateDir string) error {
	cfg.Demo.Enabled = true
	// The report on stdout is the demo's output; per-request logs would bury
	// it. log.level in a file or QOSCOPE_LOG_LEVEL brings them back.
	cfg.Log.Level = "warn"
	cfg.EmbeddedKafka.Enabled = os.Getenv(config.EnvPrefix+"KAFKA_BROKERS") == ""
	if stateDir != "" {
		cfg.EmbeddedKafka.DataDir = filepath.Join(stateDir, "kafka-embedded")
	}
	cfg.Listen = "127.0.0.1:8080"
	tok, err := randomToken()
	if err != nil {
		return err
	}
	cfg.Tokens = []ingest.TokenConfig{{Name: "demo", Token: tok, Sources: []string{"client", "cdn", "origin", "cmcd"}}}
	return nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate demo token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// run starts the components; base is the process logger, to which each
// component adds its own "component" field.
func run(ctx context.Context, cfg Config, base zerolog.Logger, opts Options) error {
	log := base.With().Str("component", "all-in-one").Logger()
	if cfg.EmbeddedKafka.Enabled {
		b, err := embedkafka.Start(embedkafka.Options{
			DataDir:    cfg.EmbeddedKafka.DataDir,
			Port:       cfg.EmbeddedKafka.Port,
			Partitions: cfg.Producer.Partitions,
		})
		if err != nil {
			return err
		}
		defer b.Close()
		cfg.Kafka.Brokers = b.Addrs()
		log.Info().Strs("brokers", cfg.Kafka.Brokers).Str("data_dir", cfg.EmbeddedKafka.DataDir).Msg("embedded kafka started")
	}
	kc := kafkautil.Client(cfg.Kafka.Brokers, cfg.Kafka.DialTimeout)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := kafkautil.WaitReady(wctx, kc, 500*time.Millisecond)
	cancel()
	if err != nil {
		return err
	}

	if cfg.Migrate {
		if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: cfg.ClickHouse.DSN}, io.Discard); err != nil {
			return fmt.Errorf("cannot migrate clickhouse: %w", err)
		}
	}
	ch, err := chconn.Open(ctx, cfg.ClickHouse.DSN)
	if err != nil {
		return err
	}
	defer ch.Close()
	log.Info().Str("clickhouse", cfg.ClickHouse.Redacted()).Str("server_version", serverVersion(ch)).Msg("clickhouse ready")

	ing, err := ingest.NewServer(cfg.Config, ingest.Deps{Logger: base})
	if err != nil {
		return err
	}
	agg, err := aggregatorComponent(cfg, base, ing.Registry())
	if err != nil {
		_ = ing.Close()
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, 3*cfg.Kafka.DialTimeout+10*time.Second)
	err = ing.EnsureTopics(tctx)
	cancel()
	if err != nil {
		_ = ing.Close()
		return err
	}
	// Where the aggregated topics end before anything is served: on stop,
	// the aggregator is stopped only once it consumed what ingest wrote
	// since (stop.go).
	aggTopics := []string{cfg.Kafka.Topics.Client, cfg.Kafka.Topics.CDN, cfg.Kafka.Topics.Origin}
	before, err := endOffsets(ctx, kc, aggTopics)
	if err != nil {
		// Topics just created may not be in the metadata yet: they are
		// empty, so every partition written from now on is waited for.
		log.Debug().Err(err).Msg("cannot read the topics' end offsets at start; treating them as empty")
		before = map[partition]int64{}
	}
	consumed := consumedSince(kc, ch, cfg.Aggregator.GroupID, aggTopics, before, 200*time.Millisecond)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = ing.Close()
		return fmt.Errorf("cannot listen on %s (listen): %w", cfg.Listen, err)
	}

	// Every component stops when ctx ends or when one of them fails; the
	// first error is the one reported. Ingest drains before the
	// aggregator stops (stop.go).
	g, gctx := errgroup.WithContext(ctx)
	pipeline{
		ingest:         func(ctx context.Context) error { return ing.Serve(ctx, ln) },
		consumed:       consumed,
		consumeTimeout: cfg.Aggregator.ShutdownTimeout,
		agg:            agg,
		log:            log,
	}.start(g, gctx)
	if cfg.Demo.Enabled {
		token := cfg.Tokens[0].Token
		g.Go(func() error {
			return runDemo(gctx, cfg.Demo, "http://"+ln.Addr().String(), token, ch, opts.Stdout, opts.Stderr, base.With().Str("component", "demo").Logger())
		})
	}
	if opts.Ready != nil {
		opts.Ready <- ln.Addr()
	}
	log.Info().Str("ingest", ln.Addr().String()).Msg("all components running; press Ctrl-C to stop")
	err = g.Wait()
	log.Info().Msg("stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// component is a long-running part of the pipeline; it returns nil after a
// clean stop when ctx ends.
type component func(ctx context.Context) error

func serverVersion(ch driver.Conn) string {
	v, err := ch.ServerVersion()
	if err != nil {
		return "unknown"
	}
	return v.Version.String()
}
