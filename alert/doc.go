// Package alert is the pure core of qoscope's alerting (docs/ALERTS.md):
// rule files validated against the metric catalogue (query.Catalog), the
// minute-by-minute evaluation of each rule × group with its pending, firing,
// inactive and resolved transitions, the persistable alert state, the
// offline evaluation of `qoscope aggregate` rows, and the diagnosis of a
// rate alert by its finer groups. It does no I/O beyond reading files given
// to it: delivery, the outbox and the live loop are built on top of it.
package alert
