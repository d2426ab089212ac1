package alert

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/qoscope/qoscope/query"
)

// This file holds what the live evaluator (alert/live, docs/ALERTS.md
// "Live") needs from the pure core beyond Step: which rows the rules read,
// the compare baselines read back from ClickHouse, and an alert group's
// value at a minute.

// Need is one grouping set of one source that some rule reads.
type Need struct {
	Source string
	Set    query.GroupingSet
	// Metrics are the catalogue names the rules of the set read (their
	// metric, the source's volume, and a rate's numerator and denominator,
	// which the diagnosis uses), sorted.
	Metrics []string
	// Offsets are the compare offsets of the set's rules (baselines at
	// t − offset), sorted; empty when no rule of the set compares.
	Offsets []time.Duration
}

// Needs lists the grouping sets the rules read, by source and set name,
// so that a live evaluator reads nothing else.
func (rs *Rules) Needs() []Need {
	var out []Need
	find := func(source string, gs query.GroupingSet) *Need {
		for i := range out {
			if out[i].Source == source && out[i].Set.Name == gs.Name {
				return &out[i]
			}
		}
		out = append(out, Need{Source: source, Set: gs})
		return &out[len(out)-1]
	}
	add := func(n *Need, names ...string) {
		for _, m := range names {
			if m != "" && !slices.Contains(n.Metrics, m) {
				n.Metrics = append(n.Metrics, m)
			}
		}
	}
	for _, r := range rs.Rules {
		n := find(r.Source, r.set)
		add(n, r.metric.Name, r.volume)
		if r.metric.Kind == query.KindRate {
			// A rate's numerator and denominator are catalogue counts, which
			// the diagnosis needs (docs/ALERTS.md, "Diagnosis"); a mean's
			// are raw columns (first_frame_ms_sum) the views do not expose,
			// and no diagnosis is made of it.
			add(n, r.metric.Numerator, r.metric.Denominator)
		}
		if r.Compare != nil && !slices.Contains(n.Offsets, r.Compare.Offset) {
			n.Offsets = append(n.Offsets, r.Compare.Offset)
		}
	}
	for i := range out {
		slices.Sort(out[i].Metrics)
		slices.Sort(out[i].Offsets)
	}
	slices.SortFunc(out, func(a, b Need) int {
		if a.Source != b.Source {
			if a.Source < b.Source {
				return -1
			}
			return 1
		}
		if a.Set.Name < b.Set.Name {
			return -1
		} else if a.Set.Name > b.Set.Name {
			return 1
		}
		return 0
	})
	return out
}

// Sources are the sources the rules read, sorted.
func (rs *Rules) Sources() []string {
	var out []string
	for _, r := range rs.Rules {
		if !slices.Contains(out, r.Source) {
			out = append(out, r.Source)
		}
	}
	slices.Sort(out)
	return out
}

// LongestFor is the longest `for` of the rules: how many minutes before
// the first one evaluated a condition may have started to hold and still
// matter.
func (rs *Rules) LongestFor() time.Duration {
	var d time.Duration
	for _, r := range rs.Rules {
		d = max(d, r.For)
	}
	return d
}

// Rule returns the rule named name, nil when there is none.
func (rs *Rules) Rule(name string) *Rule {
	for _, r := range rs.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// FinerSets are the source's grouping sets with every dimension of the
// rule's and more: where Diagnose looks for the groups that explain an
// alert.
func (r *Rule) FinerSets() []query.GroupingSet { return slices.Clone(r.finer) }

// Dims are the alert's group: its labels that are dimensions of the rule's
// grouping set, in the set's order.
func (r *Rule) Dims(labels Labels) Labels {
	out := make(Labels, 0, len(r.set.Dims))
	for _, d := range r.set.Dims {
		if v, ok := labels.Get(d); ok {
			out = append(out, Label{d, v})
		}
	}
	return out
}

// Baseline gives the evaluator the rows of earlier minutes that its
// compare rules take their baselines from (the rows at t − offset of the
// minute t about to be stepped): live, these are read back from ClickHouse
// rather than remembered, so a restarted evaluator compares like one that
// never stopped. Rows of minutes at or after the next minute to evaluate
// are an error; rows no compare rule reads are ignored.
func (e *Evaluator) Baseline(rows []Row) error {
	for i := range rows {
		row := &rows[i]
		if !e.evaluated.IsZero() && row.Minute.After(e.evaluated) {
			return fmt.Errorf("baseline row of minute %s is not before the next minute to evaluate", row.Minute.Format(time.RFC3339))
		}
		key := dimsKey(row.Dims)
		for ri, r := range e.rules {
			if r.Compare == nil || row.Source != r.Source || key != r.sortedDims || !r.matches(row) {
				continue
			}
			dims := r.Dims(row.Dims)
			m := row.Minute.UnixMilli()
			obsAt := e.past[ri][m]
			if obsAt == nil {
				obsAt = map[string]obs{}
				e.past[ri][m] = obsAt
			}
			obsAt[groupKey(dims)] = obs{dims: dims, value: metricValue(r.metric, row.Metrics), volume: row.Metrics[r.volume]}
		}
	}
	return nil
}

// Observe returns the value and volume of the alert group (its labels) of
// rule r in rows (any minute's; the first row of the group counts), nil
// when the group has no row or the value is null.
func (r *Rule) Observe(labels Labels, rows []Row) (value *float64, users *int64) {
	dims := r.Dims(labels)
	for i := range rows {
		row := &rows[i]
		if row.Source != r.Source || dimsKey(row.Dims) != r.sortedDims || !within(row.Dims, dims) {
			continue
		}
		if v := metricValue(r.metric, row.Metrics); v.Valid {
			x := v.V
			value = &x
		}
		if u := row.Metrics[r.volume]; u.Valid {
			n := int64(math.Round(u.V))
			users = &n
		}
		return value, users
	}
	return nil, nil
}

// Direction is "above" for a rule that fires on high values (above,
// compare above_ratio) and "below" otherwise: which way a diagnosis counts
// the excess.
func (r *Rule) Direction() string {
	if r.Below != nil || r.Compare != nil && r.Compare.BelowRatio != nil {
		return "below"
	}
	return "above"
}
