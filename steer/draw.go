package steer

import "math"

// maxStack is how many pathways a draw sorts on the stack; more (not a
// realistic CDN count) cost one allocation.
const maxStack = 16

// The draw is weighted rendezvous hashing: for session hash h, each
// candidate i gets u_i = U(mix(h ^ salt_i)) in (0, 1) and the key
// −ln(u_i)/w_i; the order is by increasing key. For a random session the
// u_i are independent uniforms, so the keys are independent exponential
// variables of rates w_i, and ordering them is exactly weighted sampling
// without replacement: the first is i with probability w_i/Σw, the next
// is drawn the same way among the rest, and so on (the "exponential
// clocks" construction of successive sampling; Efraimidis & Spirakis,
// "Weighted random sampling with a reservoir", 2006, use the equivalent
// u^(1/w)).
//
// Why not reseed the draw with a hash of the region's ratios? Both are
// sticky while the ratios stay and both follow the new ratios when they
// change, but a reseeded draw re-deals every session on every change
// (the ratios move a little every minute), while here a session's keys
// move continuously with the weights: a change of ratio Δ moves about Δ of
// the sessions, the least disruption the new split allows (the same
// argument as for rendezvous hashing when a server joins).

// mix is SplitMix64's finalizer: a bijection on uint64 whose output bits
// each depend on every input bit, so mix(h ^ a) and mix(h ^ b) look
// independent for a ≠ b.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// expKey is −ln(u) for u = U(mix(h ^ salt)) in (0, 1): 53 random bits,
// centred in their interval so that u is never 0 or 1.
func expKey(h, salt uint64) float64 {
	u := (float64(mix(h^salt)>>11) + 0.5) * (1.0 / (1 << 53))
	return -math.Log(u)
}

// draw appends to dst the indexes (into Snapshot.paths) of o's pathways in
// the order of session hash h: the weighted ones by their keys, then the
// zero-ratio ones, then the blacklisted ones, each of those two groups
// shuffled by h alone (equal weights) so their load spreads too.
func (o *order) draw(dst []int, h uint64) []int {
	dst = drawGroup(dst, o.weighted, h)
	dst = drawGroup(dst, o.zero, h)
	return drawGroup(dst, o.black, h)
}

func drawGroup(dst []int, cs []cand, h uint64) []int {
	var stack [maxStack]float64
	keys := stack[:0]
	if len(cs) > maxStack {
		keys = make([]float64, 0, len(cs))
	}
	start := len(dst)
	for _, c := range cs {
		k := expKey(h, c.salt) * c.invW
		// Insertion sort: a handful of vendors.
		j := len(keys)
		keys = append(keys, k)
		dst = append(dst, c.path)
		for j > 0 && keys[j-1] > k {
			keys[j], dst[start+j] = keys[j-1], dst[start+j-1]
			j--
		}
		keys[j], dst[start+j] = k, c.path
	}
	return dst
}
