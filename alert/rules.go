package alert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qoscope/qoscope/query"
)

// Rule is one alert rule of a rules file (docs/ALERTS.md, "Rules"). The
// exported fields are the file's keys; the rest is resolved against the
// catalogue by ParseRules.
type Rule struct {
	Name   string            `yaml:"name"`
	Source string            `yaml:"source"`
	Metric string            `yaml:"metric"`
	By     []string          `yaml:"group_by"`
	Filter map[string]string `yaml:"filter"`
	// Exactly one of Above, Below and Compare is set.
	Above   *float64 `yaml:"above"`
	Below   *float64 `yaml:"below"`
	Compare *Compare `yaml:"compare"`
	// MinUsers is the sample floor on the rule's volume metric.
	MinUsers int64 `yaml:"min_users"`
	// VolumeMetric (key volume) names the count min_users floors: by default the source's
	// volume (client users, cdn requests, origin samples); a rate over a
	// rarer event (push_drop_rate) needs its own denominator here
	// (push_ends), or one dropped push among two fires it.
	VolumeMetric  string            `yaml:"volume"`
	For           time.Duration     `yaml:"-"`
	KeepFiringFor time.Duration     `yaml:"-"`
	Severity      string            `yaml:"severity"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
	// Action is "" or "blacklist" (kept for the scores, not used here).
	Action string `yaml:"action"`

	metric *query.Metric
	set    query.GroupingSet
	volume string
	// sortedDims is set.Dims sorted: how a row's grouping set is recognised.
	sortedDims string
	labelKeys  []string // Labels' keys, sorted
	// finer are the source's grouping sets with every dimension of set and
	// more: where the diagnosis looks for the groups that explain an alert.
	finer     []query.GroupingSet
	templates map[string]*template.Template
}

// Compare is a rule's comparison with the same group at an earlier time
// (同比 / 环比).
type Compare struct {
	Offset     time.Duration `yaml:"-"`
	AboveRatio *float64      `yaml:"above_ratio"`
	BelowRatio *float64      `yaml:"below_ratio"`
}

// MetricInfo is the rule's catalogue entry.
func (r *Rule) MetricInfo() *query.Metric { return r.metric }

// GroupingSet is the configured grouping set the rule evaluates.
func (r *Rule) GroupingSet() query.GroupingSet { return r.set }

// Volume is the name of the source's sample-count metric min_users applies to.
func (r *Rule) Volume() string { return r.volume }

// Rules is a validated rules file, rules in file order.
type Rules struct {
	File  string
	Rules []*Rule
	cat   *query.Catalog
}

// Catalog is the catalogue the rules were validated against.
func (rs *Rules) Catalog() *query.Catalog { return rs.cat }

// ruleKeys are the keys a rule may have; anything else is an error (a typo
// such as "treshold" must not silently make a rule that never fires).
var ruleKeys = []string{"name", "source", "metric", "group_by", "filter", "above", "below", "compare",
	"min_users", "volume", "for", "keep_firing_for", "severity", "labels", "annotations", "action"}

var compareKeys = []string{"offset", "above_ratio", "below_ratio"}

// Severities are the accepted values of severity.
var severities = []string{"critical", "warning", "info"}

// Offsets a compare may use: the same minute yesterday (环比 over a day) or a
// week before (同比 over a week), the baselines on-call compares live traffic with.
var offsets = map[string]time.Duration{"1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

// labelName is Prometheus's label-name syntax, so the labels can be sent to
// Alertmanager unchanged.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// LoadRules reads and validates a rules file.
func LoadRules(path string, cat *query.Catalog) (*Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules: %w", err)
	}
	return ParseRules(path, b, cat)
}

// ParseRules validates the YAML of a rules file named file (used in the
// errors). Every problem is reported, each as `FILE: rule NAME (#N): KEY: reason`.
func ParseRules(file string, data []byte, cat *query.Catalog) (*Rules, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Rules{File: file, cat: cat}, nil // an empty file is no rules
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: a rules file holds one YAML document (a list of rules)", file)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return &Rules{File: file, cat: cat}, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: line %d: the file must be a list of rules", file, root.Line)
	}
	rs := &Rules{File: file, cat: cat}
	var errs []string
	seen := map[string]int{}
	for i, n := range root.Content {
		r, rerrs := parseRule(n, cat)
		where := fmt.Sprintf("%s: rule #%d", file, i+1)
		if r != nil && r.Name != "" {
			where = fmt.Sprintf("%s: rule %q (#%d)", file, r.Name, i+1)
		}
		if r != nil && r.Name != "" {
			if prev, ok := seen[r.Name]; ok {
				rerrs = append(rerrs, fmt.Sprintf("name: same name as rule #%d (names identify alerts and must be unique)", prev))
			} else {
				seen[r.Name] = i + 1
			}
		}
		for _, e := range rerrs {
			errs = append(errs, where+": "+e)
		}
		if len(rerrs) == 0 {
			rs.Rules = append(rs.Rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return rs, nil
}

// parseRule decodes and validates one rule node; the errors are `KEY: reason`.
func parseRule(n *yaml.Node, cat *query.Catalog) (*Rule, []string) {
	if n.Kind != yaml.MappingNode {
		return nil, []string{fmt.Sprintf("line %d: a rule must be a mapping of keys", n.Line)}
	}
	var errs []string
	addf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	r := &Rule{}
	raw := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if !slices.Contains(ruleKeys, k) {
			addf("%s: unknown key (line %d); valid keys: %s", k, n.Content[i].Line, strings.Join(ruleKeys, ", "))
			continue
		}
		raw[k] = v
	}
	// Name first, so that every other error names the rule.
	decode := func(key string, dst any) bool {
		v, ok := raw[key]
		if !ok {
			return false
		}
		if err := v.Decode(dst); err != nil {
			addf("%s: %s", key, yamlReason(err))
			return false
		}
		return true
	}
	decode("name", &r.Name)
	decode("source", &r.Source)
	decode("metric", &r.Metric)
	decode("group_by", &r.By)
	decode("filter", &r.Filter)
	decode("above", &r.Above)
	decode("below", &r.Below)
	decode("min_users", &r.MinUsers)
	decode("volume", &r.VolumeMetric)
	decode("severity", &r.Severity)
	decode("labels", &r.Labels)
	decode("annotations", &r.Annotations)
	decode("action", &r.Action)
	var s string
	if decode("for", &s) {
		r.For = minutes("for", s, addf)
	}
	s = ""
	if decode("keep_firing_for", &s) {
		r.KeepFiringFor = minutes("keep_firing_for", s, addf)
	}
	if c, ok := raw["compare"]; ok {
		r.Compare = parseCompare(c, addf)
	}

	if r.Name == "" {
		addf("name: required")
	}
	r.validate(cat, addf)
	return r, errs
}

func parseCompare(n *yaml.Node, addf func(string, ...any)) *Compare {
	if n.Kind != yaml.MappingNode {
		addf("compare: must be a mapping {offset: 1d|7d, above_ratio: R} or {offset: …, below_ratio: R}")
		return nil
	}
	c := &Compare{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		var err error
		switch k {
		case "offset":
			var s string
			if err = v.Decode(&s); err == nil {
				d, ok := offsets[s]
				if !ok {
					addf("compare.offset: %q is not an offset; valid: 1d, 7d", s)
				}
				c.Offset = d
			}
		case "above_ratio":
			err = v.Decode(&c.AboveRatio)
		case "below_ratio":
			err = v.Decode(&c.BelowRatio)
		default:
			addf("compare.%s: unknown key (line %d); valid keys: %s", k, n.Content[i].Line, strings.Join(compareKeys, ", "))
		}
		if err != nil {
			addf("compare.%s: %s", k, yamlReason(err))
		}
	}
	if c.Offset == 0 {
		addf("compare.offset: required (1d or 7d)")
	}
	switch {
	case (c.AboveRatio == nil) == (c.BelowRatio == nil):
		addf("compare: exactly one of above_ratio and below_ratio is required")
	case c.AboveRatio != nil && !(*c.AboveRatio > 0) || c.BelowRatio != nil && !(*c.BelowRatio > 0):
		addf("compare: the ratio must be a number above 0")
	}
	return c
}

// minutes parses a duration that must be a whole number of minutes: rules
// are evaluated once per one-minute window, so "90s" would have no meaning.
func minutes(key, s string, addf func(string, ...any)) time.Duration {
	if s == "0" {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		addf("%s: %q is not a duration (e.g. 0, 2m, 1h)", key, s)
	case d < 0:
		addf("%s: %q is negative", key, s)
	case d%time.Minute != 0:
		addf("%s: %q is not a whole number of minutes (rules are evaluated per one-minute window)", key, s)
	default:
		return d
	}
	return 0
}

func yamlReason(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return err.Error()
}

func (r *Rule) validate(cat *query.Catalog, addf func(string, ...any)) {
	si, err := cat.Source(r.Source)
	if err != nil {
		if r.Source == "" {
			addf("source: required (client, cdn or origin)")
		} else {
			addf("source: %v", reason(err))
		}
		return
	}
	r.volume = si.Volume
	if r.VolumeMetric != "" {
		switch m, err := cat.Metric(r.Source, r.VolumeMetric); {
		case err != nil:
			addf("volume: %s", reason(err))
		case m.Kind != query.KindCount || !m.Has(query.PeriodMinute):
			addf("volume: %q is not a per-minute count of the %s source (users, pushes, push_ends, requests, ...)", r.VolumeMetric, r.Source)
		default:
			r.volume = r.VolumeMetric
		}
	}
	switch m, err := cat.Metric(r.Source, r.Metric); {
	case r.Metric == "":
		addf("metric: required (a %s metric of the catalogue, GET /api/v1/metrics)", r.Source)
	case err != nil:
		addf("metric: %s", reason(err))
	case !m.Has(query.PeriodMinute):
		addf("metric: %q is not a per-minute metric (it exists in the hour and day rollups only)", r.Metric)
	default:
		r.metric = m
	}
	if r.By == nil {
		r.By = []string{}
	}
	if gs, err := cat.GroupingSetFor(r.Source, r.By, "group_by"); err != nil {
		addf("group_by: %s", reason(err))
	} else {
		r.set = gs
		sorted := slices.Clone(gs.Dims)
		slices.Sort(sorted)
		r.sortedDims = strings.Join(sorted, ",")
		for _, f := range si.GroupingSets {
			if len(f.Dims) > len(gs.Dims) && containsAll(f.Dims, gs.Dims) {
				r.finer = append(r.finer, f)
			}
		}
	}
	for _, k := range sortedKeys(r.Filter) {
		switch {
		case !slices.Contains(si.Dimensions, k):
			addf("filter.%s: not a %s dimension; valid: %s", k, r.Source, strings.Join(si.Dimensions, ", "))
		case !slices.Contains(r.By, k):
			// The rows of a grouping set carry its dimensions only, so a
			// filter can only select values of group_by's dimensions.
			addf("filter.%s: not in group_by; a filter selects values of the grouping set's dimensions (add %s to group_by)", k, k)
		}
	}
	n := 0
	for _, set := range []bool{r.Above != nil, r.Below != nil, r.Compare != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		addf("above/below/compare: exactly one is required (found %d)", n)
	}
	for key, p := range map[string]*float64{"above": r.Above, "below": r.Below} {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
			addf("%s: must be a finite number", key)
		}
	}
	if r.MinUsers < 0 {
		addf("min_users: %d is negative", r.MinUsers)
	}
	if !slices.Contains(severities, r.Severity) {
		addf("severity: %q is not a severity; valid: %s", r.Severity, strings.Join(severities, ", "))
	}
	r.labelKeys = sortedKeys(r.Labels)
	for _, k := range r.labelKeys {
		switch {
		case !labelName.MatchString(k):
			addf("labels.%s: not a label name ([a-zA-Z_][a-zA-Z0-9_]*)", k)
		case k == "severity":
			addf("labels.severity: set by the severity key")
		case slices.Contains(r.set.Dims, k):
			addf("labels.%s: a dimension of group_by; its value comes from the group", k)
		}
	}
	if r.Action != "" && r.Action != "blacklist" {
		addf("action: %q is not an action; valid: blacklist", r.Action)
	}
	r.templates = map[string]*template.Template{}
	sample := TemplateData{Rule: r.Name, Labels: map[string]string{"severity": r.Severity}, Value: 0.5, HasValue: true, Users: 1}
	for _, d := range r.set.Dims {
		sample.Labels[d] = "x"
	}
	for k, v := range r.Labels {
		sample.Labels[k] = v
	}
	for _, k := range sortedKeys(r.Annotations) {
		t, err := template.New(k).Option("missingkey=error").Funcs(templateFuncs).Parse(r.Annotations[k])
		if err != nil {
			addf("annotations.%s: %v", k, err)
			continue
		}
		// Executing on a sample group catches a field or label the alert
		// will never have, at load time rather than when it fires.
		if err := t.Execute(io.Discard, sample); err != nil {
			addf("annotations.%s: %v", k, err)
			continue
		}
		r.templates[k] = t
	}
}

// reason is a catalogue error without its parameter prefix (the caller
// names the key).
func reason(err error) string {
	var v *query.ValidationError
	if errors.As(err, &v) {
		if v.Value == "" {
			return v.Reason
		}
		return strconv.Quote(v.Value) + ": " + v.Reason
	}
	return err.Error()
}

func containsAll(set, sub []string) bool {
	for _, d := range sub {
		if !slices.Contains(set, d) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TemplateData is what an annotation template sees: {{ .Labels.vendor }},
// {{ .Value | pct }}, {{ .Users }}.
type TemplateData struct {
	Rule   string
	Labels map[string]string
	// Value is the metric's value (0 when the group has no value, see HasValue).
	Value    float64
	HasValue bool
	Users    int64
	State    string
}

// templateFuncs: pct renders a ratio as a percentage with one decimal
// (0.2134 → "21.3%").
var templateFuncs = template.FuncMap{
	"pct": func(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" },
}

// RenderAnnotations renders the rule's annotations for one alert.
func (r *Rule) RenderAnnotations(d TemplateData) (map[string]string, error) {
	out := make(map[string]string, len(r.templates))
	for k, t := range r.templates {
		var b strings.Builder
		if err := t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("cannot render annotation %s of rule %s: %w", k, r.Name, err)
		}
		out[k] = b.String()
	}
	return out, nil
}
