package hist

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// exactNearestRank is the definition: the value at rank ⌈p·n⌉ of the sorted data.
func exactNearestRank(sorted []float64, p float64) float64 {
	r := int(math.Ceil(p * float64(len(sorted))))
	if r < 1 {
		r = 1
	}
	return sorted[r-1]
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / want
}

func TestIndexMatchesContractFormula(t *testing.T) {
	g := (1 + 0.01) / (1 - 0.01)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := math.Exp(rng.Float64()*25 - 5) // 0.0067 .. 2.2e8
		if rng.IntN(2) == 0 {
			v = math.Floor(v) + 1 // integers hit the cached table
		}
		want := int32(math.Ceil(math.Log(v) / math.Log(g)))
		if got := Index(v); got != want {
			t.Fatalf("Index(%v) = %d, want ceil(ln v/ln gamma) = %d", v, got, want)
		}
		// The bucket (gamma^(i-1), gamma^i] contains v.
		i := float64(want)
		if !(math.Pow(g, i-1) < v*(1+1e-12) && v <= math.Pow(g, i)*(1+1e-12)) {
			t.Fatalf("v=%v not in bucket %d", v, want)
		}
		if e := relErr(Value(want), v); e > Alpha+1e-9 {
			t.Fatalf("Value(Index(%v)) = %v, relative error %v > %v", v, Value(want), e, Alpha)
		}
	}
	if Index(0) != ZeroIndex || Value(ZeroIndex) != 0 {
		t.Fatal("zero bucket")
	}
	if Index(-5) != ZeroIndex || Index(math.NaN()) != ZeroIndex {
		t.Fatal("non-positive values must use the zero bucket")
	}
	if Index(math.Inf(1)) != maxIndex {
		t.Fatal("+Inf must clamp")
	}
}

// sketches-go numbers the same buckets with floor: its Index is ours − 1 and
// its Value(i) is our Value(i+1). Off exact powers of gamma the representative
// value of any v is therefore identical.
func TestSameBucketsAsSketchesGo(t *testing.T) {
	m, err := mapping.NewLogarithmicMapping(Alpha)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		v := math.Exp(rng.Float64()*20 - 2)
		ours := Index(v)
		theirs := m.Index(v)
		if int(ours) != theirs+1 {
			// Only a value within float error of a bucket boundary may differ.
			b := math.Pow(gamma, float64(ours))
			if relErr(v, b) > 1e-9 {
				t.Fatalf("v=%v: Index %d, sketches-go Index %d", v, ours, theirs)
			}
			continue
		}
		if relErr(Value(ours), m.Value(theirs)) > 1e-9 {
			t.Fatalf("v=%v: Value %v, sketches-go Value %v", v, Value(ours), m.Value(theirs))
		}
	}
}

func TestRank(t *testing.T) {
	cases := []struct {
		p    float64
		n    uint64
		want uint64
	}{
		{0.5, 1, 1}, {0.5, 2, 1}, {0.5, 3, 2}, {0.5, 10, 5}, {0.5, 11, 6},
		{0.9, 10, 9}, {0.9, 11, 10}, {0.99, 100, 99}, {0.99, 101, 100}, {0.99, 5, 5},
		{0.07, 100, 7}, // float: 0.07*100 = 7.000000000000001, whose ceil is 8
		{0, 10, 1}, {1, 10, 10}, {0.5, 0, 0},
		{0.99, math.MaxUint64 / 2, (math.MaxUint64/2/100)*99 + ((math.MaxUint64/2)%100*99+99)/100},
	}
	for _, c := range cases {
		if got := Rank(c.p, c.n); got != c.want {
			t.Errorf("Rank(%v, %d) = %d, want %d", c.p, c.n, got, c.want)
		}
	}
}

func TestQuantileRandomWithinAlpha(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gens := map[string]func() float64{
		"lognormal-ms": func() float64 { return math.Round(math.Exp(rng.NormFloat64()*1.2 + 6)) },
		"uniform-int":  func() float64 { return float64(rng.IntN(100000)) },
		"float":        func() float64 { return rng.ExpFloat64() * 300 },
		"with-zeros": func() float64 {
			if rng.IntN(5) == 0 {
				return 0
			}
			return float64(1 + rng.IntN(50))
		},
	}
	for name, gen := range gens {
		for _, n := range []int{1, 2, 3, 7, 15, 16, 17, 100, 1000, 54321} {
			var h Histogram
			data := make([]float64, n)
			sum := 0.0
			for i := range data {
				data[i] = gen()
				sum += data[i]
				h.Add(data[i])
			}
			slices.Sort(data)
			if h.Count() != uint64(n) {
				t.Fatalf("%s n=%d: Count %d", name, n, h.Count())
			}
			if relErr(h.Sum(), sum) > 1e-12 {
				t.Fatalf("%s n=%d: Sum %v want %v", name, n, h.Sum(), sum)
			}
			for _, p := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
				got, ok := h.Quantile(p)
				want := exactNearestRank(data, p)
				if !ok || relErr(got, want) > Alpha+1e-9 {
					t.Fatalf("%s n=%d p=%v: got %v want %v (rel err %v)", name, n, p, got, want, relErr(got, want))
				}
			}
		}
	}
}

func TestEmpty(t *testing.T) {
	var h Histogram
	if _, ok := h.Quantile(0.5); ok {
		t.Fatal("empty histogram has no quantile")
	}
	if _, ok := h.Mean(); ok {
		t.Fatal("empty histogram has no mean")
	}
	n := 0
	h.Buckets(func(int32, uint64) { n++ })
	if n != 0 {
		t.Fatal("empty histogram has buckets")
	}
}

func buckets(h *Histogram) map[int32]uint64 {
	m := map[int32]uint64{}
	prev := int64(math.MinInt64)
	h.Buckets(func(i int32, n uint64) {
		if int64(i) <= prev {
			panic("buckets not strictly ascending")
		}
		prev = int64(i)
		m[i] = n
	})
	return m
}

// Merge must equal adding the union of both inputs, in every combination of
// small/dense representations and overlapping or disjoint ranges.
func TestMergeIsUnion(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 500 {
		na, nb := rng.IntN(40), rng.IntN(40)
		if trial%5 == 0 {
			na = rng.IntN(3000)
		}
		scaleA, scaleB := math.Exp(rng.Float64()*10), math.Exp(rng.Float64()*10)
		var a, b, union Histogram
		for range na {
			v := math.Floor(rng.ExpFloat64() * scaleA)
			a.Add(v)
			union.Add(v)
		}
		for range nb {
			v := math.Floor(rng.ExpFloat64() * scaleB)
			b.Add(v)
			union.Add(v)
		}
		a.Merge(&b)
		if a.Count() != union.Count() || relErr(a.Sum(), union.Sum()) > 1e-12 {
			t.Fatalf("trial %d: count/sum %d/%v want %d/%v", trial, a.Count(), a.Sum(), union.Count(), union.Sum())
		}
		ga, gu := buckets(&a), buckets(&union)
		if len(ga) != len(gu) {
			t.Fatalf("trial %d: %d buckets want %d", trial, len(ga), len(gu))
		}
		for i, n := range gu {
			if ga[i] != n {
				t.Fatalf("trial %d: bucket %d = %d want %d", trial, i, ga[i], n)
			}
		}
	}
}

func TestAddIndexRoundTrip(t *testing.T) {
	var a Histogram
	for _, v := range []float64{0, 0, 1, 5, 5, 5, 1000, 99999} {
		a.Add(v)
	}
	var b Histogram
	a.Buckets(func(i int32, n uint64) { b.AddIndex(i, n) })
	b.SetSum(a.Sum())
	for _, p := range []float64{0.1, 0.5, 0.9, 1} {
		x, _ := a.Quantile(p)
		y, _ := b.Quantile(p)
		if x != y {
			t.Fatalf("p=%v: %v vs %v", p, x, y)
		}
	}
	if b.Count() != 8 || b.Sum() != a.Sum() {
		t.Fatal("count/sum")
	}
	// Nearest rank on an obvious set: ranks ⌈0.5·8⌉=4 → 5, ⌈0.25·8⌉=2 → 0.
	if q, _ := b.Quantile(0.5); relErr(q, 5) > Alpha {
		t.Fatalf("p50 = %v, want ≈5", q)
	}
	if q, _ := b.Quantile(0.25); q != 0 {
		t.Fatalf("p25 = %v, want 0 (zero bucket)", q)
	}
}

func TestResetKeepsWorking(t *testing.T) {
	var h Histogram
	for i := range 100 {
		h.Add(float64(i * 10))
	}
	h.Reset()
	if h.Count() != 0 || len(buckets(&h)) != 0 {
		t.Fatal("reset")
	}
	h.Add(42)
	if q, _ := h.Quantile(0.5); relErr(q, 42) > Alpha {
		t.Fatalf("after reset: %v", q)
	}
}

func BenchmarkAdd(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = math.Round(math.Exp(rng.NormFloat64()*1.2 + 6))
	}
	var h Histogram
	b.ReportAllocs()
	b.SetBytes(8)
	for i := 0; b.Loop(); i++ {
		h.Add(vals[i&4095])
	}
}

func BenchmarkAddFloat(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = math.Exp(rng.NormFloat64()*1.2 + 6)
	}
	var h Histogram
	b.ReportAllocs()
	b.SetBytes(8)
	for i := 0; b.Loop(); i++ {
		h.Add(vals[i&4095])
	}
}

func BenchmarkMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	var src Histogram
	for range 1000 {
		src.Add(math.Round(math.Exp(rng.NormFloat64()*1.2 + 6)))
	}
	var dst Histogram
	b.ReportAllocs()
	for b.Loop() {
		dst.Merge(&src)
	}
}

func BenchmarkQuantile(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 14))
	var h Histogram
	for range 100000 {
		h.Add(math.Round(math.Exp(rng.NormFloat64()*1.2 + 6)))
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Quantile(0.99)
	}
}
