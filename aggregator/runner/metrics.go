package runner

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics live on the registry the caller passes in (Deps.Registry): two
// runners in one process (tests, all-in-one) must not collide on a global.
type metrics struct {
	consumed      *prometheus.CounterVec   // topic
	outcomes      *prometheus.CounterVec   // outcome
	late          *prometheus.CounterVec   // source
	deadLettered  *prometheus.CounterVec   // class
	rowsWritten   *prometheus.CounterVec   // table
	insertSeconds *prometheus.HistogramVec // table
	flushSeconds  prometheus.Histogram
	flushErrors   *prometheus.CounterVec // stage, class
	freshness     prometheus.Histogram
	commitLag     *prometheus.GaugeVec // topic, partition
	watermark     *prometheus.GaugeVec // topic, partition
	assigned      prometheus.Gauge
	generations   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "qoscope", "aggregator"
	tp := []string{"topic", "partition"}
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_consumed_total", Help: "Kafka messages read, by topic (replays after a restart included)."}, []string{"topic"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_total", Help: "Messages by outcome: applied, late, too_late, replayed, rejected, undecodable."}, []string{"outcome"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "late_events_total", Help: "Events after their window closed (counted in late_events, not applied), by source."}, []string{"source"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deadlettered_total", Help: "Messages acknowledged in the dead-letter topic, by class (undecodable, too_late)."}, []string{"class"}),
		rowsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rows_written_total", Help: "Rows acknowledged by ClickHouse, by table."}, []string{"table"}),
		insertSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_duration_seconds", Help: "One acknowledged insert, by table.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}, []string{"table"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "flush_duration_seconds", Help: "One flush: drain, dead letters, inserts, rollups, checkpoints, commit.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		flushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "flush_errors_total", Help: "Failed flush steps, by stage and class (retryable, permanent)."}, []string{"stage", "class"}),
		freshness: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "final_row_latency_seconds", Help: "From a window closing (watermark past its end) to its final rows acknowledged by ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		commitLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "commit_lag_messages", Help: "End offset minus the committed (resume) offset, per assigned partition."}, tp),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "watermark_seconds", Help: "Event-time watermark (newest event time minus lateness), Unix seconds, per assigned partition."}, tp),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "assigned_partitions", Help: "Partitions assigned to this instance."}),
		generations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "group_generations_total", Help: "Consumer group generations joined (each rebalance starts one)."}),
	}
	for _, c := range []prometheus.Collector{m.consumed, m.outcomes, m.late, m.deadLettered, m.rowsWritten, m.insertSeconds,
		m.flushSeconds, m.flushErrors, m.freshness, m.commitLag, m.watermark, m.assigned, m.generations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register aggregator metrics: %w", err)
		}
	}
	return m, nil
}

func partLabel(p int32) string { return strconv.Itoa(int(p)) }
