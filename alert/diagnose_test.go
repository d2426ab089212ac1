package alert

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// crow is a client row at minute m (minutes after 12:00) with dims given as
// name, value pairs and the metrics as name, value pairs.
func crow(m int, dims []string, metrics ...any) Row {
	r := Row{Minute: at(m), Source: "client", Dims: Labels{}, Metrics: map[string]Value{}}
	for i := 0; i < len(dims); i += 2 {
		r.Dims = append(r.Dims, Label{dims[i], dims[i+1]})
	}
	for i := 0; i < len(metrics); i += 2 {
		r.Metrics[metrics[i].(string)] = Value{float64(metrics[i+1].(int)), true}
	}
	return r
}

func d(kv ...string) []string { return kv }

// The total stutter rate fires; the vendor cdn-b in guangdong × telecom
// explains it. Numbers by hand (users / stutter users):
//
//	baseline, 12:00–12:29 (pending at 12:30): total 1000/30 at 12:10 and
//	1000/40 at 12:20 → b = 70 / 2000 = 0.035. Rows at 11:59 and 12:30
//	(outside [pending − 30m, pending)) must not count.
//	at 12:32: total 1000/100 → excess 100 − 1000·0.035 = 65.
//	[vendor]: cdn-b 300/75 → 64.5, cdn-a 700/25 → 0.5                (sum 65)
//	[province]: guangdong 400/77 → 63, beijing 600/23 → 2            (sum 65)
//	[isp]: telecom 600/87 → 66, unicom 400/13 → −1                   (sum 65)
//	[vendor, province, isp]: cdn-b gd tel 100/57 → 53.5, cdn-b gd uni
//	100/10 → 6.5, cdn-a bj tel 200/12 → 5, cdn-b bj tel 100/8 → 4.5,
//	cdn-a gd tel 200/10 → 3, cdn-a bj uni 300/3 → −7.5              (sum 65)
//
// By excess alone telecom (66), cdn-b (64.5) and guangdong (63) come first;
// each contains cdn-b × gd × tel, which has ≥ 80 % of its excess
// (53.5/66 = 0.81, 53.5/64.5 = 0.83, 53.5/63 = 0.85), so the finer group
// is named instead. The positive excesses of [vendor, province, isp] add
// up to 53.5 + 6.5 + 5 + 4.5 + 3 = 72.5, the shares' denominator:
// cdn-b gd tel 53.5 (73.8 %), cdn-b gd uni 6.5 (9.0 %), cdn-a bj tel 5 (6.9 %).
func TestDiagnoseTotalStutter(t *testing.T) {
	rs := parse(t, `
- name: total
  source: client
  metric: stutter_rate_uv
  above: 0.05
  severity: warning
`)
	u, s := "users", "stutter_users"
	rows := []Row{
		crow(-1, nil, u, 1000, s, 900),
		crow(10, nil, u, 1000, s, 30),
		crow(20, nil, u, 1000, s, 40),
		crow(30, nil, u, 1000, s, 900),
		crow(32, nil, u, 1000, s, 100),
		crow(32, d("vendor", "cdn-b"), u, 300, s, 75),
		crow(32, d("vendor", "cdn-a"), u, 700, s, 25),
		crow(32, d("province", "guangdong"), u, 400, s, 77),
		crow(32, d("province", "beijing"), u, 600, s, 23),
		crow(32, d("isp", "telecom"), u, 600, s, 87),
		crow(32, d("isp", "unicom"), u, 400, s, 13),
		crow(32, d("vendor", "cdn-b", "province", "guangdong", "isp", "telecom"), u, 100, s, 57),
		crow(32, d("vendor", "cdn-b", "province", "guangdong", "isp", "unicom"), u, 100, s, 10),
		crow(32, d("vendor", "cdn-a", "province", "beijing", "isp", "telecom"), u, 200, s, 12),
		crow(32, d("vendor", "cdn-b", "province", "beijing", "isp", "telecom"), u, 100, s, 8),
		crow(32, d("vendor", "cdn-a", "province", "guangdong", "isp", "telecom"), u, 200, s, 10),
		crow(32, d("vendor", "cdn-a", "province", "beijing", "isp", "unicom"), u, 300, s, 3),
		// A finer row of another minute does not count.
		crow(31, d("vendor", "cdn-a", "province", "beijing", "isp", "unicom"), u, 300, s, 300),
	}
	dg, err := Diagnose(rs.Rules[0], Labels{}, at(30), at(32), rows)
	if err != nil {
		t.Fatal(err)
	}
	if !near(dg.Baseline, 0.035) || !near(dg.Rate, 0.1) || !near(dg.Excess, 65) {
		t.Fatalf("baseline %v rate %v excess %v, want 0.035 0.1 65", dg.Baseline, dg.Rate, dg.Excess)
	}
	want := []struct {
		group         string
		excess, share float64
	}{
		{"cdn-b guangdong telecom", 53.5, 53.5 / 72.5},
		{"cdn-b guangdong unicom", 6.5, 6.5 / 72.5},
		{"cdn-a beijing telecom", 5, 5 / 72.5},
	}
	if len(dg.Causes) != len(want) {
		t.Fatalf("causes %+v, want %d", dg.Causes, len(want))
	}
	for i, w := range want {
		c := dg.Causes[i]
		var vals []string
		for _, l := range c.Dims {
			vals = append(vals, l.Value)
		}
		if g := strings.Join(vals, " "); g != w.group || !near(c.Excess, w.excess) || !near(c.Share, w.share) {
			t.Errorf("cause %d: %s excess %v share %v, want %s %v %v", i, g, c.Excess, c.Share, w.group, w.excess, w.share)
		}
	}
	if s, w := dg.Causes[0].String(), "cdn-b × guangdong × telecom: 57 % vs 3.5 % baseline, 74 % of the excess"; s != w {
		t.Errorf("cause text %q, want %q", s, w)
	}
}

// For a below rule the excess is the missing successes, den·b − num, and
// only the alert's own group's finer rows count.
func TestDiagnoseBelow(t *testing.T) {
	rs := parse(t, `
- name: pull
  source: client
  metric: pull_connect_rate
  group_by: [vendor]
  below: 0.95
  severity: warning
`)
	p, ok := "plays", "plays_ok"
	rows := []Row{
		// baseline: 990 / 1000 = 0.99; at: 900 / 1000 → excess 990 − 900 = 90.
		crow(0, d("vendor", "cdn-a"), p, 1000, ok, 990),
		crow(0, d("vendor", "cdn-b"), p, 1000, ok, 10),
		crow(5, d("vendor", "cdn-a"), p, 1000, ok, 900),
		// 300·0.99 − 210 = 87; 700·0.99 − 690 = 3 (shares of 90: the cdn-b
		// row is another group's).
		crow(5, d("vendor", "cdn-a", "province", "guangdong", "isp", "telecom"), p, 300, ok, 210),
		crow(5, d("vendor", "cdn-a", "province", "beijing", "isp", "unicom"), p, 700, ok, 690),
		crow(5, d("vendor", "cdn-b", "province", "guangdong", "isp", "telecom"), p, 100, ok, 0),
	}
	dg, err := Diagnose(rs.Rules[0], Labels{{"vendor", "cdn-a"}}, at(1), at(5), rows)
	if err != nil {
		t.Fatal(err)
	}
	if !near(dg.Baseline, 0.99) || !near(dg.Excess, 90) || len(dg.Causes) != 2 ||
		!near(dg.Causes[0].Excess, 87) || dg.Causes[0].Dims[1].Value != "guangdong" || !near(dg.Causes[0].Share, 87.0/90) ||
		!near(dg.Causes[1].Excess, 3) || dg.Causes[1].Dims[1].Value != "beijing" {
		t.Errorf("diagnosis %+v", dg)
	}
}

func TestDiagnoseErrors(t *testing.T) {
	rs := parse(t, `
- name: users
  source: client
  metric: users
  below: 10
  severity: info
- name: total
  source: client
  metric: stutter_rate_uv
  above: 0.05
  severity: warning
`)
	if _, err := Diagnose(rs.Rules[0], Labels{}, at(0), at(1), nil); err == nil || !strings.Contains(err.Error(), "needs a rate metric") {
		t.Errorf("count metric: %v", err)
	}
	rows := []Row{crow(5, nil, "users", 10, "stutter_users", 5)}
	if _, err := Diagnose(rs.Rules[1], Labels{}, at(5), at(5), rows); err == nil || !strings.Contains(err.Error(), "no baseline") {
		t.Errorf("no baseline rows: %v", err)
	}
	rows = []Row{crow(0, nil, "users", 10, "stutter_users", 1)}
	if _, err := Diagnose(rs.Rules[1], Labels{}, at(5), at(6), rows); err == nil || !strings.Contains(err.Error(), "no row") {
		t.Errorf("no row at the minute: %v", err)
	}
	// No excess (the rate is at its baseline): no causes.
	rows = []Row{crow(0, nil, "users", 10, "stutter_users", 1), crow(6, nil, "users", 10, "stutter_users", 1),
		crow(6, d("isp", "x"), "users", 10, "stutter_users", 1)}
	dg, err := Diagnose(rs.Rules[1], Labels{}, at(5), at(6), rows)
	if err != nil || dg.Excess != 0 || len(dg.Causes) != 0 {
		t.Errorf("no excess: %+v %v", dg, err)
	}
}
