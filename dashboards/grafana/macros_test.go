package grafana

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// The expansion below is what happens to a panel's rawSql between the
// dashboard and ClickHouse, in the plugin's order (grafana-clickhouse-
// datasource: CHDatasource.applyTemplateVariables, then its backend's
// macros; docs/sources/query-editor.md "Macros" and
// template-variables.md of the plugin):
//
//  1. $__conditionalAll(cond, $v): 1=1 when v's current value is "" or
//     "$__all" (All selected), else cond; innermost-last occurrence first,
//     arguments split at top-level commas.
//  2. Grafana's variable interpolation: ${v:singlequote} quotes each value
//     ('…', a quote inside escaped as \') and joins them with ','; $v and
//     ${v} without a format use the plugin's default ('a','b' for a list).
//     "All" expands to every option of the variable.
//  3. Backend macros: $__timeFilter(c) → c >= toDateTime(from) AND c <=
//     toDateTime(to); $__timeInterval(c) → toStartOfInterval(toDateTime(c),
//     INTERVAL n second); $__fromTime, $__toTime → toDateTime(unix);
//     $__interval_s → n; n = the query interval in seconds, at least 1.
//
// Any other $__macro is an error, so a panel cannot use one the test does
// not expand.

// varState is one template variable's current value: All, or a list.
type varState struct {
	All     bool
	Values  []string
	Options []string // every option, for All
}

type expansion struct {
	From, To time.Time
	Interval time.Duration
	Vars     map[string]varState
}

func (e *expansion) expand(sql string) (string, error) {
	s, err := e.conditionalAll(sql)
	if err != nil {
		return "", err
	}
	s, err = e.interpolate(s)
	if err != nil {
		return "", err
	}
	return e.macros(s)
}

func macroArgs(s string, open int) ([]string, int, error) {
	depth := 0
	last := open + 1
	var args []string
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				args = append(args, s[last:i])
				return args, i + 1, nil
			}
		case ',':
			if depth == 1 {
				args = append(args, s[last:i])
				last = i + 1
			}
		}
	}
	return nil, 0, fmt.Errorf("unclosed macro arguments at %d", open)
}

var varRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

func (e *expansion) conditionalAll(s string) (string, error) {
	const macro = "$__conditionalAll("
	for {
		i := strings.LastIndex(s, macro)
		if i < 0 {
			return s, nil
		}
		args, end, err := macroArgs(s, i+len(macro)-1)
		if err != nil {
			return "", err
		}
		if len(args) != 2 {
			return "", fmt.Errorf("$__conditionalAll takes 2 arguments, got %d: %q", len(args), s[i:end])
		}
		m := varRef.FindStringSubmatch(strings.TrimSpace(args[1]))
		if m == nil {
			return "", fmt.Errorf("$__conditionalAll's second argument %q is not a variable", args[1])
		}
		name := m[1] + m[2]
		v, ok := e.Vars[name]
		if !ok {
			return "", fmt.Errorf("$__conditionalAll names variable %q, which the dashboard does not define", name)
		}
		phrase := args[0]
		if v.All || len(v.Values) == 0 {
			phrase = "1=1"
		}
		s = s[:i] + phrase + s[end:]
	}
}

var varWithFormat = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\$(\w+)`)

func singleQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `\'`) + "'" }

func (e *expansion) interpolate(s string) (string, error) {
	var err error
	out := varWithFormat.ReplaceAllStringFunc(s, func(ref string) string {
		m := varWithFormat.FindStringSubmatch(ref)
		name, format := m[1]+m[3], m[2]
		if strings.HasPrefix(name, "__") {
			return ref // a macro, not a variable
		}
		v, ok := e.Vars[name]
		if !ok {
			err = fmt.Errorf("variable %q is not defined by the dashboard", name)
			return ref
		}
		vals := v.Values
		if v.All {
			vals = v.Options
		}
		switch format {
		case "singlequote":
			q := make([]string, len(vals))
			for i, x := range vals {
				q[i] = singleQuote(x)
			}
			return strings.Join(q, ",")
		case "":
			if len(vals) == 1 {
				return vals[0]
			}
			return "'" + strings.Join(vals, "','") + "'"
		}
		err = fmt.Errorf("variable format %q of %s is not expanded by this test", format, ref)
		return ref
	})
	return out, err
}

var macroRef = regexp.MustCompile(`\$__(\w+)`)

func (e *expansion) macros(s string) (string, error) {
	secs := int(math.Max(e.Interval.Seconds(), 1))
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	var b strings.Builder
	for {
		loc := macroRef.FindStringSubmatchIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:loc[0]])
		name := s[loc[2]:loc[3]]
		rest := s[loc[1]:]
		var args []string
		if strings.HasPrefix(rest, "(") && (name == "timeFilter" || name == "timeInterval") {
			a, end, err := macroArgs(rest, 0)
			if err != nil {
				return "", err
			}
			args, rest = a, rest[end:]
		}
		switch name {
		case "timeFilter":
			if len(args) != 1 {
				return "", fmt.Errorf("$__timeFilter takes 1 argument, got %v", args)
			}
			c := strings.TrimSpace(args[0])
			fmt.Fprintf(&b, "%s >= %s AND %s <= %s", c, dt(e.From), c, dt(e.To))
		case "timeInterval":
			if len(args) != 1 {
				return "", fmt.Errorf("$__timeInterval takes 1 argument, got %v", args)
			}
			fmt.Fprintf(&b, "toStartOfInterval(toDateTime(%s), INTERVAL %d second)", strings.TrimSpace(args[0]), secs)
		case "fromTime":
			b.WriteString(dt(e.From))
		case "toTime":
			b.WriteString(dt(e.To))
		case "interval_s":
			fmt.Fprintf(&b, "%d", secs)
		default:
			return "", fmt.Errorf("macro $__%s is not expanded by this test", name)
		}
		s = rest
	}
}

// grafanaInterval is the interval Grafana hands a panel: the range over
// its max data points (about its width in pixels; 1000 here), never
// below the panel's minimum interval.
func grafanaInterval(from, to time.Time, minInterval time.Duration) time.Duration {
	iv := to.Sub(from) / 1000
	if iv < minInterval {
		iv = minInterval
	}
	return iv.Truncate(time.Second)
}
