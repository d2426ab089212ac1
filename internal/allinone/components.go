package allinone

import (
	"fmt"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/internal/config"
)

// aggregatorComponent builds the streaming aggregator on the process's own
// Kafka, ClickHouse and log settings: one process, one set of servers.
func aggregatorComponent(cfg Config, base zerolog.Logger, reg prometheus.Registerer) (component, error) {
	rc := cfg.Aggregator
	rc.Kafka, rc.ClickHouse, rc.Log = cfg.Kafka, cfg.ClickHouse, cfg.Log
	// The embedded aggregator reports through the ingest /metrics registry.
	rc.MetricsListen = ""
	r, err := runner.New(rc, runner.Deps{Logger: base, Registry: reg})
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	return r.Run, nil
}

// checkAggregatorSections refuses aggregator.kafka/clickhouse/log: in one
// process they are the top-level sections, and a second value there would
// be silently ignored.
func checkAggregatorSections(c *Config, errs *config.Errors) {
	def := runner.DefaultConfig()
	for _, s := range []struct {
		key      string
		got, def any
		top      any
	}{
		{"aggregator.kafka", c.Aggregator.Kafka, def.Kafka, c.Kafka},
		{"aggregator.clickhouse", c.Aggregator.ClickHouse, def.ClickHouse, c.ClickHouse},
		{"aggregator.log", c.Aggregator.Log, def.Log, c.Log},
	} {
		// Env overrides (QOSCOPE_KAFKA_BROKERS, ...) reach both copies alike.
		if !reflect.DeepEqual(s.got, s.def) && !reflect.DeepEqual(s.got, s.top) {
			errs.Addf("%s: not used by all-in-one; set it at the top level", s.key)
		}
	}
}
