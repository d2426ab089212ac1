package score

import (
	"math"
	"time"
)

// predictNext fits y = a + b·x by least squares to ys (one value per minute,
// oldest first, x = 0, 1, …, n−1) and returns the fit at x = n, the minute
// after the last, never below 0 (bandwidth). With fewer than two points it
// returns the last value: no trend can be read from one minute.
//
// The fit is linear in ys, so the prediction of a sum of series (a vendor's
// pool over many regions) is the sum of their predictions.
func predictNext(ys []float64) float64 { return predictAt(ys, float64(len(ys))) }

// predictAt is predictNext read at x (x = len(ys) is the minute after the
// last; later for a series whose newest minutes have not arrived yet).
func predictAt(ys []float64, x float64) float64 {
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
	return math.Max(0, ym+b*(x-xm))
}

// cdnWatermarks returns, per vendor with a CDN row closed by at, the
// newest minute its trend reads (docs/SCORES.md, "Predicted bandwidth and
// demand"): the vendor's newest minute with a row, but never before
// at − 1m − CDNMaxLag. CDN logs arrive minutes late, each vendor's on its
// own schedule, so the minutes after a vendor's newest row are taken as
// not arrived yet rather than as minutes without traffic, until they are
// CDNMaxLag old.
func cdnWatermarks(rows []CDNRow, at time.Time, s *Settings) map[string]time.Time {
	floor := at.Add(-time.Minute - s.CDNMaxLag)
	w := map[string]time.Time{}
	for _, r := range rows {
		if r.Minute.Add(time.Minute).After(at) {
			continue
		}
		m := r.Minute
		if m.Before(floor) {
			m = floor
		}
		if cur, ok := w[r.Vendor]; !ok || m.After(cur) {
			w[r.Vendor] = m
		}
	}
	return w
}

// horizon is how many minutes past its watermark a vendor's trend is read:
// the minute starting at `at`, but no further ahead than the fit's own
// length (a five-minute slope says little about half an hour later).
func horizon(watermark, at time.Time, n int) int {
	return min(int(at.Sub(watermark)/time.Minute), n)
}
