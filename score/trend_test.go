package score

import "testing"

func TestPredictNext(t *testing.T) {
	for _, tc := range []struct {
		ys   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{10, 20, 30, 40, 50}, 60},
		{[]float64{50, 50, 50}, 50},
		// x̄ = 2, ȳ = 20, Σ(x−x̄)(y−ȳ) = 40+20+0−20+160 = 200, Σ(x−x̄)² = 10:
		// slope 20, fit at x = 5: 20 + 20·3 = 80
		{[]float64{0, 0, 0, 0, 100}, 80},
		{[]float64{100, 80, 60, 40, 20}, 0},
		{[]float64{100, 50, 0}, 0}, // −50 clamped: bandwidth is never negative
		{[]float64{60, 80}, 100},
	} {
		if got := predictNext(tc.ys); !near(got, tc.want) {
			t.Errorf("predictNext(%v) = %v, want %v", tc.ys, got, tc.want)
		}
	}
}
