package score

import "math"

// CapacityInput is what the capacity score of one vendor pool in one region
// reads. Quality is 0..100.
type CapacityInput struct {
	CurrentMbps, PredictedMbps, GuaranteedMbps, MaxMbps, Quality float64
}

// CapacityScore implements 001 §3.4's three rules (docs/SCORES.md "Capacity
// score"). With load L = max(current, predicted) (the vendor must hold the
// traffic it is about to get, not only what it had), G the guarantee, M the
// maximum, q = quality/100 and w the quality weight:
//
//	below the guarantee (L < G): 1 + (1−w)·((G−L)/G + (M−L)/M)/2 + w·q   in (1, 2]
//	otherwise:                       (1−w)·max(0, (M−L)/M)       + w·q   in [0, 1]
//
// Rule 1 holds because the first band starts above 1 ((M−L)/M > 0 when
// L < G ≤ M) and the second ends at 1. Rule 2: below G, (G−L)/G grows with
// the remaining guarantee and (M−L)/M with the remaining total. Rule 3:
// above G, (M−L)/M and q each raise the score (w strictly between 0 and 1).
// Remaining bandwidth counts as a share of the contract so that vendors of
// different sizes compare by how much of their commitment is left.
func CapacityScore(in CapacityInput, qualityWeight float64) float64 {
	load := math.Max(in.CurrentMbps, in.PredictedMbps)
	q := clamp01(in.Quality / 100)
	g, m, w := in.GuaranteedMbps, in.MaxMbps, qualityWeight
	if load < g {
		return 1 + (1-w)*((g-load)/g+(m-load)/m)/2 + w*q
	}
	return (1-w)*math.Max(0, (m-load)/m) + w*q
}
