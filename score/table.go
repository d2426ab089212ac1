package score

import (
	"fmt"
	"slices"
	"time"
)

// Table is the scheduler's table for one minute: the document of
// docs/SCORES.md "The table" (the offline mode prints it as JSON).
type Table struct {
	At time.Time `json:"at"`
	// DataUntil is the end of the newest closed minute any row came from;
	// nil when no row was usable.
	DataUntil *time.Time `json:"data_until"`
	Regions   []Region   `json:"regions"`
	// Warnings are for the operator (refused blacklist entries, vendors
	// with rows but no contract), not part of the document.
	Warnings []string `json:"-"`
}

// Region is one province × ISP.
type Region struct {
	Province   string        `json:"province"`
	ISP        string        `json:"isp"`
	DemandMbps float64       `json:"demand_mbps"`
	Overloaded bool          `json:"overloaded"`
	Vendors    []VendorScore `json:"vendors"`
}

// VendorScore is one vendor in one region. The bandwidth figures are those
// of the vendor's capacity pool serving the region (its per-province
// contract if the province has one, else its global one): they are the
// capacity score's inputs.
type VendorScore struct {
	Vendor string `json:"vendor"`
	Level  Level  `json:"level"`
	// Quality is nil when Level is none (no data at any level).
	Quality        *float64 `json:"quality"`
	BandwidthMbps  float64  `json:"bandwidth_mbps"`
	PredictedMbps  float64  `json:"predicted_mbps"`
	GuaranteedMbps float64  `json:"guaranteed_mbps"`
	MaxMbps        float64  `json:"max_mbps"`
	Score          float64  `json:"score"`
	Ratio          float64  `json:"ratio"`
	Blacklisted    bool     `json:"blacklisted"`
	Reason         *string  `json:"reason"`
}

// poolKey names a vendor's capacity pool: Province is "" for the global one.
type poolKey struct{ Vendor, Province string }

// poolOf returns the pool a vendor's traffic of a province counts against.
func (c *Contracts) poolOf(vendor, province string) poolKey {
	if _, ok := c.Vendors[vendor].Provinces[province]; ok && known(province) {
		return poolKey{vendor, province}
	}
	return poolKey{vendor, ""}
}

func (c *Contracts) capacityOf(p poolKey) Capacity {
	v := c.Vendors[p.Vendor]
	if p.Province != "" {
		return v.Provinces[p.Province]
	}
	return Capacity{GuaranteedMbps: v.GuaranteedMbps, MaxMbps: v.MaxMbps}
}

// seriesKey is a vendor × province × ISP.
type seriesKey struct{ Vendor, Province, ISP string }

type bandwidth struct{ current, predicted float64 }

// Build computes the table for the minute starting at `at` (a minute
// boundary) from the rows of the minutes closed by then. c must have been
// validated; blacklist entries of vendors without a contract never match.
func Build(in *Input, c *Contracts, at time.Time, bl Blacklist) *Table {
	s := &c.Settings
	regionOf := regionIndex(s.Regions)
	t := &Table{At: at}

	var newest time.Time
	regions := map[regionKey]bool{}
	seen := func(m time.Time, province, isp string) {
		if m.After(newest) {
			newest = m
		}
		if known(province) && known(isp) {
			regions[regionKey{province, isp}] = true
		}
	}
	uncontracted := map[string]bool{}

	// Quality: client rows of the closed minutes within the lookback.
	client := make([]ClientRow, 0, len(in.Client))
	for _, r := range in.Client {
		if _, ok := decayWeight(r.Minute, at, s); ok {
			client = append(client, r)
			seen(r.Minute, r.Province, r.ISP)
		}
	}
	qi := buildQuality(client, at, s, regionOf)

	// Bandwidth: per vendor × region, the TrendMinutes minutes up to the
	// vendor's CDN watermark (a missing row before it is a minute without
	// traffic; the minutes after it have not arrived yet).
	n := s.TrendMinutes
	marks := cdnWatermarks(in.CDN, at, s)
	series := map[seriesKey][]float64{}
	for _, r := range in.CDN {
		k := -1
		if w, ok := marks[r.Vendor]; ok {
			k = int(w.Sub(r.Minute) / time.Minute) // 0: the watermark's minute
		}
		_, recent := decayWeight(r.Minute, at, s)
		inTrend := k >= 0 && k < n
		if !recent && !inTrend {
			continue
		}
		seen(r.Minute, r.Province, r.ISP)
		if _, ok := c.Vendors[r.Vendor]; !ok {
			uncontracted[r.Vendor] = true
		}
		if !inTrend {
			continue
		}
		key := seriesKey{r.Vendor, r.Province, r.ISP}
		ys := series[key]
		if ys == nil {
			ys = make([]float64, n)
			series[key] = ys
		}
		ys[n-1-k] += r.BandwidthMbps
	}
	demand := map[regionKey]float64{}
	pools := map[poolKey]*bandwidth{}
	for key, ys := range series {
		h := horizon(marks[key.Vendor], at, n)
		b := bandwidth{current: ys[n-1], predicted: predictAt(ys, float64(n-1+h))}
		if known(key.Province) && known(key.ISP) {
			demand[regionKey{key.Province, key.ISP}] += b.predicted
		}
		if _, ok := c.Vendors[key.Vendor]; !ok {
			continue
		}
		pk := c.poolOf(key.Vendor, key.Province)
		p := pools[pk]
		if p == nil {
			p = &bandwidth{}
			pools[pk] = p
		}
		p.current += b.current
		p.predicted += b.predicted
	}
	if !newest.IsZero() {
		du := newest.Add(time.Minute)
		t.DataUntil = &du
	}
	for _, r := range client {
		if _, ok := c.Vendors[r.Vendor]; !ok && known(r.Vendor) {
			uncontracted[r.Vendor] = true
		}
	}
	for _, v := range sortedKeys(uncontracted) {
		t.Warnings = append(t.Warnings, fmt.Sprintf("vendor %s has rows but no contract: its traffic counts in the demand, it gets no ratio", v))
	}

	blByRegion := map[regionKey]map[string]string{}
	for _, e := range bl {
		k := regionKey{e.Province, e.ISP}
		if !regions[k] {
			t.Warnings = append(t.Warnings, fmt.Sprintf("blacklist entry %s in %s/%s: no rows for that region, nothing to apply", e.Vendor, e.Province, e.ISP))
			continue
		}
		if blByRegion[k] == nil {
			blByRegion[k] = map[string]string{}
		}
		blByRegion[k][e.Vendor] = e.Reason
	}

	keys := make([]regionKey, 0, len(regions))
	for k := range regions {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, regionLess)
	vendors := sortedKeys(c.Vendors)

	poolIDs := map[poolKey]int{}
	prob := ratioProblem{regions: make([]ratioRegion, len(keys))}
	t.Regions = make([]Region, len(keys))
	for i, k := range keys {
		reg := &t.Regions[i]
		*reg = Region{Province: k.Province, ISP: k.ISP, DemandMbps: demand[k], Vendors: make([]VendorScore, len(vendors))}
		for j, v := range vendors {
			pk := c.poolOf(v, k.Province)
			capa := c.capacityOf(pk)
			var bw bandwidth
			if p := pools[pk]; p != nil {
				bw = *p
			}
			vs := VendorScore{Vendor: v, BandwidthMbps: bw.current, PredictedMbps: bw.predicted,
				GuaranteedMbps: capa.GuaranteedMbps, MaxMbps: capa.MaxMbps}
			q, lvl, ok := qi.lookup(v, k, s, regionOf)
			vs.Level = lvl
			if ok {
				vs.Quality = &q
			} else {
				q = s.UnknownQuality
			}
			vs.Score = CapacityScore(CapacityInput{CurrentMbps: bw.current, PredictedMbps: bw.predicted,
				GuaranteedMbps: capa.GuaranteedMbps, MaxMbps: capa.MaxMbps, Quality: q}, s.QualityWeight)
			reg.Vendors[j] = vs
		}
		t.Warnings = append(t.Warnings, applyBlacklist(k.Province, k.ISP, reg.Vendors, blByRegion[k])...)

		rr := &prob.regions[i]
		rr.demand = reg.DemandMbps
		for _, vs := range reg.Vendors {
			if vs.Blacklisted {
				continue
			}
			pk := c.poolOf(vs.Vendor, k.Province)
			id, ok := poolIDs[pk]
			if !ok {
				id = len(prob.poolMax)
				poolIDs[pk] = id
				prob.poolMax = append(prob.poolMax, vs.MaxMbps)
			}
			rr.cands = append(rr.cands, ratioCand{pool: id, weight: c.Vendors[vs.Vendor].weight() * vs.Score})
		}
	}
	prob.solve()
	for i := range t.Regions {
		reg := &t.Regions[i]
		reg.Overloaded = prob.regions[i].overloaded
		ci := 0
		for j := range reg.Vendors {
			if reg.Vendors[j].Blacklisted {
				continue
			}
			reg.Vendors[j].Ratio = prob.regions[i].cands[ci].ratio
			ci++
		}
	}
	return t
}
