package live

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/query"
)

// A valid change is taken; a bad one keeps the last good rules and logs
// the file, rule and key; each counts in rules_reload_total.
func TestReloadKeepsLastGoodRules(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(incidentRules)
	cfg := DefaultConfig()
	cfg.Rules = file
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s, err := NewService(cfg, nil, query.NewQuerier(nil, catalog(t), query.Options{}), &fakeSink{}, reg, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if s.ReloadRules() {
		t.Fatal("unchanged file reloaded")
	}
	write(incidentRules + strings.Replace(incidentRules, "stutter-total", "stutter-total-2", 1))
	if !s.ReloadRules() || len(s.Evaluator().Rules().Rules) != 2 {
		t.Fatal("a valid change was not taken")
	}
	write(strings.Replace(incidentRules, "above: 0.05", "abvoe: 0.05", 1))
	if s.ReloadRules() || len(s.Evaluator().Rules().Rules) != 2 {
		t.Fatal("a bad file replaced the rules")
	}
	if want := file + `: rule \"stutter-total\" (#1): abvoe: unknown key`; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
	if s.ReloadRules() {
		t.Fatal("the same bad file again")
	}
	ok := testutil.ToFloat64(s.m.reloads.WithLabelValues("ok"))
	bad := testutil.ToFloat64(s.m.reloads.WithLabelValues("error"))
	if ok != 1 || bad != 1 {
		t.Errorf("rules_reload_total: ok %v, error %v; want 1 and 1", ok, bad)
	}
	// A bad file at start is an error naming it (there are no good rules yet).
	if _, err := NewService(cfg, nil, query.NewQuerier(nil, catalog(t), query.Options{}), nil, prometheus.NewRegistry(), zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), "abvoe") {
		t.Errorf("bad rules at start: %v", err)
	}
}
