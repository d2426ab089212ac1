package alert

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

// stutterRule is a client rule on stutter_rate_uv per vendor × province ×
// isp, above 0.08, min_users 25, with the given for, keep_firing_for and
// extra keys.
func stutterRule(t *testing.T, forDur, keep string, extra ...string) *Rules {
	return parse(t, fmt.Sprintf(`
- name: stutter
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  above: 0.08
  min_users: 25
  for: %s
  keep_firing_for: %s
  severity: critical
  labels: {team: cdn}
%s`, forDur, keep, strings.Join(extra, "\n")))
}

// grp is a client row of cdn-b × guangdong × telecom (or vendor v) at
// minute min with users and the stutter rate rate (nil: null).
func grp(min int, vendor string, users float64, rate *float64) Row {
	r := Row{Minute: at(min), Source: "client",
		Dims:    Labels{{"vendor", vendor}, {"province", "guangdong"}, {"isp", "telecom"}},
		Metrics: map[string]Value{"users": {users, true}, "stutter_rate_uv": {}}}
	if rate != nil {
		r.Metrics["stutter_rate_uv"] = Value{*rate, true}
	}
	return r
}

func f(v float64) *float64 { return &v }

// minute is one minute's input: rate nil = null; users 0 with rate nil and
// missing true = no row.
type minute struct {
	users   float64
	rate    *float64
	missing bool
}

// run evaluates one group (cdn-b) over consecutive minutes from 0 and
// returns the changes as "minute:state".
func run(t *testing.T, rs *Rules, ms []minute) []string {
	t.Helper()
	e, err := NewEvaluator(rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, m := range ms {
		var rows []Row
		if !m.missing {
			rows = append(rows, grp(i, "cdn-b", m.users, m.rate))
		}
		cs, err := e.Step(at(i), rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			got = append(got, fmt.Sprintf("%d:%s", int(c.At.Sub(t0)/time.Minute), c.State))
		}
	}
	return got
}

var (
	hi   = minute{users: 50, rate: f(0.2)}
	lo   = minute{users: 50, rate: f(0.02)}
	none = minute{missing: true}
)

func TestTransitions(t *testing.T) {
	cases := []struct {
		name      string
		for_, kff string
		minutes   []minute
		want      []string
	}{
		{"for 0 fires at the first minute it holds, resolves at the first it does not", "0", "0",
			[]minute{lo, hi, hi, lo, lo}, []string{"1:firing", "3:resolved"}},
		{"for 2m needs three consecutive minutes", "2m", "0",
			[]minute{hi, hi, hi, hi, lo}, []string{"0:pending", "2:firing", "4:resolved"}},
		{"for 2m: two minutes are not enough, pending goes back to inactive", "2m", "0",
			[]minute{hi, hi, lo, hi, hi, hi}, []string{"0:pending", "2:inactive", "3:pending", "5:firing"}},
		{"for 1h: pending for an hour is still pending", "1h", "0",
			[]minute{hi, hi, hi}, []string{"0:pending"}},
		{"exactly at the threshold does not hold (strictly above)", "0", "0",
			[]minute{{users: 50, rate: f(0.08)}}, nil},
		{"keep_firing_for 2m resolves at f+K when it held at none of f..f+K", "0", "2m",
			[]minute{hi, lo, lo, lo, lo}, []string{"0:firing", "3:resolved"}},
		{"keep_firing_for 2m: holding again inside the window keeps it firing", "0", "2m",
			[]minute{hi, lo, hi, lo, lo, lo}, []string{"0:firing", "5:resolved"}},
		{"keep_firing_for 2m: holding at f+K itself keeps it firing", "0", "2m",
			[]minute{hi, lo, lo, hi, lo, lo, lo}, []string{"0:firing", "6:resolved"}},
		{"keep_firing_for does not apply to pending", "2m", "5m",
			[]minute{hi, hi, lo}, []string{"0:pending", "2:inactive"}},
		{"min_users: 24 users do not hold, 25 do", "0", "0",
			[]minute{{users: 24, rate: f(0.5)}, {users: 25, rate: f(0.5)}}, []string{"1:firing"}},
		{"a null value does not hold and resolves", "0", "0",
			[]minute{{users: 50, rate: nil}, hi, {users: 50, rate: nil}}, []string{"1:firing", "2:resolved"}},
		{"a missing row does not hold and resolves", "0", "0",
			[]minute{hi, none, hi}, []string{"0:firing", "1:resolved", "2:firing"}},
		{"a missing row breaks a pending for", "2m", "0",
			[]minute{hi, hi, none, hi}, []string{"0:pending", "2:inactive", "3:pending"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, stutterRule(t, c.for_, c.kff), c.minutes)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("changes %v, want %v", got, c.want)
			}
		})
	}
}

func TestBelow(t *testing.T) {
	rs := parse(t, `
- name: pull
  source: client
  metric: pull_connect_rate
  group_by: [vendor]
  below: 0.95
  min_users: 10
  severity: warning
`)
	e, _ := NewEvaluator(rs, nil)
	row := func(min int, rate float64) Row {
		return Row{Minute: at(min), Source: "client", Dims: Labels{{"vendor", "cdn-a"}},
			Metrics: map[string]Value{"users": {100, true}, "pull_connect_rate": {rate, true}}}
	}
	var got []string
	for i, v := range []float64{0.99, 0.95, 0.9, 0.96} {
		cs, _ := e.Step(at(i), []Row{row(i, v)})
		for _, c := range cs {
			got = append(got, fmt.Sprintf("%d:%s:%v", i, c.State, *c.Value))
		}
	}
	if want := []string{"2:firing:0.9", "3:resolved:0.96"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}

// The rows a rule evaluates are those of its source and grouping set that
// pass its filter; others are ignored.
func TestRowSelection(t *testing.T) {
	rs := stutterRule(t, "0", "0", "  filter: {vendor: cdn-b}")
	e, _ := NewEvaluator(rs, nil)
	other := grp(0, "cdn-a", 50, f(0.5)) // filtered out
	cdn := grp(0, "cdn-b", 50, f(0.5))   // wrong source
	cdn.Source = "cdn"
	coarse := Row{Minute: at(0), Source: "client", Dims: Labels{{"province", "guangdong"}, {"isp", "telecom"}},
		Metrics: map[string]Value{"users": {50, true}, "stutter_rate_uv": {0.5, true}}} // other set
	cs, err := e.Step(at(0), []Row{other, cdn, coarse})
	if err != nil || len(cs) != 0 {
		t.Fatalf("changes %+v (%v), want none", cs, err)
	}
	// Dims in another order are the same set and group.
	mine := grp(1, "cdn-b", 50, f(0.5))
	mine.Dims = Labels{{"isp", "telecom"}, {"vendor", "cdn-b"}, {"province", "guangdong"}}
	cs, _ = e.Step(at(1), []Row{mine})
	if len(cs) != 1 || cs[0].State != StateFiring {
		t.Fatalf("changes %+v, want one firing", cs)
	}
	// Labels: dimensions in the set's order, severity, the rule's labels.
	want := Labels{{"vendor", "cdn-b"}, {"province", "guangdong"}, {"isp", "telecom"}, {"severity", "critical"}, {"team", "cdn"}}
	if !reflect.DeepEqual(cs[0].Labels, want) {
		t.Errorf("labels %v, want %v", cs[0].Labels, want)
	}
}

func TestCompare(t *testing.T) {
	rs := parse(t, `
- name: drop
  source: client
  metric: users
  group_by: [province]
  compare: {offset: 1d, below_ratio: 0.7}
  min_users: 10
  severity: warning
`)
	const day = 24 * 60
	row := func(min int, prov string, users float64) Row {
		return Row{Minute: at(min), Source: "client", Dims: Labels{{"province", prov}}, Metrics: map[string]Value{"users": {users, true}}}
	}
	e, _ := NewEvaluator(rs, nil)
	steps := []struct {
		min  int
		rows []Row
	}{
		// Yesterday: guangdong 100, beijing 5 (below min_users), hebei 0 users... no
		// row at all for shanghai, and zhejiang 100.
		{0, []Row{row(0, "guangdong", 100), row(0, "beijing", 5), row(0, "zhejiang", 100)}},
		{1, []Row{row(1, "guangdong", 100), row(1, "zhejiang", 100)}},
		// Today: guangdong 60 (0.6 < 0.7: holds), beijing 1 (baseline below
		// the floor), shanghai 1000 → 20 (no baseline row), zhejiang 70
		// (0.7 is not strictly below).
		{day, []Row{row(day, "guangdong", 60), row(day, "beijing", 1), row(day, "shanghai", 20), row(day, "zhejiang", 70)}},
		// Next minute: guangdong 69 (0.69 holds), then the baseline minute day+2 has no row.
		{day + 1, []Row{row(day+1, "guangdong", 69)}},
		{day + 2, []Row{row(day+2, "guangdong", 10)}},
	}
	var got []string
	for _, s := range steps {
		cs, err := e.Step(at(s.min), s.rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			p, _ := c.Labels.Get("province")
			got = append(got, fmt.Sprintf("%d:%s:%s", s.min-day, p, c.State))
		}
	}
	want := []string{"0:guangdong:firing", "2:guangdong:resolved"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}

func TestCompareZeroBaseline(t *testing.T) {
	rs := parse(t, `
- name: errors-up
  source: cdn
  metric: errors_5xx_rate
  group_by: [vendor]
  compare: {offset: 1d, above_ratio: 2}
  severity: warning
`)
	row := func(min int, rate float64) Row {
		return Row{Minute: at(min), Source: "cdn", Dims: Labels{{"vendor", "v"}}, Metrics: map[string]Value{"requests": {1000, true}, "errors_5xx_rate": {rate, true}}}
	}
	e, _ := NewEvaluator(rs, nil)
	var got []string
	for _, r := range []Row{row(0, 0), row(1, 0.01), row(1440, 0.5), row(1441, 0.03), row(1442, 0.5)} {
		cs, _ := e.Step(r.Minute, []Row{r})
		for _, c := range cs {
			got = append(got, fmt.Sprintf("%d:%s", int(c.At.Sub(t0)/time.Minute), c.State))
		}
	}
	// 1440: 0.5 over a zero baseline is no ratio; 1441: 0.03 / 0.01 = 3 > 2;
	// 1442: the baseline minute 2 has no row.
	if want := []string{"1441:firing", "1442:resolved"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}

func TestStepErrors(t *testing.T) {
	e, _ := NewEvaluator(stutterRule(t, "0", "0"), nil)
	if _, err := e.Step(at(1), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Step(at(1), nil); err == nil || !strings.Contains(err.Error(), "already evaluated") {
		t.Errorf("same minute twice: %v", err)
	}
	if _, err := e.Step(at(3).Add(time.Second), nil); err == nil || !strings.Contains(err.Error(), "not the start of a minute") {
		t.Errorf("not a minute: %v", err)
	}
	if _, err := e.Step(at(3), []Row{grp(2, "cdn-b", 50, f(0.5))}); err == nil || !strings.Contains(err.Error(), "row of minute") {
		t.Errorf("row of another minute: %v", err)
	}
	// Two rows of one group (partitions not summed) are refused, and the
	// minute can then be given again.
	if _, err := e.Step(at(3), []Row{grp(3, "cdn-b", 50, f(0.5)), grp(3, "cdn-b", 50, f(0.01))}); err == nil ||
		!strings.Contains(err.Error(), "two client rows for the group") {
		t.Errorf("two rows of a group: %v", err)
	}
	if cs, err := e.Step(at(3), []Row{grp(3, "cdn-b", 50, f(0.5))}); err != nil || len(cs) != 1 || cs[0].State != StateFiring {
		t.Errorf("minute 3 after the refused rows: %+v %v", cs, err)
	}
}

// A restarted evaluator given the saved state neither re-fires a firing
// alert nor forgets a pending for.
func TestStateRoundTrip(t *testing.T) {
	rs := parse(t, `
- name: stutter
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  above: 0.08
  for: 2m
  keep_firing_for: 1m
  severity: critical
`)
	e, _ := NewEvaluator(rs, nil)
	// cdn-a: firing since minute 0 (pending at -2); cdn-b: pending since minute 1.
	for i := -2; i <= 2; i++ {
		rows := []Row{grp(i, "cdn-a", 50, f(0.5))}
		if i >= 1 {
			rows = append(rows, grp(i, "cdn-b", 50, f(0.5)))
		}
		if _, err := e.Step(at(i), rows); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(e.State())
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, e.State()) {
		t.Fatalf("state after JSON\n%+v\nwant\n%+v", st, e.State())
	}
	if len(st.Alerts) != 2 || st.Evaluated != at(2) {
		t.Fatalf("state %s: want two alerts, evaluated at minute 2", b)
	}
	e2, err := NewEvaluator(rs, &st)
	if err != nil {
		t.Fatal(err)
	}
	// Minute 3: both hold. cdn-a stays firing (no change), cdn-b has held
	// at 1, 2, 3: firing.
	cs, err := e2.Step(at(3), []Row{grp(3, "cdn-a", 50, f(0.5)), grp(3, "cdn-b", 50, f(0.5))})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].State != StateFiring || cs[0].Labels[0].Value != "cdn-b" || cs[0].At != at(3) {
		t.Fatalf("after restart %+v, want cdn-b firing at minute 3 only", cs)
	}
	// keep_firing_for survives too: cdn-a last held at 3, so it resolves at 5.
	cs, _ = e2.Step(at(4), []Row{grp(4, "cdn-b", 50, f(0.5))})
	if len(cs) != 0 {
		t.Fatalf("minute 4: %+v, want none", cs)
	}
	b, _ = json.Marshal(e2.State())
	var st2 State
	_ = json.Unmarshal(b, &st2)
	e3, _ := NewEvaluator(rs, &st2)
	cs, _ = e3.Step(at(5), []Row{grp(5, "cdn-b", 50, f(0.5))})
	if len(cs) != 1 || cs[0].State != StateResolved || cs[0].Labels[0].Value != "cdn-a" {
		t.Fatalf("minute 5: %+v, want cdn-a resolved", cs)
	}
	// A repeated minute is refused after a restart too.
	if _, err := e3.Step(at(5), nil); err == nil {
		t.Error("minute 5 accepted twice")
	}
}

// Alerts of a rule that was removed or whose labels changed are dropped on
// restore: they are other alerts now.
func TestStateDropsChangedRules(t *testing.T) {
	rs := stutterRule(t, "2m", "0")
	e, _ := NewEvaluator(rs, nil)
	e.Step(at(0), []Row{grp(0, "cdn-b", 50, f(0.5))})
	st := e.State()
	if len(st.Alerts) != 1 {
		t.Fatalf("%d alerts, want 1 pending", len(st.Alerts))
	}
	changed := parse(t, `
- name: stutter
  source: client
  metric: stutter_rate_uv
  group_by: [vendor, province, isp]
  above: 0.08
  severity: warning
  labels: {team: cdn}
`)
	e2, _ := NewEvaluator(changed, &st)
	if n := len(e2.State().Alerts); n != 0 {
		t.Errorf("%d alerts restored for a rule with another severity, want 0", n)
	}
	st.Version = 99
	if _, err := NewEvaluator(rs, &st); err == nil {
		t.Error("state of an unknown version accepted")
	}
}

// Fingerprint is the documented hash: xxHash64 of the rule name, 0xff, then
// each label (sorted by name) as name 0xff value 0xff, in hex.
func TestFingerprint(t *testing.T) {
	ls := Labels{{"vendor", "cdn-b"}, {"province", "guangdong"}, {"severity", "critical"}}
	want := fmt.Sprintf("%016x", xxhash.Sum64String("r\xffprovince\xffguangdong\xffseverity\xffcritical\xffvendor\xffcdn-b\xff"))
	if got := Fingerprint("r", ls); got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}
	if Fingerprint("r", ls) == Fingerprint("s", ls) {
		t.Error("rule name not in the fingerprint")
	}
	// The labels' order does not matter; where a value ends does.
	rev := Labels{ls[2], ls[0], ls[1]}
	if Fingerprint("r", rev) != want {
		t.Error("fingerprint depends on the labels' order")
	}
	if Fingerprint("r", Labels{{"a", "bc"}, {"d", ""}}) == Fingerprint("r", Labels{{"a", "b"}, {"cd", ""}}) {
		t.Error("label boundaries not in the fingerprint")
	}
}

// value is null when the metric is null, users when the group has no row.
func TestChangeValues(t *testing.T) {
	e, _ := NewEvaluator(stutterRule(t, "0", "0"), nil)
	cs, _ := e.Step(at(0), []Row{grp(0, "cdn-b", 50, f(0.25))})
	if len(cs) != 1 || *cs[0].Value != 0.25 || *cs[0].Users != 50 {
		t.Fatalf("firing %+v", cs)
	}
	cs, _ = e.Step(at(1), []Row{grp(1, "cdn-b", 40, nil)})
	if len(cs) != 1 || cs[0].State != StateResolved || cs[0].Value != nil || cs[0].Users == nil || *cs[0].Users != 40 {
		t.Fatalf("resolved on a null value %+v", cs)
	}
	b, _ := json.Marshal(cs[0])
	if !strings.Contains(string(b), `"value":null,"users":40}`) || !strings.HasPrefix(string(b), `{"at":"2026-11-20T12:01:00Z","rule":"stutter","fingerprint":"`) {
		t.Errorf("line %s", b)
	}
}

// A rule with volume floors its own denominator: a push drop rate of 1/2
// (two ends, one dropped) among 500 viewers does not hold with volume
// push_ends and min_users 20; 3 drops of 25 ends do. Users and the value
// reported are the volume and the rate.
func TestVolumeFloor(t *testing.T) {
	rs := parse(t, `
- name: drops
  source: client
  metric: push_drop_rate
  group_by: []
  above: 0.05
  volume: push_ends
  min_users: 20
  severity: critical
`)
	e, _ := NewEvaluator(rs, nil)
	row := func(min int, ends, rate float64) Row {
		return Row{Minute: at(min), Source: "client", Dims: Labels{},
			Metrics: map[string]Value{"users": {500, true}, "push_ends": {ends, true}, "push_drop_rate": {rate, true}}}
	}
	var got []string
	for i, r := range []Row{row(0, 2, 0.5), row(1, 25, 0.12), row(2, 25, 0.04)} {
		cs, err := e.Step(at(i), []Row{r})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			got = append(got, fmt.Sprintf("%d:%s:%v:%d", i, c.State, *c.Value, *c.Users))
		}
	}
	if want := []string{"1:firing:0.12:25", "2:resolved:0.04:25"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}
