package query

import (
	"context"
	"fmt"
	"time"
)

// Headline is one source's newest minute (the total row).
type Headline struct {
	Source    string    `json:"source"`
	Window    time.Time `json:"window_start"`
	Final     bool      `json:"final"`
	WrittenAt time.Time `json:"written_at"`
	// AgeSeconds is how old the data is: now − when its newest row was
	// written (never negative). It grows while nothing arrives, which is
	// what a wall shows as stale; the minute itself may still be running.
	AgeSeconds float64             `json:"age_seconds"`
	Values     map[string]*float64 `json:"values"`
}

// Latest is the newest minute of each source that has one within
// Options.Lookback (and a total grouping set).
type Latest struct {
	Now       time.Time  `json:"now"`
	Headlines []Headline `json:"headlines"`
}

// Latest returns the headline numbers (Options.Headline) of each source's
// newest minute, for the live endpoint.
func (q *Querier) Latest(ctx context.Context) (*Latest, error) {
	now := q.opts.Now().UTC()
	out := &Latest{Now: now, Headlines: []Headline{}}
	for _, si := range q.cat.Sources() {
		names := q.opts.Headline[si.Name]
		if len(names) == 0 {
			continue
		}
		if _, err := q.cat.GroupingSetFor(si.Name, nil, "headline"); err != nil {
			continue // no total row is kept for this source
		}
		ms := make([]*Metric, len(names))
		for i, n := range names {
			m, err := q.cat.Metric(si.Name, n)
			if err != nil {
				return nil, fmt.Errorf("headline: %w", err)
			}
			ms[i] = m
		}
		s, name := minuteRowsStmt(&si, "", ms, now.Add(-q.opts.Lookback), time.Time{}, nil)
		s.w("\nORDER BY window_start DESC\nLIMIT 1")
		rows, err := q.conn.Query(withParams(ctx, s), s.String())
		if err != nil {
			return nil, errQuery(name, err)
		}
		var k keyMinute
		found := rows.Next()
		if found {
			k, err = scanKeyMinute(rows, len(ms))
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", name, err)
		}
		if !found {
			continue
		}
		h := Headline{Source: si.Name, Window: k.minute, WrittenAt: k.written, Final: k.final,
			AgeSeconds: max(0, now.Sub(k.written).Seconds()), Values: map[string]*float64{}}
		for i, m := range ms {
			h.Values[m.Name] = k.values[i]
		}
		out.Headlines = append(out.Headlines, h)
	}
	return out, nil
}
