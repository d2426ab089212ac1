package alert

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qoscope/qoscope/query"
)

// BaselineWindow is how far before the minute an alert went pending the
// parent's baseline rate is taken from (docs/ALERTS.md, "Diagnosis").
const BaselineWindow = 30 * time.Minute

// TopCauses is how many finer groups a diagnosis names.
const TopCauses = 3

// Specificity: a group is not named when one of its own finer groups
// (more dimensions, the same values on the group's) carries at least this
// share of its excess; the finer group says the same more precisely
// (vendor cdn-b is explained by cdn-b × guangdong × telecom).
const Specificity = 0.8

// Cause is one finer group and its part of a rate alert's excess.
type Cause struct {
	Dims Labels // the finer group's dimensions, in its grouping set's order
	// Rate is the group's rate at the minute diagnosed, Baseline the
	// parent's over BaselineWindow.
	Rate, Baseline float64
	// Excess is the group's bad events beyond what the baseline rate
	// predicts for its volume; Share is Excess / the sum of the positive
	// excesses of the groups of its grouping set.
	Excess, Share float64
}

// String renders the cause as on-call reads it:
// "cdn-b × guangdong × telecom: 57 % vs 3.5 % baseline, 81 % of the excess".
func (c Cause) String() string {
	vals := make([]string, len(c.Dims))
	for i, d := range c.Dims {
		vals[i] = d.Value
	}
	return fmt.Sprintf("%s: %s vs %s baseline, %s of the excess",
		strings.Join(vals, " × "), pct(c.Rate), pct(c.Baseline), pct(c.Share))
}

func pct(v float64) string {
	p := v * 100
	prec := 1
	if p >= 10 || p <= -10 {
		prec = 0
	}
	return strconv.FormatFloat(p, 'f', prec, 64) + " %"
}

// Diagnosis explains a rate alert on a group by its finer groups.
type Diagnosis struct {
	// Baseline is the group's rate over the BaselineWindow before the alert
	// went pending; Rate and Excess the group's at the minute diagnosed.
	Baseline, Rate, Excess float64
	// Causes are the TopCauses finer groups with the largest positive
	// excess, largest first (none when the group has no excess).
	Causes []Cause
}

// Diagnose explains the alert of rule r on group (its dimension labels) at
// minute at, pending since pendingAt, from rows of r's source: those of the
// group's grouping set in [pendingAt − BaselineWindow, pendingAt) (the
// baseline) and at at, and those of the finer grouping sets at at. Other
// rows are ignored.
//
// For a rate num/den whose alert is "above" (above, or compare above_ratio),
// with b = Σnum / Σden of the group over the baseline window, a finer
// group's excess at at is num − den·b: its bad events beyond what the
// baseline predicts for its volume. For a "below" alert (a success rate
// that fell) it is den·b − num, the missing successes. (A complement rate
// counts den − num as its numerator.) Every finer grouping set partitions
// the group, so each set's excesses add up to the group's; since groups
// below the baseline subtract from that sum, the share of a cause is its
// excess over the sum of the positive excesses of its set (≤ 1, where a
// share of the group's excess could read "217 %"). Causes are ranked by excess across
// all finer sets (ties: more dimensions, then the values), a group dropped
// when one of its own finer groups has ≥ Specificity of its excess.
func Diagnose(r *Rule, group Labels, pendingAt, at time.Time, rows []Row) (*Diagnosis, error) {
	return DiagnoseWindow(r, group, pendingAt, at, BaselineWindow, rows)
}

// DiagnoseWindow is Diagnose with the baseline taken over window instead
// of BaselineWindow (the live evaluator's alert.diagnosis_window).
func DiagnoseWindow(r *Rule, group Labels, pendingAt, at time.Time, window time.Duration, rows []Row) (*Diagnosis, error) {
	m := r.metric
	if m == nil || m.Kind != query.KindRate {
		return nil, fmt.Errorf("rule %s: diagnosis needs a rate metric, %s is not one", r.Name, r.Metric)
	}
	below := r.Below != nil || r.Compare != nil && r.Compare.BelowRatio != nil
	bad := func(row *Row) (num, den float64, ok bool) {
		n, d := row.Metrics[m.Numerator], row.Metrics[m.Denominator]
		if !n.Valid || !d.Valid {
			return 0, 0, false
		}
		if m.Complement {
			return d.V - n.V, d.V, true
		}
		return n.V, d.V, true
	}
	in := func(row *Row) bool {
		if row.Source != r.Source || !r.matches(row) {
			return false
		}
		for _, g := range group {
			if v, ok := row.Dims.Get(g.Name); !ok || v != g.Value {
				return false
			}
		}
		return true
	}
	from := pendingAt.Add(-window)
	var bNum, bDen, num, den float64
	var parentAt bool
	for i := range rows {
		row := &rows[i]
		if !in(row) || dimsKey(row.Dims) != r.sortedDims {
			continue
		}
		n, d, ok := bad(row)
		if !ok {
			return nil, fmt.Errorf("rule %s: rows carry no %s and %s, the columns of %s", r.Name, m.Numerator, m.Denominator, m.Name)
		}
		switch {
		case !row.Minute.Before(from) && row.Minute.Before(pendingAt):
			bNum, bDen = bNum+n, bDen+d
		case row.Minute.Equal(at):
			num, den, parentAt = n, d, true
		}
	}
	if bDen == 0 {
		return nil, fmt.Errorf("rule %s: no %s in the %s before %s: no baseline", r.Name, m.Denominator, window, pendingAt.Format(time.RFC3339))
	}
	if !parentAt || den == 0 {
		return nil, fmt.Errorf("rule %s: the group has no row with %s at %s", r.Name, m.Denominator, at.Format(time.RFC3339))
	}
	base := bNum / bDen
	excess := func(n, d float64) float64 {
		if below {
			return d*base - n
		}
		return n - d*base
	}
	dg := &Diagnosis{Baseline: base, Rate: num / den, Excess: excess(num, den)}
	if dg.Excess <= 0 {
		return dg, nil
	}
	var all []Cause
	var sets []string
	positive := map[string]float64{} // per finer set, the sum of its positive excesses
	for i := range rows {
		row := &rows[i]
		if !row.Minute.Equal(at) || !in(row) {
			continue
		}
		key := dimsKey(row.Dims)
		if !slices.ContainsFunc(r.finer, func(gs query.GroupingSet) bool { return sortedJoin(gs.Dims) == key }) {
			continue
		}
		n, d, ok := bad(row)
		if !ok || d == 0 {
			continue
		}
		if x := excess(n, d); x > 0 {
			all = append(all, Cause{Dims: row.Dims, Rate: n / d, Baseline: base, Excess: x})
			sets = append(sets, key)
			positive[key] += x
		}
	}
	for i := range all {
		all[i].Share = all[i].Excess / positive[sets[i]]
	}
	slices.SortFunc(all, func(a, b Cause) int {
		return cmp.Or(cmp.Compare(b.Excess, a.Excess), cmp.Compare(len(b.Dims), len(a.Dims)),
			strings.Compare(groupKey(a.Dims), groupKey(b.Dims)))
	})
	for _, c := range all {
		if len(dg.Causes) == TopCauses {
			break
		}
		if !slices.ContainsFunc(all, func(f Cause) bool {
			return len(f.Dims) > len(c.Dims) && within(f.Dims, c.Dims) && f.Excess >= Specificity*c.Excess
		}) {
			dg.Causes = append(dg.Causes, c)
		}
	}
	return dg, nil
}

// within reports whether the group fine lies inside coarse: it has every
// dimension of coarse with the same value.
func within(fine, coarse Labels) bool {
	for _, c := range coarse {
		if v, ok := fine.Get(c.Name); !ok || v != c.Value {
			return false
		}
	}
	return true
}

func sortedJoin(dims []string) string {
	s := slices.Clone(dims)
	slices.Sort(s)
	return strings.Join(s, ",")
}
