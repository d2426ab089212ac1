package live

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/notify"
)

// Metrics are the evaluator's Prometheus metrics (docs/ALERTS.md, "Live").
// A nil *Metrics records nothing.
type Metrics struct {
	duration   *prometheus.HistogramVec
	minutes    *prometheus.CounterVec
	lag        prometheus.Histogram
	alerts     *prometheus.GaugeVec
	flips      prometheus.Counter
	notifs     *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	leader     prometheus.Gauge
	tickErrors prometheus.Counter
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "evaluation_duration_seconds", Help: "One minute's evaluation: reads, rules, history, state, hand-over to delivery; kind complete or final.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"kind"}),
		minutes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "minutes_evaluated_total", Help: "Minutes evaluated, by kind: complete (first evaluation) or final."}, []string{"kind"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "evaluation_lag_seconds", Help: "From a minute's end (wall clock) to the end of its first evaluation.",
			Buckets: []float64{0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 600}}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "alerts", Help: "Alerts after the last minute evaluated, by state (pending, firing)."}, []string{"state"}),
		flips: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "decision_flips_total", Help: "Final minutes whose re-evaluation changed or retracted a decision."}),
		notifs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "notifications_total", Help: "Alerts handed to delivery, by status (firing, resolved)."}, []string{"status"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "rules_reload_total", Help: "Reloads of the rules file, by result (ok, error: the last good rules stay)."}, []string{"result"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "leader", Help: "1 while this instance evaluates and sends (the leader), else 0."}),
		tickErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "alert",
			Name: "evaluation_errors_total", Help: "Evaluation rounds that failed (retried at the next interval)."}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.minutes, m.lag, m.alerts, m.flips, m.notifs, m.reloads, m.leader, m.tickErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, s := range []string{"pending", "firing"} {
		m.alerts.WithLabelValues(s)
	}
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	return m, nil
}

func (m *Metrics) evaluated(kind string, took, lag time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(kind).Observe(took.Seconds())
	m.minutes.WithLabelValues(kind).Inc()
	if kind == "complete" || lag < 2*time.Minute {
		m.lag.Observe(max(0, lag.Seconds()))
	}
}

func (m *Metrics) alertsNow(st alert.State) {
	if m == nil {
		return
	}
	n := map[string]int{}
	for _, a := range st.Alerts {
		n[a.State]++
	}
	m.alerts.WithLabelValues("pending").Set(float64(n[alert.StatePending]))
	m.alerts.WithLabelValues("firing").Set(float64(n[alert.StateFiring]))
}

func (m *Metrics) flip() {
	if m != nil {
		m.flips.Inc()
	}
}

func (m *Metrics) notified(as []notify.Alert) {
	if m == nil {
		return
	}
	for _, a := range as {
		m.notifs.WithLabelValues(a.Status).Inc()
	}
}

func (m *Metrics) reload(ok bool) {
	if m == nil {
		return
	}
	r := "error"
	if ok {
		r = "ok"
	}
	m.reloads.WithLabelValues(r).Inc()
}

func (m *Metrics) setLeader(on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.leader.Set(v)
}

func (m *Metrics) tickError() {
	if m != nil {
		m.tickErrors.Inc()
	}
}
