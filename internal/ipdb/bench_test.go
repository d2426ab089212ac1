package ipdb

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// fullTable builds a table shaped like a real one: the unicast space
// 1.0.0.0-223.255.255.255 cut into allocations of 16 to 16,384 /24s (/20 to
// /10, as registries hand them out), about 9 % of the space mainland China
// (≈1.3 M /24s, APNIC's delegation to CN), the rest spread over 200 foreign
// countries. Inside an allocation the location changes every 1 to 64 /24s:
// a mainland allocation keeps its province and carrier most of the time and
// varies the city (20 per province), a few /24s are split below /24. It is
// made once per process because it takes a second or so.
var fullTable = sync.OnceValues(func() (*Table, error) {
	r := rand.New(rand.NewPCG(42, 42))
	provinces := Provinces()
	isps := []string{"telecom", "unicom", "mobile", "cernet"}
	b := NewBuilder("benchmark")
	line := 0
	add := func(first, last uint32, loc Location) error {
		line++
		return b.Add(Range{First: addr(first), Last: addr(last), Location: loc, Line: line})
	}
	const end = 224 << 24
	for ip := uint32(1 << 24); ip < end; {
		alloc := uint32(16) << r.IntN(11)  // /24s in this allocation
		allocEnd := min(ip+alloc*256, end) // exclusive
		cn := r.IntN(100) < 9
		prov, isp := provinces[r.IntN(len(provinces))], isps[r.IntN(4)]
		for ip < allocEnd {
			var loc Location
			if cn {
				if r.IntN(5) == 0 {
					prov, isp = provinces[r.IntN(len(provinces))], isps[r.IntN(4)]
				}
				loc = Location{"cn", prov, fmt.Sprintf("city%d", r.IntN(20)), isp}
			} else {
				loc = Location{fmt.Sprintf("c%03d", r.IntN(200)), "", "", fmt.Sprintf("isp%d", r.IntN(8))}
			}
			if r.IntN(50) == 0 { // a /24 split in two
				if err := add(ip, ip+99, loc); err != nil {
					return nil, err
				}
				loc.ISP = "other"
				if err := add(ip+100, ip+255, loc); err != nil {
					return nil, err
				}
				ip += 256
				continue
			}
			last := min(ip+uint32(1+r.IntN(64))*256, allocEnd) - 1
			if err := add(ip, last, loc); err != nil {
				return nil, err
			}
			ip = last + 1
		}
	}
	t, _, err := b.Build()
	return t, err
})

func benchTable(b *testing.B) *Table {
	b.Helper()
	t, err := fullTable()
	if err != nil {
		b.Fatal(err)
	}
	return t
}

const nIPs = 1 << 20 // 1M addresses: far more /24s than any cache holds

func randomIPs(r *rand.Rand) []netip.Addr {
	ips := make([]netip.Addr, nIPs)
	for i := range ips {
		ips[i] = addr(r.Uint32())
	}
	return ips
}

// populatedIPs draws addresses from the table's known blocks.
func populatedIPs(t *Table) []netip.Addr { return sampleIPs(t, "") }

// sampleIPs draws addresses uniformly from the /24s of country ("" = any
// known block).
func sampleIPs(t *Table, country string) []netip.Addr {
	r := rand.New(rand.NewPCG(2, 2))
	ips := make([]netip.Addr, nIPs)
	for i := range ips {
		ips[i], _ = t.Sample(country, "", "", r)
	}
	return ips
}

// mainlandIPs is the audience of a mainland platform at its most spread
// out: every mainland /24 of the full table equally likely.
func mainlandIPs(b *testing.B) (*Table, []netip.Addr) {
	t := benchTable(b)
	return t, sampleIPs(t, "cn")
}

var sinkLoc Location
var sinkOK bool

// lookupMixes are the address mixes every lookup benchmark runs:
//   - uniform: random IPv4 addresses over the whole space of the full table.
//     Cache-hostile: every lookup touches a random cache line of the 32 MiB
//     array, so one lookup costs one memory latency. No real audience looks
//     like this; it is the worst case.
//   - mainland: every mainland /24 of the full table equally likely, the
//     audience of a mainland platform at its most spread out: ≈1.2 M /24s,
//     whose codes lie in the ≈2.5 MiB of the array that the registries'
//     contiguous allocations cover.
//   - populated: the known blocks of the shipped synthetic table (the demo's
//     and tests'), a small hot working set.
func lookupMixes(b *testing.B, run func(b *testing.B, t *Table, ips []netip.Addr)) {
	b.Run("uniform", func(b *testing.B) {
		run(b, benchTable(b), randomIPs(rand.New(rand.NewPCG(1, 1))))
	})
	b.Run("mainland", func(b *testing.B) {
		t, ips := mainlandIPs(b)
		run(b, t, ips)
	})
	b.Run("populated", func(b *testing.B) {
		t, err := Default()
		if err != nil {
			b.Fatal(err)
		}
		run(b, t, populatedIPs(t))
	})
}

// BenchmarkLookup is one Lookup at a time, each waiting for its own memory
// access; BenchmarkLookupMany is the batch call ingest uses.
func BenchmarkLookup(b *testing.B) {
	lookupMixes(b, func(b *testing.B, t *Table, ips []netip.Addr) {
		b.ReportAllocs()
		cpu := startThreadCPU(b)
		for i := 0; b.Loop(); i++ {
			sinkLoc, sinkOK = t.Lookup(ips[i&(nIPs-1)])
		}
		cpu.report(b)
	})
}

// BenchmarkLookupString parses dotted quads kept in one buffer, as ingest
// finds them in a request body, over the same address mixes.
func BenchmarkLookupString(b *testing.B) {
	run := func(b *testing.B, t *Table, ips []netip.Addr) {
		var buf strings.Builder
		offs := make([]int, len(ips)+1)
		for i, ip := range ips {
			buf.WriteString(ip.String())
			offs[i+1] = buf.Len()
		}
		all := buf.String()
		strs := make([]string, len(ips))
		for i := range strs {
			strs[i] = all[offs[i]:offs[i+1]]
		}
		b.ReportAllocs()
		cpu := startThreadCPU(b)
		for i := 0; b.Loop(); i++ {
			sinkLoc, sinkOK = t.LookupString(strs[i&(nIPs-1)])
		}
		cpu.report(b)
	}
	lookupMixes(b, run)
}

func BenchmarkLoad(b *testing.B) {
	for _, name := range []string{"full", "synthetic"} {
		b.Run(name, func(b *testing.B) {
			var t *Table
			var err error
			if name == "full" {
				t, err = fullTable()
			} else {
				t, err = Default()
			}
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if err := t.Write(&buf, true); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(tableBytes)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := LoadBytes(buf.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "file-bytes")
		})
	}
}

// BenchmarkWrite is the cost of compressing a realistic table (ipdb build).
func BenchmarkWrite(b *testing.B) {
	t := benchTable(b)
	b.SetBytes(tableBytes)
	var n int
	for b.Loop() {
		var buf bytes.Buffer
		if err := t.Write(&buf, true); err != nil {
			b.Fatal(err)
		}
		n = buf.Len()
	}
	b.ReportMetric(float64(n), "file-bytes")
}

// BenchmarkBuildDefault is what Default costs on first use.
func BenchmarkBuildDefault(b *testing.B) {
	b.SetBytes(int64(len(syntheticCSV)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := BuildFrom(bytes.NewReader(syntheticCSV), FormatCSV, SyntheticSource); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSample(b *testing.B) {
	t, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	b.ReportAllocs()
	for b.Loop() {
		_, sinkOK = t.Sample("cn", "guangdong", "telecom", r)
	}
}

// TestFullTableShape keeps the benchmark table honest: it must be as full as
// a real one for the uniform lookup numbers to mean anything.
func TestFullTableShape(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 14M-block table (about a second); skipped with -short")
	}
	tb, err := fullTable()
	if err != nil {
		t.Fatal(err)
	}
	known := 0
	for _, c := range tb.codes {
		if c != 0 {
			known++
		}
	}
	if want := 223 << 16; known != want {
		t.Errorf("%d /24s known, want %d", known, want)
	}
	if n := len(tb.Locations()); n < 1000 {
		t.Errorf("only %d codes", n)
	}
	if !strings.HasPrefix(tb.Source(), "benchmark") {
		t.Error(tb.Source())
	}
}

// rangeSearch is the benchmark's peer of the /24 array: the classic IP
// database layout, sorted non-overlapping [start, end] ranges searched by
// binary search, as ip2region's in-memory xdb search and range-based
// MaxMind-style lookups do (ip2region's Go binding cannot be fetched here,
// so its layout is reproduced instead: 12-byte segments, a location
// dictionary). It holds exactly the table's ranges (Table.Ranges), so both
// answer the same for every address and only the search differs.
type rangeSearch struct {
	segs []rangeSeg
	locs []Location // the table's dictionary; segs index it
}

type rangeSeg struct {
	start, end uint32 // inclusive IPv4 addresses
	loc        uint16 // index in locs
}

func newRangeSearch(t *Table) *rangeSearch {
	blocks := t.Ranges()
	rs := &rangeSearch{segs: make([]rangeSeg, 0, len(blocks)), locs: t.locs}
	for _, b := range blocks {
		f, l := b.First.As4(), b.Last.As4()
		rs.segs = append(rs.segs, rangeSeg{
			start: uint32(f[0])<<24 | uint32(f[1])<<16 | uint32(f[2])<<8 | uint32(f[3]),
			end:   uint32(l[0])<<24 | uint32(l[1])<<16 | uint32(l[2])<<8 | uint32(l[3]),
			loc:   t.slot[b.Code],
		})
	}
	return rs
}

// Lookup finds the last segment starting at or before ip and checks that it
// covers ip: about log2(segments) dependent loads into a large array.
func (rs *rangeSearch) Lookup(ip netip.Addr) (Location, bool) {
	if !ip.Is4() {
		if !ip.Is4In6() {
			return Location{}, false
		}
		ip = ip.Unmap()
	}
	a := ip.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	lo, hi := 0, len(rs.segs) // first segment with start > v is in [lo, hi]
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs.segs[m].start <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || v > rs.segs[lo-1].end {
		return Location{}, false
	}
	return rs.locs[rs.segs[lo-1].loc], true
}

// checkRangeSearch fails unless the peer answers like the table for ips.
func checkRangeSearch(tb testing.TB, t *Table, rs *rangeSearch, ips []netip.Addr) {
	tb.Helper()
	for _, ip := range ips {
		wl, wok := t.Lookup(ip)
		gl, gok := rs.Lookup(ip)
		if wl != gl || wok != gok {
			tb.Fatalf("%s: range search says %+v %v, table %+v %v", ip, gl, gok, wl, wok)
		}
	}
}

// BenchmarkPeerRangeSearch is BenchmarkLookup's address mixes through
// rangeSearch over the same tables: what qoscope's O(1) /24 array saves over
// the binary search of a range database. The harness (bench/harness)
// reports the ratio of the two cpu-ns/op.
func BenchmarkPeerRangeSearch(b *testing.B) {
	run := func(b *testing.B, t *Table, ips []netip.Addr) {
		rs := newRangeSearch(t)
		checkRangeSearch(b, t, rs, ips)
		b.ReportAllocs()
		cpu := startThreadCPU(b)
		for i := 0; b.Loop(); i++ {
			sinkLoc, sinkOK = rs.Lookup(ips[i&(nIPs-1)])
		}
		cpu.report(b)
		// After the loop: b.Loop's first call deletes reported metrics.
		b.ReportMetric(float64(len(rs.segs)), "ranges")
	}
	lookupMixes(b, run)
}

// The peer must answer like the table, or its timings compare nothing.
func TestRangeSearchAgreesWithTable(t *testing.T) {
	tb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	rs := newRangeSearch(tb)
	if len(rs.segs) == 0 {
		t.Fatal("no ranges")
	}
	r := rand.New(rand.NewPCG(5, 5))
	ips := make([]netip.Addr, 0, 200_000)
	for range 100_000 {
		ips = append(ips, addr(r.Uint32()))
		ip, _ := tb.Sample("", "", "", r)
		ips = append(ips, ip)
	}
	// Segment edges, where an off-by-one would show.
	for _, s := range rs.segs[:min(len(rs.segs), 1000)] {
		ips = append(ips, addr(s.start), addr(s.end), addr(s.start-1), addr(s.end+1))
	}
	ips = append(ips, addr(0), addr(^uint32(0)), netip.MustParseAddr("::ffff:1.2.3.4"), netip.MustParseAddr("2001:db8::1"))
	checkRangeSearch(t, tb, rs, ips)
}
