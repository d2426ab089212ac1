// Package hist is qoscope's mergeable log-bucket histogram: the one the
// aggregator fills and the ClickHouse views read back (Map(Int32, UInt64),
// merged with sumMap). The bucket contract is fixed in docs/TEAM-NOTES.md and
// migrations/0001_minute_tables.sql:
//
//	gamma    = (1+α)/(1−α), α = 0.01
//	index(v) = ceil(ln v / ln gamma) for v > 0; bucket i holds (gamma^(i−1), gamma^i]
//	index(0) = math.MinInt32 (ZeroIndex)
//	value(i) = 2·gamma^i/(gamma+1), value(ZeroIndex) = 0
//
// This is DDSketch's logarithmic mapping (github.com/DataDog/sketches-go
// mapping.NewLogarithmicMapping(0.01)) with the paper's ceil convention.
// sketches-go itself numbers the same buckets with floor, so its Index(v) is
// this package's Index(v)−1 and its Value(i) is this package's Value(i+1); the
// tests check that equivalence against the library.
//
// Quantile(p) is the nearest-rank quantile: the representative value of the
// bucket holding rank ⌈p·n⌉ in ascending order, within α of the exact value.
package hist

import (
	"math"
	"math/bits"
	"slices"
)

// Alpha is the relative accuracy of every representative value.
const Alpha = 0.01

// ZeroIndex is the bucket of the value 0; it sorts before every other bucket.
const ZeroIndex = math.MinInt32

var (
	gamma      = (1 + Alpha) / (1 - Alpha)
	invLnGamma = 1 / math.Log(gamma)
)

// Gamma returns the bucket growth factor (1+α)/(1−α).
func Gamma() float64 { return gamma }

// Index returns the bucket of v. Values ≤ 0 (and NaN) land in ZeroIndex:
// durations are never negative by the event schema, and the zero bucket is the
// only place a non-positive value can be represented without inventing one.
func Index(v float64) int32 {
	if !(v > 0) {
		return ZeroIndex
	}
	if v < 1<<smallBits && v == math.Trunc(v) {
		return smallIndex[int(v)]
	}
	return index(v)
}

// maxIndex bounds |index|: ln(MaxFloat64)/ln(gamma) ≈ 35 500.
const maxIndex = 40000

func index(v float64) int32 {
	x := math.Ceil(math.Log(v) * invLnGamma)
	// Every finite positive float64 maps within ±maxIndex; the clamp only
	// catches +Inf, which would otherwise ask for a 2^31-bucket array.
	return int32(min(max(x, -maxIndex), maxIndex))
}

// smallIndex caches the index of the integers below 2^smallBits: nearly every
// histogram value is an integer number of milliseconds in that range, and a
// table lookup is several times cheaper than math.Log.
const smallBits = 14

var smallIndex = func() []int32 {
	t := make([]int32, 1<<smallBits)
	t[0] = ZeroIndex
	for i := 1; i < len(t); i++ {
		t[i] = index(float64(i))
	}
	return t
}()

// Value returns the representative value of bucket i.
func Value(i int32) float64 {
	if i == ZeroIndex {
		return 0
	}
	return 2 * math.Pow(gamma, float64(i)) / (gamma + 1)
}

// smallMax is the number of values kept as a plain index list (4 bytes per
// value) before the histogram switches to dense counts (8 bytes per bucket
// of the value range): a grouping key with tens of first-frame times spread
// over ~200 buckets needs a few hundred bytes instead of kilobytes.
const smallMax = 128

// Histogram counts values per bucket. The zero value is an empty histogram.
// It is not safe for concurrent use.
type Histogram struct {
	count uint64
	sum   float64
	zero  uint64
	// small holds the bucket indexes of up to smallMax values while dense is nil.
	small []int32
	// dense[i] counts bucket offset+i once the histogram outgrew small.
	offset int32
	dense  []uint64
}

// Add records one value.
func (h *Histogram) Add(v float64) {
	if !(v > 0) {
		v = 0
	}
	h.count++
	h.sum += v
	h.addIndex(Index(v), 1)
}

// AddWithIndex records v whose bucket i = Index(v) the caller computed once
// for several histograms (the aggregator adds one value to every grouping set).
func (h *Histogram) AddWithIndex(v float64, i int32) {
	h.count++
	h.sum += v
	h.addIndex(i, 1)
}

// Clone returns an independent copy of h.
func (h *Histogram) Clone() Histogram {
	c := *h
	c.small = slices.Clone(h.small)
	c.dense = slices.Clone(h.dense)
	return c
}

// AddIndex records n values that fall in bucket i without their exact sum;
// it is how buckets read back from storage are loaded (see SetSum).
func (h *Histogram) AddIndex(i int32, n uint64) {
	if n == 0 {
		return
	}
	h.count += n
	h.addIndex(i, n)
}

// SetSum sets the exact sum of the values, for histograms loaded by AddIndex.
func (h *Histogram) SetSum(s float64) { h.sum = s }

func (h *Histogram) addIndex(i int32, n uint64) {
	if i == ZeroIndex {
		h.zero += n
		return
	}
	if h.dense == nil {
		if n == 1 && len(h.small) < smallMax {
			if h.small == nil {
				// Start at 16 values: append would start at 2 and copy
				// five times more on the way to smallMax.
				h.small = make([]int32, 0, 16)
			}
			h.small = append(h.small, i)
			return
		}
		h.toDense()
	}
	h.grow(i)
	h.dense[i-h.offset] += n
}

// toDense moves the small list into dense counts.
func (h *Histogram) toDense() {
	if len(h.small) == 0 {
		h.dense = make([]uint64, 0, 8)
		return
	}
	lo, hi := h.small[0], h.small[0]
	for _, i := range h.small[1:] {
		lo, hi = min(lo, i), max(hi, i)
	}
	h.offset = lo
	h.dense = make([]uint64, int(hi-lo)+1, int(hi-lo)+9)
	for _, i := range h.small {
		h.dense[i-lo]++
	}
	h.small = nil
}

// grow makes bucket i addressable in dense.
func (h *Histogram) grow(i int32) {
	if len(h.dense) == 0 {
		h.offset = i
		h.dense = append(h.dense[:0], 0)
		return
	}
	switch {
	case i < h.offset:
		// Extend downwards with headroom so a slowly decreasing series does
		// not copy the array on every new bucket.
		extra := int(h.offset-i) + len(h.dense)/4
		d := make([]uint64, extra+len(h.dense), extra+cap(h.dense))
		copy(d[extra:], h.dense)
		h.dense = d
		h.offset -= int32(extra)
	case int64(i-h.offset) >= int64(len(h.dense)):
		need := int(i-h.offset) + 1
		if need <= cap(h.dense) {
			h.dense = h.dense[:need]
		} else {
			h.dense = append(h.dense, make([]uint64, need-len(h.dense))...)
		}
	}
}

// Count is the number of values added.
func (h *Histogram) Count() uint64 { return h.count }

// Sum is the exact sum of the values added with Add (negative values count as 0).
func (h *Histogram) Sum() float64 { return h.sum }

// Reset empties h, keeping its dense array for reuse.
func (h *Histogram) Reset() {
	d := h.dense[:0]
	*h = Histogram{}
	if cap(d) > 0 {
		h.dense = d
	}
}

// Merge adds every value of o to h (the union of the two multisets).
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	h.count += o.count
	h.sum += o.sum
	h.zero += o.zero
	if o.dense == nil {
		for _, i := range o.small {
			h.addIndex(i, 1)
		}
		return
	}
	if len(o.dense) == 0 {
		return
	}
	if h.dense == nil {
		h.toDense()
	}
	h.grow(o.offset)
	h.grow(o.offset + int32(len(o.dense)-1))
	d := h.dense[o.offset-h.offset:]
	for j, n := range o.dense {
		d[j] += n
	}
}

// Buckets calls fn for every non-empty bucket in ascending order of value,
// starting with ZeroIndex: the Map(Int32, UInt64) that ClickHouse stores.
func (h *Histogram) Buckets(fn func(i int32, n uint64)) {
	if h.zero > 0 {
		fn(ZeroIndex, h.zero)
	}
	if h.dense == nil {
		if len(h.small) == 0 {
			return
		}
		s := slices.Clone(h.small)
		slices.Sort(s)
		for j := 0; j < len(s); {
			k := j
			for k < len(s) && s[k] == s[j] {
				k++
			}
			fn(s[j], uint64(k-j))
			j = k
		}
		return
	}
	for j, n := range h.dense {
		if n > 0 {
			fn(h.offset+int32(j), n)
		}
	}
}

// Rank is the nearest rank ⌈p·n⌉ (at least 1) computed exactly: p is taken
// to six decimals (0.5, 0.9, 0.99 are exact), so float rounding of p·n can
// never push the rank to the next integer (0.07·100 = 7.000000000000001).
func Rank(p float64, n uint64) uint64 {
	if n == 0 {
		return 0
	}
	num := uint64(math.Round(min(max(p, 0), 1) * 1e6))
	hi, lo := bits.Mul64(num, n)
	lo, carry := bits.Add64(lo, 1e6-1, 0)
	hi += carry
	r, _ := bits.Div64(hi, lo, 1e6)
	return max(r, 1)
}

// Quantile returns the nearest-rank p-quantile's representative value;
// ok is false for an empty histogram.
func (h *Histogram) Quantile(p float64) (v float64, ok bool) {
	if h.count == 0 {
		return 0, false
	}
	rank := Rank(p, h.count)
	var seen uint64
	var found int32
	done := false
	h.Buckets(func(i int32, n uint64) {
		if done {
			return
		}
		seen += n
		if seen >= rank {
			found, done = i, true
		}
	})
	return Value(found), true
}

// Mean returns Sum/Count; ok is false for an empty histogram.
func (h *Histogram) Mean() (float64, bool) {
	if h.count == 0 {
		return 0, false
	}
	return h.sum / float64(h.count), true
}
