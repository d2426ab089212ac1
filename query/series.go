package query

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SeriesRequest asks for one metric over time, per group.
type SeriesRequest struct {
	Source  string
	Metric  string
	GroupBy []string // dimensions; with Filters, exactly a grouping set's
	Filters []Filter // equality, one per dimension
	From    time.Time
	To      time.Time // exclusive; From is rounded down and To up to the step
	Step    Step
}

// Series is the answer: per group, the points in time order. Buckets
// without rows have no point.
type Series struct {
	Source string `json:"source"`
	Metric string `json:"metric"`
	// Name is the value's name: Metric, or its OverMinutes name when a point
	// merges several minutes (users_sum_of_minutes: a sum of per-minute
	// distinct users, not distinct users).
	Name string `json:"name"`
	Unit string `json:"unit"`
	// NUnit is what each point's N counts (users, user-minutes over
	// several minutes, attempts, samples, …); empty when points have no N.
	NUnit   string        `json:"n_unit,omitempty"`
	Step    Step          `json:"step"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	GroupBy []string      `json:"group_by"`
	Groups  []SeriesGroup `json:"groups"`
}

// SeriesGroup is one key's points.
type SeriesGroup struct {
	Dims   map[string]string `json:"dims"`
	Points []Point           `json:"points"`
}

// Point is one bucket's value. Final: every merged row was final (the
// allowed lateness of each minute has passed) and, for a bucket longer than
// a minute, the bucket's end plus the source's lateness has passed, so no
// minute of it can still change or appear.
type Point struct {
	Time  time.Time `json:"t"`
	Value *float64  `json:"v"` // null: a rate or mean with nothing to divide by
	// N is what the value is over (basisExpr): the denominator of a rate
	// or mean, the samples of a quantile; absent for counts and sums.
	N     *float64 `json:"n,omitempty"`
	Final bool     `json:"final"`
}

type seriesPlan struct {
	metric   *Metric
	sel      selection
	step     Step
	from, to time.Time
	// src is the FROM clause (ReadFrom), name the table or view it reads.
	src, name string
}

func (q *Querier) planSeries(r SeriesRequest) (seriesPlan, error) {
	var p seriesPlan
	m, err := q.cat.Metric(r.Source, r.Metric)
	if err != nil {
		return p, err
	}
	if !slices.Contains(Steps, r.Step) {
		return p, invalid("step", string(r.Step), "valid: 1m, 5m, 1h, 1d")
	}
	if !m.Has(r.Step.period()) {
		return p, invalid("step", string(r.Step), fmt.Sprintf("metric %s is kept only in the %v views", m.Name, m.Periods))
	}
	if r.From.IsZero() {
		return p, invalid("from", "", "required")
	}
	if r.To.IsZero() {
		return p, invalid("to", "", "required")
	}
	d := r.Step.duration()
	from, to := floorTime(r.From, d), ceilTime(r.To, d)
	if !to.After(from) {
		return p, invalid("to", r.To.UTC().Format(time.RFC3339), "must be after from")
	}
	if max := q.opts.MaxRange[r.Step]; to.Sub(from) > max {
		return p, invalid("from", r.From.UTC().Format(time.RFC3339), fmt.Sprintf("from–to spans %s; at step %s at most %s", to.Sub(from), r.Step, max))
	}
	if n := int(to.Sub(from) / d); n > q.opts.MaxRows {
		return p, invalid("from", r.From.UTC().Format(time.RFC3339), fmt.Sprintf("%d points exceed the %d-row limit", n, q.opts.MaxRows))
	}
	sel, err := q.selectRows(r.Source, "group_by", r.GroupBy, r.Filters)
	if err != nil {
		return p, err
	}
	si, _ := q.cat.Source(r.Source)
	src, name := si.ReadFrom(r.Step.period(), m)
	return seriesPlan{metric: m, sel: sel, step: r.Step, from: from, to: to, src: src, name: name}, nil
}

// build writes the series statement.
func (p seriesPlan) build(maxRows int) *stmt {
	s := newStmt()
	secs := int64(p.step.duration() / time.Second)
	if needsHist(p.metric) {
		s.w(histFunctions)
	}
	final := "toUInt8(1)"
	if p.step.period() == PeriodMinute {
		final = "min(final)"
	}
	s.w("SELECT toStartOfInterval(window_start, INTERVAL ", strconv.FormatInt(secs, 10), " SECOND) AS bucket, dims_key AS key, any(dims) AS key_dims, ",
		aggExpr(p.metric, p.step.period(), secs), " AS value, ", final, " AS all_final")
	if b := basisExpr(p.metric, p.step.period()); b != "" {
		s.w(", ", b, " AS basis")
	}
	s.w("\nFROM ", p.src, "\nWHERE ")
	p.sel.where(s)
	s.w(" AND window_start >= ", s.time(p.from), " AND window_start < ", s.time(p.to),
		"\nGROUP BY bucket, key\nORDER BY key, bucket\nLIMIT ", s.u64(uint64(maxRows)+1))
	return s
}

// Series returns metric per group and bucket. Rates are recomputed from
// summed numerators and denominators, means from sums and counts, quantiles
// from the merged histograms with the views' nearest-rank function.
func (q *Querier) Series(ctx context.Context, r SeriesRequest) (*Series, error) {
	p, err := q.planSeries(r)
	if err != nil {
		return nil, err
	}
	s := p.build(q.opts.MaxRows)
	rows, err := q.conn.Query(withParams(ctx, s), s.String())
	if err != nil {
		return nil, errQuery(p.name, err)
	}
	defer rows.Close()
	out := &Series{Source: r.Source, Metric: p.metric.Name, Name: p.metric.NameFor(p.step != Step1m),
		Unit: p.metric.Unit, NUnit: q.cat.basisUnit(r.Source, p.metric, p.step != Step1m),
		Step: p.step, From: p.from, To: p.to, GroupBy: append([]string{}, r.GroupBy...), Groups: []SeriesGroup{}}
	hasBasis := p.metric.hasBasis()
	lastKey, n := "", 0
	for rows.Next() {
		var (
			bucket time.Time
			key    string
			dims   map[string]string
			value  *float64
			final  uint8
			basis  *float64
		)
		dest := []any{&bucket, &key, &dims, &value, &final}
		if hasBasis {
			dest = append(dest, &basis)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p.name, err)
		}
		if n++; n > q.opts.MaxRows {
			return nil, invalid("group_by", strings.Join(r.GroupBy, ","), fmt.Sprintf("the answer has more than %d rows (groups × points); group by fewer dimensions, filter, or shorten from–to", q.opts.MaxRows))
		}
		if len(out.Groups) == 0 || key != lastKey {
			if len(out.Groups) == q.opts.MaxGroups {
				return nil, invalid("group_by", strings.Join(r.GroupBy, ","), fmt.Sprintf("more than %d groups; filter or group by fewer dimensions", q.opts.MaxGroups))
			}
			g := SeriesGroup{Dims: map[string]string{}}
			for _, d := range r.GroupBy {
				g.Dims[d] = dims[d]
			}
			out.Groups = append(out.Groups, g)
			lastKey = key
		}
		g := &out.Groups[len(out.Groups)-1]
		g.Points = append(g.Points, Point{Time: bucket.UTC(), Value: value, N: basis, Final: final == 1})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", p.name, err)
	}
	if p.step == Step1m {
		return out, nil
	}
	// Rollup rows hold final minutes only; whether a bucket still has
	// provisional minutes is in the minute table.
	var minuteFinal map[time.Time]bool
	if p.step.period() != PeriodMinute {
		if minuteFinal, err = q.minutesFinal(ctx, r.Source, p.sel.set.Name, p.step, p.from, p.to); err != nil {
			return nil, err
		}
	}
	cutoff := q.opts.Now().Add(-q.cat.Lateness(r.Source))
	for gi := range out.Groups {
		for pi := range out.Groups[gi].Points {
			pt := &out.Groups[gi].Points[pi]
			ok := pt.Final && !pt.Time.Add(p.step.duration()).After(cutoff)
			if f, seen := minuteFinal[pt.Time]; seen && !f {
				ok = false
			}
			pt.Final = ok
		}
	}
	return out, nil
}

// minutesFinal tells, per bucket of step, whether every minute row of the
// grouping set in it is final (buckets without minute rows are absent).
func (q *Querier) minutesFinal(ctx context.Context, source, grouping string, step Step, from, to time.Time) (map[time.Time]bool, error) {
	si, err := q.cat.Source(source)
	if err != nil {
		return nil, err
	}
	table := si.Tables[PeriodMinute]
	s := newStmt()
	s.w("SELECT toStartOfInterval(window_start, INTERVAL ", strconv.FormatInt(int64(step.duration()/time.Second), 10), " SECOND) AS bucket, min(final)\nFROM ",
		table, " FINAL\nWHERE grouping = ", s.str(grouping), " AND window_start >= ", s.time(from), " AND window_start < ", s.time(to), "\nGROUP BY bucket")
	rows, err := q.conn.Query(withParams(ctx, s), s.String())
	if err != nil {
		return nil, errQuery(table, err)
	}
	defer rows.Close()
	out := map[time.Time]bool{}
	for rows.Next() {
		var b time.Time
		var f uint8
		if err := rows.Scan(&b, &f); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", table, err)
		}
		out[b.UTC()] = f == 1
	}
	return out, rows.Err()
}
