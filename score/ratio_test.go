package score

import "testing"

func checkRatios(t *testing.T, p *ratioProblem, want [][]float64, overloaded []bool) {
	t.Helper()
	for i, r := range p.regions {
		if r.overloaded != overloaded[i] {
			t.Errorf("region %d: overloaded %v, want %v", i, r.overloaded, overloaded[i])
		}
		sum := 0.0
		for j, c := range r.cands {
			sum += c.ratio
			if !near(c.ratio, want[i][j]) {
				t.Errorf("region %d candidate %d: ratio %v, want %v", i, j, c.ratio, want[i][j])
			}
		}
		if !near(sum, 1) {
			t.Errorf("region %d: ratios sum to %v", i, sum)
		}
	}
}

func TestRatiosProportionalWithoutCaps(t *testing.T) {
	p := ratioProblem{
		poolMax: []float64{1000, 1000},
		regions: []ratioRegion{{demand: 100, cands: []ratioCand{{pool: 0, weight: 1}, {pool: 1, weight: 3}}}},
	}
	p.solve()
	checkRatios(t, &p, [][]float64{{0.25, 0.75}}, []bool{false})
}

// Two regions of 100 Mbps, equal weights: 0.5 each would send A 100 > 60.
// A is scaled by 60/100 everywhere (0.3) and B takes the rest (0.7, 140 ≤ 200).
func TestRatiosCapOnePool(t *testing.T) {
	p := ratioProblem{
		poolMax: []float64{60, 200},
		regions: []ratioRegion{
			{demand: 100, cands: []ratioCand{{pool: 0, weight: 1}, {pool: 1, weight: 1}}},
			{demand: 100, cands: []ratioCand{{pool: 0, weight: 1}, {pool: 1, weight: 1}}},
		},
	}
	p.solve()
	checkRatios(t, &p, [][]float64{{0.3, 0.7}, {0.3, 0.7}}, []bool{false, false})
}

// R1 (100 Mbps): A 1, B 1, C 2; R2 (100 Mbps): A 1, B 1. A's maximum is 40.
// Round 1: R1 0.25/0.25/0.5, R2 0.5/0.5: A carries 25 + 50 = 75 > 40, so A
// is scaled by 40/75: R1 2/15, R2 4/15 (13.33 + 26.67 = 40).
// Round 2: R1's 13/15 left goes to B and C 1:2 → 13/45, 26/45; R2's 11/15
// to B. B carries 28.9 + 73.3 = 102.2 ≤ 1000: done.
func TestRatiosCapRedistributes(t *testing.T) {
	p := ratioProblem{
		poolMax: []float64{40, 1000, 1000},
		regions: []ratioRegion{
			{demand: 100, cands: []ratioCand{{pool: 0, weight: 1}, {pool: 1, weight: 1}, {pool: 2, weight: 2}}},
			{demand: 100, cands: []ratioCand{{pool: 0, weight: 1}, {pool: 1, weight: 1}}},
		},
	}
	p.solve()
	checkRatios(t, &p, [][]float64{{2.0 / 15, 13.0 / 45, 26.0 / 45}, {4.0 / 15, 11.0 / 15}}, []bool{false, false})
}

// 300 Mbps of demand, 60 + 200 of capacity: split by the maxima, overloaded.
func TestRatiosOverloadedByMaxima(t *testing.T) {
	p := ratioProblem{
		poolMax: []float64{60, 200},
		regions: []ratioRegion{
			{demand: 200, cands: []ratioCand{{pool: 0, weight: 5}, {pool: 1, weight: 1}}},
			{demand: 100, cands: []ratioCand{{pool: 1, weight: 1}}},
		},
	}
	p.solve()
	checkRatios(t, &p, [][]float64{{60.0 / 260, 200.0 / 260}, {1}}, []bool{true, true})
}

// Total demand 110 fits in 60 + 1000, but R1 (100 Mbps) has only A (max 60).
// Round 1: R1 A 1, R2 A 0.5 B 0.5: A carries 105, scaled by 60/105 and frozen;
// R1 is left with 3/7 and no one to take it: overloaded, split by maxima
// (A alone: 1). R2: A 0.5·60/105 = 2/7, B 5/7.
func TestRatiosRegionThatCannotFit(t *testing.T) {
	p := ratioProblem{
		poolMax: []float64{60, 1000},
		regions: []ratioRegion{
			{demand: 100, cands: []ratioCand{{pool: 0, weight: 1}}},
			{demand: 10, cands: []ratioCand{{pool: 0, weight: 1}, {pool: 1, weight: 1}}},
		},
	}
	p.solve()
	checkRatios(t, &p, [][]float64{{1}, {2.0 / 7, 5.0 / 7}}, []bool{true, false})
}

func TestRatiosAllWeightsZeroSplitEqually(t *testing.T) {
	p := ratioProblem{
		poolMax: []float64{100, 100},
		regions: []ratioRegion{{demand: 10, cands: []ratioCand{{pool: 0}, {pool: 1}}}},
	}
	p.solve()
	checkRatios(t, &p, [][]float64{{0.5, 0.5}}, []bool{false})
}
