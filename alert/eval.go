package alert

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qoscope/qoscope/query"
)

// The states an alert reports (docs/ALERTS.md, "Semantics"). Pending and
// firing are kept in State; inactive (a pending alert whose condition
// stopped holding) and resolved (a firing one that ended) are transitions.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateInactive = "inactive"
	StateResolved = "resolved"
)

// Change is one state change of one alert, as the offline mode prints it.
type Change struct {
	At          time.Time `json:"at"`
	Rule        string    `json:"rule"`
	Fingerprint string    `json:"fingerprint"`
	Labels      Labels    `json:"labels"`
	State       string    `json:"state"`
	// Value and Users are the group's metric and volume at At, nil when it
	// has no row (or the metric is null).
	Value *float64 `json:"value"`
	Users *int64   `json:"users"`
}

// AlertState is one pending or firing alert.
type AlertState struct {
	Rule        string `json:"rule"`
	Fingerprint string `json:"fingerprint"`
	Labels      Labels `json:"labels"`
	State       string `json:"state"` // pending or firing
	// ActiveAt is the first minute of the run of minutes the condition held
	// in (the minute it went pending; for `for: 0` the minute it fired).
	ActiveAt time.Time `json:"active_at"`
	// FiredAt is the minute it went firing (zero while pending).
	FiredAt time.Time `json:"fired_at,omitzero"`
	// LastHeld is the last minute the condition held; keep_firing_for
	// counts from the minute after it.
	LastHeld time.Time `json:"last_held"`

	stamp uint64 // the evaluator's step that last saw the group's row
}

// StateVersion is the version of the State format.
const StateVersion = 1

// State is everything an evaluator needs to go on after a restart without
// re-firing a firing alert or forgetting a pending `for`: the last minute
// evaluated and the pending and firing alerts. It is plain data (JSON).
// Compare baselines are not part of it: they are rows of the past, read
// again from where rows are kept.
type State struct {
	Version int `json:"version"`
	// Evaluated is the last minute evaluated (zero: none).
	Evaluated time.Time    `json:"evaluated,omitzero"`
	Alerts    []AlertState `json:"alerts"`
}

// Evaluator evaluates rules minute by minute. It is not safe for concurrent
// use.
type Evaluator struct {
	rules     []*Rule
	evaluated time.Time
	alerts    []map[string]*AlertState // per rule, by group key
	// past holds, for compare rules, the observations of the minutes a
	// baseline can still be taken from (offset + 1 minutes).
	past  []map[int64]map[string]obs
	stamp uint64 // counts steps; marks the alerts whose group had a row
}

// obs is one group's observation at a minute.
type obs struct {
	dims   Labels
	value  Value
	volume Value
}

// NewEvaluator starts an evaluator for rules, from st when not nil. Alerts
// of st whose rule is gone, or whose labels no longer match the rule's (a
// changed group_by, severity or labels makes another alert), are dropped.
func NewEvaluator(rules *Rules, st *State) (*Evaluator, error) {
	e := &Evaluator{rules: rules.Rules}
	e.alerts = make([]map[string]*AlertState, len(e.rules))
	e.past = make([]map[int64]map[string]obs, len(e.rules))
	byName := map[string]int{}
	for i, r := range e.rules {
		e.alerts[i] = map[string]*AlertState{}
		if r.Compare != nil {
			e.past[i] = map[int64]map[string]obs{}
		}
		byName[r.Name] = i
	}
	if st == nil {
		return e, nil
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("alert state version %d: this build reads version %d", st.Version, StateVersion)
	}
	e.evaluated = st.Evaluated.UTC()
	for _, a := range st.Alerts {
		i, ok := byName[a.Rule]
		if !ok || (a.State != StatePending && a.State != StateFiring) {
			continue
		}
		r := e.rules[i]
		dims := make(Labels, 0, len(r.set.Dims))
		for _, d := range r.set.Dims {
			v, ok := a.Labels.Get(d)
			if !ok {
				break
			}
			dims = append(dims, Label{d, v})
		}
		labels := r.labels(dims)
		if len(dims) != len(r.set.Dims) || Fingerprint(r.Name, labels) != a.Fingerprint {
			continue
		}
		a := a
		a.Labels = labels
		e.alerts[i][groupKey(dims)] = &a
	}
	return e, nil
}

// Evaluated is the last minute evaluated (zero: none).
func (e *Evaluator) Evaluated() time.Time { return e.evaluated }

// State returns a copy of the evaluator's state, alerts sorted by rule and
// fingerprint.
func (e *Evaluator) State() State {
	st := State{Version: StateVersion, Evaluated: e.evaluated, Alerts: []AlertState{}}
	for _, m := range e.alerts {
		for _, a := range m {
			c := *a
			c.Labels = slices.Clone(a.Labels)
			c.stamp = 0
			st.Alerts = append(st.Alerts, c)
		}
	}
	slices.SortFunc(st.Alerts, func(a, b AlertState) int {
		return cmp.Or(strings.Compare(a.Rule, b.Rule), strings.Compare(a.Fingerprint, b.Fingerprint))
	})
	return st
}

// Step evaluates minute t with rows, every row of minute t (any source and
// grouping set; rows of other minutes, or two rows of one group, are an
// error and change nothing). Minutes between the last one evaluated and t
// are evaluated first, without rows: a minute without a row is a minute the
// condition does not hold. The changes are sorted by at, rule, fingerprint.
func (e *Evaluator) Step(t time.Time, rows []Row) ([]Change, error) {
	t = t.UTC()
	if t.Truncate(time.Minute) != t {
		return nil, fmt.Errorf("minute %s is not the start of a minute", t.Format(time.RFC3339Nano))
	}
	if !e.evaluated.IsZero() && !t.After(e.evaluated) {
		return nil, fmt.Errorf("minute %s: already evaluated up to %s", t.Format(time.RFC3339), e.evaluated.Format(time.RFC3339))
	}
	groups, err := e.index(t, rows)
	if err != nil {
		return nil, err
	}
	var out []Change
	if !e.evaluated.IsZero() {
		for m := e.evaluated.Add(time.Minute); m.Before(t); m = m.Add(time.Minute) {
			if !e.active() {
				break // nothing can change in an empty minute without alerts
			}
			out = append(out, e.step(m, nil)...)
		}
	}
	out = append(out, e.step(t, groups)...)
	e.evaluated = t
	return out, nil
}

// groupRow is a row with its group's dimensions in the grouping set's order
// and its key, computed once per minute for every rule of the set.
type groupRow struct {
	row  *Row
	dims Labels
	key  string
}

// index sorts the rows of minute t by source and grouping set, for the
// sets the rules use, and refuses a second row of a group.
func (e *Evaluator) index(t time.Time, rows []Row) (map[string][]groupRow, error) {
	order := map[string][]string{} // source|sorted dims → the set's dims in order
	for _, r := range e.rules {
		order[r.Source+"|"+r.sortedDims] = r.set.Dims
	}
	groups := map[string][]groupRow{}
	seen := map[string]bool{}
	for i := range rows {
		row := &rows[i]
		if !row.Minute.Equal(t) {
			return nil, fmt.Errorf("row of minute %s given for minute %s", row.Minute.Format(time.RFC3339), t.Format(time.RFC3339))
		}
		set := row.Source + "|" + dimsKey(row.Dims)
		names, ok := order[set]
		if !ok {
			continue // no rule reads this grouping set
		}
		dims := make(Labels, len(names))
		for j, d := range names {
			v, _ := row.Dims.Get(d)
			dims[j] = Label{d, v}
		}
		key := groupKey(dims)
		if seen[set+"|"+key] {
			return nil, fmt.Errorf("minute %s: two %s rows for the group %v (rows must be summed over partitions)", t.Format(time.RFC3339), row.Source, dims.Map())
		}
		seen[set+"|"+key] = true
		groups[set] = append(groups[set], groupRow{row: row, dims: dims, key: key})
	}
	return groups, nil
}

func (e *Evaluator) active() bool {
	for _, m := range e.alerts {
		if len(m) > 0 {
			return true
		}
	}
	return false
}

func (e *Evaluator) step(t time.Time, groups map[string][]groupRow) []Change {
	e.stamp++
	var out []Change
	for i, r := range e.rules {
		var cur, base map[string]obs
		if r.Compare != nil {
			cur = map[string]obs{}
			e.past[i][t.UnixMilli()] = cur
			from := t.Add(-r.Compare.Offset).UnixMilli()
			base = e.past[i][from]
			// Only minutes from t − offset on can still be a baseline; the
			// scan runs only when there are more than those minutes.
			if len(e.past[i]) > int(r.Compare.Offset/time.Minute)+1 {
				for m := range e.past[i] {
					if m < from {
						delete(e.past[i], m)
					}
				}
			}
		}
		for _, g := range groups[r.Source+"|"+r.sortedDims] {
			if !r.matches(g.row) {
				continue
			}
			o := obs{dims: g.dims, value: metricValue(r.metric, g.row.Metrics), volume: g.row.Metrics[r.volume]}
			if cur != nil {
				cur[g.key] = o
			}
			b, hasBase := base[g.key]
			if c, ok := e.transition(i, g.key, t, r.holds(o, true, b, hasBase), o, true); ok {
				out = append(out, c)
			}
		}
		// Alerts whose group has no row at t: the condition does not hold.
		for k, a := range e.alerts[i] {
			if a.stamp != e.stamp {
				if c, ok := e.transition(i, k, t, false, obs{}, false); ok {
					out = append(out, c)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Rule, b.Rule), strings.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out
}

// transition applies one minute to one alert (docs/ALERTS.md, "Semantics").
func (e *Evaluator) transition(i int, key string, t time.Time, held bool, o obs, has bool) (Change, bool) {
	r := e.rules[i]
	a := e.alerts[i][key]
	if a != nil && has {
		a.stamp = e.stamp
	}
	var state string
	switch {
	case held && a == nil:
		labels := r.labels(o.dims)
		a = &AlertState{Rule: r.Name, Fingerprint: Fingerprint(r.Name, labels), Labels: labels,
			State: StatePending, ActiveAt: t, LastHeld: t}
		e.alerts[i][key] = a
		a.stamp = e.stamp
		if r.For == 0 {
			a.State, a.FiredAt = StateFiring, t
		}
		state = a.State
	case held:
		a.LastHeld = t
		// Pending since ActiveAt and held at every minute since (a miss
		// would have made it inactive): firing once t − ActiveAt ≥ for.
		if a.State == StatePending && t.Sub(a.ActiveAt) >= r.For {
			a.State, a.FiredAt = StateFiring, t
			state = StateFiring
		}
	case a == nil:
		return Change{}, false
	case a.State == StatePending:
		delete(e.alerts[i], key)
		state = StateInactive
	default: // firing, not held at t
		// f = LastHeld + 1m is the first minute it did not hold; resolved
		// at f + K if it held at none of f … f + K (a minute that holds
		// moves LastHeld, restarting the count).
		if t.Sub(a.LastHeld.Add(time.Minute)) < r.KeepFiringFor {
			return Change{}, false
		}
		delete(e.alerts[i], key)
		state = StateResolved
	}
	if state == "" {
		return Change{}, false
	}
	c := Change{At: t, Rule: r.Name, Fingerprint: a.Fingerprint, Labels: slices.Clone(a.Labels), State: state}
	if has {
		if o.value.Valid {
			v := o.value.V
			c.Value = &v
		}
		if o.volume.Valid {
			u := int64(math.Round(o.volume.V))
			c.Users = &u
		}
	}
	return c, true
}

// matches reports whether the row passes the rule's filter.
func (r *Rule) matches(row *Row) bool {
	for k, want := range r.Filter {
		if v, _ := row.Dims.Get(k); v != want {
			return false
		}
	}
	return true
}

// holds is the rule's condition for one group at one minute: the row
// exists, its volume reaches min_users and its value is strictly beyond the
// threshold; for compare, the baseline row also exists, reaches min_users,
// has a non-zero value, and the ratio is strictly beyond the bound. A
// missing row or a null value never holds.
func (r *Rule) holds(o obs, has bool, b obs, hasBase bool) bool {
	if !has || !o.value.Valid || !o.volume.Valid || o.volume.V < float64(r.MinUsers) {
		return false
	}
	v := o.value.V
	switch {
	case r.Above != nil:
		return v > *r.Above
	case r.Below != nil:
		return v < *r.Below
	}
	if !hasBase || !b.value.Valid || b.value.V == 0 || !b.volume.Valid || b.volume.V < float64(r.MinUsers) {
		return false
	}
	ratio := v / b.value.V
	if r.Compare.AboveRatio != nil {
		return ratio > *r.Compare.AboveRatio
	}
	return ratio < *r.Compare.BelowRatio
}

// metricValue is the metric's value in a row: the row's own, or for a rate
// only the views derive (stutter_rate_uv_video) numerator / denominator.
func metricValue(m *query.Metric, metrics map[string]Value) Value {
	if v, ok := metrics[m.Name]; ok {
		return v
	}
	if m.Kind != query.KindRate {
		return Value{}
	}
	num, den := metrics[m.Numerator], metrics[m.Denominator]
	if !num.Valid || !den.Valid || den.V == 0 {
		return Value{}
	}
	if m.Complement {
		return Value{V: (den.V - num.V) / den.V, Valid: true}
	}
	return Value{V: num.V / den.V, Valid: true}
}

// labels are an alert's labels: the group's dimensions in the grouping
// set's order, severity, then the rule's labels by name.
func (r *Rule) labels(dims Labels) Labels {
	ls := make(Labels, 0, len(dims)+1+len(r.labelKeys))
	ls = append(ls, dims...)
	ls = append(ls, Label{"severity", r.Severity})
	for _, k := range r.labelKeys {
		ls = append(ls, Label{k, r.Labels[k]})
	}
	return ls
}

func groupKey(dims Labels) string {
	var b strings.Builder
	for _, d := range dims {
		b.WriteString(d.Value)
		b.WriteByte(0xff) // not in UTF-8 text, so keys cannot collide
	}
	return b.String()
}

// Fingerprint identifies an alert across restarts and processes: the
// 64-bit xxHash (github.com/cespare/xxhash/v2) of the rule name, a 0xff
// byte, then for each label sorted by name the name, 0xff, the value, 0xff;
// as 16 lowercase hex digits. 0xff never occurs in UTF-8 text, so two
// different label sets cannot be written the same way.
func Fingerprint(rule string, labels Labels) string {
	sorted := slices.Clone(labels)
	slices.SortFunc(sorted, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	d := xxhash.New()
	d.WriteString(rule)
	d.Write([]byte{0xff})
	for _, l := range sorted {
		d.WriteString(l.Name)
		d.Write([]byte{0xff})
		d.WriteString(l.Value)
		d.Write([]byte{0xff})
	}
	s := strconv.FormatUint(d.Sum64(), 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// EvaluateRows evaluates rules over rows (the offline mode): every minute
// from the first to the last row's, in order, from no state. The changes
// are sorted by at, rule, fingerprint.
func EvaluateRows(rules *Rules, rows []Row) ([]Change, error) {
	e, err := NewEvaluator(rules, nil)
	if err != nil {
		return nil, err
	}
	byMinute := map[int64][]Row{}
	for _, r := range rows {
		byMinute[r.Minute.UnixMilli()] = append(byMinute[r.Minute.UnixMilli()], r)
	}
	minutes := make([]int64, 0, len(byMinute))
	for m := range byMinute {
		minutes = append(minutes, m)
	}
	slices.Sort(minutes)
	var out []Change
	for _, m := range minutes {
		cs, err := e.Step(time.UnixMilli(m).UTC(), byMinute[m])
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}
