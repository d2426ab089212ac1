package notify

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Matcher is one label condition, as Alertmanager writes it: name, one of
// = != =~ !~, and a value (a regular expression for =~ and !~, anchored at
// both ends like Alertmanager's). A label the alert lacks has the value "".
type Matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`
	re    *regexp.Regexp
}

// Matcher operators.
const (
	OpEqual     = "="
	OpNotEqual  = "!="
	OpRegexp    = "=~"
	OpNotRegexp = "!~"
)

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// NewMatcher checks the name and operator and compiles a regexp value.
func NewMatcher(name, op, value string) (Matcher, error) {
	m := Matcher{Name: name, Op: op, Value: value}
	if !labelNameRE.MatchString(name) {
		return m, fmt.Errorf("label name %q: want [a-zA-Z_][a-zA-Z0-9_]*", name)
	}
	switch op {
	case OpEqual, OpNotEqual:
	case OpRegexp, OpNotRegexp:
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return m, fmt.Errorf("%s%s: bad regexp: %w", name, op, err)
		}
		m.re = re
	default:
		return m, fmt.Errorf("operator %q: want one of = != =~ !~", op)
	}
	return m, nil
}

// ParseMatcher reads `name OP "value"` (the value quoted or bare), as in
// Alertmanager's routes: severity="critical", team=~"cdn|origin".
func ParseMatcher(s string) (Matcher, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return Matcher{}, fmt.Errorf("matcher %q: want name, one of = != =~ !~, value", s)
	}
	name := strings.TrimSpace(s[:i])
	rest := s[i:]
	var op string
	for _, o := range []string{OpRegexp, OpNotRegexp, OpNotEqual, OpEqual} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return Matcher{}, fmt.Errorf("matcher %q: want one of = != =~ !~ after the name", s)
	}
	value := strings.TrimSpace(rest[len(op):])
	if strings.HasPrefix(value, `"`) {
		v, err := strconv.Unquote(value)
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: bad quoted value: %w", s, err)
		}
		value = v
	}
	m, err := NewMatcher(name, op, value)
	if err != nil {
		return Matcher{}, fmt.Errorf("matcher %q: %w", s, err)
	}
	return m, nil
}

// Matches reports whether labels satisfy m.
func (m *Matcher) Matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case OpEqual:
		return v == m.Value
	case OpNotEqual:
		return v != m.Value
	case OpRegexp:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// String writes m back as ParseMatcher reads it.
func (m Matcher) String() string { return m.Name + m.Op + strconv.Quote(m.Value) }

// UnmarshalJSON compiles the matcher it reads.
func (m *Matcher) UnmarshalJSON(b []byte) error {
	var raw struct{ Name, Op, Value string }
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	got, err := NewMatcher(raw.Name, raw.Op, raw.Value)
	if err != nil {
		return err
	}
	*m = got
	return nil
}

// Matchers hold when each of them does.
type Matchers []Matcher

// Matches reports whether every matcher holds for labels.
func (ms Matchers) Matches(labels map[string]string) bool {
	for i := range ms {
		if !ms[i].Matches(labels) {
			return false
		}
	}
	return true
}
