package query

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// RowsRequest asks for the minute rows of one grouping set over a span of
// minutes: what the live alert evaluator reads (docs/ALERTS.md, "Live"),
// a set's rows of one minute, its compare baselines, or one group's rows
// before an alert for the diagnosis.
type RowsRequest struct {
	Source string
	// Set is the grouping set's name (GroupingSet.Name; "" is the total).
	Set string
	// Metrics are per-minute catalogue names of the source.
	Metrics []string
	// From and To bound the minutes, [From, To).
	From, To time.Time
	// Filters are equalities on dimensions of the set.
	Filters []Filter
}

// MinuteRow is one group of the set at one minute, partitions merged as
// the minute view merges them.
type MinuteRow struct {
	Minute time.Time
	// Dims are the set's dimensions and values.
	Dims map[string]string
	// Values are the requested metrics, in the request's order; nil for a
	// null value (an empty denominator).
	Values []*float64
	// Final is true when every partial row of the group is final.
	Final bool
}

// MinuteRows reads the rows of a grouping set in [From, To), ordered by
// minute then key. Every value is a bound parameter; names come from the
// catalogue.
func (q *Querier) MinuteRows(ctx context.Context, r RowsRequest) ([]MinuteRow, error) {
	si, err := q.cat.Source(r.Source)
	if err != nil {
		return nil, err
	}
	var set *GroupingSet
	for i := range si.GroupingSets {
		if si.GroupingSets[i].Name == r.Set {
			set = &si.GroupingSets[i]
		}
	}
	if set == nil {
		return nil, invalid("group_by", r.Set, fmt.Sprintf("not a grouping set of %s", r.Source))
	}
	ms := make([]*Metric, len(r.Metrics))
	for i, name := range r.Metrics {
		m, err := q.cat.Metric(r.Source, name)
		if err != nil {
			return nil, err
		}
		if !m.Has(PeriodMinute) {
			return nil, invalid("metric", name, "not kept per minute")
		}
		ms[i] = m
	}
	for _, f := range r.Filters {
		if !slices.Contains(set.Dims, f.Dim) {
			return nil, invalid("filter", f.Dim, "not a dimension of the grouping set")
		}
	}
	if !r.From.Before(r.To) {
		return nil, invalid("from", r.From.UTC().Format(time.RFC3339), "must be before to")
	}
	s, name := minuteRowsStmt(si, set.Name, ms, r.From, r.To, r.Filters)
	s.w("\nORDER BY window_start, dims_key")
	rows, err := q.conn.Query(withParams(ctx, s), s.String())
	if err != nil {
		return nil, errQuery(name, err)
	}
	defer rows.Close()
	var out []MinuteRow
	for rows.Next() {
		k, err := scanKeyMinute(rows, len(ms))
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", name, err)
		}
		row := MinuteRow{Minute: k.minute, Values: k.values, Final: k.final}
		row.Dims = make(map[string]string, len(set.Dims))
		for _, d := range set.Dims {
			row.Dims[d] = k.dims[d]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	return out, nil
}
