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
// 1.0.0.0-223.255.255.255 cut into ranges of 1 to 64 /24s (a few split below
// /24), half mainland (every province, the four big carriers, 20 cities per
// province), half spread over 200 foreign countries. It is made once per
// process because it takes a second or so.
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
	for ip := uint32(1 << 24); ip < 224<<24; {
		var loc Location
		if r.IntN(2) == 0 {
			loc = Location{"cn", provinces[r.IntN(len(provinces))], fmt.Sprintf("city%d", r.IntN(20)), isps[r.IntN(4)]}
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
		n := uint32(1 + r.IntN(64))
		last := min(ip+n*256-1, 224<<24-1)
		if err := add(ip, last, loc); err != nil {
			return nil, err
		}
		ip = last + 1
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
func populatedIPs(t *Table) []netip.Addr {
	r := rand.New(rand.NewPCG(2, 2))
	ips := make([]netip.Addr, nIPs)
	for i := range ips {
		ips[i], _ = t.Sample("", "", "", r)
	}
	return ips
}

var sinkLoc Location
var sinkOK bool

// BenchmarkLookup: uniformly random IPv4 addresses over the whole space
// (cache-hostile: every lookup touches a random cache line of the 32 MiB
// array) and addresses drawn from the synthetic demo table (the hot part of
// the array stays cached, as with real traffic concentrated on populated
// blocks).
func BenchmarkLookup(b *testing.B) {
	b.Run("uniform", func(b *testing.B) {
		t := benchTable(b)
		ips := randomIPs(rand.New(rand.NewPCG(1, 1)))
		b.ReportAllocs()
		cpu := startThreadCPU(b)
		for i := 0; b.Loop(); i++ {
			sinkLoc, sinkOK = t.Lookup(ips[i&(nIPs-1)])
		}
		cpu.report(b)
	})
	b.Run("populated", func(b *testing.B) {
		t, err := Default()
		if err != nil {
			b.Fatal(err)
		}
		ips := populatedIPs(t)
		b.ReportAllocs()
		cpu := startThreadCPU(b)
		for i := 0; b.Loop(); i++ {
			sinkLoc, sinkOK = t.Lookup(ips[i&(nIPs-1)])
		}
		cpu.report(b)
	})
}

// BenchmarkLookupString parses dotted quads kept in one buffer, as ingest
// finds them in a request body, over the same two address mixes.
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
	b.Run("uniform", func(b *testing.B) {
		run(b, benchTable(b), randomIPs(rand.New(rand.NewPCG(3, 3))))
	})
	b.Run("populated", func(b *testing.B) {
		t, err := Default()
		if err != nil {
			b.Fatal(err)
		}
		run(b, t, populatedIPs(t))
	})
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
