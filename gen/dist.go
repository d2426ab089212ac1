package gen

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Random helpers. Every draw goes through a *rand.Rand owned by one user or
// stream, so the events do not depend on the order of anything but the
// simulation itself.

// splitmix64 scrambles seeds so that neighbouring user indexes get
// unrelated PCG streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newRand returns the random stream number n of a run with this seed; kind
// separates users from streams.
func newRand(seed uint64, kind, n uint64) *rand.Rand {
	a := splitmix64(seed ^ splitmix64(kind<<56|n))
	b := splitmix64(a ^ 0x5851f42d4c957f2d)
	return rand.New(rand.NewPCG(a, b))
}

// lognormal draws from l, scaling its median by x and capping at l.Max.
func lognormal(r *rand.Rand, l LogNormal, x float64) float64 {
	v := l.Median * x * math.Exp(l.Sigma*r.NormFloat64())
	if l.Max > 0 && v > l.Max*math.Max(x, 1) {
		v = l.Max * math.Max(x, 1)
	}
	return v
}

// lognormalMean is E[X] of an uncapped l.
func lognormalMean(l LogNormal) float64 { return l.Median * math.Exp(l.Sigma*l.Sigma/2) }

// picker draws an index with probability weight/sum.
type picker struct{ cum []float64 }

func newPicker(weights []float64) picker {
	p := picker{cum: make([]float64, len(weights))}
	s := 0.0
	for i, w := range weights {
		s += w
		p.cum[i] = s
	}
	return p
}

func weightsOf(ws []Weighted) []float64 {
	out := make([]float64, len(ws))
	for i, w := range ws {
		out[i] = w.Weight
	}
	return out
}

func (p picker) pick(r *rand.Rand) int {
	total := p.cum[len(p.cum)-1]
	x := r.Float64() * total
	i, _ := slices.BinarySearch(p.cum, x)
	// BinarySearch finds the first cum >= x; skip zero-weight entries that
	// share the same cumulative value (x equal to a boundary).
	for i < len(p.cum)-1 && p.cum[i] <= x {
		i++
	}
	return i
}

// pickWeights draws from an ad-hoc weight vector (no allocation).
func pickWeights(r *rand.Rand, w []float64) int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	if total <= 0 {
		return -1
	}
	x := r.Float64() * total
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return i
		}
	}
	return -1
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// poissonHit reports whether a Poisson process of ratePerMin fires within
// ms milliseconds.
func poissonHit(r *rand.Rand, ratePerMin float64, ms int64) bool {
	if ratePerMin <= 0 {
		return false
	}
	return r.Float64() < -math.Expm1(-ratePerMin*float64(ms)/60000)
}
