package steer

import (
	"fmt"
	"net/url"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qoscope/qoscope/score"
)

// Level says which order a manifest used.
type Level string

const (
	// LevelRegion: the client's province × ISP is in the table; its ratios
	// are the weights.
	LevelRegion Level = "region"
	// LevelCountry: the region is unknown (no location for the address, no
	// query parameters) or not in the table; the weights are the vendors'
	// country-wide shares (Compile).
	LevelCountry Level = "country"
)

// cand is one pathway in one region's order.
type cand struct {
	path int    // index in Snapshot.paths
	salt uint64 // the pathway's salt (pathway.salt), here for locality
	// invW is 1/ratio for a weighted candidate, 1 for the tail (drawn
	// with equal weights).
	invW float64
}

// order is what a region draws from: weighted holds the vendors with a
// positive ratio; tail the others (ratio 0: capped out or blacklisted),
// which come last so that a player whose weighted pathways all fail still
// has somewhere to go: eligible ones with ratio 0 first, blacklisted ones
// after them.
type order struct {
	weighted []cand
	zero     []cand
	black    []cand
	// query is `&province=P&isp=I`, escaped, for RELOAD-URI; header the
	// X-Qoscope-Steer-Region value; both "" for the country order.
	query  string
	header []string
}

func (o *order) len() int { return len(o.weighted) + len(o.zero) + len(o.black) }

type regionKey struct{ province, isp string }

// pathway is one vendor's pathway id and its hash salt: the salt is the id's
// hash, so a session's draw does not depend on which other vendors exist
// (adding a vendor moves only the sessions it wins).
type pathway struct {
	id     string
	vendor string
	salt   uint64
}

// Snapshot is the steering state of one score table: per region, what its
// draw needs, precomputed once per table so a request only hashes, draws
// and writes.
type Snapshot struct {
	table   *score.Table
	paths   []pathway
	regions map[regionKey]*order
	country *order
	// atHeader is the table's minute (X-Qoscope-Scores-At).
	atHeader []string
	// Warnings: vendors left out (no pathway id, or a name that cannot be
	// one).
	Warnings []string
}

// Table is the table the snapshot was compiled from.
func (s *Snapshot) Table() *score.Table { return s.table }

// Pathways maps a vendor to its pathway id (HLS PATHWAY-ID, DASH
// serviceLocation). nil means every vendor of the table under its own
// name; otherwise only the listed vendors are steered.
type Pathways map[string]string

// validPathwayID: the HLS spec allows [a-zA-Z0-9], '.', '-' and '_' in a
// Pathway ID. DASH's serviceLocation is any string; the same set keeps one
// configuration valid for both and the JSON free of escapes.
func validPathwayID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return false
		}
	}
	return true
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
}

// Compile prepares t for steering with the pathway mapping p. Vendors are
// taken from the table (every region lists every contracted vendor);
// a vendor without a pathway (p given and not listing it, or p nil and a
// name that is not a valid pathway id) is left out with a warning.
//
// The country order, used for clients whose region is unknown or missing
// from the table, weighs each vendor by its share of the country's
// traffic: Σ demand × ratio over the regions / Σ demand; by the plain mean
// of its ratios when no region has demand.
func Compile(t *score.Table, p Pathways) *Snapshot {
	s := &Snapshot{table: t, regions: make(map[regionKey]*order, len(t.Regions)),
		atHeader: []string{t.At.UTC().Format(time.RFC3339)}}
	index := map[string]int{}
	pathOf := func(vendor string) int {
		if i, ok := index[vendor]; ok {
			return i
		}
		id := vendor
		if p != nil {
			var ok bool
			if id, ok = p[vendor]; !ok {
				s.Warnings = append(s.Warnings, fmt.Sprintf("vendor %s has no pathway in steer.pathways: not steered", vendor))
				index[vendor] = -1
				return -1
			}
		}
		if !validPathwayID(id) {
			s.Warnings = append(s.Warnings, fmt.Sprintf("vendor %s: %q is not a pathway id ([A-Za-z0-9._-]): not steered (map it in steer.pathways)", vendor, id))
			index[vendor] = -1
			return -1
		}
		index[vendor] = len(s.paths)
		s.paths = append(s.paths, pathway{id: id, vendor: vendor, salt: xxhash.Sum64String(id)})
		return len(s.paths) - 1
	}

	type countrySum struct{ byDemand, byMean float64 }
	sums := map[int]*countrySum{}
	var totalDemand float64
	black := map[int]int{} // regions in which a vendor is blacklisted
	for i := range t.Regions {
		reg := &t.Regions[i]
		o := &order{
			query:  "&province=" + url.QueryEscape(reg.Province) + "&isp=" + url.QueryEscape(reg.ISP),
			header: []string{reg.Province + "/" + reg.ISP},
		}
		totalDemand += max(reg.DemandMbps, 0)
		for _, v := range reg.Vendors {
			pi := pathOf(v.Vendor)
			if pi < 0 {
				continue
			}
			cs := sums[pi]
			if cs == nil {
				cs = &countrySum{}
				sums[pi] = cs
			}
			switch {
			case v.Blacklisted:
				o.black = append(o.black, cand{path: pi, salt: s.paths[pi].salt, invW: 1})
				black[pi]++
			case v.Ratio > 0:
				o.weighted = append(o.weighted, cand{path: pi, salt: s.paths[pi].salt, invW: 1 / v.Ratio})
				cs.byDemand += max(reg.DemandMbps, 0) * v.Ratio
				cs.byMean += v.Ratio
			default:
				o.zero = append(o.zero, cand{path: pi, salt: s.paths[pi].salt, invW: 1})
			}
		}
		s.regions[regionKey{reg.Province, reg.ISP}] = o
	}

	c := &order{}
	for pi := range s.paths {
		w := 0.0
		if cs := sums[pi]; cs != nil {
			w = cs.byMean
			if totalDemand > 0 {
				w = cs.byDemand
			}
		}
		switch {
		case w > 0:
			c.weighted = append(c.weighted, cand{path: pi, salt: s.paths[pi].salt, invW: 1 / w})
		case len(t.Regions) > 0 && black[pi] == len(t.Regions):
			c.black = append(c.black, cand{path: pi, salt: s.paths[pi].salt, invW: 1})
		default:
			c.zero = append(c.zero, cand{path: pi, salt: s.paths[pi].salt, invW: 1})
		}
	}
	// Only the ratios between weights matter to the draw; the country
	// weights need not sum to 1.
	s.country = c
	return s
}

// Vendors returns the steered vendors and their pathway ids, in the order
// the table names them.
func (s *Snapshot) Vendors() []string {
	out := make([]string, len(s.paths))
	for i, p := range s.paths {
		out[i] = p.vendor
	}
	return out
}

// find returns the order of a region, or the country order.
func (s *Snapshot) find(province, isp string) (*order, Level) {
	if o, ok := s.regions[regionKey{province, isp}]; ok {
		return o, LevelRegion
	}
	return s.country, LevelCountry
}

// HasRegion reports whether the table has province × isp.
func (s *Snapshot) HasRegion(province, isp string) bool {
	_, ok := s.regions[regionKey{province, isp}]
	return ok
}

// Priority appends to dst the pathway ids in the order session gets in
// province × isp (the country order when the table lacks the region) and
// says which order it was.
func (s *Snapshot) Priority(dst []string, province, isp, session string) ([]string, Level) {
	o, lvl := s.find(province, isp)
	var idx [maxStack]int
	for _, i := range o.draw(idx[:0], xxhash.Sum64String(session)) {
		dst = append(dst, s.paths[i].id)
	}
	return dst, lvl
}
