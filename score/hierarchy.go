package score

import (
	"slices"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/ipdb"
)

// DefaultRegions is the IP table's split of the 31 mainland provinces into
// the big regions north, central, south and west (docs/IPDB.md), so that a
// region here is the same region the /24 codes encode. hongkong, macau and
// taiwan are in no big region: their fallback goes province → country.
func DefaultRegions() map[string][]string {
	out := map[string][]string{}
	for _, p := range ipdb.Provinces() {
		if r := ipdb.RegionOf(p); r != "" {
			out[r] = append(out[r], p)
		}
	}
	return out
}

func validateRegions(regions map[string][]string, e *config.Errors) {
	seen := map[string]string{}
	for _, r := range sortedKeys(regions) {
		if r == "" {
			e.Addf("name: a region name must not be empty")
		}
		for i, p := range regions[r] {
			if p == "" {
				e.Addf("%s[%d]: province must not be empty", r, i)
				continue
			}
			if prev, ok := seen[p]; ok {
				e.Addf("%s[%d]: province %q is already in region %q", r, i, p, prev)
				continue
			}
			seen[p] = r
		}
	}
}

// knownProvince reports whether p may carry a per-province contract: it is in
// a big region, or it is one of the IP table's provinces outside them.
func knownProvince(regions map[string][]string, p string) bool {
	for _, ps := range regions {
		if slices.Contains(ps, p) {
			return true
		}
	}
	return slices.Contains(ipdb.Provinces(), p)
}

// regionIndex maps province → big region ("" when in none).
func regionIndex(regions map[string][]string) map[string]string {
	out := map[string]string{}
	for r, ps := range regions {
		for _, p := range ps {
			out[p] = r
		}
	}
	return out
}
