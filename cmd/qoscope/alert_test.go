package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const incident = "../../alert/testdata/incident"

// qoscope alert eval on the incident case prints the hand-written expected
// lines (fingerprints are checked against their documented hash in the alert
// package's TestOfflineIncident; here they are masked).
func TestAlertEvalCommand(t *testing.T) {
	clearQoscopeEnv(t)
	out := filepath.Join(t.TempDir(), "changes.ndjson")
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"alert", "eval", "--rules", filepath.Join(incident, "rules.yaml"),
		"--input", filepath.Join(incident, "rows.ndjson"), "--output", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(incident, "expected.ndjson"))
	masked := regexp.MustCompile(`"fingerprint":"[0-9a-f]{16}"`).ReplaceAll(got, []byte(`"fingerprint":"FP"`))
	if !bytes.Equal(masked, want) {
		t.Errorf("output\n%s\nwant\n%s", got, want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q with --output FILE", stdout.String())
	}
}

func TestAlertEvalErrors(t *testing.T) {
	clearQoscopeEnv(t)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := dispatch(ctx, []string{"alert"}, &out, &errb); !errors.Is(err, errUsage) {
		t.Errorf("no subcommand: %v", err)
	}
	if err := dispatch(ctx, []string{"alert", "eval", "--rules", "r.yaml"}, &out, &errb); !errors.Is(err, errUsage) ||
		!strings.Contains(err.Error(), "--rules and at least one --input") {
		t.Errorf("no input: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("- name: x\n  source: client\n  metric: nope\n  above: 1\n  severity: info\n"), 0o600)
	err := dispatch(ctx, []string{"alert", "eval", "--rules", bad, "--input", filepath.Join(incident, "rows.ndjson")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), bad+`: rule "x" (#1): metric: "nope"`) {
		t.Errorf("bad rules: %v", err)
	}
	// The grouping sets come from --config: without [vendor, province, isp]
	// the incident's rule is refused, naming the dimensions that exist.
	cfg := filepath.Join(t.TempDir(), "q.yaml")
	os.WriteFile(cfg, []byte("aggregator:\n  grouping_sets:\n    client: [[], [province]]\n"), 0o600)
	err = dispatch(ctx, []string{"alert", "eval", "--config", cfg, "--rules", filepath.Join(incident, "rules.yaml"),
		"--input", filepath.Join(incident, "rows.ndjson")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `group_by: "vendor": not a client dimension; valid: province`) {
		t.Errorf("rules against a config without the set: %v", err)
	}
}
