package score

import (
	"math/rand/v2"
	"testing"
)

func TestCapacityScoreTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   CapacityInput
		want float64
	}{
		// L = 50 < G: 1 + 0.5·(50/100 + 150/200)/2 + 0.5·0.8 = 1.7125
		{"below guarantee", CapacityInput{CurrentMbps: 50, PredictedMbps: 40, GuaranteedMbps: 100, MaxMbps: 200, Quality: 80}, 1.7125},
		// predicted 150 is the load: 0.5·50/200 + 0.5·0.8 = 0.525
		{"predicted above guarantee", CapacityInput{CurrentMbps: 50, PredictedMbps: 150, GuaranteedMbps: 100, MaxMbps: 200, Quality: 80}, 0.525},
		// exactly at the guarantee is not below it: 0.5·100/200 + 0.5·0.5 = 0.5
		{"at guarantee", CapacityInput{CurrentMbps: 100, GuaranteedMbps: 100, MaxMbps: 200, Quality: 50}, 0.5},
		// over the maximum: no remaining bandwidth term, 0.5·0.6
		{"over max", CapacityInput{CurrentMbps: 250, GuaranteedMbps: 100, MaxMbps: 200, Quality: 60}, 0.3},
		// no guarantee, idle: 0.5·1 + 0.5·1
		{"no guarantee idle", CapacityInput{GuaranteedMbps: 0, MaxMbps: 100, Quality: 100}, 1},
		// idle with a guarantee, perfect quality: the top of the range
		{"idle below guarantee", CapacityInput{GuaranteedMbps: 10, MaxMbps: 100, Quality: 100}, 2},
	} {
		if got := CapacityScore(tc.in, 0.5); !near(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// randomInput draws a contract and a load below (or at/above) the guarantee.
func randomInput(r *rand.Rand, below bool) CapacityInput {
	g := 1 + r.Float64()*1000
	m := g + r.Float64()*1000
	var load float64
	if below {
		load = r.Float64() * g * 0.999
	} else {
		load = g + r.Float64()*1.5*m
	}
	in := CapacityInput{GuaranteedMbps: g, MaxMbps: m, Quality: r.Float64() * 100}
	// the load comes from either input: the score reads max(current, predicted)
	if r.IntN(2) == 0 {
		in.CurrentMbps, in.PredictedMbps = load, load*r.Float64()
	} else {
		in.CurrentMbps, in.PredictedMbps = load*r.Float64(), load
	}
	return in
}

func setLoad(in CapacityInput, l float64) CapacityInput {
	in.CurrentMbps, in.PredictedMbps = l, l
	return in
}

func load(in CapacityInput) float64 { return max(in.CurrentMbps, in.PredictedMbps) }

const propertyRuns = 20000

// Rule 1: any vendor below its guarantee scores higher than any above it.
func TestCapacityRule1BelowBeatsAbove(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, w := range []float64{0.1, 0.5, 0.9} {
		for range propertyRuns {
			x, y := randomInput(r, true), randomInput(r, false)
			if sx, sy := CapacityScore(x, w), CapacityScore(y, w); !(sx > sy) {
				t.Fatalf("w %v: below %+v scores %v, not above %+v's %v", w, x, sx, y, sy)
			}
		}
	}
}

// Rule 2: below the guarantee, more remaining guarantee (a higher guarantee,
// or less load) and more remaining total (a higher maximum) score higher.
func TestCapacityRule2BelowGuarantee(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for range propertyRuns {
		x := randomInput(r, true)
		s := CapacityScore(x, 0.5)
		more := x
		more.GuaranteedMbps += 1 + r.Float64()*100 // more remaining guarantee
		more.MaxMbps = max(more.MaxMbps, more.GuaranteedMbps)
		if CapacityScore(more, 0.5) <= s {
			t.Fatalf("raising the guarantee of %+v did not raise the score", x)
		}
		more = x
		more.MaxMbps += 1 + r.Float64()*100 // more remaining total
		if CapacityScore(more, 0.5) <= s {
			t.Fatalf("raising the maximum of %+v did not raise the score", x)
		}
		less := setLoad(x, load(x)*r.Float64()*0.99) // less load: more of both remaining
		if CapacityScore(less, 0.5) <= s {
			t.Fatalf("lowering the load of %+v did not raise the score", x)
		}
	}
}

// Rule 3: above the guarantee, more remaining total bandwidth and better
// quality score higher.
func TestCapacityRule3AboveGuarantee(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range propertyRuns {
		x := randomInput(r, false)
		s := CapacityScore(x, 0.5)
		better := x
		better.Quality = x.Quality + (100-x.Quality)*(0.01+0.99*r.Float64())
		if CapacityScore(better, 0.5) <= s {
			t.Fatalf("raising the quality of %+v did not raise the score", x)
		}
		if load(x) >= x.MaxMbps {
			continue // no remaining total to vary below
		}
		more := x
		more.MaxMbps += 1 + r.Float64()*100
		if CapacityScore(more, 0.5) <= s {
			t.Fatalf("raising the maximum of %+v did not raise the score", x)
		}
		l := load(x)
		less := setLoad(x, x.GuaranteedMbps+(l-x.GuaranteedMbps)*r.Float64()*0.99)
		if CapacityScore(less, 0.5) <= s {
			t.Fatalf("lowering the load of %+v (still above the guarantee) did not raise the score", x)
		}
	}
}
