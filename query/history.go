package query

import (
	"context"
	"fmt"
	"time"
)

// HistoryColumn is one column of the day-by-day table (000's 历史数据走势对比).
type HistoryColumn struct {
	Key     string `json:"key"`     // segment.metric, e.g. on_mic.stutter_rate_uv_video
	Segment string `json:"segment"` // all, on_mic (麦上) or off_mic (麦下)
	Metric  string `json:"metric"`
	Unit    string `json:"unit"`
}

// HistoryCell is one day's value with its comparisons: DoD = value / the
// day before − 1 (环比), WoW = value / the same weekday a week before − 1
// (同比); null when either side is null or the earlier value is 0.
type HistoryCell struct {
	Value   *float64 `json:"value"`
	DayAgo  *float64 `json:"day_ago"`
	WeekAgo *float64 `json:"week_ago"`
	DoD     *float64 `json:"dod"`
	WoW     *float64 `json:"wow"`
}

// HistoryDay is one UTC day, newest first. Final: the day and the
// source's lateness after it are over (the daily rollup holds final
// minutes only, so a day that is not over is partial).
type HistoryDay struct {
	Day   time.Time              `json:"day"`
	Final bool                   `json:"final"`
	Cells map[string]HistoryCell `json:"cells"`
}

// History is the day-by-day table.
type History struct {
	Columns []HistoryColumn `json:"columns"`
	Days    []HistoryDay    `json:"days"`
}

// historyColumns are 000's columns in its order. The stutter rate PV is not
// split by media: heartbeats carry one stalled flag, not one per medium
// (docs/METRICS.md), so the video and audio PV columns of 000 are one.
var historyColumns = []struct{ segment, metric string }{
	{"all", "push_connect_rate"}, {"all", "push_drop_rate"}, {"all", "relay_fail_rate"}, {"all", "relay_ms_avg"},
	{"all", "push_connect_ms_avg"},
	{"on_mic", "video_buffer_ms_avg"}, {"on_mic", "audio_buffer_ms_avg"}, {"on_mic", "stutter_rate_pv"},
	{"on_mic", "stutter_rate_uv_video"}, {"on_mic", "stutter_rate_uv_audio"},
	{"off_mic", "stutter_rate_pv"}, {"off_mic", "stutter_rate_uv_video"}, {"off_mic", "stutter_rate_uv_audio"},
	{"off_mic", "video_buffer_ms_avg"}, {"off_mic", "audio_buffer_ms_avg"},
	{"all", "pull_connect_ms_avg"}, {"all", "first_frame_ms_avg"}, {"all", "pull_connect_rate"}, {"all", "pull_fail_rate_pv"},
}

// pullFailRatePV is 000's 拉流失败率PV: failed pull connects / attempts,
// derived from the catalogue's columns.
var pullFailRatePV = Metric{Name: "pull_fail_rate_pv", Source: "client", Kind: KindRate, Unit: "ratio",
	Numerator: "plays_ok", Denominator: "plays", Complement: true, Periods: []Period{PeriodMinute, PeriodHour, PeriodDay}}

func (q *Querier) historyPlan(days int) ([]HistoryColumn, []*Metric, bool, error) {
	if days < 1 || days > q.opts.MaxHistoryDays {
		return nil, nil, false, invalid("days", fmt.Sprint(days), fmt.Sprintf("must be between 1 and %d", q.opts.MaxHistoryDays))
	}
	_, err := q.cat.GroupingSetFor("client", []string{"role"}, "days")
	roles := err == nil
	if _, err := q.cat.GroupingSetFor("client", nil, "days"); err != nil {
		return nil, nil, false, fmt.Errorf("history needs the client total grouping set: %w", err)
	}
	var cols []HistoryColumn
	var ms []*Metric
	for _, c := range historyColumns {
		if c.segment != "all" && !roles {
			continue
		}
		m := &pullFailRatePV
		if c.metric != pullFailRatePV.Name {
			if m, err = q.cat.Metric("client", c.metric); err != nil {
				return nil, nil, false, err
			}
		}
		cols = append(cols, HistoryColumn{Key: c.segment + "." + c.metric, Segment: c.segment, Metric: c.metric, Unit: m.Unit})
		ms = append(ms, m)
	}
	return cols, ms, roles, nil
}

func (q *Querier) historyStmt(src string, ms []*Metric, roles bool, from, to time.Time) *stmt {
	s := newStmt()
	if needsHist(ms...) {
		s.w(histFunctions)
	}
	s.w("SELECT window_start AS day, multiIf(grouping = '', 'all'")
	if roles {
		for _, seg := range []struct {
			name  string
			roles []string
		}{{"on_mic", q.opts.OnMicRoles}, {"off_mic", q.opts.OffMicRoles}} {
			s.w(", grouping = 'role' AND dims['role'] IN (")
			for i, r := range seg.roles {
				if i > 0 {
					s.w(", ")
				}
				s.w(s.str(r))
			}
			if len(seg.roles) == 0 {
				s.w("''")
			}
			s.w("), '", seg.name, "'")
		}
	}
	s.w(", '') AS segment")
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Name] {
			seen[m.Name] = true
			s.w(",\n    ", aggExpr(m, PeriodDay, 86400), " AS ", m.Name)
		}
	}
	s.w("\nFROM ", src, "\nWHERE grouping IN ('', 'role') AND window_start >= ", s.time(from), " AND window_start < ", s.time(to),
		"\nGROUP BY day, segment\nHAVING segment != ''")
	return s
}

// History returns the last days UTC days (today included, partial) of
// 000's table, newest first, from the daily rollups.
func (q *Querier) History(ctx context.Context, days int) (*History, error) {
	cols, ms, roles, err := q.historyPlan(days)
	if err != nil {
		return nil, err
	}
	now := q.opts.Now().UTC()
	day := 24 * time.Hour
	today := floorTime(now, day)
	first := today.Add(-time.Duration(days-1) * day)
	si, err := q.cat.Source("client")
	if err != nil {
		return nil, err
	}
	src, name := si.ReadFrom(PeriodDay, ms...)
	s := q.historyStmt(src, ms, roles, first.Add(-7*day), today.Add(day))
	rows, err := q.conn.Query(withParams(ctx, s), s.String())
	if err != nil {
		return nil, errQuery(name, err)
	}
	defer rows.Close()
	// The distinct metric names in statement order.
	var names []string
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Name] {
			seen[m.Name] = true
			names = append(names, m.Name)
		}
	}
	vals := map[time.Time]map[string]*float64{} // day → segment.metric → value
	for rows.Next() {
		var d time.Time
		var seg string
		v := make([]*float64, len(names))
		dest := []any{&d, &seg}
		for i := range v {
			dest = append(dest, &v[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", name, err)
		}
		d = d.UTC()
		if vals[d] == nil {
			vals[d] = map[string]*float64{}
		}
		for i, n := range names {
			vals[d][seg+"."+n] = v[i]
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	out := &History{Columns: cols, Days: []HistoryDay{}}
	cutoff := now.Add(-q.cat.Lateness("client"))
	for d := today; !d.Before(first); d = d.Add(-day) {
		hd := HistoryDay{Day: d, Final: !d.Add(day).After(cutoff), Cells: map[string]HistoryCell{}}
		for _, c := range cols {
			cell := HistoryCell{Value: vals[d][c.Key], DayAgo: vals[d.Add(-day)][c.Key], WeekAgo: vals[d.Add(-7*day)][c.Key]}
			cell.DoD, cell.WoW = change(cell.Value, cell.DayAgo), change(cell.Value, cell.WeekAgo)
			hd.Cells[c.Key] = cell
		}
		out.Days = append(out.Days, hd)
	}
	return out, nil
}

// change is v / prev − 1, nil when either is nil or prev is 0.
func change(v, prev *float64) *float64 {
	if v == nil || prev == nil || *prev == 0 {
		return nil
	}
	c := *v / *prev - 1
	return &c
}
