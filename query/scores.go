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
// minutes [from, to) (minuteRowsStmt), as score.Build takes them: the
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
		names := []string{"bandwidth_mbps"}
		if source == "client" {
			names = []string{"users", "stutter_users", "plays", "plays_ok", "first_frames", "first_frame_ms_avg"}
		}
		ms := make([]*Metric, len(names))
		for i, n := range names {
			if ms[i], err = q.cat.Metric(source, n); err != nil {
				return nil, err
			}
		}
		s, name := minuteRowsStmt(si, set.Name, ms, from, to, nil)
		s.w("\nLIMIT ", s.u64(MaxScoreRows+1))
		rows, err := q.conn.Query(withParams(ctx, s), s.String())
		if err != nil {
			return nil, errQuery(name, err)
		}
		n := 0
		for rows.Next() {
			n++
			if n > MaxScoreRows {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: more than %d rows of grouping %s between %s and %s", name, MaxScoreRows, set.Name, from.Format(time.RFC3339), to.Format(time.RFC3339))
			}
			k, err := scanKeyMinute(rows, len(ms))
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read %s: %w", name, err)
			}
			// A null is an empty denominator (no first frames): nothing to add.
			v := func(i int) float64 {
				if k.values[i] == nil {
					return 0
				}
				return *k.values[i]
			}
			m, dims := k.minute, k.dims
			if source == "client" {
				in.Client = append(in.Client, score.ClientRow{Minute: m, Vendor: dims["vendor"], Province: dims["province"], ISP: dims["isp"],
					Users: v(0), StutterUsers: v(1), Plays: v(2), PlaysOK: v(3), FirstFrames: v(4), FirstFrameMSSum: v(5) * v(4)})
				continue
			}
			in.CDN = append(in.CDN, score.CDNRow{Minute: m, Vendor: dims["vendor"], Province: dims["province"], ISP: dims["isp"], BandwidthMbps: v(0)})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", name, err)
		}
	}
	return in, nil
}
