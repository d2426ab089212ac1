package allinone

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator/runner"
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
