package allinone

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator/runner"
)

// aggregatorComponent builds the streaming aggregator on the process's own
// Kafka, ClickHouse and log settings: one process, one set of servers.
// written receives (without blocking: one pending wake is enough) after
// each of its flushes.
func aggregatorComponent(cfg Config, base zerolog.Logger, reg prometheus.Registerer, written chan<- struct{}) (component, error) {
	rc := cfg.Aggregator
	rc.Kafka, rc.ClickHouse, rc.Log = cfg.Kafka, cfg.ClickHouse, cfg.Log
	// The embedded aggregator reports through the ingest /metrics registry.
	rc.MetricsListen = ""
	flushed := func() {
		select {
		case written <- struct{}{}:
		default:
		}
	}
	r, err := runner.New(rc, runner.Deps{Logger: base, Registry: reg, Flushed: flushed})
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	return r.Run, nil
}
