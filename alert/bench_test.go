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
	cpu := processCPU()
	defer func() { reportCPU(b, cpu) }()
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

// BenchmarkLiveStep100kUsers is one minute of the live evaluator
// (alert/live) for 1,000 rules over the rows of a 100,000-user minute:
// each step starts from the saved State (NewEvaluator), is given its
// compare baselines read back (Baseline) and steps the minute, as the
// live loop does. The minute's rows are those the default client grouping
// sets have for 100k users (users per row summing to 100k in each set):
// 3 vendors × 31 provinces × 4 ISPs, 31 provinces, 4 ISPs, 124
// province × ISP, 3 vendors, the total, 2,000 streams (50 viewers each),
// 300 edge nodes; the rules are spread over those sets, an eighth compare
// with yesterday. Per op: one minute; rows/op is its input.
func BenchmarkLiveStep100kUsers(b *testing.B) {
	const users = 100_000
	type set struct {
		by   string
		keys [][]Label
	}
	var vpi, prov, isp, pi, vendor, stream, node [][]Label
	for v := range 3 {
		vendor = append(vendor, []Label{{"vendor", fmt.Sprint("cdn-", v)}})
		for p := range 31 {
			for i := range 4 {
				vpi = append(vpi, []Label{{"vendor", fmt.Sprint("cdn-", v)}, {"province", fmt.Sprint("p", p)}, {"isp", fmt.Sprint("isp", i)}})
			}
		}
	}
	for p := range 31 {
		prov = append(prov, []Label{{"province", fmt.Sprint("p", p)}})
		for i := range 4 {
			pi = append(pi, []Label{{"province", fmt.Sprint("p", p)}, {"isp", fmt.Sprint("isp", i)}})
		}
	}
	for i := range 4 {
		isp = append(isp, []Label{{"isp", fmt.Sprint("isp", i)}})
	}
	for s := range 2000 {
		stream = append(stream, []Label{{"stream_id", fmt.Sprint("s", s)}})
	}
	for n := range 300 {
		node = append(node, []Label{{"node", fmt.Sprint("edge-", n)}})
	}
	sets := []set{{"[vendor, province, isp]", vpi}, {"[province]", prov}, {"[isp]", isp}, {"[province, isp]", pi},
		{"[vendor]", vendor}, {"[]", [][]Label{{}}}, {"[stream_id]", stream}, {"[node]", node}}
	var y strings.Builder
	metrics := []string{"stutter_rate_uv", "pull_connect_rate", "first_frame_ms_p90", "users"}
	for i := range 1000 {
		m := metrics[i%len(metrics)]
		cond := map[string]string{"stutter_rate_uv": fmt.Sprintf("above: %g", 0.08+float64(i)/100000),
			"pull_connect_rate": "below: 0.95", "first_frame_ms_p90": "above: 3000", "users": "below: 1"}[m]
		if m == "users" && i%8 == 3 {
			cond = "compare: {offset: 1d, below_ratio: 0.7}"
		}
		fmt.Fprintf(&y, "- {name: r%d, source: client, metric: %s, group_by: %s, %s, min_users: 10, for: 2m, severity: warning}\n",
			i, m, sets[i%len(sets)].by, cond)
	}
	rs, err := ParseRules("bench.yaml", []byte(y.String()), catalog(b))
	if err != nil {
		b.Fatal(err)
	}
	rowsAt := func(t time.Time) []Row {
		var rows []Row
		k := 0
		for _, s := range sets {
			per := float64(users / len(s.keys))
			for _, key := range s.keys {
				// Healthy but for one group in 97, which stutters (an
				// incident touches a few groups, not all).
				stutter := 0.02
				if k%97 == 0 {
					stutter = 0.3
				}
				rows = append(rows, Row{Minute: t, Source: "client", Dims: Labels(key), Metrics: map[string]Value{
					"users": {per, true}, "stutter_users": {per * stutter, true}, "stutter_rate_uv": {stutter, true},
					"plays": {per, true}, "plays_ok": {per * 0.97, true},
					"pull_connect_rate": {0.97, true}, "first_frame_ms_p90": {float64(800 + k%2000), true}}})
				k++
			}
		}
		return rows
	}
	rows, base := rowsAt(t0), rowsAt(t0.Add(-24*time.Hour))
	// The state the live loop starts each minute from: the alerts pending
	// or firing after a minute of these rows.
	e, _ := NewEvaluator(rs, nil)
	if _, err := e.Step(t0, rows); err != nil {
		b.Fatal(err)
	}
	st := e.State()
	b.ReportAllocs()
	b.ReportMetric(float64(len(rows)), "rows/op")
	b.ReportMetric(float64(len(st.Alerts)), "alerts")
	b.ResetTimer()
	cpu := processCPU()
	defer func() { reportCPU(b, cpu) }()
	for i := 0; b.Loop(); i++ {
		t := at(1)
		for j := range rows {
			rows[j].Minute = t
		}
		for j := range base {
			base[j].Minute = t.Add(-24 * time.Hour)
		}
		ev, err := NewEvaluator(rs, &st)
		if err != nil {
			b.Fatal(err)
		}
		if err := ev.Baseline(base); err != nil {
			b.Fatal(err)
		}
		if _, err := ev.Step(t, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process CPU since start per minute evaluated
// ("cpu-ns/op": all threads, so GC counts; unlike ns/op it does not grow
// when other processes share the cores). bench/harness's alerts step
// reports it as the evaluation CPU per minute.
func reportCPU(b *testing.B, start time.Duration) {
	if used := processCPU() - start; used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
