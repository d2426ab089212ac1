package score

import (
	"fmt"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/ipdb"
)

// benchInput is a full snapshot's input: 34 provinces × 4 ISPs × 5 vendors,
// one client and one CDN row each for every minute of the default 30-minute
// lookback (20 400 rows of each source).
func benchInput(at time.Time, lookback time.Duration) (*Input, *Contracts) {
	isps := []string{"telecom", "unicom", "mobile", "cernet"}
	c := &Contracts{Settings: DefaultSettings(), Vendors: map[string]Contract{}}
	c.Settings.Regions = DefaultRegions()
	var vendors []string
	for v := range 5 {
		name := fmt.Sprintf("cdn-%c", 'a'+v)
		vendors = append(vendors, name)
		c.Vendors[name] = Contract{GuaranteedMbps: 20000, MaxMbps: 60000 + float64(v)*5000}
	}
	in := &Input{}
	mins := int(lookback / time.Minute)
	for m := 1; m <= mins; m++ {
		minute := at.Add(-time.Duration(m) * time.Minute)
		for pi, p := range ipdb.Provinces() {
			for ii, isp := range isps {
				for vi, v := range vendors {
					users := float64(10 + (pi*7+ii*3+vi*5+m)%200)
					in.Client = append(in.Client, ClientRow{Minute: minute, Vendor: v, Province: p, ISP: isp,
						Users: users, StutterUsers: users / 20, Plays: users, PlaysOK: users * 0.97,
						FirstFrames: users, FirstFrameMSSum: users * float64(800+vi*150+m*3)})
					in.CDN = append(in.CDN, CDNRow{Minute: minute, Vendor: v, Province: p, ISP: isp,
						BandwidthMbps: users * 2.5})
				}
			}
		}
	}
	return in, c
}

// BenchmarkBuild is the snapshot rebuild (docs/SCORES.md "Speed").
func BenchmarkBuild(b *testing.B) {
	at := time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC)
	in, c := benchInput(at, DefaultSettings().Lookback)
	bl := Blacklist{{Vendor: "cdn-a", Province: "guangdong", ISP: "telecom", Reason: "bench"}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t := Build(in, c, at, bl)
		if len(t.Regions) != 34*4 {
			b.Fatalf("%d regions", len(t.Regions))
		}
	}
	b.ReportMetric(float64(len(in.Client)+len(in.CDN)), "rows/op")
}
