package chraw

import (
	"strings"
	"testing"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/schemas"
)

func TestQueriesRefuseNamesOutsideTheWhitelist(t *testing.T) {
	gs := aggregator.DefaultGroupingSets()
	for _, bad := range [][]string{{"user_id"}, {"session_id"}, {"nope"}, {"province) --"}, {"province", "province"}} {
		g := gs
		g.Client = [][]string{bad}
		if _, err := Queries("db", "t", g, 5); err == nil {
			t.Errorf("grouping set %q accepted", bad)
		}
	}
	for _, name := range []string{"", "a-b", "a`b", "1a", "a b", strings.Repeat("a", 64)} {
		if _, err := Queries(name, "t", gs, 5); err == nil {
			t.Errorf("database %q accepted", name)
		}
		if _, err := Queries("db", name, gs, 5); err == nil {
			t.Errorf("table %q accepted", name)
		}
		if _, err := CreateTableSQL("db", name); err == nil {
			t.Errorf("CreateTableSQL accepted table %q", name)
		}
	}
	if _, err := Queries("db", "t", gs, 0); err == nil {
		t.Error("origin_no_data_minutes 0 accepted")
	}
}

func TestQueriesCoverEveryGroupingSet(t *testing.T) {
	gs := aggregator.DefaultGroupingSets()
	qs, err := Queries("db", "raw", gs, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 {
		t.Fatalf("%d queries", len(qs))
	}
	c := qs[0]
	want := "GROUPING SETS ((window_ms), (window_ms, d_province), (window_ms, d_isp), (window_ms, d_province, d_isp), " +
		"(window_ms, d_vendor), (window_ms, d_vendor, d_province, d_isp), (window_ms, d_stream_id), (window_ms, d_quality), " +
		"(window_ms, d_platform), (window_ms, d_client_version), (window_ms, d_role), (window_ms, d_node))"
	if !strings.Contains(c.SQL, want) {
		t.Fatalf("client query lacks %s:\n%s", want, c.SQL)
	}
	if strings.Join(c.DimCols, ",") != "province,isp,vendor,stream_id,quality,platform,client_version,role,node" {
		t.Fatalf("client dims %v", c.DimCols)
	}
	// Every metric of the offline output, in its order.
	var names []string
	for _, m := range c.Metrics {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, ","), strings.Join(aggregator.MetricNames(schemas.SourceClient), ","); got != want {
		t.Fatalf("client metrics\n got %s\nwant %s", got, want)
	}
	names = names[:0]
	for _, m := range qs[1].Metrics {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, ","), strings.Join(aggregator.MetricNames(schemas.SourceCDN), ","); got != want {
		t.Fatalf("cdn metrics\n got %s\nwant %s", got, want)
	}
	names = names[:0]
	for _, m := range qs[2].Metrics {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, ","), strings.Join(aggregator.MetricNames(schemas.SourceOrigin), ","); got != want {
		t.Fatalf("origin metrics\n got %s\nwant %s", got, want)
	}

	// A source without grouping sets has no query.
	gs.CDN = [][]string{}
	if qs, _ := Queries("db", "raw", gs, 5); len(qs) != 2 || qs[1].Source != "origin" {
		t.Fatalf("queries without cdn sets: %d", len(qs))
	}
}

func TestSetOf(t *testing.T) {
	q := Query{Sets: [][]string{{}, {"province"}, {"province", "isp"}}, DimCols: []string{"province", "isp"}}
	for _, c := range []struct {
		vals []string
		want int
	}{
		{[]string{"", ""}, 0}, {[]string{"gd", ""}, 1}, {[]string{"gd", "telecom"}, 2}, {[]string{"", "telecom"}, -1},
	} {
		if got := setOf(q, c.vals); got != c.want {
			t.Errorf("setOf(%v) = %d, want %d", c.vals, got, c.want)
		}
	}
}
