package score

import "math"

// predictNext fits y = a + b·x by least squares to ys (one value per minute,
// oldest first, x = 0, 1, …, n−1) and returns the fit at x = n, the minute
// after the last, never below 0 (bandwidth). With fewer than two points it
// returns the last value: no trend can be read from one minute.
//
// The fit is linear in ys, so the prediction of a sum of series (a vendor's
// pool over many regions) is the sum of their predictions.
func predictNext(ys []float64) float64 {
	n := len(ys)
	switch n {
	case 0:
		return 0
	case 1:
		return math.Max(0, ys[0])
	}
	xm := float64(n-1) / 2
	var ym float64
	for _, y := range ys {
		ym += y
	}
	ym /= float64(n)
	var sxy, sxx float64
	for i, y := range ys {
		dx := float64(i) - xm
		sxy += dx * (y - ym)
		sxx += dx * dx
	}
	b := sxy / sxx
	return math.Max(0, ym+b*(float64(n)-xm))
}
