// Package appconfig reads qoscope's one configuration file: the shared
// kafka, clickhouse and log sections beside one section per component
// (ingest, aggregator, all_in_one, migrate, serve). Every command reads the same
// file and uses its own section plus the shared ones; the other sections
// are still decoded strictly, so a typo anywhere in the file is an error
// whichever command meets it first. deploy/config/qoscope.yaml documents
// every key.
//
// A new component (serve, alert, scores) adds its section in three steps:
// a field in File with its yaml key (and envPrefix when its env tags do not
// already carry the section name), its defaults in Default, and a LoadX
// function that validates the shared sections it uses plus its own under
// config.Errors.In("x"); --print-config then prints those sections with
// Print.
//
// The order of precedence is internal/config's: defaults, then the file,
// then QOSCOPE_<SECTION>_<KEY> environment variables, then validation.
package appconfig

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/allinone"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/query/api"
	"github.com/qoscope/qoscope/score/live"
	"github.com/qoscope/qoscope/steer"
)

// File is the whole configuration file. The components' Kafka, ClickHouse
// and Log fields are yaml:"-": the loaders copy the shared sections in.
type File struct {
	Kafka      config.Kafka      `yaml:"kafka" envPrefix:"KAFKA_"`
	ClickHouse config.ClickHouse `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	Log        config.Log        `yaml:"log" envPrefix:"LOG_"`
	// Ingest's env tags already start with INGEST_, the aggregator's with
	// AGGREGATOR_ (the names predate the sections and stay).
	Ingest     ingest.Config    `yaml:"ingest"`
	Aggregator runner.Config    `yaml:"aggregator"`
	AllInOne   allinone.Section `yaml:"all_in_one" envPrefix:"ALL_IN_ONE_"`
	Migrate    migrate.Settings `yaml:"migrate" envPrefix:"MIGRATE_"`
	Serve      api.Config       `yaml:"serve" envPrefix:"SERVE_"`
	Steer      steer.Config     `yaml:"steer" envPrefix:"STEER_"`
	Scores     live.Config      `yaml:"scores" envPrefix:"SCORES_"`
	Alert      alertlive.Config `yaml:"alert" envPrefix:"ALERT_"`
}

// Default returns every section's documented defaults.
func Default() File {
	return File{
		Kafka:      config.DefaultKafka(),
		ClickHouse: config.DefaultClickHouse(),
		Log:        config.DefaultLog(),
		Ingest:     ingest.DefaultConfig(),
		Aggregator: runner.DefaultConfig(),
		AllInOne:   allinone.DefaultSection(),
		Migrate:    migrate.DefaultConfig().Migrate,
		Serve:      api.DefaultConfig(),
		Steer:      steer.DefaultConfig(),
		Scores:     live.DefaultConfig(),
		Alert:      alertlive.DefaultConfig(),
	}
}

// decode fills f (holding defaults) from the file at path (skipped when
// empty) and the environment, without validating.
func decode(path string, f *File) error {
	// nil grouping sets mean "the default" (filled below), so an explicit
	// list in the file replaces the default instead of being decoded into it.
	f.Aggregator.Aggregator.GroupingSets = aggregator.GroupingSets{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("cannot read config file: %w", err)
		}
		if err := checkLayout(b); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		if err := config.DecodeYAML(b, f); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := config.ApplyEnv(f); err != nil {
		return err
	}
	gs, def := &f.Aggregator.Aggregator.GroupingSets, aggregator.DefaultGroupingSets()
	for _, p := range []struct {
		got *[][]string
		def [][]string
	}{{&gs.Client, def.Client}, {&gs.CDN, def.CDN}, {&gs.Origin, def.Origin}} {
		if *p.got == nil {
			*p.got = p.def
		}
	}
	f.share()
	return nil
}

// share copies the shared sections into the components that use them.
func (f *File) share() {
	f.Ingest.Kafka, f.Ingest.Log = f.Kafka, f.Log
	f.Aggregator.Kafka, f.Aggregator.ClickHouse, f.Aggregator.Log = f.Kafka, f.ClickHouse, f.Log
	// serve's catalogue is made of the aggregator's grouping sets and lateness.
	f.Serve.ClickHouse, f.Serve.Log, f.Serve.Aggregator = f.ClickHouse, f.Log, f.Aggregator.Aggregator
	f.Steer.Log = f.Log
	f.Serve.Steer = f.Steer
	// serve runs the live scores with the scores section and kafka.
	f.Scores.Kafka = f.Kafka
	f.Serve.Scores = f.Scores
	// serve's alert evaluator elects its leader on kafka.brokers and finds
	// the aggregators' watermarks by their group id and topics.
	f.Serve.Alert = f.Alert
	f.Serve.Alert.Brokers, f.Serve.Alert.Topics, f.Serve.Alert.KafkaDialTimeout = f.Kafka.Brokers, f.Kafka.Topics, f.Kafka.DialTimeout
	f.Serve.Alert.AggregatorGroup = f.Aggregator.GroupID
}

// InvalidError is a configuration that decoded but did not validate; the
// loaders return it with the configuration itself, so --print-config can
// still show what was read.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return "invalid config: " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// IsInvalid reports whether err is an InvalidError.
func IsInvalid(err error) bool {
	var inv *InvalidError
	return errors.As(err, &inv)
}

func invalid(errs *config.Errors) error {
	if err := errs.Err(); err != nil {
		return &InvalidError{err}
	}
	return nil
}

// LoadIngest reads the configuration of `qoscope ingest`: kafka, log and
// the ingest section.
func LoadIngest(path string) (ingest.Config, error) {
	f := Default()
	if err := decode(path, &f); err != nil {
		return ingest.Config{}, err
	}
	var errs config.Errors
	f.Kafka.Validate("kafka", &errs)
	f.Log.Validate("log", &errs)
	f.Ingest.ValidateSection(errs.In(ingest.Section))
	return f.Ingest, invalid(&errs)
}

// LoadAggregate reads the configuration of `qoscope aggregate` (streaming):
// kafka, clickhouse, log and the aggregator section.
func LoadAggregate(path string) (runner.Config, error) {
	f := Default()
	if err := decode(path, &f); err != nil {
		return runner.Config{}, err
	}
	var errs config.Errors
	f.Kafka.Validate("kafka", &errs)
	f.ClickHouse.Validate("clickhouse", &errs)
	f.Log.Validate("log", &errs)
	f.Aggregator.ValidateSection(errs.In(runner.Section))
	return f.Aggregator, invalid(&errs)
}

// LoadBackfill reads the configuration of `qoscope aggregate --input
// --output clickhouse`: that of LoadAggregate, but without a default
// clickhouse.dsn: a backfill never writes to a database nobody named.
func LoadBackfill(path string) (runner.Config, error) {
	f := Default()
	f.ClickHouse.DSN = ""
	if err := decode(path, &f); err != nil {
		return runner.Config{}, err
	}
	if f.ClickHouse.DSN == "" {
		return runner.Config{}, runner.ErrNoClickHouse
	}
	var errs config.Errors
	f.ClickHouse.Validate("clickhouse", &errs)
	f.Log.Validate("log", &errs)
	f.Aggregator.ValidateSection(errs.In(runner.Section))
	return f.Aggregator, invalid(&errs)
}

// LoadWindowing reads the windowing keys of the aggregator section
// (lateness, origin_no_data_minutes, late_horizon, grouping_sets) for
// `qoscope aggregate --input`, which needs no servers.
func LoadWindowing(path string) (aggregator.Config, error) {
	f := Default()
	if err := decode(path, &f); err != nil {
		return aggregator.Config{}, err
	}
	var errs config.Errors
	f.Aggregator.Aggregator.ValidateIn(errs.In(runner.Section))
	return f.Aggregator.Aggregator, invalid(&errs)
}

// LoadServe reads the configuration of `qoscope serve`: clickhouse, log,
// the aggregator's windowing keys (its grouping sets and lateness make the
// metric catalogue) and the serve section.
//
// kafka.brokers has no default here: the alert evaluator's leader election
// uses them only when the file or QOSCOPE_KAFKA_BROKERS names them;
// without, one instance evaluates alone (single-instance mode).
func LoadServe(path string) (api.Config, error) {
	f := Default()
	f.Kafka.Brokers = nil
	if err := decode(path, &f); err != nil {
		return api.Config{}, err
	}
	var errs config.Errors
	f.ClickHouse.Validate("clickhouse", &errs)
	f.Log.Validate("log", &errs)
	if len(f.Kafka.Brokers) > 0 {
		f.Kafka.Validate("kafka", &errs)
	}
	f.Aggregator.Aggregator.ValidateIn(errs.In(runner.Section))
	f.Serve.ValidateSection(errs.In(api.Section))
	f.Serve.Scores.ValidateSection(errs.In(live.Section))
	f.Alert.ValidateSection(errs.In(alertlive.Section))
	return f.Serve, invalid(&errs)
}

// LoadSteer reads the configuration of `qoscope steer`: log and the steer
// section.
func LoadSteer(path string) (steer.Config, error) {
	f := Default()
	if err := decode(path, &f); err != nil {
		return steer.Config{}, err
	}
	return f.Steer, ValidateSteer(&f.Steer)
}

// ValidateSteer validates c (its log section and the steer section) after
// a command's flags changed it; the error is an InvalidError.
func ValidateSteer(c *steer.Config) error {
	var errs config.Errors
	c.Log.Validate("log", &errs)
	c.ValidateSection(errs.In(steer.Section))
	return invalid(&errs)
}

// LoadMigrate reads the configuration of `qoscope migrate` (clickhouse,
// log, migrate) without validating it: the command's flags apply on top.
func LoadMigrate(path string) (migrate.Config, error) {
	f := Default()
	if err := decode(path, &f); err != nil {
		return migrate.Config{}, err
	}
	return migrate.Config{ClickHouse: f.ClickHouse, Log: f.Log, Migrate: f.Migrate}, nil
}

// LoadAllInOne reads the configuration of `qoscope all-in-one`: every
// section but migrate. kafka.brokers has no default here: without one, the
// embedded broker runs. demo applies the demo's defaults before the file
// (allinone.Config.DemoDefaults). Without a file and without --demo no
// token can be configured (tokens live only in the file), so a one-run
// token is generated and printed at start.
func LoadAllInOne(path string, demo bool, stateDir string) (allinone.Config, error) {
	f := Default()
	f.Kafka.Brokers = nil
	if demo {
		c := f.allInOne()
		if err := c.DemoDefaults(stateDir); err != nil {
			return allinone.Config{}, err
		}
		f.Ingest, f.Log, f.AllInOne, f.Serve = c.Config, c.Log, c.Section, c.Serve
	}
	generated := slices.Clone(f.Serve.Tokens)
	if err := decode(path, &f); err != nil {
		return allinone.Config{}, err
	}
	c := f.allInOne()
	// A file's serve.tokens replace the demo's generated one, whose secret
	// alone may be printed.
	c.ServeOneRunToken = c.ServeOneRunToken && len(generated) == 1 && len(c.Serve.Tokens) == 1 && c.Serve.Tokens[0].Token == generated[0].Token
	if path == "" && len(c.Tokens) == 0 {
		tok, err := allinone.RandomToken()
		if err != nil {
			return allinone.Config{}, err
		}
		c.Tokens = []ingest.TokenConfig{{Name: "one-run", Token: tok, Sources: []string{"client", "cdn", "origin", "cmcd", "metrics"}}}
		c.OneRunToken = true
	}
	if c.Section.Serve.Enabled && len(c.Serve.Tokens) == 0 {
		if err := c.OneRunReadToken(); err != nil {
			return allinone.Config{}, err
		}
	}
	if err := c.Validate(); err != nil {
		return c, &InvalidError{err}
	}
	return c, nil
}

func (f *File) allInOne() allinone.Config {
	f.share()
	return allinone.Config{Config: f.Ingest, ClickHouse: f.ClickHouse, Aggregator: f.Aggregator, Section: f.AllInOne, Serve: f.Serve}
}

// sectionKeys are the file's top-level keys, from File's yaml tags.
func sectionKeys() []string {
	var keys []string
	t := reflect.TypeFor[File]()
	for i := range t.NumField() {
		keys = append(keys, yamlName(t.Field(i)))
	}
	return keys
}

// movedKeys maps each key of the layout before sections (ingest's,
// the aggregator's and all-in-one's keys at the top level) to where it
// lives now.
func movedKeys() map[string][]string {
	moved := map[string][]string{}
	add := func(section string, t reflect.Type) {
		var walk func(t reflect.Type)
		walk = func(t reflect.Type) {
			for i := range t.NumField() {
				sf := t.Field(i)
				tag := sf.Tag.Get("yaml")
				if tag == "-" || !sf.IsExported() {
					continue
				}
				if strings.Contains(tag, "inline") {
					walk(sf.Type)
					continue
				}
				moved[yamlName(sf)] = append(moved[yamlName(sf)], section+"."+yamlName(sf))
			}
		}
		walk(t)
	}
	add(ingest.Section, reflect.TypeFor[ingest.Config]())
	add(runner.Section, reflect.TypeFor[runner.Config]())
	add(allinone.SectionKey, reflect.TypeFor[allinone.Section]())
	return moved
}

func yamlName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "" {
		name = strings.ToLower(sf.Name)
	}
	return name
}

// checkLayout reports the top-level keys of the layout before sections
// with where each moved, naming its line: strict decoding alone would
// only say "field tokens not found in type appconfig.File".
func checkLayout(b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // the strict decoder reports it
	}
	top := doc.Content[0]
	sections, moved := sectionKeys(), movedKeys()
	var errs []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch {
		case k.Value == "migrate" && v.Kind == yaml.ScalarNode:
			// all-in-one's migrate: true is now all_in_one.migrate; migrate:
			// as a section is `qoscope migrate`'s.
			errs = append(errs, fmt.Sprintf("line %d: migrate: %s moved to all_in_one.migrate (the top-level migrate section holds qoscope migrate's settings)", k.Line, v.Value))
		case slices.Contains(sections, k.Value):
		case len(moved[k.Value]) > 0:
			errs = append(errs, fmt.Sprintf("line %d: %s: moved to %s", k.Line, k.Value, strings.Join(moved[k.Value], " or ")))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; ") + " (the file has one section per component beside the shared kafka, clickhouse and log: see deploy/config/qoscope.yaml)")
}
