package score

// The split problem: per region, its predicted demand and its eligible
// candidates; per pool, its maximum. A candidate is one vendor pool in one
// region; its weight is the business weight × the capacity score.
type ratioProblem struct {
	regions []ratioRegion
	poolMax []float64
}

type ratioRegion struct {
	demand     float64
	cands      []ratioCand
	overloaded bool // set by solve
}

type ratioCand struct {
	pool   int
	weight float64
	ratio  float64 // set by solve
}

// capSlack lets float rounding leave a pool a hair above its maximum
// without counting as a violation.
const capSlack = 1e-9

// solve sets every candidate's ratio (docs/SCORES.md "Ratios and caps").
//
// When the total demand exceeds the total of the maxima of the pools that
// are candidates somewhere, no split can hold every cap: every region is
// split in proportion to its candidates' maxima and flagged overloaded.
//
// Otherwise ratios start proportional to the weights. While some pools
// carry more than their maximum (Σ over its regions of ratio × demand),
// each such pool's ratios are scaled down by max/load in all its regions
// (keeping its split across regions) and frozen there, and each region's
// freed share is given to its unfrozen candidates, again in proportion to
// their weights. Each round freezes at least one pool, so this ends after
// at most len(poolMax) rounds. A region whose candidates are all frozen
// with part of its share unplaced cannot fit where the capacity is: it is
// split by the maxima and flagged overloaded like the global case.
func (p *ratioProblem) solve() {
	usable := make([]bool, len(p.poolMax))
	var demand, capacity float64
	for i := range p.regions {
		demand += p.regions[i].demand
		for _, c := range p.regions[i].cands {
			usable[c.pool] = true
		}
	}
	for pool, ok := range usable {
		if ok {
			capacity += p.poolMax[pool]
		}
	}
	if demand > capacity*(1+capSlack) {
		for i := range p.regions {
			p.byMaxima(&p.regions[i])
		}
		return
	}

	frozen := make([]bool, len(p.poolMax))
	load := make([]float64, len(p.poolMax))
	stuck := make([]bool, len(p.regions))
	for {
		for i := range p.regions {
			stuck[i] = !fillUnfrozen(&p.regions[i], frozen)
		}
		clear(load)
		for i := range p.regions {
			r := &p.regions[i]
			for _, c := range r.cands {
				load[c.pool] += c.ratio * r.demand
			}
		}
		over := false
		for pool := range load {
			if !frozen[pool] && load[pool] > p.poolMax[pool]*(1+capSlack) {
				over = true
				f := p.poolMax[pool] / load[pool]
				for i := range p.regions {
					for j := range p.regions[i].cands {
						if c := &p.regions[i].cands[j]; c.pool == pool {
							c.ratio *= f
						}
					}
				}
				frozen[pool] = true
			}
		}
		if !over {
			break
		}
	}
	for i := range p.regions {
		if stuck[i] {
			p.byMaxima(&p.regions[i])
		}
	}
}

// fillUnfrozen gives the share the frozen candidates leave to the unfrozen
// ones in proportion to their weights (equally if all weigh 0). It returns
// false when a share is left and no candidate may take it.
func fillUnfrozen(r *ratioRegion, frozen []bool) bool {
	left := 1.0
	var wsum float64
	n := 0
	for _, c := range r.cands {
		if frozen[c.pool] {
			left -= c.ratio
		} else {
			wsum += c.weight
			n++
		}
	}
	if n == 0 {
		return left <= capSlack
	}
	for j := range r.cands {
		c := &r.cands[j]
		if frozen[c.pool] {
			continue
		}
		if wsum > 0 {
			c.ratio = left * c.weight / wsum
		} else {
			c.ratio = left / float64(n)
		}
	}
	return true
}

func (p *ratioProblem) byMaxima(r *ratioRegion) {
	var sum float64
	for _, c := range r.cands {
		sum += p.poolMax[c.pool]
	}
	for j := range r.cands {
		r.cands[j].ratio = p.poolMax[r.cands[j].pool] / sum
	}
	r.overloaded = true
}
