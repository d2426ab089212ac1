package notify

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sent, failed, retried *prometheus.CounterVec
	depth                 *prometheus.GaugeVec
	latency               *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "notify", Name: "notifications_sent_total",
			Help: "Notifications a receiver accepted (Alertmanager: posts of the current alerts)."}, []string{"receiver"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "notify", Name: "notifications_failed_total",
			Help: "Notifications given up: a permanent error (4xx, a robot's error code) or retryable errors past give_up_after."}, []string{"receiver"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "notify", Name: "notifications_retried_total",
			Help: "Failed attempts that will be tried again (5xx, 429, network)."}, []string{"receiver"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "qoscope", Subsystem: "notify", Name: "outbox_depth",
			Help: "Notifications enqueued and not yet sent or failed."}, []string{"receiver"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "qoscope", Subsystem: "notify", Name: "send_duration_seconds",
			Help:    "Duration of one attempt to send a notification, whatever its outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"receiver"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sent, m.failed, m.retried, m.depth, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
