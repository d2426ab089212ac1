package score

import (
	"math"
	"time"
)

// Level says where a vendor's quality for a region came from.
type Level string

// The fallback levels, most specific first (docs/SCORES.md "Fallback").
const (
	LevelProvinceISP Level = "province_isp"
	LevelProvince    Level = "province"
	LevelRegion      Level = "region"
	LevelCountry     Level = "country"
	LevelNone        Level = "none"
)

// qualitySums are decayed sums of a level's minutes.
type qualitySums struct {
	users, stutterUsers, plays, playsOK, firstFrames, firstFrameMS float64
}

func (s *qualitySums) add(r *ClientRow, w float64) {
	s.users += w * r.Users
	s.stutterUsers += w * r.StutterUsers
	s.plays += w * r.Plays
	s.playsOK += w * r.PlaysOK
	s.firstFrames += w * r.FirstFrames
	s.firstFrameMS += w * r.FirstFrameMSSum
}

// decayWeight is a closed minute's weight: 1 for the minute that closed at
// `at`, halved every half-life before. A minute that has not closed by `at`
// (or is older than the lookback) weighs nothing: ok is false.
func decayWeight(minute, at time.Time, s *Settings) (w float64, ok bool) {
	age := at.Sub(minute.Add(time.Minute))
	if age < 0 || age >= s.Lookback {
		return 0, false
	}
	return math.Exp2(-float64(age) / float64(s.HalfLife)), true
}

// enough reports whether the level has the samples to be used.
func (s *qualitySums) enough(minUsers float64) bool {
	return s.users > 0 && s.users >= minUsers
}

// score is the quality formula of docs/SCORES.md: 0..100, higher is better.
func (q *Quality) score(s *qualitySums) float64 {
	base := 0.0 // no first frame at all: nobody saw a picture
	if s.firstFrames > 0 {
		ff := s.firstFrameMS / s.firstFrames
		base = 100 * clamp01((q.FirstFrameBadMS-ff)/(q.FirstFrameBadMS-q.FirstFrameGoodMS))
	}
	stutter := 0.0
	if s.users > 0 {
		stutter = s.stutterUsers / s.users
	}
	fail := 0.0
	if s.plays > 0 {
		fail = 1 - s.playsOK/s.plays
	}
	return 100 * clamp01((base-q.StutterPenalty*stutter-q.FailurePenalty*fail)/100)
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

// qualityIndex holds, per vendor, the decayed sums at every level.
type qualityIndex struct {
	provinceISP map[string]map[regionKey]*qualitySums
	province    map[string]map[string]*qualitySums
	region      map[string]map[string]*qualitySums
	country     map[string]*qualitySums
}

func sumsAt[K comparable](m map[string]map[K]*qualitySums, vendor string, k K) *qualitySums {
	byKey := m[vendor]
	if byKey == nil {
		byKey = map[K]*qualitySums{}
		m[vendor] = byKey
	}
	s := byKey[k]
	if s == nil {
		s = &qualitySums{}
		byKey[k] = s
	}
	return s
}

// buildQuality sums the client rows of the closed minutes, decayed, at each
// level. regionOf maps a province to its big region ("" for none: such a
// province falls back straight to the country).
func buildQuality(rows []ClientRow, at time.Time, s *Settings, regionOf map[string]string) *qualityIndex {
	qi := &qualityIndex{
		provinceISP: map[string]map[regionKey]*qualitySums{},
		province:    map[string]map[string]*qualitySums{},
		region:      map[string]map[string]*qualitySums{},
		country:     map[string]*qualitySums{},
	}
	for i := range rows {
		r := &rows[i]
		w, ok := decayWeight(r.Minute, at, s)
		if !ok {
			continue
		}
		// A row without a province (or ISP) counts only at the levels it
		// can name.
		if known(r.Province) {
			if known(r.ISP) {
				sumsAt(qi.provinceISP, r.Vendor, regionKey{r.Province, r.ISP}).add(r, w)
			}
			sumsAt(qi.province, r.Vendor, r.Province).add(r, w)
			if reg := regionOf[r.Province]; reg != "" {
				sumsAt(qi.region, r.Vendor, reg).add(r, w)
			}
		}
		c := qi.country[r.Vendor]
		if c == nil {
			c = &qualitySums{}
			qi.country[r.Vendor] = c
		}
		c.add(r, w)
	}
	return qi
}

// lookup returns the vendor's quality for a province × ISP from the most
// specific level with enough samples; LevelNone (and ok false) when no level has.
func (qi *qualityIndex) lookup(vendor string, k regionKey, s *Settings, regionOf map[string]string) (q float64, lvl Level, ok bool) {
	try := func(sums *qualitySums, l Level) bool {
		if sums != nil && sums.enough(s.MinUsers) {
			q, lvl = s.Quality.score(sums), l
			return true
		}
		return false
	}
	if try(qi.provinceISP[vendor][k], LevelProvinceISP) ||
		try(qi.province[vendor][k.Province], LevelProvince) ||
		(regionOf[k.Province] != "" && try(qi.region[vendor][regionOf[k.Province]], LevelRegion)) ||
		try(qi.country[vendor], LevelCountry) {
		return q, lvl, true
	}
	return 0, LevelNone, false
}

// unknownDim is what the aggregator writes for a missing dimension
// (aggregator/README.md: dimension values are never empty).
const unknownDim = "unknown"

func known(dim string) bool { return dim != "" && dim != unknownDim }
