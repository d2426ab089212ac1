package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// stmt builds one statement: SQL text from fixed fragments and catalogue
// identifiers only, every value a server-side parameter ({pN:Type}). The
// parameter names are generated here, so two requests with the same shape
// produce the same text whatever their values (TestHostileValuesNeverChangeSQL).
type stmt struct {
	b      strings.Builder
	params clickhouse.Parameters
}

func newStmt() *stmt { return &stmt{params: clickhouse.Parameters{}} }

// bind adds a parameter and returns its placeholder.
func (s *stmt) bind(typ, value string) string {
	name := "p" + strconv.Itoa(len(s.params))
	s.params[name] = value
	return "{" + name + ":" + typ + "}"
}

func (s *stmt) str(v string) string { return s.bind("String", escapeParam(v)) }

// paramEscaper writes a value as ClickHouse reads a query parameter: in
// its escaped text format (the TSV one), where a backslash starts an
// escape and a raw tab or newline ends the value. Unescaped, a filter
// value "a\b" would match "a<backspace>", and one with a tab fail.
var paramEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)

// escapeParam escapes a String parameter's value (paramEscaper).
func escapeParam(v string) string { return paramEscaper.Replace(v) }

func (s *stmt) time(t time.Time) string {
	return s.bind("DateTime('UTC')", t.UTC().Format(time.DateTime))
}
func (s *stmt) u64(v uint64) string { return s.bind("UInt64", strconv.FormatUint(v, 10)) }
func (s *stmt) w(parts ...string) *stmt {
	for _, p := range parts {
		s.b.WriteString(p)
	}
	return s
}
func (s *stmt) String() string { return s.b.String() }

// histFunctions are the nearest-rank quantile functions of the views
// (migrations/0002_minute_views.sql, 0005_metric_views.sql), so that a
// quantile merged over minutes or keys is computed exactly as a view's.
const histFunctions = `WITH
    1.01 / 0.99 AS gamma,
    (h, pct) -> arraySort(mapKeys(h))[arrayFirstIndex(c -> c >= intDiv(arraySum(mapValues(h)) * pct + 99, 100), arrayCumSum(arraySort((v, k) -> k, mapValues(h), mapKeys(h))))] AS hist_rank_bucket,
    (h, pct) -> if(empty(h), NULL, if(hist_rank_bucket(h, pct) = -2147483648, 0., 2 * pow(gamma, hist_rank_bucket(h, pct)) / (gamma + 1))) AS hist_quantile,
    h -> arraySum(mapValues(h)) AS hist_count
`

// aggExpr is the SQL expression that merges metric m over the rows of a
// period-p view grouped together (partitions are already merged by the
// view; the group is one or several minutes, hours or days of one key, or
// several keys). seconds is the length of the merged span, for
// throughputs. The result is Nullable(Float64). Every identifier comes
// from the catalogue.
func aggExpr(m *Metric, p Period, seconds int64) string {
	col := func(c string) string { return RollupColumn(c, p) }
	var e string
	switch m.Kind {
	case KindCount, KindSum:
		e = "sum(" + m.Column(p) + ")"
	case KindGauge:
		if m.Name == "no_data" {
			// Counted over the group: 0/1 for one minute, minutes otherwise.
			e = "sum(" + m.Column(p) + ")"
		} else {
			e = "min(" + m.Column(p) + ")"
		}
	case KindRate, KindMean:
		num := "sum(" + col(m.Numerator) + ")"
		den := denominatorExpr(m, p)
		if m.Complement {
			num = "(toInt64(" + den + ") - toInt64(" + num + "))"
		}
		e = "if(" + den + " = 0, NULL, " + num + " / " + den + ")"
	case KindQuantile:
		e = fmt.Sprintf("hist_quantile(sumMap(%s), %d)", col(m.Histogram), m.Percentile)
	case KindThroughput:
		e = fmt.Sprintf("sum(%s) * 8 / %d / 1000000", col(m.Numerator), seconds)
	default:
		panic("query: metric " + m.Name + " has no kind") // catalogue bug, caught by its tests
	}
	return "CAST(" + e + " AS Nullable(Float64))"
}

// minuteRowsStmt writes the statement reading the rows of grouping set
// set of source si, one per minute and key in [from, to) (no upper bound
// when to is zero) matching filters: window_start, the key's dims, whether
// every partial row is final, when the newest was written, then each of ms
// merged over the key's partial rows. Callers append ORDER BY and LIMIT.
// name is what it reads, for errors.
func minuteRowsStmt(si *SourceInfo, set string, ms []*Metric, from, to time.Time, filters []Filter) (s *stmt, name string) {
	src, name := si.ReadFrom(PeriodMinute, ms...)
	s = newStmt()
	if needsHist(ms...) {
		s.w(histFunctions)
	}
	s.w("SELECT window_start, any(dims) AS key_dims, min(final) AS all_final, max(written_at) AS newest")
	for _, m := range ms {
		s.w(", ", aggExpr(m, PeriodMinute, 60))
	}
	s.w("\nFROM ", src, "\nWHERE ")
	selection{set: GroupingSet{Name: set}, filters: filters}.where(s)
	s.w(" AND window_start >= ", s.time(from))
	if !to.IsZero() {
		s.w(" AND window_start < ", s.time(to))
	}
	s.w("\nGROUP BY window_start, dims_key")
	return s, name
}

// keyMinute is one row of minuteRowsStmt.
type keyMinute struct {
	minute  time.Time // UTC
	dims    map[string]string
	final   bool
	written time.Time
	values  []*float64 // the statement's metrics, in order; nil: null
}

// scanKeyMinute reads the current row of a minuteRowsStmt of n metrics.
func scanKeyMinute(rows driver.Rows, n int) (keyMinute, error) {
	var (
		k     keyMinute
		final uint8
	)
	k.values = make([]*float64, n)
	dest := []any{&k.minute, &k.dims, &final, &k.written}
	for i := range k.values {
		dest = append(dest, &k.values[i])
	}
	err := rows.Scan(dest...)
	k.minute, k.written, k.final = k.minute.UTC(), k.written.UTC(), final == 1
	return k, err
}

// denominatorExpr is what a rate, mean or quantile of m is over, merged
// at period p: its summed denominator column, or the number of samples in
// its merged histogram (a quantile, or a mean of a histogram's values).
func denominatorExpr(m *Metric, p Period) string {
	if m.Denominator != "" {
		return "sum(" + RollupColumn(m.Denominator, p) + ")"
	}
	return "arraySum(mapValues(sumMap(" + RollupColumn(m.Histogram, p) + ")))"
}

// basisExpr is the SQL expression of what metric m's value is over
// (denominatorExpr) as a Nullable(Float64); "" for the metrics over nothing
// (Metric.hasBasis). A rate over 1 push that ended is 0 % or 100 %:
// readers weigh a value by it.
func basisExpr(m *Metric, p Period) string {
	if !m.hasBasis() {
		return ""
	}
	return "CAST(" + denominatorExpr(m, p) + " AS Nullable(Float64))"
}

// needsHist reports whether any metric's expression uses hist_quantile.
func needsHist(ms ...*Metric) bool {
	for _, m := range ms {
		if m.Kind == KindQuantile {
			return true
		}
	}
	return false
}
