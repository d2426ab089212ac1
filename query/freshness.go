package query

import (
	"context"
	"fmt"
	"time"
)

// Freshness is the state of the minute tables that the live endpoint
// watches: the newest written_at over every source and the number of rows
// within Options.Lookback. A new provisional or final row changes it (the
// count catches two inserts within the same millisecond); a background
// merge may change the count alone, which costs one needless refresh.
type Freshness struct {
	LastWrite time.Time `json:"last_write"`
	Rows      uint64    `json:"rows"`
}

// Freshness reads the newest written_at and the row count of every source's
// minute table within Options.Lookback: one statement, the minute tables'
// partitions outside the window pruned, cheap enough to run a few times a
// second for all of a server's live clients together.
func (q *Querier) Freshness(ctx context.Context) (Freshness, error) {
	s := newStmt()
	since := s.time(q.opts.Now().Add(-q.opts.Lookback))
	s.w("SELECT max(w), sum(n) FROM (")
	for i, si := range q.cat.Sources() {
		if i > 0 {
			s.w(" UNION ALL ")
		}
		s.w("SELECT max(written_at) AS w, count() AS n FROM ", si.Tables[PeriodMinute], " WHERE window_start >= ", since)
	}
	s.w(")")
	var f Freshness
	if err := q.conn.QueryRow(withParams(ctx, s), s.String()).Scan(&f.LastWrite, &f.Rows); err != nil {
		return Freshness{}, fmt.Errorf("cannot read the minute tables' freshness: %w", err)
	}
	f.LastWrite = f.LastWrite.UTC()
	return f, nil
}
