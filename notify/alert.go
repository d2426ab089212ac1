// Package notify delivers alert notifications to on-call: Alertmanager's
// API v2, a generic webhook with Alertmanager's v4 payload, DingTalk,
// WeCom, Feishu and PagerDuty (docs/ALERTS.md, "Delivery"). The live
// evaluator (alert) hands it the alerts whose state changed or that are
// still firing; notify groups, silences, stores them durably, retries and
// sends each notification once.
package notify

import "time"

// Alert is one alert as the evaluator hands it over: the unit grouped,
// silenced and delivered. It mirrors Alertmanager's postable alert so the
// Alertmanager receiver is a plain conversion.
type Alert struct {
	// Fingerprint identifies the alert (alert.Fingerprint: rule name and
	// labels), stable across restarts.
	Fingerprint string `json:"fingerprint"`
	// Rule is the rule's name; Labels always carry it as "alertname" too.
	Rule string `json:"rule"`
	// Labels are the group's dimension values, the rule's severity and
	// labels, and alertname.
	Labels map[string]string `json:"labels"`
	// Annotations are the rule's rendered annotations, plus "diagnosis"
	// when the evaluator found finer groups that explain the alert.
	Annotations map[string]string `json:"annotations"`
	// Status is "firing" or "resolved".
	Status string `json:"status"`
	// StartsAt is the minute the alert went firing; EndsAt the minute it
	// resolved (zero while firing).
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at,omitzero"`
	// Value is the group's metric at the minute evaluated (nil: no row).
	Value *float64 `json:"value"`
	// GeneratorURL links to the alert's view on the wall.
	GeneratorURL string `json:"generator_url"`
	// EvaluatedAt is the minute whose evaluation produced this update.
	EvaluatedAt time.Time `json:"evaluated_at"`
}

// Status values of Alert.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)
