package query

import (
	"context"
	"fmt"
	"time"
)

// BreakdownRequest asks for the ranking of the keys of one grouping set in
// one minute (the war room's region table, 001's province ranking).
type BreakdownRequest struct {
	Source  string
	Metric  string   // the ranked value
	Extra   []string // more metrics per row (e.g. stalls, pushes)
	By      []string // dimensions; with Filters, exactly a grouping set's
	Filters []Filter
	At      time.Time // the minute; zero = the newest minute within Options.Lookback
	Sort    string    // "value" (default) or "users" (the source's volume metric)
	Order   string    // "desc" (default) or "asc"
	Limit   int       // default 20, at most Options.MaxLimit
	// MinUsers drops keys whose volume (users, requests or samples) is below it.
	MinUsers uint64
}

// Breakdown is the ranking.
type Breakdown struct {
	Source string         `json:"source"`
	Metric string         `json:"metric"`
	Volume string         `json:"volume"` // the metric of BreakdownRow.Volume
	By     []string       `json:"by"`
	At     time.Time      `json:"at"` // zero when no minute was found
	Rows   []BreakdownRow `json:"rows"`
}

// BreakdownRow is one key.
type BreakdownRow struct {
	Dims   map[string]string   `json:"dims"`
	Value  *float64            `json:"value"`
	Volume *float64            `json:"volume"`
	Extra  map[string]*float64 `json:"extra,omitempty"`
	Final  bool                `json:"final"`
}

type breakdownPlan struct {
	metric, volume *Metric
	extra          []*Metric
	sel            selection
	// src is the FROM clause (ReadFrom), name the table or view it
	// reads; table is the minute table (the newest minute's lookup).
	src, name, table string
	desc, byVolume   bool
	limit            int
}

func (q *Querier) planBreakdown(r BreakdownRequest) (breakdownPlan, error) {
	var p breakdownPlan
	var err error
	if p.metric, err = q.cat.Metric(r.Source, r.Metric); err != nil {
		return p, err
	}
	for _, e := range r.Extra {
		m, err := q.cat.Metric(r.Source, e)
		if err != nil {
			return p, err
		}
		p.extra = append(p.extra, m)
	}
	si, _ := q.cat.Source(r.Source)
	p.volume, _ = q.cat.Metric(r.Source, si.Volume)
	if !p.metric.Has(PeriodMinute) {
		return p, invalid("metric", r.Metric, "not kept per minute")
	}
	switch r.Sort {
	case "", "value":
	case "users":
		p.byVolume = true
	default:
		return p, invalid("sort", r.Sort, "valid: users, value")
	}
	switch r.Order {
	case "", "desc":
		p.desc = true
	case "asc":
	default:
		return p, invalid("order", r.Order, "valid: asc, desc")
	}
	p.limit = r.Limit
	if p.limit == 0 {
		p.limit = 20
	}
	if p.limit < 0 || p.limit > q.opts.MaxLimit {
		return p, invalid("limit", fmt.Sprint(r.Limit), fmt.Sprintf("must be between 1 and %d", q.opts.MaxLimit))
	}
	if p.sel, err = q.selectRows(r.Source, "by", r.By, r.Filters); err != nil {
		return p, err
	}
	p.src, p.name = si.ReadFrom(PeriodMinute, append([]*Metric{p.metric, p.volume}, p.extra...)...)
	p.table = si.Tables[PeriodMinute]
	return p, nil
}

func (p breakdownPlan) build(at time.Time, minUsers uint64) *stmt {
	s := newStmt()
	if needsHist(append([]*Metric{p.metric}, p.extra...)...) {
		s.w(histFunctions)
	}
	s.w("SELECT dims_key AS key, any(dims) AS key_dims, ", aggExpr(p.metric, PeriodMinute, 60), " AS value, ",
		aggExpr(p.volume, PeriodMinute, 60), " AS volume, min(final) AS all_final")
	for i, m := range p.extra {
		s.w(", ", aggExpr(m, PeriodMinute, 60), fmt.Sprintf(" AS extra_%d", i))
	}
	s.w("\nFROM ", p.src, "\nWHERE ")
	p.sel.where(s)
	dir := " ASC"
	if p.desc {
		dir = " DESC"
	}
	s.w(" AND window_start = ", s.time(at), "\nGROUP BY key\nHAVING ifNull(volume, 0) >= ", s.u64(minUsers), "\nORDER BY ")
	if p.byVolume {
		s.w("volume", dir, ", value", dir, " NULLS LAST, key")
	} else {
		s.w("value", dir, " NULLS LAST, volume DESC, key")
	}
	s.w("\nLIMIT ", s.u64(uint64(p.limit)))
	return s
}

// Breakdown ranks the keys of the grouping set By (plus Filters) in one minute.
func (q *Querier) Breakdown(ctx context.Context, r BreakdownRequest) (*Breakdown, error) {
	p, err := q.planBreakdown(r)
	if err != nil {
		return nil, err
	}
	out := &Breakdown{Source: r.Source, Metric: p.metric.Name, Volume: p.volume.Name, By: append([]string{}, r.By...), Rows: []BreakdownRow{}}
	at := r.At
	if at.IsZero() {
		if at, err = q.newestMinute(ctx, p.table, p.sel.set.Name); err != nil || at.IsZero() {
			return out, err
		}
	}
	out.At = floorTime(at, time.Minute)
	s := p.build(out.At, r.MinUsers)
	rows, err := q.conn.Query(withParams(ctx, s), s.String())
	if err != nil {
		return nil, errQuery(p.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key   string
			dims  map[string]string
			row   BreakdownRow
			final uint8
		)
		extra := make([]*float64, len(p.extra))
		dest := []any{&key, &dims, &row.Value, &row.Volume, &final}
		for i := range extra {
			dest = append(dest, &extra[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p.name, err)
		}
		row.Final = final == 1
		row.Dims = map[string]string{}
		for _, d := range r.By {
			row.Dims[d] = dims[d]
		}
		if len(p.extra) > 0 {
			row.Extra = map[string]*float64{}
			for i, m := range p.extra {
				row.Extra[m.Name] = extra[i]
			}
		}
		out.Rows = append(out.Rows, row)
	}
	return out, rows.Err()
}

// newestMinute is the newest window_start of a grouping set in a minute
// table within Options.Lookback; zero when there is none.
func (q *Querier) newestMinute(ctx context.Context, table, grouping string) (time.Time, error) {
	s := newStmt()
	s.w("SELECT max(window_start), count() FROM ", table, " WHERE grouping = ", s.str(grouping),
		" AND window_start >= ", s.time(q.opts.Now().Add(-q.opts.Lookback)))
	var t time.Time
	var n uint64
	if err := q.conn.QueryRow(withParams(ctx, s), s.String()).Scan(&t, &n); err != nil {
		return time.Time{}, errQuery(table, err)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}
