package ipdb

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// LookupMany must answer exactly what Lookup answers, address by address,
// across chunk boundaries and for every kind of address.
func TestLookupManyAgreesWithLookup(t *testing.T) {
	tb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	var ips []netip.Addr
	for range 1000 {
		switch r.IntN(4) {
		case 0:
			ips = append(ips, addr(r.Uint32()))
		case 1:
			ip, _ := tb.Sample("", "", "", r)
			ips = append(ips, ip)
		case 2:
			ip, _ := tb.Sample("", "", "", r)
			ips = append(ips, netip.AddrFrom16(ip.As16())) // ::ffff:a.b.c.d
		default:
			var a [16]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			a[0] = 0x20
			ips = append(ips, netip.AddrFrom16(a), netip.Addr{})
		}
	}
	found := 0
	for _, n := range []int{0, 1, manyChunk - 1, manyChunk, manyChunk + 1, len(ips)} {
		locs := make([]Location, n+3)
		oks := make([]bool, n+3)
		tb.LookupMany(ips[:n], locs, oks)
		for i, ip := range ips[:n] {
			want, wok := tb.Lookup(ip)
			if locs[i] != want || oks[i] != wok {
				t.Fatalf("n=%d: %s: LookupMany says %+v %v, Lookup %+v %v", n, ip, locs[i], oks[i], want, wok)
			}
			if wok {
				found++
			}
		}
		if oks[n] || locs[n] != (Location{}) {
			t.Fatalf("n=%d: LookupMany wrote past len(ips)", n)
		}
	}
	if found == 0 {
		t.Fatal("no address was found: the comparison proves nothing")
	}
}

// BenchmarkLookupMany is BenchmarkLookup's address mixes through the batch
// call, 64 addresses per call as ingest issues them for a request; one op
// is one address.
func BenchmarkLookupMany(b *testing.B) {
	run := func(b *testing.B, t *Table, ips []netip.Addr) {
		const n = 64
		locs := make([]Location, n)
		oks := make([]bool, n)
		b.SetBytes(4)
		b.ReportAllocs()
		cpu := startThreadCPU(b)
		b.ResetTimer()
		// One op is one address, so ns/op compares with BenchmarkLookup;
		// b.N is rounded up to whole calls.
		for i := 0; i < b.N; i += n {
			off := i & (nIPs - 1)
			t.LookupMany(ips[off:off+n], locs, oks)
		}
		b.StopTimer()
		cpu.report(b)
	}
	lookupMixes(b, run)
}
