package query

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Step is the spacing of a series' points.
type Step string

// The steps: 1m from the minute views, 5m from minute rows merged, 1h and
// 1d from the hourly and daily rollup views.
const (
	Step1m Step = "1m"
	Step5m Step = "5m"
	Step1h Step = "1h"
	Step1d Step = "1d"
)

// Steps lists the valid steps.
var Steps = []Step{Step1m, Step5m, Step1h, Step1d}

func (s Step) duration() time.Duration {
	switch s {
	case Step1m:
		return time.Minute
	case Step5m:
		return 5 * time.Minute
	case Step1h:
		return time.Hour
	case Step1d:
		return 24 * time.Hour
	}
	return 0
}

// period is the table period a step reads.
func (s Step) period() Period {
	switch s {
	case Step1h:
		return PeriodHour
	case Step1d:
		return PeriodDay
	}
	return PeriodMinute
}

// Options are the limits and settings of a Querier; zero fields take the
// defaults of DefaultOptions.
type Options struct {
	// Now is the clock (finality of periods, data age); default time.Now.
	Now func() time.Time
	// MaxRange is the longest from–to span per step; defaults 1m: 24h,
	// 5m: 7d, 1h: 92d, 1d: 400d.
	MaxRange map[Step]time.Duration
	// MaxGroups bounds the groups (keys) of a series; default 500.
	MaxGroups int
	// MaxRows bounds the rows a series reads (groups × points); default 100,000.
	MaxRows int
	// MaxLimit bounds a breakdown's limit; default 1,000.
	MaxLimit int
	// MaxHistoryDays bounds History's days; default 92.
	MaxHistoryDays int
	// Lookback is how far back the newest minute is searched (Latest, and
	// Breakdown/Streams without a minute); default 1h.
	Lookback time.Duration
	// Headline lists, per source, the metrics of Latest; default
	// DefaultHeadline.
	Headline map[string][]string
	// OnMicRoles and OffMicRoles are the role values of History's on-mic
	// (麦上) and off-mic (麦下) columns; default host, cohost and audience
	// (schemas/spec.go).
	OnMicRoles, OffMicRoles []string
	// Streams are the thresholds of the upstream cards.
	Streams StreamOptions
}

// DefaultHeadline is the default of Options.Headline: the war room's cards.
func DefaultHeadline() map[string][]string {
	return map[string][]string{
		"client": {"users", "stutter_rate_uv", "zero_stutter_rate", "first_frame_ms_p90", "fast_open_rate", "pull_connect_rate"},
		"cdn":    {"bandwidth_mbps", "requests", "errors_5xx_rate", "ttfb_ms_p90"},
	}
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		Now: time.Now,
		MaxRange: map[Step]time.Duration{
			Step1m: 24 * time.Hour, Step5m: 7 * 24 * time.Hour, Step1h: 92 * 24 * time.Hour, Step1d: 400 * 24 * time.Hour,
		},
		MaxGroups:      500,
		MaxRows:        100_000,
		MaxLimit:       1000,
		MaxHistoryDays: 92,
		Lookback:       time.Hour,
		Headline:       DefaultHeadline(),
		OnMicRoles:     []string{"host", "cohost"},
		OffMicRoles:    []string{"audience"},
		Streams:        DefaultStreamOptions(),
	}
}

func (o *Options) fill() {
	d := DefaultOptions()
	if o.Now == nil {
		o.Now = d.Now
	}
	if o.MaxRange == nil {
		o.MaxRange = d.MaxRange
	}
	if o.MaxGroups <= 0 {
		o.MaxGroups = d.MaxGroups
	}
	if o.MaxRows <= 0 {
		o.MaxRows = d.MaxRows
	}
	if o.MaxLimit <= 0 {
		o.MaxLimit = d.MaxLimit
	}
	if o.MaxHistoryDays <= 0 {
		o.MaxHistoryDays = d.MaxHistoryDays
	}
	if o.Lookback <= 0 {
		o.Lookback = d.Lookback
	}
	if o.Headline == nil {
		o.Headline = d.Headline
	}
	if o.OnMicRoles == nil {
		o.OnMicRoles = d.OnMicRoles
	}
	if o.OffMicRoles == nil {
		o.OffMicRoles = d.OffMicRoles
	}
	o.Streams.fill()
}

// Querier runs the typed read queries over the views. Safe for concurrent use.
type Querier struct {
	conn driver.Conn
	cat  *Catalog
	opts Options
}

// NewQuerier wraps an open connection whose database holds the qoscope views.
func NewQuerier(conn driver.Conn, cat *Catalog, opts Options) *Querier {
	opts.fill()
	return &Querier{conn: conn, cat: cat, opts: opts}
}

// Catalog returns the catalogue the querier validates names against.
func (q *Querier) Catalog() *Catalog { return q.cat }

// Filter is one equality condition on a dimension.
type Filter struct {
	Dim   string `json:"dim"`
	Value string `json:"value"`
}

// selection is a validated choice of rows: the grouping set covering the
// group-by and filter dimensions, and the filters.
type selection struct {
	set     GroupingSet
	groupBy []string
	filters []Filter
}

// selectRows validates dims and filters against the catalogue.
func (q *Querier) selectRows(source, byParam string, groupBy []string, filters []Filter) (selection, error) {
	dims := slices.Clone(groupBy)
	for i, d := range groupBy {
		if slices.Contains(groupBy[:i], d) {
			return selection{}, invalid(byParam, d, "dimension listed twice")
		}
	}
	for i, f := range filters {
		if slices.Contains(groupBy, f.Dim) {
			return selection{}, invalid("filter", f.Dim, "dimension is also grouped by; a filter narrows a dimension that is not grouped")
		}
		for _, g := range filters[:i] {
			if g.Dim == f.Dim {
				return selection{}, invalid("filter", f.Dim, "one filter per dimension (a sum over several values would not count distinct users)")
			}
		}
		dims = append(dims, f.Dim)
	}
	param := byParam
	if len(filters) > 0 {
		param = byParam + "+filter"
	}
	set, err := q.cat.GroupingSetFor(source, dims, param)
	if err != nil {
		return selection{}, err
	}
	return selection{set: set, groupBy: groupBy, filters: filters}, nil
}

// where writes the row conditions of a selection (the grouping and each filter).
func (sel selection) where(s *stmt) {
	s.w("grouping = ", s.str(sel.set.Name))
	for _, f := range sel.filters {
		s.w(" AND dims[", s.str(f.Dim), "] = ", s.str(f.Value))
	}
}

// withParams attaches a statement's parameters to ctx.
func withParams(ctx context.Context, s *stmt) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithParameters(s.params))
}

// floorTime truncates t to a multiple of d since the epoch (UTC).
func floorTime(t time.Time, d time.Duration) time.Time { return t.UTC().Truncate(d) }

func ceilTime(t time.Time, d time.Duration) time.Time {
	f := floorTime(t, d)
	if f.Before(t) {
		return f.Add(d)
	}
	return f
}

func errQuery(view string, err error) error { return fmt.Errorf("cannot query %s: %w", view, err) }
