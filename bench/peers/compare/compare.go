package compare

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Kind is how strictly a metric is compared.
type Kind uint8

const (
	// Exact: counts, distinct counts, integer sums, booleans.
	Exact Kind = iota
	// Relative: rates, means, minimums and bandwidth, derived in floating
	// point in different orders by different engines (default 1e-9).
	Relative
	// Quantile: <name>_p50/_p90/_p99; qoscope reports the representative
	// value of a log bucket with relative accuracy 1 %, a peer may report the
	// exact nearest-rank value (default 1 %).
	Quantile
)

func (k Kind) String() string {
	switch k {
	case Relative:
		return "relative"
	case Quantile:
		return "quantile"
	}
	return "exact"
}

// KindOf classifies a metric by its public name (docs/METRICS.md's naming rules).
func KindOf(name string) Kind {
	for _, s := range []string{"_p50", "_p90", "_p99"} {
		if strings.HasSuffix(name, s) {
			return Quantile
		}
	}
	if name == "bandwidth_mbps" {
		return Relative
	}
	for _, s := range []string{"_rate", "_rate_uv", "_rate_pv", "_avg", "_min"} {
		if strings.HasSuffix(name, s) {
			return Relative
		}
	}
	return Exact
}

// nullable reports whether a metric omitted from a hand-written expected
// row means null (rates, quantiles, means, minimums) rather than 0.
func nullable(name string) bool { return KindOf(name) != Exact }

// Options tunes Compare. The zero value uses the defaults.
type Options struct {
	// RelativeTolerance for Relative metrics; default 1e-9.
	RelativeTolerance float64
	// QuantileTolerance for Quantile metrics; default 0.01.
	QuantileTolerance float64
	// WantOmitsDefaults: a metric present in a got row but absent from its
	// want row is expected to be 0 (counts, sums) or null (rates,
	// quantiles, means, minimums), as in the hand-written golden files.
	// Without it such a metric is reported as extra.
	WantOmitsDefaults bool
	// IgnoreSources lists sources whose rows are not compared (e.g. "late"
	// when a peer has no notion of lateness).
	IgnoreSources []string
	// IgnoreMetrics lists metric names not compared.
	IgnoreMetrics []string
}

func (o *Options) defaults() {
	if o.RelativeTolerance == 0 {
		o.RelativeTolerance = 1e-9
	}
	if o.QuantileTolerance == 0 {
		o.QuantileTolerance = 0.01
	}
}

// DiffKind says what differs.
type DiffKind string

const (
	MissingRow    DiffKind = "missing_row"    // in want, not in got
	ExtraRow      DiffKind = "extra_row"      // in got, not in want
	MissingMetric DiffKind = "missing_metric" // the row in got lacks the metric
	ExtraMetric   DiffKind = "extra_metric"   // the row in got has a metric want lacks
	ValueDiff     DiffKind = "value"          // both have it, out of tolerance
	DuplicateRow  DiffKind = "duplicate_row"  // the same key twice on one side
)

// Diff is one difference, per (window, source, dims, metric).
type Diff struct {
	Kind DiffKind
	// Key is Row.Key(): window, source and the dims sorted by name.
	Key    string
	Metric string
	// Want and Got are the rendered JSON values ("" when absent).
	Want, Got string
	// RelErr is |want−got| / max(|want|, |got|) for ValueDiff of numbers.
	RelErr float64
	// Tolerance applied (Kind of the metric).
	Tolerance Kind
	// Side is "want" or "got" for DuplicateRow.
	Side string
}

func (d Diff) String() string {
	switch d.Kind {
	case MissingRow, ExtraRow:
		return fmt.Sprintf("%s: %s", d.Kind, d.Key)
	case DuplicateRow:
		return fmt.Sprintf("%s in %s: %s", d.Kind, d.Side, d.Key)
	case ValueDiff:
		return fmt.Sprintf("%s %s: want %s, got %s (%s, rel err %.3g)", d.Key, d.Metric, d.Want, d.Got, d.Tolerance, d.RelErr)
	}
	return fmt.Sprintf("%s %s %s: want %s, got %s", d.Kind, d.Key, d.Metric, d.Want, d.Got)
}

// Report is the outcome of Compare.
type Report struct {
	WantRows, GotRows int // rows considered (after IgnoreSources)
	MatchedRows       int // keys on both sides
	Metrics           int // metric values compared
	// MaxRelErr is the largest relative error seen per kind among values
	// within tolerance or not (a measure of how close a peer is).
	MaxRelErr map[Kind]float64
	Diffs     []Diff
}

// OK reports whether there is no difference.
func (r *Report) OK() bool { return len(r.Diffs) == 0 }

// Summary renders counts and at most max differences.
func (r *Report) Summary(max int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rows: want %d, got %d, matched %d; metrics compared %d; differences %d",
		r.WantRows, r.GotRows, r.MatchedRows, r.Metrics, len(r.Diffs))
	for _, k := range []Kind{Exact, Relative, Quantile} {
		if v, ok := r.MaxRelErr[k]; ok {
			fmt.Fprintf(&b, "; max rel err %s %.3g", k, v)
		}
	}
	for i, d := range r.Diffs {
		if i == max {
			fmt.Fprintf(&b, "\n  ... %d more", len(r.Diffs)-max)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// Compare checks got against want: every row key of want must be in got
// and the other way round, and every metric must agree within its kind's
// tolerance (null only with null, booleans exactly). Row and metric order
// do not matter. Diffs are sorted by key, then metric.
func Compare(want, got []Row, opts Options) Report {
	opts.defaults()
	rep := Report{MaxRelErr: map[Kind]float64{}}
	wantIdx := index(want, opts, "want", &rep)
	gotIdx := index(got, opts, "got", &rep)
	rep.WantRows, rep.GotRows = len(wantIdx), len(gotIdx)
	for k, w := range wantIdx {
		g, ok := gotIdx[k]
		if !ok {
			rep.Diffs = append(rep.Diffs, Diff{Kind: MissingRow, Key: k})
			continue
		}
		rep.MatchedRows++
		compareRow(k, w, g, opts, &rep)
	}
	for k := range gotIdx {
		if _, ok := wantIdx[k]; !ok {
			rep.Diffs = append(rep.Diffs, Diff{Kind: ExtraRow, Key: k})
		}
	}
	slices.SortFunc(rep.Diffs, func(a, b Diff) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := strings.Compare(a.Metric, b.Metric); c != 0 {
			return c
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	return rep
}

func index(rows []Row, opts Options, side string, rep *Report) map[string]*Row {
	m := make(map[string]*Row, len(rows))
	for i := range rows {
		r := &rows[i]
		if slices.Contains(opts.IgnoreSources, r.Source) {
			continue
		}
		k := r.Key()
		if _, dup := m[k]; dup {
			rep.Diffs = append(rep.Diffs, Diff{Kind: DuplicateRow, Key: k, Side: side})
			continue
		}
		m[k] = r
	}
	return m
}

func compareRow(key string, w, g *Row, opts Options, rep *Report) {
	gm := make(map[string]Metric, len(g.Metrics))
	for _, m := range g.Metrics {
		gm[m.Name] = m
	}
	seen := make(map[string]bool, len(w.Metrics))
	for _, wv := range w.Metrics {
		if slices.Contains(opts.IgnoreMetrics, wv.Name) {
			continue
		}
		seen[wv.Name] = true
		gv, ok := gm[wv.Name]
		if !ok {
			rep.Diffs = append(rep.Diffs, Diff{Kind: MissingMetric, Key: key, Metric: wv.Name, Want: render(wv)})
			continue
		}
		compareValue(key, wv, gv, opts, rep)
	}
	for _, gv := range g.Metrics {
		if seen[gv.Name] || slices.Contains(opts.IgnoreMetrics, gv.Name) {
			continue
		}
		if opts.WantOmitsDefaults {
			wv := Num(gv.Name, 0)
			if nullable(gv.Name) {
				wv = Null(gv.Name)
			}
			if gv.Bool {
				wv = Flag(gv.Name, false)
			}
			compareValue(key, wv, gv, opts, rep)
			continue
		}
		rep.Diffs = append(rep.Diffs, Diff{Kind: ExtraMetric, Key: key, Metric: gv.Name, Got: render(gv)})
	}
}

func compareValue(key string, w, g Metric, opts Options, rep *Report) {
	rep.Metrics++
	kind := KindOf(w.Name)
	d := Diff{Kind: ValueDiff, Key: key, Metric: w.Name, Want: render(w), Got: render(g), Tolerance: kind}
	switch {
	case w.Null || g.Null:
		if w.Null != g.Null {
			rep.Diffs = append(rep.Diffs, d)
		}
		return
	case w.Bool || g.Bool:
		if w.Bool != g.Bool || w.Value != g.Value {
			rep.Diffs = append(rep.Diffs, d)
		}
		return
	}
	rel := RelErr(w.Value, g.Value)
	d.RelErr = rel
	if rel > rep.MaxRelErr[kind] || math.IsNaN(rel) {
		rep.MaxRelErr[kind] = rel
	}
	if _, ok := rep.MaxRelErr[kind]; !ok {
		rep.MaxRelErr[kind] = rel
	}
	var ok bool
	switch kind {
	case Exact:
		ok = w.Value == g.Value
	case Relative:
		ok = rel <= opts.RelativeTolerance
	case Quantile:
		ok = rel <= opts.QuantileTolerance
	}
	if !ok {
		rep.Diffs = append(rep.Diffs, d)
	}
}

// RelErr is |a−b| / max(|a|, |b|), 0 when a == b (including both 0), NaN
// when either is NaN.
func RelErr(a, b float64) float64 {
	if a == b {
		return 0
	}
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

func render(m Metric) string {
	switch {
	case m.Null:
		return "null"
	case m.Bool:
		return strconv.FormatBool(m.Value != 0)
	}
	return strconv.FormatFloat(m.Value, 'g', -1, 64)
}
