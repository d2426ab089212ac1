package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are registered on the server's own registry (the HTTP request
// metrics are httpx's, under the same qoscope_ingest_ prefix): embedding two
// servers in one process (tests, all-in-one) must not collide on a global.
type metrics struct {
	accepted     *prometheus.CounterVec // source
	rejected     *prometheus.CounterVec // source, reason_class
	deadLettered *prometheus.CounterVec // source
	reqBytes     *prometheus.CounterVec // source, stage (wire|decoded)
	produceDur   prometheus.Histogram   // one WriteMessages call of a request
	produceMsgs  prometheus.Histogram   // messages per request
	kafkaErrors  *prometheus.CounterVec // kind

	cmcdViolations *prometheus.CounterVec // rule
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "qoscope", "ingest"
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_accepted_total", Help: "Events acknowledged by Kafka and answered with 2xx."}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_rejected_total", Help: "Lines rejected by validation (and dead-lettered), by reason class."}, []string{"source", "reason_class"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deadlettered_total", Help: "Records acknowledged in the dead-letter topic."}, []string{"source"}),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "request_bytes_total", Help: "Request body bytes, as sent (wire) and after decompression (decoded)."}, []string{"source", "stage"}),
		produceDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "produce_duration_seconds", Help: "Time from handing a request's messages to the writer until all were acknowledged or failed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		produceMsgs: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "produce_messages", Help: "Messages (events and dead letters) produced per request.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		kafkaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "kafka_errors_total", Help: "Failed produce calls (the request got 503), by kind."}, []string{"kind"}),
		cmcdViolations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cmcd_violations_total", Help: "CMCD sender-rule violations tolerated (data kept) in requests answered 2xx, by rule (ingest/cmcd/README.md)."}, []string{"rule"}),
	}
	for _, c := range []prometheus.Collector{m.accepted, m.rejected, m.deadLettered, m.reqBytes, m.produceDur,
		m.produceMsgs, m.kafkaErrors, m.cmcdViolations} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register ingest metrics: %w", err)
		}
	}
	return m, nil
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
