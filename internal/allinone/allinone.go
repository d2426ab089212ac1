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
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/embedkafka"
	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/kafkautil"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/query/api"
)

// Config is what all-in-one runs: the shared kafka, clickhouse and log
// sections, the ingest and aggregator sections, and its own all_in_one
// section (Section), all read from the one configuration file by
// internal/appconfig (deploy/config/qoscope.yaml documents every key).
// The embedded ingest.Config carries the shared kafka and log sections;
// the aggregator's copies are filled at start (components.go).
type Config struct {
	ingest.Config

	ClickHouse config.ClickHouse
	Aggregator runner.Config
	Section
	// Serve is the top-level serve section; it runs when
	// Section.Serve.Enabled (on with --demo).
	Serve api.Config
}

// SectionKey is the key of all-in-one's own section in the configuration file.
const SectionKey = "all_in_one"

// Section is the all_in_one section of the configuration file; its
// environment overrides are QOSCOPE_ALL_IN_ONE_<KEY>.
type Section struct {
	EmbeddedKafka EmbeddedKafka `yaml:"embedded_kafka" envPrefix:"EMBEDDED_KAFKA_"`
	// Migrate applies pending schema migrations before starting. Default true.
	Migrate bool `yaml:"migrate" env:"MIGRATE"`
	// Demo runs the load generator against this process's ingest and prints
	// a minute report. Default off (on with `all-in-one --demo`).
	Demo Demo `yaml:"demo" envPrefix:"DEMO_"`
	// Serve runs the query API (the top-level serve section configures
	// it) in this process. Default off (on with `all-in-one --demo`).
	Serve ServeComponent `yaml:"serve" envPrefix:"SERVE_"`
	// OneRunToken is set when the loader generated the only ingest token
	// because no configuration file was given; run prints it.
	OneRunToken bool `yaml:"-" env:"-"`
	// ServeOneRunToken is set when the loader generated serve's read
	// token because serve.tokens is empty; run prints it with the URL.
	ServeOneRunToken bool `yaml:"-" env:"-"`
}

// ServeComponent is all_in_one.serve.
type ServeComponent struct {
	// Enabled runs `qoscope serve` in-process with the serve section.
	// Default false; true with --demo.
	Enabled bool `yaml:"enabled" env:"ENABLED"`
}

// EmbeddedKafka runs franz-go's kfake in-process instead of dialing
// kafka.brokers, so all-in-one needs no Kafka of its own.
type EmbeddedKafka struct {
	// Enabled: unset (default) starts the embedded broker exactly when no
	// broker is configured (neither kafka.brokers nor QOSCOPE_KAFKA_BROKERS);
	// true always starts it (kafka.brokers must then be empty); false never
	// does (kafka.brokers is then required).
	Enabled *bool `yaml:"enabled" env:"ENABLED"`
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
	// History backfills this much baseline traffic before the start, and
	// this much on either side of the start's minute yesterday and a week
	// ago, so the comparisons and sparklines have data at once; 0 turns it
	// off. Default 30m.
	History time.Duration `yaml:"history" env:"HISTORY"`
}

// DefaultSection returns the documented defaults of the all_in_one section.
func DefaultSection() Section {
	return Section{
		Migrate: true,
		Demo: Demo{
			Scenario:    "vendor-degradation",
			Users:       2000,
			Seed:        1,
			ReportEvery: time.Minute,
			History:     30 * time.Minute,
		},
	}
}

// DefaultConfig returns the documented defaults. Unlike the standalone
// commands, all-in-one has no default broker: without one it runs the
// embedded Kafka.
func DefaultConfig() Config {
	c := Config{
		Config:     ingest.DefaultConfig(),
		ClickHouse: config.DefaultClickHouse(),
		Aggregator: runner.DefaultConfig(),
		Section:    DefaultSection(),
		Serve:      api.DefaultConfig(),
	}
	c.Kafka.Brokers = nil
	return c
}

// Embedded reports whether the embedded Kafka runs (EmbeddedKafka.Enabled).
func (c *Config) Embedded() bool {
	if c.EmbeddedKafka.Enabled != nil {
		return *c.EmbeddedKafka.Enabled
	}
	return len(c.Kafka.Brokers) == 0
}

// Validate reports every problem, each naming its key path in the file.
func (c *Config) Validate() error {
	var errs config.Errors
	k := c.Kafka
	switch e := c.EmbeddedKafka.Enabled; {
	case e != nil && *e && len(k.Brokers) > 0:
		errs.Addf("%s.embedded_kafka.enabled: true, but kafka.brokers is set too (%v): remove one (leaving enabled unset picks the embedded broker exactly when no broker is configured)",
			SectionKey, k.Brokers)
	case c.Embedded():
		// The broker list is filled in at start.
		k.Brokers = []string{"embedded:0"}
	case len(k.Brokers) == 0:
		errs.Addf("kafka.brokers: required when %s.embedded_kafka.enabled is false (kafka: {brokers: [host:9092]} or QOSCOPE_KAFKA_BROKERS=host:9092)", SectionKey)
	}
	k.Validate("kafka", &errs)
	c.Log.Validate("log", &errs)
	c.ClickHouse.Validate("clickhouse", &errs)
	c.ValidateSection(errs.In(ingest.Section))
	c.Aggregator.ValidateSection(errs.In(runner.Section))
	if c.Section.Serve.Enabled {
		c.Serve.ValidateSection(errs.In(api.Section))
	}
	own := errs.In(SectionKey)
	if c.EmbeddedKafka.Port < 0 || c.EmbeddedKafka.Port > 65535 {
		own.Addf("embedded_kafka.port: %d is not a TCP port", c.EmbeddedKafka.Port)
	}
	// An event stamped up to max_future_skew ahead is accepted; its window
	// must still be open when the clock catches up with it, or the client's
	// own events would turn late (docs/METRICS.md, "Late data").
	if l := c.Aggregator.Aggregator.Lateness.Client; c.MaxFutureSkew >= l {
		errs.Addf("ingest.max_future_skew: %s must be below aggregator.lateness.client (%s)", c.MaxFutureSkew, l)
	}
	if c.Demo.Enabled {
		if c.Demo.Users <= 0 {
			own.Addf("demo.users: must be positive")
		}
		if c.Demo.ReportEvery < time.Second {
			own.Addf("demo.report_every: must be at least 1s")
		}
		if c.Demo.Scenario == "" {
			own.Addf("demo.scenario: must name a scenario")
		}
		if c.Demo.History < 0 || c.Demo.History > 24*time.Hour || c.Demo.History%time.Minute != 0 {
			own.Addf("demo.history: %s must be whole minutes between 0 and 24h", c.Demo.History)
		}
	}
	return errs.Err()
}

// Options are the command-line inputs of `qoscope all-in-one`.
type Options struct {
	// Config is the loaded configuration (internal/appconfig.LoadAllInOne).
	Config Config
	// Stdout receives the demo report and a generated token. Default os.Stdout.
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
	cfg := opts.Config
	return run(ctx, cfg, logging.New(opts.Stderr, cfg.Log), opts)
}

// DemoDefaults makes `all-in-one --demo` work with no file; it is applied
// before the file and the environment. The embedded broker needs nothing
// (it runs when no broker is configured); the listener is loopback, and
// the token is random and known only to the in-process generator.
func (c *Config) DemoDefaults(stateDir string) error {
	c.Demo.Enabled = true
	c.Section.Serve.Enabled = true
	// The report on stdout is the demo's output; per-request logs would bury
	// it. log.level in a file or QOSCOPE_LOG_LEVEL brings them back.
	c.Log.Level = "warn"
	if stateDir != "" {
		c.EmbeddedKafka.DataDir = filepath.Join(stateDir, "kafka-embedded")
	}
	c.Listen = demoIngestListen
	c.Serve.Listen = demoServeListen
	tok, err := RandomToken()
	if err != nil {
		return err
	}
	c.Tokens = []ingest.TokenConfig{{Name: "demo", Token: tok, Sources: []string{"client", "cdn", "origin", "cmcd"}}}
	if err := c.OneRunReadToken(); err != nil {
		return err
	}
	// The demo's operator may also use the wall's admin actions (the
	// blacklist switch, silences); loopback only.
	c.Serve.Tokens[0].Name = "demo-operator"
	c.Serve.Tokens[0].Scopes = append(c.Serve.Tokens[0].Scopes, string(httpx.ScopeAdmin))
	return nil
}

// The demo's addresses; when one is taken (another program on 8080 is
// common on a developer's machine) the demo takes a free port instead and
// says so (demoAddr).
const (
	demoIngestListen = "127.0.0.1:8080"
	demoServeListen  = "127.0.0.1:8090"
)

// demoAddr returns addr, unless it is still the demo's default def (no
// file or environment chose it) and def is taken: then a free loopback
// port, after telling w. An address the user chose is kept: failing on
// it is what they need to see.
func demoAddr(addr, def, what string, w io.Writer) string {
	if addr != def {
		return addr
	}
	ln, err := net.Listen("tcp", def)
	if err == nil {
		_ = ln.Close()
		return def
	}
	free, ferr := net.Listen("tcp", "127.0.0.1:0")
	if ferr != nil {
		return def // listening later fails and says why
	}
	got := free.Addr().String()
	_ = free.Close()
	fmt.Fprintf(w, "qoscope demo: %s is taken, so %s listens on %s instead\n", def, what, got)
	return got
}

// OneRunReadToken gives serve a generated read token, printed at start
// with the API's URL (no file configured serve.tokens).
func (c *Config) OneRunReadToken() error {
	tok, err := RandomToken()
	if err != nil {
		return err
	}
	c.Serve.Tokens = []httpx.TokenConfig{{Name: "one-run-read", Token: tok, Scopes: []string{string(httpx.ScopeRead)}}}
	c.ServeOneRunToken = true
	return nil
}

// RandomToken returns a fresh 48-character secret for a one-run token.
func RandomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate a token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// readyTimeout bounds the wait for configured brokers: a wrong address
// must fail within seconds, naming the brokers, not after a silent minute.
func readyTimeout(k config.Kafka) time.Duration {
	return min(k.DialTimeout, 10*time.Second)
}

// run starts the components; base is the process logger, to which each
// component adds its own "component" field.
func run(ctx context.Context, cfg Config, base zerolog.Logger, opts Options) error {
	log := base.With().Str("component", "all-in-one").Logger()
	if cfg.Demo.Enabled {
		cfg.Listen = demoAddr(cfg.Listen, demoIngestListen, "ingest", opts.Stdout)
		if cfg.Section.Serve.Enabled {
			cfg.Serve.Listen = demoAddr(cfg.Serve.Listen, demoServeListen, "the query API and the wall", opts.Stdout)
		}
	}
	if cfg.Embedded() {
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
		// Warn level: the demo logs at warn, and a user who meant to use a
		// real cluster must see that this one is in memory.
		log.Warn().Strs("brokers", cfg.Kafka.Brokers).Str("data_dir", cfg.EmbeddedKafka.DataDir).
			Msg("no kafka.brokers configured: started the embedded kafka (set kafka.brokers or QOSCOPE_KAFKA_BROKERS to use a real cluster)")
	} else {
		log.Info().Strs("brokers", cfg.Kafka.Brokers).Msg("connecting to kafka")
	}
	kc := kafkautil.Client(cfg.Kafka.Brokers, cfg.Kafka.DialTimeout)
	wait := readyTimeout(cfg.Kafka)
	wctx, cancel := context.WithTimeout(ctx, wait)
	err := kafkautil.WaitReady(wctx, kc, 500*time.Millisecond)
	cancel()
	if err != nil {
		if cfg.Embedded() {
			return fmt.Errorf("embedded kafka at %v: %w", cfg.Kafka.Brokers, err)
		}
		return fmt.Errorf("kafka brokers %v (kafka.brokers) not reachable within %s: %w; start Kafka there, "+
			"or set kafka.brokers in the config file or QOSCOPE_KAFKA_BROKERS=host:port, "+
			"or leave both unset to run the embedded broker", cfg.Kafka.Brokers, wait, err)
	}
	if cfg.OneRunToken && len(cfg.Tokens) > 0 {
		t := cfg.Tokens[0]
		fmt.Fprintf(opts.Stdout, "qoscope all-in-one: no config file, so no ingest.tokens: this run's token (name %q, sources %s) is %s\n"+
			"  configure ingest.tokens (deploy/config/qoscope.yaml) to keep one across runs\n",
			t.Name, strings.Join(t.Sources, ","), t.Token)
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
	// The aggregator's flushes wake serve's alert evaluator (one process:
	// no need to wait for its next look at the watermarks).
	written := make(chan struct{}, 1)
	agg, err := aggregatorComponent(cfg, base, ing.Registry(), written)
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

	var (
		srv *api.Server
		sln net.Listener
	)
	if cfg.Section.Serve.Enabled {
		if cfg.Demo.Enabled {
			dir, err := os.MkdirTemp("", "qoscope-demo-")
			if err != nil {
				_ = ln.Close()
				_ = ing.Close()
				return fmt.Errorf("cannot create the demo's directory: %w", err)
			}
			defer os.RemoveAll(dir)
			if err := demoReadSide(ctx, &cfg, dir, opts.Stdout); err != nil {
				_ = ln.Close()
				_ = ing.Close()
				return err
			}
		}
		if srv, sln, err = prepareServe(cfg, ch, base, written); err != nil {
			_ = ln.Close()
			_ = ing.Close()
			return err
		}
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
	// The demo's live traffic starts at the next whole minute, and its
	// history ends there: no minute is half history, half live (a half
	// minute's users would look like a drop against yesterday).
	liveFrom := time.Now().Truncate(time.Minute).Add(time.Minute)
	if cfg.Demo.Enabled && cfg.Demo.History > 0 {
		start := liveFrom
		g.Go(func() error {
			err := backfillHistory(gctx, cfg, start, opts.Stdout, log)
			if err != nil && gctx.Err() == nil {
				// The live demo goes on without comparisons.
				log.Error().Err(err).Msg("demo history not backfilled")
			}
			return nil
		})
	}
	if cfg.Demo.Enabled {
		token := cfg.Tokens[0].Token
		g.Go(func() error {
			return runDemo(gctx, cfg.Demo, liveFrom, "http://"+ln.Addr().String(), token, ch, srv, opts.Stdout, opts.Stderr, base.With().Str("component", "demo").Logger())
		})
	}
	if srv != nil {
		g.Go(func() error { return srv.Serve(gctx, sln) })
		printServe(opts.Stdout, cfg, sln.Addr())
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
