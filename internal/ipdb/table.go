package ipdb

import (
	"net/netip"
	"sync"
)

// Blocks is the number of /24 blocks in IPv4: the length of the code array.
const Blocks = 1 << 24

// Location is what a lookup returns. A field is "" when unknown. The strings
// come from the table's dictionary: a lookup never allocates.
type Location struct {
	Country  string // ISO 3166-1 alpha-2, lowercase, for tables built from ISO codes ("cn", "us")
	Province string // mainland and HK/MO/TW: canonical pinyin ("guangdong", "hongkong")
	City     string // as given by the source of the table
	ISP      string // mainland: one of ISPNames ("telecom"); elsewhere as given
}

// Table is an immutable IPv4 /24 → location table. It is safe for concurrent
// use.
type Table struct {
	codes *[Blocks]Code
	// slot maps a code to its index in locs; slot[0] = 0 and locs[0] is the
	// empty Location, so an unknown code costs no branch in the hot path.
	slot   *[1 << 16]uint16
	locs   []Location
	codeOf []Code // codeOf[i] is the code of locs[i]
	source string

	release func() error // unmaps a mapped file; nil otherwise

	samplers sync.Map // samplerKey → *sampler, built on demand by Sample
	runsOnce sync.Once
	runs     []run
}

// Source is the free-text description stored in the table file (where the
// data came from; the shipped table says it is synthetic).
func (t *Table) Source() string { return t.source }

// Close releases a memory-mapped table. It is a no-op for tables held in
// memory. The table must not be used after Close.
func (t *Table) Close() error {
	if t.release == nil {
		return nil
	}
	err := t.release()
	t.release = nil
	t.codes = nil
	return err
}

// block returns the /24 index of ip, or false for anything but IPv4 and
// IPv4-mapped IPv6.
func block(ip netip.Addr) (uint32, bool) {
	if !ip.Is4() {
		if !ip.Is4In6() {
			return 0, false
		}
		ip = ip.Unmap()
	}
	a := ip.As4()
	return uint32(a[0])<<16 | uint32(a[1])<<8 | uint32(a[2]), true
}

// Code returns the code of ip's /24, 0 if unknown. IPv6 addresses other than
// IPv4-mapped ones are unknown: the table covers IPv4 only.
func (t *Table) Code(ip netip.Addr) Code {
	b, ok := block(ip)
	if !ok {
		return 0
	}
	return t.codes[b&(Blocks-1)]
}

// Lookup returns the location of ip's /24. ok is false when the table has no
// data for it, and for IPv6 addresses other than IPv4-mapped ones (::ffff:a.b.c.d
// is looked up as a.b.c.d).
//
// Lookup is small enough to be inlined, so the caller copies the fields it
// uses straight from the dictionary: returning the 64-byte Location from an
// out-of-line call costs more than the lookup itself (measured with the /24
// cached: Code 6 ns, Lookup inlined 14 ns, Lookup called 22 ns). Call it
// directly rather than through a func value where it matters.
func (t *Table) Lookup(ip netip.Addr) (Location, bool) {
	i := t.locIndex(ip)
	return t.locs[i], i != 0
}

// locIndex returns the index in t.locs of ip's location, 0 when unknown.
func (t *Table) locIndex(ip netip.Addr) uint16 {
	if !ip.Is4() {
		if !ip.Is4In6() {
			return 0
		}
		ip = ip.Unmap()
	}
	a := ip.As4()
	// The mask is a no-op that lets the compiler drop the bounds check.
	return t.slot[t.codes[(uint32(a[0])<<16|uint32(a[1])<<8|uint32(a[2]))&(Blocks-1)]]
}

// LookupString parses s and looks it up. Dotted-quad IPv4 is parsed by a fast
// path; anything else goes through netip.ParseAddr, so IPv4-mapped IPv6 works
// and other IPv6 addresses are simply not found. Unparseable input is not
// found either.
func (t *Table) LookupString(s string) (Location, bool) {
	i := t.locIndexString(s)
	return t.locs[i], i != 0
}

func (t *Table) locIndexString(s string) uint16 {
	b, ok := parseBlock(s)
	if !ok {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return 0
		}
		return t.locIndex(ip)
	}
	return t.slot[t.codes[b&(Blocks-1)]]
}

// CodeLocation returns the names of a code as stored in this table's
// dictionary; ok is false for codes the table does not use.
func (t *Table) CodeLocation(c Code) (Location, bool) {
	i := t.slot[c]
	return t.locs[i], i != 0
}

// parseBlock parses a canonical dotted-quad IPv4 address (no leading zeros,
// as netip.ParseAddr requires) and returns its /24 index. It accepts a subset
// of what netip.ParseAddr accepts, so a false result just means "use the slow
// path".
func parseBlock(s string) (uint32, bool) {
	var v uint32
	i := 0
	for field := 0; field < 4; field++ {
		if field > 0 {
			if i >= len(s) || s[i] != '.' {
				return 0, false
			}
			i++
		}
		start := i
		var n uint32
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			n = n*10 + uint32(s[i]-'0')
			i++
			if i-start > 3 {
				return 0, false
			}
		}
		if i == start || n > 255 || (s[start] == '0' && i-start > 1) {
			return 0, false
		}
		v = v<<8 | n
	}
	if i != len(s) {
		return 0, false
	}
	return v >> 8, true
}

// manyChunk is how many lookups LookupMany keeps in flight: enough to cover
// the memory latency with the misses the core can have outstanding, small
// enough for the block indexes to stay on the stack.
const manyChunk = 64

// LookupMany looks up ips[i] into locs[i] and found[i], as Lookup would, for
// every i; locs and found must be at least as long as ips.
//
// It is the same table read as Lookup, only scheduled differently: when the
// addresses are spread over more /24s than the caches hold, each Lookup waits
// for one memory access on its own (≈100 ns here), while the reads of a
// LookupMany batch do not depend on each other, so the core overlaps them and
// the batch costs about what the memory system can deliver per access (see
// BenchmarkLookupMany). For addresses whose blocks are cached both cost the
// same. Ingest enriches each request this way.
func (t *Table) LookupMany(ips []netip.Addr, locs []Location, found []bool) {
	locs = locs[:len(ips)]
	found = found[:len(ips)]
	var idx [manyChunk]uint32
	for off := 0; off < len(ips); off += manyChunk {
		chunk := ips[off:min(off+manyChunk, len(ips))]
		// Pass 1: block indexes; an address outside IPv4 reads block 0 and
		// is masked out in pass 3, so pass 2 has no branch.
		var v4 [manyChunk]bool
		for i := range chunk {
			ip := &chunk[i]
			if ip.Is4() || ip.Is4In6() {
				a := ip.As4()
				idx[i] = uint32(a[0])<<16 | uint32(a[1])<<8 | uint32(a[2])
				v4[i] = true
			} else {
				idx[i] = 0
			}
		}
		// Pass 2: the independent loads whose misses overlap.
		for i := range chunk {
			idx[i] = uint32(t.codes[idx[i]&(Blocks-1)])
		}
		// Pass 3: dictionary slots, again independent loads.
		for i := range chunk {
			s := uint32(t.slot[uint16(idx[i])])
			if !v4[i] {
				s = 0
			}
			idx[i] = s
		}
		// Pass 4: the names.
		for i := range chunk {
			s := idx[i]
			locs[off+i] = t.locs[s]
			found[off+i] = s != 0
		}
	}
}
