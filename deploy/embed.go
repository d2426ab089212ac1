// Package deploy holds the example deployment files. The demo runs with
// two of them, embedded here so that `qoscope all-in-one --demo` needs no
// checkout: the alert rules and the scheduler's contracts. Both are
// loaded by tests (alert's TestExampleRules, score's example test).
package deploy

import _ "embed"

// AlertRules is alerts/rules.yaml.
//
//go:embed alerts/rules.yaml
var AlertRules []byte

// Scores is config/scores.yaml.
//
//go:embed config/scores.yaml
var Scores []byte
