package query

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/schemas"
)

// Period is the length of the rows of a table or view.
type Period string

// The three periods: minute tables (0001/0002), hourly and daily rollups
// (0004); their views are rendered from one template (0005).
const (
	PeriodMinute Period = "minute"
	PeriodHour   Period = "hour"
	PeriodDay    Period = "day"
)

// Periods lists every period, shortest first.
var periods = []Period{PeriodMinute, PeriodHour, PeriodDay}

// Kind says how a metric is derived from raw columns, and therefore how it
// is merged over rows (partitions, several minutes, keys).
type Kind string

const (
	// KindCount is a sum of events or per-minute distinct users: merged by sum.
	KindCount Kind = "count"
	// KindSum is a sum of a quantity (milliseconds, bytes): merged by sum.
	KindSum Kind = "sum"
	// KindRate is Numerator / Denominator (Complement: (den − num) / den),
	// recomputed from the summed columns; null when the denominator is 0.
	KindRate Kind = "rate"
	// KindMean is Numerator / Denominator, or Numerator / the count of
	// Histogram; null when there is nothing to average.
	KindMean Kind = "mean"
	// KindQuantile is the nearest-rank Percentile of the merged Histogram
	// (docs/METRICS.md, "Quantiles").
	KindQuantile Kind = "quantile"
	// KindGauge is a state, not a sum: a minimum (fps_min) or origin
	// no_data. Over several minutes a minimum is the minimum and no_data is
	// counted as no_data_minutes.
	KindGauge Kind = "gauge"
	// KindThroughput is Numerator · 8 / seconds of the period / 10⁶ (Mbit/s),
	// the mean over the period.
	KindThroughput Kind = "throughput"
)

// Metric is one public metric: what it means, where it is stored and how it
// is derived. Column names are those of the minute views; rollup views
// rename the distinct-user counts (RollupColumn).
type Metric struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Kind        Kind   `json:"kind"`
	Unit        string `json:"unit"`
	Description string `json:"description"`
	// Numerator and Denominator are the raw columns of a rate, mean or
	// throughput (Numerator only for a throughput).
	Numerator   string `json:"numerator,omitempty"`
	Denominator string `json:"denominator,omitempty"`
	// Complement: the rate is (Denominator − Numerator) / Denominator.
	Complement bool `json:"complement,omitempty"`
	// Histogram is the bucket → count column of a quantile, or the count of a
	// histogram mean (Denominator empty).
	Histogram  string `json:"histogram,omitempty"`
	Percentile int    `json:"percentile,omitempty"`
	// OverMinutes is the name of the value once merged over several minutes
	// when that changes its meaning: a sum of per-minute distinct users is
	// not a number of distinct users (users → users_sum_of_minutes), and a
	// sum of no_data flags is a number of minutes.
	OverMinutes string `json:"over_minutes,omitempty"`
	// Periods are the periods whose views carry the metric.
	Periods []Period `json:"periods"`
	// Offline: the aggregator emits it in its rows (aggregator.MetricNames);
	// the others are derived by the views only.
	Offline bool `json:"offline"`
	// Dimensions it can be grouped and filtered by: every dimension of the
	// source's configured grouping sets (GroupingSetFor finds the set).
	Dimensions []string `json:"dimensions"`
}

// NameFor is the name of the metric's value at a step of several minutes
// (multi = true) or one minute.
func (m *Metric) NameFor(multi bool) string {
	if multi && m.OverMinutes != "" {
		return m.OverMinutes
	}
	return m.Name
}

// Has reports whether the views of period p carry the metric.
func (m *Metric) Has(p Period) bool { return slices.Contains(m.Periods, p) }

// rollupRenames are the minute columns whose rollup columns have another
// name, because summing them over minutes changes what they count.
var rollupRenames = map[string]string{
	"users":               "user_minutes",
	"stutter_users":       "stutter_user_minutes",
	"stutter_users_video": "stutter_user_minutes_video",
	"stutter_users_audio": "stutter_user_minutes_audio",
	"no_data":             "no_data_minutes",
}

// RollupColumn is the name in the views of period p of the minute column col.
func RollupColumn(col string, p Period) string {
	if p != PeriodMinute {
		if r, ok := rollupRenames[col]; ok {
			return r
		}
	}
	return col
}

// Column is the view column holding the metric at period p.
func (m *Metric) Column(p Period) string {
	if m.Kind == KindCount || m.Kind == KindSum || m.Kind == KindGauge {
		return RollupColumn(m.Name, p)
	}
	return m.Name
}

// Inputs are the raw view columns the metric derives from at period p
// (empty for a stored count: its column is the value).
func (m *Metric) Inputs(p Period) []string {
	var in []string
	for _, c := range []string{m.Numerator, m.Denominator, m.Histogram} {
		if c != "" {
			in = append(in, RollupColumn(c, p))
		}
	}
	return in
}

// GroupingSet is one configured grouping set of a source: the rows of the
// tables with grouping = Name carry exactly these dimensions.
type GroupingSet struct {
	Name string   `json:"name"` // dims joined by ",", "" = the total
	Dims []string `json:"dims"`
}

// SourceInfo is one source's part of the catalogue.
type SourceInfo struct {
	Name string `json:"name"`
	// Tables and Views per period: <source>_<period> and <source>_<period>_metrics.
	Tables map[Period]string `json:"tables"`
	Views  map[Period]string `json:"views"`
	// Volume is the metric that says how big a key is (breakdown sort
	// "users", min_users): users, requests or samples.
	Volume       string        `json:"volume"`
	Dimensions   []string      `json:"dimensions"`
	GroupingSets []GroupingSet `json:"grouping_sets"`
	Metrics      []Metric      `json:"metrics"`
}

// ReadFrom is where a statement merging metrics ms of the source at period
// p reads (its FROM clause), and the name its errors give. When every
// metric is a count, sum, rate, mean, quantile or throughput, it reads the
// table itself (FINAL: each partition's newest version): every view column
// such a metric derives from is a plain sum (or sumMap) of the table
// column of the same name, so a merge over the table rows of a group
// equals the same merge over the view rows made of them
// (TestTableReadsMatchViews). Gauges read the view: no_data is a minimum
// per key and minute, and fps_min one over the rows that have samples,
// neither of which merges in one pass with other keys or minutes.
//
// The table is what makes a question cheap: ClickHouse analyses every
// column of a view it reads, which costs ~14 ms of CPU per statement for
// the client views against ~1 ms for the table (query/README.md, "What the
// queries read").
func (si *SourceInfo) ReadFrom(p Period, ms ...*Metric) (from, name string) {
	for _, m := range ms {
		if m.Kind == KindGauge {
			return si.Views[p], si.Views[p]
		}
	}
	return si.Tables[p] + " FINAL", si.Tables[p]
}

// hasBasis reports whether m's values are over something (a point's N):
// rates and means divide by it, quantiles rank within it; counts, sums,
// gauges and throughputs are over nothing.
func (m *Metric) hasBasis() bool {
	return m.Kind == KindRate || m.Kind == KindMean || m.Kind == KindQuantile
}

// basisUnit is what a point's N (basisExpr) counts for metric m of
// source: the unit of the count metric its denominator is (users,
// attempts, pushes, …; "user-minutes" for users merged over several
// minutes, which are not distinct users), else samples (of its histogram,
// or the heartbeats reporting a buffer length); "" when m's values are
// over nothing.
func (c *Catalog) basisUnit(source string, m *Metric, overMinutes bool) string {
	switch {
	case !m.hasBasis():
		return ""
	case m.Denominator == "":
		return "samples"
	}
	d, err := c.Metric(source, m.Denominator)
	if err != nil {
		return "samples" // a raw count such as video_buffer_samples
	}
	if overMinutes && d.OverMinutes != "" {
		return strings.TrimSuffix(d.Unit, "s") + "-minutes"
	}
	return d.Unit
}

// Catalog is the metric catalogue: every public metric of docs/METRICS.md
// with its derivation, and the dimensions of the configured grouping sets.
// It is immutable; every reader (query API, alert rules, scores, wall)
// takes names from it.
type Catalog struct {
	sources  []SourceInfo
	lateness aggregator.Lateness
}

// Lateness is the allowed lateness of a source (aggregator config): a
// minute can change until its end plus this.
func (c *Catalog) Lateness(source string) time.Duration {
	s, _ := schemas.ParseSource(source)
	return c.lateness.Of(s)
}

// Sources in the catalogue's order.
var sourceNames = []string{"client", "cdn", "origin"}

// NewCatalog builds the catalogue for the grouping sets of plan (the
// aggregator's configuration, so non-default grouping sets work).
func NewCatalog(plan *aggregator.Plan) *Catalog {
	defs := definitions()
	c := &Catalog{lateness: plan.Config().Lateness}
	for _, name := range sourceNames {
		src, _ := schemas.ParseSource(name)
		si := SourceInfo{
			Name:   name,
			Tables: map[Period]string{},
			Views:  map[Period]string{},
			Volume: map[string]string{"client": "users", "cdn": "requests", "origin": "samples"}[name],
		}
		for _, p := range periods {
			si.Tables[p] = name + "_" + string(p)
			si.Views[p] = name + "_" + string(p) + "_metrics"
		}
		for _, gs := range plan.GroupingSets(src) {
			si.GroupingSets = append(si.GroupingSets, GroupingSet{Name: gs.Name, Dims: slices.Clone(gs.Names)})
			for _, d := range gs.Names {
				if !slices.Contains(si.Dimensions, d) {
					si.Dimensions = append(si.Dimensions, d)
				}
			}
		}
		for _, m := range defs[name] {
			m.Source = name
			m.Dimensions = slices.Clone(si.Dimensions)
			si.Metrics = append(si.Metrics, m)
		}
		c.sources = append(c.sources, si)
	}
	return c
}

// Sources returns the catalogue, source by source.
func (c *Catalog) Sources() []SourceInfo { return c.sources }

// Source returns one source's catalogue; the error lists the sources.
func (c *Catalog) Source(name string) (*SourceInfo, error) {
	for i := range c.sources {
		if c.sources[i].Name == name {
			return &c.sources[i], nil
		}
	}
	return nil, invalid("source", name, "unknown source; valid: "+strings.Join(sourceNames, ", "))
}

// Metric looks a metric up by source and name; the error lists the valid
// names of the source.
func (c *Catalog) Metric(source, name string) (*Metric, error) {
	si, err := c.Source(source)
	if err != nil {
		return nil, err
	}
	for i := range si.Metrics {
		if si.Metrics[i].Name == name {
			return &si.Metrics[i], nil
		}
	}
	names := make([]string, len(si.Metrics))
	for i, m := range si.Metrics {
		names[i] = m.Name
	}
	return nil, invalid("metric", name, fmt.Sprintf("no %s metric of that name; valid: %s", source, strings.Join(names, ", ")))
}

// GroupingSetFor finds the grouping set of source whose dimensions are
// exactly dims (in any order); the error lists the sets that exist. param
// names the request parameter the dimensions came from.
func (c *Catalog) GroupingSetFor(source string, dims []string, param string) (GroupingSet, error) {
	si, err := c.Source(source)
	if err != nil {
		return GroupingSet{}, err
	}
	for _, d := range dims {
		if !slices.Contains(si.Dimensions, d) {
			return GroupingSet{}, invalid(param, d, fmt.Sprintf("not a %s dimension; valid: %s", source, strings.Join(si.Dimensions, ", ")))
		}
	}
	want := slices.Clone(dims)
	slices.Sort(want)
	var names []string
	for _, gs := range si.GroupingSets {
		have := slices.Clone(gs.Dims)
		slices.Sort(have)
		if slices.Equal(have, want) {
			return gs, nil
		}
		n := "(total)"
		if gs.Name != "" {
			n = "[" + gs.Name + "]"
		}
		names = append(names, n)
	}
	return GroupingSet{}, invalid(param, strings.Join(dims, ","),
		fmt.Sprintf("no %s grouping set has exactly these dimensions (group_by and filters together); the sets are: %s", source, strings.Join(names, " ")))
}

// The definitions, per source in the aggregator's output order
// (aggregator/metrics.go), then the metrics only the views derive. The
// meanings are docs/METRICS.md's; the derivations aggregator/README.md's
// "Raw columns and derived metrics".
func definitions() map[string][]Metric {
	all := []Period{PeriodMinute, PeriodHour, PeriodDay}
	count := func(name, unit, desc string) Metric {
		return Metric{Name: name, Kind: KindCount, Unit: unit, Description: desc, Periods: all, Offline: true}
	}
	sum := func(name, unit, desc string) Metric {
		return Metric{Name: name, Kind: KindSum, Unit: unit, Description: desc, Periods: all, Offline: true}
	}
	users := func(name, desc string) Metric {
		m := count(name, "users", desc+" (distinct per minute; over several minutes a sum of per-minute users, not distinct users)")
		m.OverMinutes = name + "_sum_of_minutes"
		return m
	}
	rate := func(name, num, den, desc string) Metric {
		return Metric{Name: name, Kind: KindRate, Unit: "ratio", Description: desc, Numerator: num, Denominator: den, Periods: all, Offline: true}
	}
	mean := func(name, num, den, unit, desc string) Metric {
		return Metric{Name: name, Kind: KindMean, Unit: unit, Description: desc, Numerator: num, Denominator: den, Periods: all, Offline: true}
	}
	hist := func(base, desc string) []Metric {
		var out []Metric
		for _, p := range []int{50, 90, 99} {
			out = append(out, Metric{Name: fmt.Sprintf("%s_p%d", base, p), Kind: KindQuantile, Unit: "ms",
				Description: fmt.Sprintf("%s, %dth percentile (nearest rank, ≤ 1 %% relative error)", desc, p),
				Histogram:   base + "_hist", Percentile: p, Periods: all, Offline: true})
		}
		return append(out, Metric{Name: base + "_avg", Kind: KindMean, Unit: "ms", Description: desc + ", mean",
			Numerator: base + "_sum", Histogram: base + "_hist", Periods: all, Offline: true})
	}
	var client []Metric
	client = append(client,
		users("users", "users with any pull-side event (play_start, first_frame, stall, heartbeat, play_end)"),
		users("stutter_users", "users with ≥ 1 stall (≥ 2000 ms) starting in the minute"),
		users("stutter_users_video", "users with ≥ 1 video stall"),
		users("stutter_users_audio", "users with ≥ 1 audio stall"),
		rate("stutter_rate_uv", "stutter_users", "users", "one-minute user stutter rate: stutter users / users (over several minutes: stutter user-minutes / user-minutes)"),
		Metric{Name: "zero_stutter_rate", Kind: KindRate, Unit: "ratio", Description: "(users − stutter users) / users",
			Numerator: "stutter_users", Denominator: "users", Complement: true, Periods: all, Offline: true},
		count("stalls", "stalls", "qualifying stalls (≥ 2000 ms)"),
		sum("stall_ms", "ms", "total duration of the qualifying stalls"),
		count("samples", "heartbeats", "heartbeats"),
		count("stalled_samples", "heartbeats", "heartbeats whose interval held a stall"),
		rate("stutter_rate_pv", "stalled_samples", "samples", "stutter rate PV: stalled heartbeats / heartbeats"),
		count("plays", "attempts", "pull-connect attempts (play_start)"),
		count("plays_ok", "attempts", "successful pull connects"),
		rate("pull_connect_rate", "plays_ok", "plays", "pull connect rate: successes / attempts"),
	)
	client = append(client, hist("pull_connect_ms", "pull connect time of successful attempts")...)
	client = append(client, count("first_frames", "plays", "first frames rendered"))
	client = append(client, hist("first_frame_ms", "first-frame time (play request → first rendered frame)")...)
	client = append(client,
		rate("fast_open_rate", "fast_opens", "first_frames", "share of first frames ≤ 1000 ms (秒开)"),
		mean("video_buffer_ms_avg", "video_buffer_ms_sum", "video_buffer_samples", "ms", "mean video buffer length over heartbeats reporting it"),
		mean("audio_buffer_ms_avg", "audio_buffer_ms_sum", "audio_buffer_samples", "ms", "mean audio buffer length over heartbeats reporting it"),
		count("play_errors", "plays", "play_end with reason error"),
		count("dns_lookups", "lookups", "httpdns lookups"),
		rate("dns_hit_rate", "dns_hits", "dns_lookups", "httpdns cache-hit rate"),
		count("pushes", "attempts", "push-connect attempts (push_start)"),
		count("pushes_ok", "attempts", "successful push connects"),
		rate("push_connect_rate", "pushes_ok", "pushes", "push connect rate: successes / attempts"),
	)
	client = append(client, hist("push_connect_ms", "push connect time of successful attempts")...)
	client = append(client,
		count("push_ends", "pushes", "pushes that ended"),
		count("push_drops", "pushes", "pushes that ended by disconnection"),
		rate("push_drop_rate", "push_drops", "push_ends", "push drop rate: dropped / ended pushes"),
		count("relays", "relays", "relay (转推) attempts"),
		count("relays_failed", "relays", "failed relays"),
		rate("relay_fail_rate", "relays_failed", "relays", "relay failure rate: failed / attempts"),
	)
	client = append(client, hist("relay_ms", "relay time of successful relays")...)
	vo := rate("stutter_rate_uv_video", "stutter_users_video", "users", "video stutter users / users")
	ao := rate("stutter_rate_uv_audio", "stutter_users_audio", "users", "audio stutter users / users")
	vo.Offline, ao.Offline = false, false
	client = append(client, vo, ao)

	cdn := []Metric{
		count("requests", "requests", "requests"),
		sum("bytes", "bytes", "bytes served"),
		{Name: "bandwidth_mbps", Kind: KindThroughput, Unit: "Mbit/s", Description: "bytes · 8 / seconds of the period / 10⁶: mean bandwidth",
			Numerator: "bytes", Periods: all, Offline: true},
		count("errors_4xx", "requests", "requests with status 4xx"),
		rate("errors_4xx_rate", "errors_4xx", "requests", "4xx / requests"),
		count("errors_5xx", "requests", "requests with status 5xx"),
		rate("errors_5xx_rate", "errors_5xx", "requests", "5xx / requests"),
	}
	cdn = append(cdn, hist("ttfb_ms", "time to first byte")...)

	origin := []Metric{
		{Name: "no_data", Kind: KindGauge, Unit: "bool", Periods: []Period{PeriodMinute, PeriodHour, PeriodDay}, Offline: true,
			OverMinutes: "no_data_minutes",
			Description: "the stream × line was seen in the last N minutes but sent nothing in this one (the war room's N/A); over several minutes the number of such minutes"},
		count("samples", "samples", "origin_stats reports"),
		mean("fps_avg", "fps_sum", "samples", "fps", "mean upstream frame rate"),
		{Name: "fps_min", Kind: KindGauge, Unit: "fps", Description: "lowest reported frame rate", Periods: all, Offline: true},
		mean("bitrate_kbps_avg", "bitrate_kbps_sum", "samples", "kbit/s", "mean upstream bitrate"),
		{Name: "bitrate_kbps_min", Kind: KindGauge, Unit: "kbit/s", Description: "lowest reported bitrate", Periods: all, Offline: true},
		mean("rtt_ms_avg", "rtt_ms_sum", "samples", "ms", "mean upstream round-trip time"),
		{Name: "data_minutes", Kind: KindCount, Unit: "minutes", Description: "final minutes with samples (rollups only)",
			Periods: []Period{PeriodHour, PeriodDay}},
	}
	return map[string][]Metric{"client": client, "cdn": cdn, "origin": origin}
}
