package steer

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/score"
)

// SyntheticTable is a score table of the size the scheduler serves: the 34
// provinces × 4 ISPs (telecom, unicom, mobile, cernet) × 5 vendors
// (cdn-a … cdn-e), with pseudo-random ratios from seed and, in every
// seventh region, one vendor blacklisted. For benchmarks and load tests
// (bench step steer); the numbers mean nothing.
func SyntheticTable(seed uint64, at time.Time) *score.Table {
	rnd := rand.New(rand.NewPCG(seed, 0x5eed))
	vendors := []string{"cdn-a", "cdn-b", "cdn-c", "cdn-d", "cdn-e"}
	t := &score.Table{At: at, DataUntil: &at}
	n := 0
	for _, p := range ipdb.Provinces() {
		for _, isp := range []string{"telecom", "unicom", "mobile", "cernet"} {
			reg := score.Region{Province: p, ISP: isp, DemandMbps: float64(50 + rnd.IntN(950))}
			black := -1
			if n%7 == 0 {
				black = rnd.IntN(len(vendors))
			}
			ws := make([]float64, len(vendors))
			var sum float64
			for i := range vendors {
				if i != black {
					ws[i] = 0.05 + rnd.Float64()
					sum += ws[i]
				}
			}
			for i, v := range vendors {
				q := 60 + 40*rnd.Float64()
				vs := score.VendorScore{Vendor: v, Level: score.LevelProvinceISP, Quality: &q, Score: ws[i], Ratio: ws[i] / sum,
					GuaranteedMbps: 10000, MaxMbps: 20000}
				if i == black {
					r := fmt.Sprintf("synthetic blacklist entry of region %d", n)
					vs.Blacklisted, vs.Reason, vs.Score = true, &r, 0
				}
				reg.Vendors = append(reg.Vendors, vs)
			}
			t.Regions = append(t.Regions, reg)
			n++
		}
	}
	return t
}
