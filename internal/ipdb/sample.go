package ipdb

import (
	"math/rand/v2"
	"net/netip"
	"slices"
)

// Block is a run of consecutive /24 blocks with the same code.
type Block struct {
	First, Last netip.Addr // first address of the first /24, last of the last
	Code        Code
	Location
}

type run struct {
	first, last uint32 // /24 indexes, inclusive
	code        Code
}

func (t *Table) allRuns() []run {
	t.runsOnce.Do(func() {
		var runs []run
		for blk := 0; blk < Blocks; {
			c := t.codes[blk]
			end := blk + 1
			for end < Blocks && t.codes[end] == c {
				end++
			}
			if c != 0 {
				runs = append(runs, run{uint32(blk), uint32(end - 1), c})
			}
			blk = end
		}
		t.runs = runs
	})
	return t.runs
}

// Ranges lists the known part of the table as runs of /24 blocks, in address
// order. The first call scans the whole array (tens of milliseconds).
func (t *Table) Ranges() []Block {
	runs := t.allRuns()
	out := make([]Block, len(runs))
	for i, r := range runs {
		out[i] = Block{First: addr(r.first << 8), Last: addr(r.last<<8 | 255), Code: r.code, Location: t.locs[t.slot[r.code]]}
	}
	return out
}

// Locations lists the distinct locations of the dictionary in code order.
func (t *Table) Locations() []Location { return slices.Clone(t.locs[1:]) }

type samplerKey struct{ country, province, isp string }

type sampler struct {
	runs []run
	cum  []uint64 // cum[i] = blocks in runs[:i+1]
}

// Sample returns a random address whose location has the given country,
// province and ISP; "" matches anything. Addresses are spread over the
// matching /24 blocks in proportion to their number, with a host part of
// 1..254. ok is false when nothing matches. The load generator uses it to
// produce client IPs that enrich to the province and ISP it wants.
func (t *Table) Sample(country, province, isp string, r *rand.Rand) (netip.Addr, bool) {
	k := samplerKey{country, province, isp}
	v, ok := t.samplers.Load(k)
	if !ok {
		v, _ = t.samplers.LoadOrStore(k, t.newSampler(k))
	}
	s := v.(*sampler)
	if len(s.runs) == 0 {
		return netip.Addr{}, false
	}
	n := r.Uint64N(s.cum[len(s.cum)-1])
	i, _ := slices.BinarySearch(s.cum, n+1)
	blk := s.runs[i].last - uint32(s.cum[i]-n-1)
	return addr(blk<<8 | (1 + r.Uint32N(254))), true
}

func (t *Table) newSampler(k samplerKey) *sampler {
	s := &sampler{}
	var total uint64
	for _, r := range t.allRuns() {
		loc := t.locs[t.slot[r.code]]
		if (k.country == "" || k.country == loc.Country) && (k.province == "" || k.province == loc.Province) && (k.isp == "" || k.isp == loc.ISP) {
			total += uint64(r.last-r.first) + 1
			s.runs = append(s.runs, r)
			s.cum = append(s.cum, total)
		}
	}
	return s
}
