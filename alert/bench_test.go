package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkStep is one minute of 1,000 rules over demo-shaped rows: 3
// vendors × 31 provinces × 4 ISPs, 31 provinces, the total. Per op: one
// minute evaluated; rows/op reports the input.
func BenchmarkStep(b *testing.B) {
	var y strings.Builder
	sets := []string{"[vendor, province, isp]", "[province]", "[]"}
	metrics := []string{"stutter_rate_uv", "pull_connect_rate", "first_frame_ms_p90", "users"}
	for i := range 1000 {
		m := metrics[i%len(metrics)]
		cond := fmt.Sprintf("above: %g", 0.05+float64(i)/10000)
		if m == "pull_connect_rate" {
			cond = "below: 0.95"
		}
		if m == "users" && i%8 == 3 {
			cond = "compare: {offset: 1d, below_ratio: 0.7}"
		}
		fmt.Fprintf(&y, "- {name: r%d, source: client, metric: %s, group_by: %s, %s, min_users: 10, for: 2m, severity: warning}\n",
			i, m, sets[i%len(sets)], cond)
	}
	rs, err := ParseRules("bench.yaml", []byte(y.String()), catalog(b))
	if err != nil {
		b.Fatal(err)
	}
	rowsAt := func(t time.Time) []Row {
		met := func(k int) map[string]Value {
			return map[string]Value{"users": {float64(20 + k%50), true}, "stutter_rate_uv": {float64(k%13) / 100, true},
				"pull_connect_rate": {0.9 + float64(k%10)/100, true}, "first_frame_ms_p90": {float64(800 + k%2000), true}}
		}
		var rows []Row
		k := 0
		for v := range 3 {
			for p := range 31 {
				for i := range 4 {
					rows = append(rows, Row{Minute: t, Source: "client", Metrics: met(k),
						Dims: Labels{{"vendor", fmt.Sprint("cdn-", v)}, {"province", fmt.Sprint("p", p)}, {"isp", fmt.Sprint("isp", i)}}})
					k++
				}
			}
		}
		for p := range 31 {
			rows = append(rows, Row{Minute: t, Source: "client", Metrics: met(k), Dims: Labels{{"province", fmt.Sprint("p", p)}}})
			k++
		}
		return append(rows, Row{Minute: t, Source: "client", Metrics: met(k), Dims: Labels{}})
	}
	e, _ := NewEvaluator(rs, nil)
	rows := rowsAt(t0)
	b.ReportAllocs()
	b.ReportMetric(float64(len(rows)), "rows/op")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := at(i)
		for j := range rows {
			rows[j].Minute = t
		}
		if _, err := e.Step(t, rows); err != nil {
			b.Fatal(err)
		}
	}
}
