package steer

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/qoscope/qoscope/score"
)

var testAt = time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC)

// vr is one vendor of a test region: name, ratio, blacklisted.
type vr struct {
	v     string
	ratio float64
	black bool
}

func region(province, isp string, demand float64, vs ...vr) score.Region {
	r := score.Region{Province: province, ISP: isp, DemandMbps: demand}
	for _, v := range vs {
		r.Vendors = append(r.Vendors, score.VendorScore{Vendor: v.v, Ratio: v.ratio, Blacklisted: v.black, Level: score.LevelProvinceISP})
	}
	return r
}

func table(regions ...score.Region) *score.Table {
	return &score.Table{At: testAt, Regions: regions}
}

// SplitMix64 seeded with 0 first outputs mix(0x9e3779b97f4a7c15) =
// 0xe220a8397b1dcdaf (the reference implementation's first value).
func TestMixIsSplitMix64(t *testing.T) {
	if got := mix(0x9e3779b97f4a7c15); got != 0xe220a8397b1dcdaf {
		t.Fatalf("mix = %#x", got)
	}
}

// With one weighted vendor, one at ratio 0 and one blacklisted, the order
// is fixed whatever the session: the manifests are written out by hand.
func TestManifestsByHand(t *testing.T) {
	s := Compile(table(region("guangdong", "telecom", 100,
		vr{"cdn-a", 1, false}, vr{"cdn-b", 0, false}, vr{"cdn-c", 0, true})), Pathways{"cdn-a": "alpha", "cdn-b": "beta", "cdn-c": "gamma"})
	for _, c := range []struct {
		req  Request
		want string
		lvl  Level
	}{
		{Request{Kind: HLS, TTL: 300, Session: "s1", Province: "guangdong", ISP: "telecom"},
			`{"VERSION":1,"TTL":300,"RELOAD-URI":"hls?session=s1&province=guangdong&isp=telecom","PATHWAY-PRIORITY":["alpha","beta","gamma"]}`, LevelRegion},
		{Request{Kind: DASH, TTL: 60, Session: "Ab-9._~", Province: "guangdong", ISP: "telecom"},
			`{"VERSION":1,"TTL":60,"RELOAD-URI":"dash?session=Ab-9._~&province=guangdong&isp=telecom","SERVICE-LOCATION-PRIORITY":["alpha","beta","gamma"]}`, LevelRegion},
		// Not in the table: the country order (cdn-a has all the traffic,
		// cdn-b is eligible at 0, cdn-c is blacklisted in every region);
		// the region is only pinned when it came from the query.
		{Request{Kind: HLS, TTL: 300, Session: "s1", Province: "beijing", ISP: "unicom"},
			`{"VERSION":1,"TTL":300,"RELOAD-URI":"hls?session=s1","PATHWAY-PRIORITY":["alpha","beta","gamma"]}`, LevelCountry},
		{Request{Kind: HLS, TTL: 300, Session: "s1", Province: "beijing", ISP: "unicom", Pin: true},
			`{"VERSION":1,"TTL":300,"RELOAD-URI":"hls?session=s1&province=beijing&isp=unicom","PATHWAY-PRIORITY":["alpha","beta","gamma"]}`, LevelCountry},
		{Request{Kind: DASH, TTL: 300, Session: "x"},
			`{"VERSION":1,"TTL":300,"RELOAD-URI":"dash?session=x","SERVICE-LOCATION-PRIORITY":["alpha","beta","gamma"]}`, LevelCountry},
	} {
		got, lvl := s.AppendManifest(nil, &c.req)
		if string(got) != c.want || lvl != c.lvl {
			t.Errorf("%+v:\n got %s (%s)\nwant %s (%s)", c.req, got, lvl, c.want, c.lvl)
		}
	}
}

// Region names that are not URL-safe are escaped once, at Compile.
func TestReloadURIEscapesTableNames(t *testing.T) {
	s := Compile(table(region("são paulo", "a&b", 1, vr{"x", 1, false})), nil)
	got, _ := s.AppendManifest(nil, &Request{Kind: HLS, TTL: 5, Session: "s", Province: "são paulo", ISP: "a&b"})
	want := `{"VERSION":1,"TTL":5,"RELOAD-URI":"hls?session=s&province=s%C3%A3o+paulo&isp=a%26b","PATHWAY-PRIORITY":["x"]}`
	if string(got) != want {
		t.Fatalf("got %s", got)
	}
}

// Country weights: Σ demand × ratio. guangdong/telecom (100 Mbps): a 0.75,
// b 0.25, c 0; beijing/unicom (300 Mbps): a blacklisted, b 1, c 0. So a =
// 75, b = 25 + 300 = 325; c has ratio 0 everywhere but is blacklisted
// nowhere: the zero group. Without demand, the mean of the ratios (sums
// 0.75 and 1.25).
func TestCountryWeights(t *testing.T) {
	regs := []score.Region{
		region("guangdong", "telecom", 100, vr{"a", 0.75, false}, vr{"b", 0.25, false}, vr{"c", 0, false}),
		region("beijing", "unicom", 300, vr{"a", 0, true}, vr{"b", 1, false}, vr{"c", 0, false}),
	}
	check := func(s *Snapshot, wa, wb float64) {
		t.Helper()
		c := s.country
		if len(c.weighted) != 2 || len(c.zero) != 1 || len(c.black) != 0 {
			t.Fatalf("country order %+v", c)
		}
		got := map[string]float64{}
		for _, x := range c.weighted {
			got[s.paths[x.path].id] = 1 / x.invW
		}
		if math.Abs(got["a"]-wa) > 1e-9 || math.Abs(got["b"]-wb) > 1e-9 || s.paths[c.zero[0].path].id != "c" {
			t.Fatalf("country weights %v, zero %v", got, c.zero)
		}
	}
	check(Compile(table(regs...), nil), 75, 325)
	regs[0].DemandMbps, regs[1].DemandMbps = 0, 0
	check(Compile(table(regs...), nil), 0.75, 1.25)
}

func TestCompileLeavesOutVendorsWithoutPathway(t *testing.T) {
	tb := table(region("guangdong", "telecom", 1, vr{"a", 0.5, false}, vr{"b b", 0.5, false}))
	s := Compile(tb, nil)
	if got := s.Vendors(); len(got) != 1 || got[0] != "a" || len(s.Warnings) != 1 {
		t.Fatalf("vendors %v, warnings %v", got, s.Warnings)
	}
	s = Compile(tb, Pathways{"b b": "b"})
	if got := s.Vendors(); len(got) != 1 || got[0] != "b b" || len(s.Warnings) != 1 {
		t.Fatalf("vendors %v, warnings %v", got, s.Warnings)
	}
	p, _ := s.Priority(nil, "guangdong", "telecom", "s")
	if len(p) != 1 || p[0] != "b" {
		t.Fatalf("priority %v", p)
	}
}

// The draw is weighted sampling without replacement. Over 200,000
// sessions (deterministic ids), the first pathway is each vendor in
// proportion to its ratio, and the second follows the successive-sampling
// law P(second = j) = Σ_{i≠j} p_i p_j / (1 − p_i), computed by hand for
// p = (0.5, 0.3, 0.15, 0.05):
//
//	a: 0.3·0.5/0.7 + 0.15·0.5/0.85 + 0.05·0.5/0.95 = 0.3288368
//	b: 0.5·0.3/0.5 + 0.15·0.3/0.85 + 0.05·0.3/0.95 = 0.3687307
//	c: 0.5·0.15/0.5 + 0.3·0.15/0.7 + 0.05·0.15/0.95 = 0.2221804
//	d: 0.5·0.05/0.5 + 0.3·0.05/0.7 + 0.15·0.05/0.85 = 0.0802521
//
// The bound 0.006 is over 5 standard deviations of a share at n = 200,000
// (√(0.25/200000) = 0.0011). The zero-ratio vendor e and the blacklisted f
// always come 5th and 6th.
func TestDrawFollowsRatios(t *testing.T) {
	s := Compile(table(region("guangdong", "telecom", 1,
		vr{"a", 0.5, false}, vr{"b", 0.3, false}, vr{"c", 0.15, false}, vr{"d", 0.05, false}, vr{"e", 0, false}, vr{"f", 0, true})), nil)
	const n = 200_000
	first, second := map[string]int{}, map[string]int{}
	var buf []string
	for i := range n {
		var lvl Level
		buf, lvl = s.Priority(buf[:0], "guangdong", "telecom", fmt.Sprintf("session-%d", i))
		if lvl != LevelRegion || len(buf) != 6 || buf[4] != "e" || buf[5] != "f" {
			t.Fatalf("order %v (%s)", buf, lvl)
		}
		first[buf[0]]++
		second[buf[1]]++
	}
	for v, want := range map[string]float64{"a": 0.5, "b": 0.3, "c": 0.15, "d": 0.05} {
		if got := float64(first[v]) / n; math.Abs(got-want) > 0.006 {
			t.Errorf("first = %s in %.4f of sessions, want %.4f", v, got, want)
		}
	}
	for v, want := range map[string]float64{"a": 0.3288368, "b": 0.3687307, "c": 0.2221804, "d": 0.0802521} {
		if got := float64(second[v]) / n; math.Abs(got-want) > 0.006 {
			t.Errorf("second = %s in %.4f of sessions, want %.4f", v, got, want)
		}
	}
}

// A session keeps its order while the ratios stay; when they move from
// (0.5, 0.3, 0.2) to (0.45, 0.35, 0.2), the first pathway must change for
// at least 5 % of the sessions (the share b gains) and, with the
// rendezvous draw, changes for few more: at most 8 % here, where a draw
// reseeded by the ratios would re-deal about 1 − Σ p·p' = 63 %.
func TestDrawIsStickyAndMovesFewSessions(t *testing.T) {
	before := Compile(table(region("p", "i", 1, vr{"a", 0.5, false}, vr{"b", 0.3, false}, vr{"c", 0.2, false})), nil)
	same := Compile(table(region("p", "i", 1, vr{"a", 0.5, false}, vr{"b", 0.3, false}, vr{"c", 0.2, false})), nil)
	after := Compile(table(region("p", "i", 1, vr{"a", 0.45, false}, vr{"b", 0.35, false}, vr{"c", 0.2, false})), nil)
	const n = 100_000
	moved := 0
	for i := range n {
		sess := fmt.Sprintf("s%d", i)
		x, _ := before.Priority(nil, "p", "i", sess)
		y, _ := same.Priority(nil, "p", "i", sess)
		z, _ := after.Priority(nil, "p", "i", sess)
		if fmt.Sprint(x) != fmt.Sprint(y) {
			t.Fatalf("session %s: %v then %v with the same ratios", sess, x, y)
		}
		if x[0] != z[0] {
			moved++
		}
	}
	t.Logf("first pathway changed for %.4f of sessions", float64(moved)/n)
	if f := float64(moved) / n; f < 0.05-0.005 || f > 0.08 {
		t.Fatalf("first pathway changed for %.4f of sessions", f)
	}
}
