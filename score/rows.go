package score

import "time"

// ClientRow is one client row of the {vendor, province, isp} grouping set
// (aggregator/README.md "Offline mode"), reduced to the sums the quality
// needs. Means are carried as sums so minutes and regions add exactly.
type ClientRow struct {
	Minute                time.Time // window start
	Vendor, Province, ISP string
	Users, StutterUsers   float64
	Plays, PlaysOK        float64
	FirstFrames           float64
	FirstFrameMSSum       float64 // first_frame_ms_avg × first_frames
}

// CDNRow is one CDN row of the {vendor, province, isp} grouping set.
type CDNRow struct {
	Minute                time.Time
	Vendor, Province, ISP string
	BandwidthMbps         float64
}

// Input is everything Build reads besides the contracts.
type Input struct {
	Client []ClientRow
	CDN    []CDNRow
}

// regionKey is a province × ISP.
type regionKey struct{ Province, ISP string }

func regionLess(a, b regionKey) int {
	if a.Province != b.Province {
		if a.Province < b.Province {
			return -1
		}
		return 1
	}
	switch {
	case a.ISP < b.ISP:
		return -1
	case a.ISP > b.ISP:
		return 1
	}
	return 0
}
