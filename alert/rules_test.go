package alert

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/query"
)

// catalog is the catalogue of the default grouping sets.
func catalog(t testing.TB) *query.Catalog {
	t.Helper()
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return query.NewCatalog(plan)
}

func parse(t testing.TB, yaml string) *Rules {
	t.Helper()
	rs, err := ParseRules("rules.yaml", []byte(yaml), catalog(t))
	if err != nil {
		t.Fatalf("rules do not parse: %v", err)
	}
	return rs
}

func TestExampleRules(t *testing.T) {
	rs, err := LoadRules("../deploy/alerts/rules.yaml", catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, r := range rs.Rules {
		names = append(names, r.Name)
	}
	want := "stutter-uv-high stutter-uv-region-high stutter-uv-total-high pull-connect-rate-low cdn-5xx-rate-high first-frame-p90-slow push-connect-rate-low push-drop-rate-high concurrency-drop-vs-yesterday"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("rules %s, want %s", got, want)
	}
	r := rs.Rules[0]
	if r.For != 2*time.Minute || r.KeepFiringFor != time.Minute || *r.Above != 0.15 || r.MinUsers != 20 ||
		r.Action != "blacklist" || r.GroupingSet().Name != "vendor,province,isp" || r.Volume() != "users" {
		t.Errorf("stutter-uv-high decoded as %+v", r)
	}
	if c := rs.Rules[8].Compare; c == nil || c.Offset != 24*time.Hour || *c.BelowRatio != 0.7 || c.AboveRatio != nil {
		t.Errorf("concurrency compare decoded as %+v", c)
	}
	if v := rs.Rules[4].Volume(); v != "requests" {
		t.Errorf("cdn volume %q, want requests", v)
	}
}

// The example of docs/ALERTS.md, filter and all, is a valid rule.
func TestDocumentedExampleRule(t *testing.T) {
	rs := parse(t, `
- name: stutter-uv-high
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  filter: {vendor: cdn-b}
  above: 0.08
  min_users: 25
  for: 2m
  keep_firing_for: 1m
  severity: critical
  labels: {team: cdn}
  annotations: {summary: "{{ .Labels.vendor }} stutter {{ .Value | pct }} in {{ .Labels.province }}/{{ .Labels.isp }}"}
  action: blacklist
`)
	r := rs.Rules[0]
	got, err := r.RenderAnnotations(TemplateData{Labels: map[string]string{"vendor": "cdn-b", "province": "guangdong", "isp": "telecom"}, Value: 0.2134, HasValue: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := "cdn-b stutter 21.3% in guangdong/telecom"; got["summary"] != want {
		t.Errorf("summary %q, want %q", got["summary"], want)
	}
}

const okRule = `
- name: r
  source: client
  metric: stutter_rate_uv
  group_by: [province, isp]
  above: 0.1
  severity: warning
`

func TestRuleErrors(t *testing.T) {
	// Each case replaces one line of okRule (or adds one) and expects the
	// error to name the file, the rule and the key, and to say why.
	cases := []struct {
		name, old, new string
		want           []string
	}{
		{"unknown metric lists the valid ones", "metric: stutter_rate_uv", "metric: stuter_rate",
			[]string{`rules.yaml: rule "r" (#1): metric: "stuter_rate": no client metric of that name; valid: users, stutter_users,`, "push_drop_rate"}},
		{"group_by not a set lists the sets", "group_by: [province, isp]", "group_by: [isp, vendor]",
			[]string{`rule "r" (#1): group_by:`, "the sets are: (total) [province] [isp] [province,isp] [vendor] [vendor,province,isp]"}},
		{"group_by on a non-dimension", "group_by: [province, isp]", "group_by: [user_id]",
			[]string{`group_by: "user_id": not a client dimension; valid: province, isp,`}},
		{"unknown source", "source: client", "source: server", []string{`source: "server": unknown source; valid: client, cdn, origin`}},
		{"filter on a non-dimension", "above: 0.1", "above: 0.1\n  filter: {colour: red}", []string{"filter.colour: not a client dimension"}},
		{"filter outside group_by", "above: 0.1", "above: 0.1\n  filter: {vendor: cdn-b}", []string{"filter.vendor: not in group_by"}},
		{"above and below", "above: 0.1", "above: 0.1\n  below: 0.01", []string{"above/below/compare: exactly one is required (found 2)"}},
		{"no threshold", "above: 0.1", "", []string{"above/below/compare: exactly one is required (found 0)"}},
		{"compare with both ratios", "above: 0.1", "compare: {offset: 1d, above_ratio: 2, below_ratio: 0.5}", []string{"compare: exactly one of above_ratio and below_ratio"}},
		{"compare offset", "above: 0.1", "compare: {offset: 2d, above_ratio: 2}", []string{`compare.offset: "2d" is not an offset; valid: 1d, 7d`}},
		{"compare unknown key", "above: 0.1", "compare: {offset: 1d, above: 2}", []string{"compare.above: unknown key"}},
		{"for in seconds", "above: 0.1", "above: 0.1\n  for: 90s", []string{`for: "90s" is not a whole number of minutes`}},
		{"keep_firing_for not a duration", "above: 0.1", "above: 0.1\n  keep_firing_for: soon", []string{`keep_firing_for: "soon" is not a duration`}},
		{"negative min_users", "above: 0.1", "above: 0.1\n  min_users: -1", []string{"min_users: -1 is negative"}},
		{"min_users not a number", "above: 0.1", "above: 0.1\n  min_users: many", []string{"min_users: line"}},
		{"volume not a metric", "above: 0.1", "above: 0.1\n  volume: viewers", []string{`volume: "viewers": no client metric of that name`}},
		{"volume not a count", "above: 0.1", "above: 0.1\n  volume: pull_connect_rate", []string{`volume: "pull_connect_rate" is not a per-minute count of the client source`}},
		{"severity", "severity: warning", "severity: page", []string{`severity: "page" is not a severity; valid: critical, warning, info`}},
		{"unknown key", "above: 0.1", "above: 0.1\n  treshold: 3", []string{"treshold: unknown key (line"}},
		{"label named like a dimension", "above: 0.1", "above: 0.1\n  labels: {isp: x}", []string{"labels.isp: a dimension of group_by"}},
		{"label severity", "above: 0.1", "above: 0.1\n  labels: {severity: x}", []string{"labels.severity: set by the severity key"}},
		{"bad label name", "above: 0.1", "above: 0.1\n  labels: {team-a: x}", []string{"labels.team-a: not a label name"}},
		{"annotation syntax", "above: 0.1", "above: 0.1\n  annotations: {summary: \"{{ .Value \"}", []string{"annotations.summary: template: summary"}},
		{"annotation label the alert lacks", "above: 0.1", "above: 0.1\n  annotations: {summary: \"{{ .Labels.vendor }}\"}", []string{"annotations.summary:", `map has no entry for key "vendor"`}},
		{"annotation unknown field", "above: 0.1", "above: 0.1\n  annotations: {summary: \"{{ .Foo }}\"}", []string{"annotations.summary:", "can't evaluate field Foo"}},
		{"action", "above: 0.1", "above: 0.1\n  action: reboot", []string{`action: "reboot" is not an action; valid: blacklist`}},
		{"rollup-only metric", "source: client\n  metric: stutter_rate_uv", "source: origin\n  metric: data_minutes", []string{"metric: \"data_minutes\" is not a per-minute metric"}},
		{"no name", "- name: r", "- source: client", []string{"rules.yaml: rule #1: name: required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(okRule, c.old, c.new, 1)
			if c.name == "no name" {
				src = strings.Replace(okRule, "- name: r\n  source: client", "- source: client", 1)
			}
			if src == okRule {
				t.Fatalf("case does not change the rule")
			}
			_, err := ParseRules("rules.yaml", []byte(src), catalog(t))
			if err == nil {
				t.Fatalf("accepted:\n%s", src)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestRuleFileErrors(t *testing.T) {
	cat := catalog(t)
	if _, err := ParseRules("f.yaml", []byte(okRule+strings.Replace(okRule, "metric: stutter_rate_uv", "metric: nope", 1)), cat); err == nil ||
		!strings.Contains(err.Error(), `f.yaml: rule "r" (#2): name: same name as rule #1`) ||
		!strings.Contains(err.Error(), `f.yaml: rule "r" (#2): metric: "nope"`) {
		t.Errorf("duplicate name and bad metric of rule 2: %v", err)
	}
	if _, err := ParseRules("f.yaml", []byte("name: r\n"), cat); err == nil || !strings.Contains(err.Error(), "f.yaml: line 1: the file must be a list of rules") {
		t.Errorf("a mapping at the top: %v", err)
	}
	if _, err := ParseRules("f.yaml", []byte("- [1, 2]\n"), cat); err == nil || !strings.Contains(err.Error(), "f.yaml: rule #1: line 1: a rule must be a mapping") {
		t.Errorf("a rule that is a list: %v", err)
	}
	rs, err := ParseRules("f.yaml", []byte("# nothing yet\n"), cat)
	if err != nil || len(rs.Rules) != 0 {
		t.Errorf("an empty file: %v, %d rules", err, len(rs.Rules))
	}
	if _, err := LoadRules("does-not-exist.yaml", cat); err == nil || !strings.Contains(err.Error(), "cannot read rules") {
		t.Errorf("a missing file: %v", err)
	}
}

// group_by: [] (or no group_by) is the total's grouping set.
func TestTotalRule(t *testing.T) {
	rs := parse(t, strings.Replace(okRule, "group_by: [province, isp]", "", 1))
	if gs := rs.Rules[0].GroupingSet(); gs.Name != "" || len(gs.Dims) != 0 {
		t.Errorf("set %+v, want the total", gs)
	}
}

// What a live evaluator reads for a rule is made of catalogue names only:
// a rate brings its numerator and denominator (counts, for the
// diagnosis), a mean does not (its sum column is not a public metric).
func TestNeedsAreCatalogueNames(t *testing.T) {
	cat := catalog(t)
	rs, err := ParseRules("r.yaml", []byte(`
- name: ff
  source: client
  metric: first_frame_ms_avg
  group_by: [province]
  above: 3000
  severity: warning
- name: st
  source: client
  metric: stutter_rate_uv
  group_by: [province]
  above: 0.1
  severity: warning
`), cat)
	if err != nil {
		t.Fatal(err)
	}
	ns := rs.Needs()
	if len(ns) != 1 {
		t.Fatalf("needs %+v", ns)
	}
	want := []string{"first_frame_ms_avg", "stutter_rate_uv", "stutter_users", "users"}
	if !slices.Equal(ns[0].Metrics, want) {
		t.Errorf("metrics %v, want %v", ns[0].Metrics, want)
	}
	for _, m := range ns[0].Metrics {
		if _, err := cat.Metric("client", m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
