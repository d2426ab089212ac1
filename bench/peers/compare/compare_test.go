package compare

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

var w0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func row(src string, dims []Dim, ms ...Metric) Row {
	return Row{WindowStart: w0, Source: src, Dims: dims, Metrics: ms}
}

func kinds(r Report) []DiffKind {
	var out []DiffKind
	for _, d := range r.Diffs {
		out = append(out, d.Kind)
	}
	return out
}

func TestKindOf(t *testing.T) {
	for name, want := range map[string]Kind{
		"users": Exact, "stalls": Exact, "bytes": Exact, "stall_ms": Exact, "no_data": Exact,
		"stutter_rate_uv": Relative, "stutter_rate_pv": Relative, "zero_stutter_rate": Relative,
		"pull_connect_rate": Relative, "errors_5xx_rate": Relative, "first_frame_ms_avg": Relative,
		"fps_min": Relative, "bandwidth_mbps": Relative,
		"first_frame_ms_p50": Quantile, "ttfb_ms_p90": Quantile, "relay_ms_p99": Quantile,
	} {
		if got := KindOf(name); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestCompareTolerances(t *testing.T) {
	dims := []Dim{{"province", "guangdong"}, {"isp", "telecom"}}
	want := []Row{row("client", dims,
		Num("users", 100), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1000),
		Null("push_drop_rate"), Flag("no_data", false))}
	cases := []struct {
		name string
		got  []Metric
		diff []string // metrics that must differ
	}{
		{"identical", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1000), Null("push_drop_rate"), Flag("no_data", false)}, nil},
		{"count off by one", []Metric{Num("users", 101), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1000), Null("push_drop_rate"), Flag("no_data", false)}, []string{"users"}},
		{"rate within 1e-9", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1*(1+5e-10)), Num("first_frame_ms_p90", 1000), Null("push_drop_rate"), Flag("no_data", false)}, nil},
		{"rate beyond 1e-9", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1*(1+2e-9)), Num("first_frame_ms_p90", 1000), Null("push_drop_rate"), Flag("no_data", false)}, []string{"stutter_rate_uv"}},
		{"quantile within 1%", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1009.9), Null("push_drop_rate"), Flag("no_data", false)}, nil},
		{"quantile beyond 1%", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1011), Null("push_drop_rate"), Flag("no_data", false)}, []string{"first_frame_ms_p90"}},
		{"null vs 0", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1000), Num("push_drop_rate", 0), Flag("no_data", false)}, []string{"push_drop_rate"}},
		{"bool flipped", []Metric{Num("users", 100), Num("stutter_rate_uv", 0.1), Num("first_frame_ms_p90", 1000), Null("push_drop_rate"), Flag("no_data", true)}, []string{"no_data"}},
		{"NaN", []Metric{Num("users", 100), Num("stutter_rate_uv", math.NaN()), Num("first_frame_ms_p90", 1000), Null("push_drop_rate"), Flag("no_data", false)}, []string{"stutter_rate_uv"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// dims in the other order: keys must not depend on it
			got := []Row{row("client", []Dim{dims[1], dims[0]}, c.got...)}
			rep := Compare(want, got, Options{})
			var names []string
			for _, d := range rep.Diffs {
				if d.Kind != ValueDiff {
					t.Fatalf("unexpected %s", d)
				}
				names = append(names, d.Metric)
			}
			if strings.Join(names, ",") != strings.Join(c.diff, ",") {
				t.Fatalf("diffs %v, want %v\n%s", names, c.diff, rep.Summary(10))
			}
			if rep.MatchedRows != 1 || rep.Metrics != 5 {
				t.Fatalf("matched %d rows, %d metrics", rep.MatchedRows, rep.Metrics)
			}
			if rep.OK() != (len(c.diff) == 0) {
				t.Fatal("OK() disagrees with Diffs")
			}
		})
	}
}

func TestCompareRowsAndMetricsMissing(t *testing.T) {
	want := []Row{
		row("client", nil, Num("users", 1), Num("stalls", 2)),
		row("cdn", []Dim{{"vendor", "a"}}, Num("requests", 3)),
		row("late", []Dim{{"source", "client"}}, Num("late_events", 1)),
	}
	got := []Row{
		row("client", nil, Num("users", 1), Num("plays", 0)),
		row("cdn", []Dim{{"vendor", "b"}}, Num("requests", 3)),
	}
	rep := Compare(want, got, Options{IgnoreSources: []string{"late"}})
	if rep.WantRows != 2 || rep.GotRows != 2 || rep.MatchedRows != 1 {
		t.Fatalf("rows %d/%d matched %d", rep.WantRows, rep.GotRows, rep.MatchedRows)
	}
	var s []string
	for _, d := range rep.Diffs {
		s = append(s, string(d.Kind)+":"+d.Key+":"+d.Metric)
	}
	// Sorted by key ("… cdn …" < "… client …"), then metric, then kind.
	wantDiffs := []string{
		"missing_row:2026-11-23T12:00:00Z cdn vendor=a:",
		"extra_row:2026-11-23T12:00:00Z cdn vendor=b:",
		"extra_metric:2026-11-23T12:00:00Z client :plays",
		"missing_metric:2026-11-23T12:00:00Z client :stalls",
	}
	if strings.Join(s, "\n") != strings.Join(wantDiffs, "\n") {
		t.Fatalf("diffs:\n%s\nwant:\n%s", strings.Join(s, "\n"), strings.Join(wantDiffs, "\n"))
	}

	// Without IgnoreSources the late row is missing too.
	if rep := Compare(want, got, Options{}); len(rep.Diffs) != 5 {
		t.Fatalf("%d diffs without IgnoreSources:\n%s", len(rep.Diffs), rep.Summary(10))
	}
}

func TestCompareDuplicateKeys(t *testing.T) {
	r := row("client", []Dim{{"role", "host"}}, Num("users", 1))
	rep := Compare([]Row{r}, []Row{r, r}, Options{})
	if got := kinds(rep); len(got) != 1 || got[0] != DuplicateRow || rep.Diffs[0].Side != "got" {
		t.Fatalf("diffs %v", rep.Diffs)
	}
}

func TestCompareWantOmitsDefaults(t *testing.T) {
	want := []Row{row("client", nil, Num("users", 2))}
	got := []Row{row("client", nil, Num("users", 2), Num("stalls", 0), Null("stutter_rate_pv"), Num("plays", 1), Num("pull_connect_rate", 1))}
	rep := Compare(want, got, Options{WantOmitsDefaults: true})
	var s []string
	for _, d := range rep.Diffs {
		s = append(s, d.Metric+"="+d.Got)
	}
	if strings.Join(s, ",") != "plays=1,pull_connect_rate=1" {
		t.Fatalf("diffs %v", s)
	}
	if rep.Metrics != 5 {
		t.Fatalf("compared %d metrics", rep.Metrics)
	}
}

func TestReadRowsJSONCAndRoundTrip(t *testing.T) {
	src := `// a comment
{"window_start":"2026-11-23T12:00:00Z","source":"client","dims":{"province":"gd // not a comment","isp":"telecom"},"metrics":{
  "users": 3, // three
  "stutter_rate_uv": 0.3333333333333333,
  "push_drop_rate": null
}}
{"window_start":"2026-11-23T12:01:00Z","source":"origin","dims":{"stream_id":"s1","line":"primary"},"metrics":{"no_data":true,"samples":null}}
`
	rows, err := ReadRows(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	if r.Dims[0] != (Dim{"province", "gd // not a comment"}) || r.Dims[1].Name != "isp" {
		t.Fatalf("dims %v", r.Dims)
	}
	if m, _ := r.Metric("users"); m.Value != 3 || m.Null {
		t.Fatalf("users %v", m)
	}
	if m, _ := r.Metric("push_drop_rate"); !m.Null {
		t.Fatalf("push_drop_rate %v", m)
	}
	if m, _ := rows[1].Metric("no_data"); !m.Bool || m.Value != 1 {
		t.Fatalf("no_data %v", m)
	}

	var buf bytes.Buffer
	if err := WriteRows(&buf, rows); err != nil {
		t.Fatal(err)
	}
	wantOut := `{"window_start":"2026-11-23T12:00:00Z","source":"client","dims":{"province":"gd // not a comment","isp":"telecom"},"metrics":{"users":3,"stutter_rate_uv":0.3333333333333333,"push_drop_rate":null}}
{"window_start":"2026-11-23T12:01:00Z","source":"origin","dims":{"stream_id":"s1","line":"primary"},"metrics":{"no_data":true,"samples":null}}
`
	if buf.String() != wantOut {
		t.Fatalf("written:\n%s\nwant:\n%s", buf.String(), wantOut)
	}
	back, err := ReadRows(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if rep := Compare(rows, back, Options{}); !rep.OK() || rep.Metrics != 5 {
		t.Fatalf("round trip: %s", rep.Summary(10))
	}
}

func TestReadRowsErrors(t *testing.T) {
	for _, src := range []string{
		`{"window_start":"12:00","source":"client","dims":{},"metrics":{}}`,
		`{"window_start":"2026-11-23T12:00:00Z","source":"","dims":{},"metrics":{}}`,
		`{"window_start":"2026-11-23T12:00:00Z","source":"client","dims":{"a":1},"metrics":{}}`,
		`{"window_start":"2026-11-23T12:00:00Z","source":"client","dims":{},"metrics":{"a":[1]}}`,
		`{"window_start":"2026-11-23T12:00:00Z",`,
	} {
		if _, err := ReadRows(strings.NewReader(src)); err == nil {
			t.Errorf("no error for %s", src)
		}
	}
}

func TestRelErr(t *testing.T) {
	if RelErr(0, 0) != 0 || RelErr(1, 1) != 0 {
		t.Fatal("equal values")
	}
	if got := RelErr(100, 99); math.Abs(got-0.01) > 1e-15 {
		t.Fatalf("RelErr(100, 99) = %v", got)
	}
	if got := RelErr(0, 1); got != 1 {
		t.Fatalf("RelErr(0, 1) = %v", got)
	}
	if !math.IsNaN(RelErr(math.NaN(), 1)) {
		t.Fatal("NaN")
	}
}
