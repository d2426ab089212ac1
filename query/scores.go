package query

import (
	"context"
	"fmt"
	"time"

	"github.com/qoscope/qoscope/score"
)

// scoreDims is the grouping set the scheduler scores read (docs/SCORES.md,
// "Inputs"), client and cdn.
var scoreDims = []string{"vendor", "province", "isp"}

// MaxScoreRows bounds the rows one ScoreInput reads per source: 34
// provinces × 5 ISPs × 20 vendors × 60 minutes is 204,000; a bound far above
// that stops a misconfigured grouping (a vendor per stream) from filling
// the server's memory.
const MaxScoreRows = 1_000_000

// ScoreInput reads the {vendor, province, isp} client and cdn rows of the
// minutes [from, to) from the minute views, as score.Build takes them: the
// same sums `qoscope aggregate --output` rows give the offline mode
// (first_frame_ms_avg × first_frames as the first-frame sum). Provisional
// minutes are read too: the scores follow the newest data.
func (q *Querier) ScoreInput(ctx context.Context, from, to time.Time) (*score.Input, error) {
	in := &score.Input{}
	for _, source := range []string{"client", "cdn"} {
		set, err := q.cat.GroupingSetFor(source, scoreDims, "scores")
		if err != nil {
			return nil, err
		}
		si, err := q.cat.Source(source)
		if err != nil {
			return nil, err
		}
		view := si.Views[PeriodMinute]
		s := newStmt()
		s.w("SELECT window_start, dims['vendor'], dims['province'], dims['isp']")
		if source == "client" {
			s.w(", toFloat64(users), toFloat64(stutter_users), toFloat64(plays), toFloat64(plays_ok), toFloat64(first_frames), ifNull(first_frame_ms_avg, 0)")
		} else {
			s.w(", toFloat64(bandwidth_mbps)")
		}
		s.w("\nFROM ", view, "\nWHERE grouping = ", s.str(set.Name),
			" AND window_start >= ", s.time(from), " AND window_start < ", s.time(to),
			"\nLIMIT ", s.u64(MaxScoreRows+1))
		rows, err := q.conn.Query(withParams(ctx, s), s.String())
		if err != nil {
			return nil, errQuery(view, err)
		}
		n := 0
		for rows.Next() {
			n++
			if n > MaxScoreRows {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: more than %d rows of grouping %s between %s and %s", view, MaxScoreRows, set.Name, from.Format(time.RFC3339), to.Format(time.RFC3339))
			}
			var m time.Time
			var v, p, i string
			if source == "client" {
				var r score.ClientRow
				var ffAvg float64
				if err := rows.Scan(&m, &v, &p, &i, &r.Users, &r.StutterUsers, &r.Plays, &r.PlaysOK, &r.FirstFrames, &ffAvg); err != nil {
					rows.Close()
					return nil, fmt.Errorf("cannot read %s: %w", view, err)
				}
				r.Minute, r.Vendor, r.Province, r.ISP = m.UTC(), v, p, i
				r.FirstFrameMSSum = ffAvg * r.FirstFrames
				in.Client = append(in.Client, r)
				continue
			}
			r := score.CDNRow{}
			if err := rows.Scan(&m, &v, &p, &i, &r.BandwidthMbps); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: %w", view, err)
			}
			r.Minute, r.Vendor, r.Province, r.ISP = m.UTC(), v, p, i
			in.CDN = append(in.CDN, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", view, err)
		}
	}
	return in, nil
}
