package grafana

import (
	"fmt"
	"slices"
	"strings"

	"github.com/qoscope/qoscope/query"
)

// histFunctions are the nearest-rank quantile lambdas of the metric views
// (migrations/0005_metric_views.sql, docs/METRICS.md "Quantiles"), so a
// quantile merged over rows here is computed exactly as the views compute
// it over partitions.
const histFunctions = `    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count`

// Which view answers a panel depends on the length of the dashboard's
// time range: minute rows up to 2 days, hourly rollups up to 62 days, the
// daily rollups beyond (docs/METRICS.md: rates recomputed from summed
// numerators and denominators, so every period gives the same metric).
const (
	minuteRangeMax = 2 * 86400
	hourRangeMax   = 62 * 86400
)

// rangeCond is the constant condition that enables the branch of period p.
func rangeCond(p query.Period) string {
	const d = "dateDiff('second', $__fromTime, $__toTime)"
	switch p {
	case query.PeriodMinute:
		return fmt.Sprintf("%s <= %d", d, minuteRangeMax)
	case query.PeriodHour:
		return fmt.Sprintf("%s > %d AND %s <= %d", d, minuteRangeMax, d, hourRangeMax)
	default:
		return fmt.Sprintf("%s > %d", d, hourRangeMax)
	}
}

// rowMinutes is how many minutes one row of period p covers.
var rowMinutes = map[query.Period]int{query.PeriodMinute: 1, query.PeriodHour: 60, query.PeriodDay: 1440}

// filterVar is a dashboard variable that filters one dimension.
type filterVar struct {
	Var string // variable name
	Dim string // dimension in dims
}

var (
	varVendor   = filterVar{"vendor", "vendor"}
	varProvince = filterVar{"province", "province"}
	varISP      = filterVar{"isp", "isp"}
	varStream   = filterVar{"stream", "stream_id"}
	regionVars  = []filterVar{varVendor, varProvince, varISP}
)

// selection says which rows of a source a query reads: grouped by By,
// filtered by the Filters variables (each "All" or a list of values).
type selection struct {
	Source  string
	By      []string
	Filters []filterVar
}

// allSelected is a boolean SQL expression: true when v is "All". The
// plugin's $__conditionalAll(cond, $v) becomes 1=1 for "All" and cond
// otherwise (docs of grafana-clickhouse-datasource, "Using the All
// option"), so with cond = 0 it says whether v is restricted.
func allSelected(v filterVar) string {
	return fmt.Sprintf("($__conditionalAll(0, $%s))", v.Var)
}

// groupingExpr picks, for every combination of restricted variables, the
// smallest configured grouping set holding By and the restricted
// dimensions: with every variable on "All" a total or By-only set gives
// exact distinct users; a superset is summed over its extra dimensions.
func groupingExpr(si *query.SourceInfo, sel selection) (string, error) {
	n := len(sel.Filters)
	type choice struct{ cond, set string }
	var choices []choice
	for mask := (1 << n) - 1; mask >= 0; mask-- {
		need := slices.Clone(sel.By)
		var conds []string
		for i, f := range sel.Filters {
			if mask&(1<<i) != 0 {
				need = append(need, f.Dim)
				conds = append(conds, "NOT "+allSelected(f))
			} else {
				conds = append(conds, allSelected(f))
			}
		}
		best := -1
		for i, gs := range si.GroupingSets {
			ok := true
			for _, d := range need {
				if !slices.Contains(gs.Dims, d) {
					ok = false
					break
				}
			}
			if ok && (best < 0 || len(gs.Dims) < len(si.GroupingSets[best].Dims)) {
				best = i
			}
		}
		if best < 0 {
			return "", fmt.Errorf("no %s grouping set holds %v", sel.Source, need)
		}
		choices = append(choices, choice{strings.Join(conds, " AND "), si.GroupingSets[best].Name})
	}
	same := true
	for _, c := range choices {
		same = same && c.set == choices[0].set
	}
	if same {
		return quote(choices[0].set), nil
	}
	// The combinations are exclusive: only those whose set differs from
	// the most frequent one (the default) need a condition.
	count := map[string]int{}
	def := ""
	for _, c := range choices {
		count[c.set]++
		if count[c.set] > count[def] {
			def = c.set
		}
	}
	var b strings.Builder
	b.WriteString("multiIf(")
	for _, c := range choices {
		if c.set != def {
			fmt.Fprintf(&b, "%s, %s,\n        ", c.cond, quote(c.set))
		}
	}
	b.WriteString(quote(def) + ")")
	return b.String(), nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// filterConds are the WHERE conditions of the variables: each is 1=1 when
// its variable is "All".
func filterConds(col string, fs []filterVar) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("$__conditionalAll(%s['%s'] IN (${%s:singlequote}), $%s)", col, f.Dim, f.Var, f.Var))
	}
	return out
}

// aggregate is the SQL of metric m merged over the rows of a group, from
// the raw columns r_<minute column> (docs/METRICS.md "Rules shared by every
// metric"; query/README.md "The catalogue" for kinds). A count of distinct
// users becomes the mean per minute: a sum of per-minute distinct users is
// not a number of users.
func aggregate(m *query.Metric) (string, error) {
	r := func(c string) string { return "r_" + c }
	switch m.Kind {
	case query.KindCount, query.KindSum:
		if m.OverMinutes != "" {
			return fmt.Sprintf("sum(%s) / (uniqExact(window_start) * any(row_minutes))", r(m.Name)), nil
		}
		return fmt.Sprintf("sum(%s)", r(m.Name)), nil
	case query.KindRate:
		if m.Complement {
			return fmt.Sprintf("(toInt64(sum(%s)) - toInt64(sum(%s))) / nullIf(sum(%s), 0)", r(m.Denominator), r(m.Numerator), r(m.Denominator)), nil
		}
		return fmt.Sprintf("sum(%s) / nullIf(sum(%s), 0)", r(m.Numerator), r(m.Denominator)), nil
	case query.KindMean:
		if m.Denominator != "" {
			return fmt.Sprintf("sum(%s) / nullIf(sum(%s), 0)", r(m.Numerator), r(m.Denominator)), nil
		}
		return fmt.Sprintf("sum(%s) / nullIf(hist_count(sumMap(%s)), 0)", r(m.Numerator), r(m.Histogram)), nil
	case query.KindQuantile:
		return fmt.Sprintf("hist_quantile(sumMap(%s), %d)", r(m.Histogram), m.Percentile), nil
	case query.KindThroughput:
		return fmt.Sprintf("sum(%s) * 8 / (uniqExact(window_start) * any(row_minutes) * 60) / 1000000", r(m.Numerator)), nil
	case query.KindGauge:
		if m.Name == "no_data" {
			return "", fmt.Errorf("metric %s: no_data is read from the minute view only", m.Name)
		}
		return fmt.Sprintf("min(%s)", r(m.Name)), nil
	}
	return "", fmt.Errorf("metric %s: unknown kind %s", m.Name, m.Kind)
}

// rawColumns are the minute-view columns metric m is merged from.
func rawColumns(m *query.Metric) []string {
	in := m.Inputs(query.PeriodMinute)
	if len(in) == 0 {
		return []string{m.Name}
	}
	return in
}

// seriesQuery builds the SQL of metrics of one source over time (time =
// true: bucketed with $__timeInterval) or over the whole range (time =
// false: one row per key), grouped by sel.By, from the table (or view:
// query.ReadFrom) of the range's length. orderBy/limit apply to range
// queries.
type seriesQuery struct {
	Sel     selection
	Metrics []string
	Time    bool
	// Latest reads the minute view only, the last Latest minutes of the
	// range, one point per minute (stat panels).
	Latest  int
	OrderBy string
	Limit   int
}

func (b *builder) sql(q seriesQuery) (string, error) {
	si, err := b.cat.Source(q.Sel.Source)
	if err != nil {
		return "", err
	}
	gexpr, err := groupingExpr(si, q.Sel)
	if err != nil {
		return "", err
	}
	var raws []string
	var outs []string
	var ms []*query.Metric
	hist := false
	for _, name := range q.Metrics {
		m, err := b.cat.Metric(q.Sel.Source, name)
		if err != nil {
			return "", err
		}
		ms = append(ms, m)
		expr, err := aggregate(m)
		if err != nil {
			return "", err
		}
		hist = hist || strings.Contains(expr, "hist_")
		outs = append(outs, fmt.Sprintf("    %s AS %s", expr, m.Name))
		for _, c := range rawColumns(m) {
			if !slices.Contains(raws, c) {
				raws = append(raws, c)
			}
		}
	}
	periods := []query.Period{query.PeriodMinute, query.PeriodHour, query.PeriodDay}
	if q.Latest > 0 {
		periods = periods[:1]
	}
	var branches []string
	for _, p := range periods {
		cols := []string{"window_start", fmt.Sprintf("%d AS row_minutes", rowMinutes[p])}
		for _, d := range q.Sel.By {
			cols = append(cols, fmt.Sprintf("dims['%s'] AS %s", d, d))
		}
		for _, c := range raws {
			cols = append(cols, fmt.Sprintf("%s AS r_%s", query.RollupColumn(c, p), c))
		}
		conds := []string{"$__timeFilter(window_start)"}
		if q.Latest > 0 {
			// The minute in progress is left out (its rows grow every
			// few seconds): the stat shows the newest minute that ended,
			// by ClickHouse's clock, as the wall does (docs/WALL.md).
			conds = append(conds, fmt.Sprintf("window_start > $__toTime - INTERVAL %d MINUTE", q.Latest),
				"window_start < toStartOfMinute(now())")
		} else {
			conds = append(conds, rangeCond(p))
		}
		conds = append(conds, "grouping = "+gexpr)
		conds = append(conds, filterConds("dims", q.Sel.Filters)...)
		// The table when every metric merges from its rows, which
		// ClickHouse plans far faster than the view (query.ReadFrom).
		from, _ := si.ReadFrom(p, ms...)
		branches = append(branches, fmt.Sprintf("    SELECT %s\n    FROM %s\n    WHERE %s",
			strings.Join(cols, ", "), from, strings.Join(conds, "\n      AND ")))
	}
	var s strings.Builder
	if hist {
		s.WriteString("WITH\n" + histFunctions + "\n")
	}
	var keys []string
	switch {
	case q.Latest > 0:
		keys = append(keys, "time")
		s.WriteString("SELECT\n    window_start AS time,\n")
	case q.Time:
		keys = append(keys, "time")
		s.WriteString("SELECT\n    $__timeInterval(window_start) AS time,\n")
	default:
		s.WriteString("SELECT\n")
	}
	for _, d := range q.Sel.By {
		fmt.Fprintf(&s, "    %s,\n", d)
		keys = append(keys, d)
	}
	s.WriteString(strings.Join(outs, ",\n"))
	s.WriteString("\nFROM (\n")
	s.WriteString(strings.Join(branches, "\n    UNION ALL\n"))
	s.WriteString("\n)\n")
	if len(keys) > 0 {
		fmt.Fprintf(&s, "GROUP BY %s\n", strings.Join(keys, ", "))
	}
	switch {
	case q.OrderBy != "":
		fmt.Fprintf(&s, "ORDER BY %s\n", q.OrderBy)
	case len(keys) > 0:
		fmt.Fprintf(&s, "ORDER BY %s\n", strings.Join(keys, ", "))
	}
	if q.Limit > 0 {
		fmt.Fprintf(&s, "LIMIT %d\n", q.Limit)
	}
	return strings.TrimSuffix(s.String(), "\n"), nil
}

// variableQuery lists the values of a dimension seen in the dashboard's
// time range, from the minute view of its single-dimension grouping set.
func (b *builder) variableQuery(source string, v filterVar, grouping string) (string, error) {
	si, err := b.cat.Source(source)
	if err != nil {
		return "", err
	}
	found := false
	for _, gs := range si.GroupingSets {
		found = found || gs.Name == grouping
	}
	if !found {
		return "", fmt.Errorf("variable %s: %s has no grouping set %q", v.Var, source, grouping)
	}
	return fmt.Sprintf("SELECT DISTINCT dims['%s'] AS %s\nFROM %s\nWHERE grouping = %s AND $__timeFilter(window_start)\nORDER BY %s",
		v.Dim, v.Var, si.Views[query.PeriodMinute], quote(grouping), v.Var), nil
}
