package ipdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// xdbSeg is one segment index entry for makeXDB.
type xdbSeg struct{ first, last, region string }

// makeXDB assembles an IPv4 xdb field by field from the layout ip2region
// documents (maker/golang/xdb/maker.go): the 256-byte header, the 512 KiB
// vector index, each distinct region once, then one 14-byte entry per seg in
// the order given (the maker splits ranges at /16 boundaries; tests pass
// entries already split, or deliberately not).
func makeXDB(version int, segs []xdbSeg) []byte {
	le := binary.LittleEndian
	b := make([]byte, 256+256*256*8)
	le.PutUint16(b[0:], uint16(version))
	le.PutUint16(b[2:], 1)          // index policy: vector
	le.PutUint32(b[4:], 1754700000) // created at
	if version >= 3 {
		le.PutUint16(b[16:], 4) // ip version
		le.PutUint16(b[18:], 4) // runtime pointer bytes
	}
	regionAt := map[string]uint32{}
	for _, s := range segs {
		if _, ok := regionAt[s.region]; !ok {
			regionAt[s.region] = uint32(len(b))
			b = append(b, s.region...)
		}
	}
	start := uint32(len(b))
	for _, s := range segs {
		first, last := netip.MustParseAddr(s.first).As4(), netip.MustParseAddr(s.last).As4()
		ptr := uint32(len(b))
		var e [14]byte
		le.PutUint32(e[0:], binary.BigEndian.Uint32(first[:])) // the address as a number
		le.PutUint32(e[4:], binary.BigEndian.Uint32(last[:]))
		le.PutUint16(e[8:], uint16(len(s.region)))
		le.PutUint32(e[10:], regionAt[s.region])
		b = append(b, e[:]...)
		// Vector index cell of the first two bytes: first entry, past-the-end entry.
		cell := 256 + (int(first[0])*256+int(first[1]))*8
		if le.Uint32(b[cell:]) == 0 {
			le.PutUint32(b[cell:], ptr)
		}
		le.PutUint32(b[cell+4:], ptr+14)
	}
	le.PutUint32(b[8:], start)
	le.PutUint32(b[12:], uint32(len(b))-14) // the last entry, not past it
	return b
}

// isoSegs has the region layout of ip2region's current data.
var isoSegs = []xdbSeg{
	{"0.0.0.0", "0.0.255.255", "0|0|0|内网IP|0"},
	{"0.1.0.0", "0.1.255.255", ""}, // no region at all (allowed by the maker)
	{"1.0.1.0", "1.0.3.255", "中国|福建省|福州市|电信|CN"},
	{"1.0.8.0", "1.0.255.255", "中国|广东省|深圳市|联通|CN"},
	{"1.1.0.0", "1.1.3.255", "中国|广东省|深圳市|联通|CN"}, // continues the previous one across a /16
	{"1.1.4.0", "1.1.4.127", "中国|0|0|移动|CN"},
	{"1.1.8.0", "1.1.8.255", "中国|广东省|深圳市|联通|CN"}, // same region after a gap
	{"8.8.8.0", "8.8.8.255", "United States|California|Mountain View|Google LLC|US"},
	{"42.2.0.0", "42.2.255.255", "中国|香港|0|香港宽频|HK"},
}

func rng(first, last string, line int, country, province, city, isp string) Range {
	return Range{
		First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last),
		Location: Location{country, province, city, isp}, Line: line,
	}
}

func TestReadXDBLayouts(t *testing.T) {
	cases := []struct {
		name    string
		version int
		segs    []xdbSeg
		want    []Range
	}{
		{"iso", 3, isoSegs, []Range{
			rng("0.0.0.0", "0.0.255.255", 1, "", "", "", "内网IP"),
			rng("0.1.0.0", "0.1.255.255", 2, "", "", "", ""),
			rng("1.0.1.0", "1.0.3.255", 3, "CN", "福建省", "福州市", "电信"),
			rng("1.0.8.0", "1.1.3.255", 4, "CN", "广东省", "深圳市", "联通"),
			rng("1.1.4.0", "1.1.4.127", 6, "CN", "", "", "移动"),
			rng("1.1.8.0", "1.1.8.255", 7, "CN", "广东省", "深圳市", "联通"),
			rng("8.8.8.0", "8.8.8.255", 8, "US", "California", "Mountain View", "Google LLC"),
			rng("42.2.0.0", "42.2.255.255", 9, "HK", "香港", "", "香港宽频"),
		}},
		{"plain", 3, []xdbSeg{
			{"1.0.1.0", "1.0.3.255", "中国|广东省|深圳市|电信"},
			{"1.0.4.0", "1.0.4.255", "Japan|Tokyo|0|0"},
		}, []Range{
			rng("1.0.1.0", "1.0.3.255", 1, "中国", "广东省", "深圳市", "电信"),
			rng("1.0.4.0", "1.0.4.255", 2, "Japan", "Tokyo", "", ""),
		}},
		{"legacy", 2, []xdbSeg{
			{"0.0.0.0", "0.0.255.255", "0|0|0|内网IP|内网IP"},
			{"1.0.1.0", "1.0.3.255", "中国|0|福建省|福州市|电信"},
			{"1.0.4.0", "1.0.7.255", "澳大利亚|0|0|0|0"},
		}, []Range{
			rng("0.0.0.0", "0.0.255.255", 1, "", "", "内网IP", "内网IP"),
			rng("1.0.1.0", "1.0.3.255", 2, "中国", "福建省", "福州市", "电信"),
			rng("1.0.4.0", "1.0.7.255", 3, "澳大利亚", "", "", ""),
		}},
		// Five fields whose last is "0" everywhere: no ISO code anywhere, so
		// the file is read as the older layout.
		{"five fields, no iso code", 3, []xdbSeg{
			{"1.0.1.0", "1.0.3.255", "中国|0|广东省|深圳市|0"},
		}, []Range{
			rng("1.0.1.0", "1.0.3.255", 1, "中国", "广东省", "深圳市", ""),
		}},
		{"one entry covering everything", 3, []xdbSeg{
			{"0.0.0.0", "255.255.255.255", "Nowhere|0|0|0"},
		}, []Range{
			rng("0.0.0.0", "255.255.255.255", 1, "Nowhere", "", "", ""),
		}},
	}
	for _, c := range cases {
		got, err := ReadXDB(makeXDB(c.version, c.segs))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
}

func TestReadXDBErrors(t *testing.T) {
	le := binary.LittleEndian
	good := makeXDB(3, isoSegs)
	start := int(le.Uint32(good[8:]))
	end := int(le.Uint32(good[12:]))
	if start != 524544+len("0|0|0|内网IP|0中国|福建省|福州市|电信|CN中国|广东省|深圳市|联通|CN中国|0|0|移动|CNUnited States|California|Mountain View|Google LLC|US中国|香港|0|香港宽频|HK") ||
		end != start+8*14 {
		t.Fatalf("test file layout: start %d end %d", start, end)
	}
	entry := func(i int) int { return start + i*14 } // offset of entry i, 0-based
	cases := []struct {
		name   string
		change func([]byte) []byte
		want   string
	}{
		{"short", func(b []byte) []byte { return b[:100] }, "xdb is 100 bytes, shorter than its 256-byte header"},
		{"empty", func(b []byte) []byte { return nil }, "xdb is 0 bytes"},
		{"version", func(b []byte) []byte { le.PutUint16(b, 7); return b },
			"xdb header: structure version 7 (offset 0) is not supported (want 2 or 3)"},
		{"policy", func(b []byte) []byte { le.PutUint16(b[2:], 9); return b },
			"xdb header: index policy 9 (offset 2) is unknown"},
		{"ipv6", func(b []byte) []byte { le.PutUint16(b[16:], 6); return b },
			"xdb header: ip version 6 (offset 16): IPv6 xdb files are not supported, the table is IPv4 only"},
		{"ip version", func(b []byte) []byte { le.PutUint16(b[16:], 5); return b },
			"xdb header: ip version 5 (offset 16) is invalid"},
		{"runtime pointer bytes", func(b []byte) []byte { le.PutUint16(b[18:], 8); return b },
			"xdb header: runtime pointer bytes 8 (offset 18) is not supported (want 4)"},
		{"start in vector index", func(b []byte) []byte { le.PutUint32(b[8:], 300); return b },
			"xdb header: start index pointer 300 (offset 8) points into the header or the vector index, which end at 524544"},
		{"end before start", func(b []byte) []byte { le.PutUint32(b[12:], uint32(start-14)); return b },
			fmt.Sprintf("xdb header: end index pointer %d (offset 12) is before the start index pointer %d", start-14, start)},
		{"end between entries", func(b []byte) []byte { le.PutUint32(b[12:], uint32(end-1)); return b },
			fmt.Sprintf("xdb header: end index pointer %d (offset 12) is not a whole number of 14-byte entries", end-1)},
		{"truncated index", func(b []byte) []byte { return b[:len(b)-5] },
			fmt.Sprintf("xdb is truncated: its segment index ends at %d (end index pointer %d + 14), the file has %d bytes", end+14, end, end+9)},
		{"end pointer past the file", func(b []byte) []byte { le.PutUint32(b[12:], uint32(end+14)); return b },
			"xdb is truncated"},
		{"trailing bytes", func(b []byte) []byte { return append(b, 1, 2, 3) },
			fmt.Sprintf("xdb has 3 bytes after the end of its segment index and regions (at %d)", end+14)},
		// An end pointer short of the real end would drop segments silently
		// but for the bytes it leaves behind.
		{"end pointer too small", func(b []byte) []byte { le.PutUint32(b[12:], uint32(end-14)); return b },
			"xdb has 14 bytes after the end of its segment index"},
		{"region pointer in the header", func(b []byte) []byte { le.PutUint32(b[entry(2)+10:], 10); return b },
			fmt.Sprintf("xdb segment 3 (offset %d): region at 10, %d bytes, is outside the region area (524544 to the end of the file, %d)", entry(2), len("中国|福建省|福州市|电信|CN"), end+14)},
		{"region past the file", func(b []byte) []byte { le.PutUint32(b[entry(0)+10:], uint32(end)); return b },
			fmt.Sprintf("xdb segment 1 (offset %d): region at %d, %d bytes, is outside the region area", entry(0), end, len("0|0|0|内网IP|0"))},
		{"region in the index", func(b []byte) []byte { le.PutUint32(b[entry(0)+10:], uint32(start)); return b },
			fmt.Sprintf("xdb segment 1 (offset %d): region at %d, %d bytes, overlaps the segment index (%d to %d)", entry(0), start, len("0|0|0|内网IP|0"), start, end+14)},
		{"first after last", func(b []byte) []byte { le.PutUint32(b[entry(2)+4:], 0x01000000); return b },
			fmt.Sprintf("xdb segment 3 (offset %d): first address 1.0.1.0 is after last address 1.0.0.0", entry(2))},
		{"overlap", func(b []byte) []byte { le.PutUint32(b[entry(3):], 0x01000300); return b },
			fmt.Sprintf("xdb segment 4 (offset %d): first address 1.0.3.0 is not after the previous segment's last address 1.0.3.255", entry(3))},
		{"invalid utf-8", func(b []byte) []byte {
			i := bytes.Index(b, []byte("福州市"))
			b[i] = 0xff
			return b
		}, fmt.Sprintf("xdb segment 3 (offset %d): region at %d: city is not valid UTF-8", entry(2), 524544+len("0|0|0|内网IP|0"))},
		{"field count", func(b []byte) []byte {
			i := bytes.Index(b, []byte("|0|0|移动"))
			b[i+2] = ',' // 中国|0,0|移动|CN
			return b
		}, fmt.Sprintf(`xdb segment 6 (offset %d): region "中国|0,0|移动|CN" has 4 fields, but segment 1's region has 5 (a file has one layout)`, entry(5))},
	}
	for _, c := range cases {
		_, err := ReadXDB(c.change(bytes.Clone(good)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, c.want)
		}
	}

	bad := []struct {
		segs []xdbSeg
		want string
	}{
		{[]xdbSeg{{"1.0.0.0", "1.0.0.255", "中国|广东省|深圳市"}},
			`xdb segment 1 (offset 524570): region "中国|广东省|深圳市" has 3 fields, want 4 (country|province|city|isp) or 5`},
		{[]xdbSeg{{"1.0.0.0", "1.0.0.255", "a|b|c|d|e|f"}}, `region "a|b|c|d|e|f" has 6 fields`},
		{[]xdbSeg{{"1.0.0.0", "1.0.0.255", "cn|" + strings.Repeat("x", 256) + "|0|0"}},
			"xdb segment 1 (offset 524807): region at 524544: province is 256 bytes, longer than 255"},
		{[]xdbSeg{{"1.0.0.0", "1.0.0.255", strings.Repeat("长", 40) + "|0|0"}},
			`region "` + strings.Repeat("长", 26) + `"... has 3 fields`},
	}
	for _, c := range bad {
		_, err := ReadXDB(makeXDB(3, c.segs))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %s", c.segs[0].region, err, c.want)
		}
	}
}

// TestBuildXDB builds a table file from an xdb through BuildFile, as
// `qoscope ipdb build -format xdb` does, and looks addresses up in it.
func TestBuildXDB(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "ip2region_v4.xdb"), filepath.Join(dir, "t.ipdb")
	if err := os.WriteFile(in, makeXDB(3, isoSegs), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := BuildFile(BuildOptions{Input: in, Format: FormatXDB, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	// 9 entries, 8 ranges after merging; 2 without a country; 1.1.4.0/25
	// names its whole /24.
	if st.Ranges != 8 || st.UnknownRanges != 2 || st.Blocks != 3+(256-8)+4+1+1+1+256 || st.PartialBlocks != 1 {
		t.Errorf("stats %+v", st)
	}
	tb, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if tb.Source() != "ip2region_v4.xdb" {
		t.Errorf("source %q", tb.Source())
	}
	shenzhen := Location{"cn", "guangdong", "深圳市", "unicom"}
	cases := map[string]Location{
		"0.0.1.1":        {}, // 内网IP: no country
		"0.1.0.1":        {}, // empty region
		"1.0.0.1":        {},
		"1.0.2.3":        {"cn", "fujian", "福州市", "telecom"},
		"1.0.4.1":        {},
		"1.0.8.0":        shenzhen,
		"1.0.200.1":      shenzhen,
		"1.1.3.255":      shenzhen,
		"1.1.4.200":      {"cn", "", "", "mobile"},
		"1.1.5.1":        {},
		"1.1.8.1":        shenzhen,
		"8.8.8.8":        {"us", "California", "Mountain View", "Google LLC"},
		"42.2.3.4":       {"cn", "hongkong", "", "香港宽频"},
		"42.3.0.1":       {},
		"255.0.0.1":      {},
		"::ffff:8.8.8.8": {"us", "California", "Mountain View", "Google LLC"},
	}
	for ip, want := range cases {
		got, ok := tb.LookupString(ip)
		if got != want || ok != (want != Location{}) {
			t.Errorf("%s = %+v, %v; want %+v", ip, got, ok, want)
		}
	}

	// Errors of the builder name the segment, and the input file.
	if err := os.WriteFile(in, makeXDB(3, []xdbSeg{
		{"1.0.0.0", "1.0.0.255", "中国|广东省|0|0|CN"},
		{"1.0.1.0", "1.0.1.255", "中国|火星省|0|0|CN"},
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = BuildFile(BuildOptions{Input: in, Format: FormatXDB, Output: out + "2"})
	if want := in + `: segment 2: unknown province "火星省" for country cn`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("unknown province:\n got %v\nwant %s", err, want)
	}
	if _, err := os.Stat(out + "2"); !os.IsNotExist(err) {
		t.Error("a failed build left an output file")
	}
	if f, err := ParseFormat("xdb"); f != FormatXDB || err != nil {
		t.Errorf("ParseFormat(xdb) = %v, %v", f, err)
	}
}

// expandXDB inserts the 512 KiB vector index, which ReadXDB does not read,
// after the header of a fuzz input, so that small inputs with valid
// pointers reach the segment index.
func expandXDB(b []byte) []byte {
	if len(b) < xdbHeaderSize {
		return nil
	}
	out := make([]byte, 0, len(b)+xdbVectorEnd-xdbHeaderSize)
	out = append(out, b[:xdbHeaderSize]...)
	out = append(out, make([]byte, xdbVectorEnd-xdbHeaderSize)...)
	return append(out, b[xdbHeaderSize:]...)
}

// FuzzReadXDB: the xdb reader never panics, its errors say "xdb", and what it
// accepts is a sorted list of disjoint IPv4 ranges with clean names. Each
// input is read as is and with a (zero) vector index inserted after its
// first 256 bytes.
func FuzzReadXDB(f *testing.F) {
	compact := func(b []byte) []byte { return append(b[:xdbHeaderSize:xdbHeaderSize], b[xdbVectorEnd:]...) }
	f.Add(compact(makeXDB(3, isoSegs)))
	f.Add(compact(makeXDB(2, []xdbSeg{{"1.0.1.0", "1.0.3.255", "中国|0|福建省|福州市|电信"}, {"1.0.4.0", "1.0.7.255", "澳大利亚|0|0|0|0"}})))
	f.Add(compact(makeXDB(3, []xdbSeg{{"1.0.1.0", "1.0.3.255", "中国|广东省|深圳市|电信"}, {"1.0.4.0", "1.0.4.255", ""}})))
	f.Add(makeXDB(3, isoSegs)[:xdbHeaderSize])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkXDB(t, b)
		if x := expandXDB(b); x != nil {
			checkXDB(t, x)
		}
	})
}

func checkXDB(t *testing.T, b []byte) {
	rs, err := ReadXDB(b)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "xdb ") {
			t.Fatalf("error without context: %v", err)
		}
		return
	}
	bd := NewBuilder("fuzz")
	for i, r := range rs {
		if !r.First.Is4() || !r.Last.Is4() || r.Last.Less(r.First) || r.Line < 1 {
			t.Fatalf("bad range %v", r)
		}
		if i > 0 && (!rs[i-1].Last.Less(r.First) || rs[i-1].Line >= r.Line) {
			t.Fatalf("ranges out of order: %v then %v", rs[i-1], r)
		}
		for _, s := range []string{r.Country, r.Province, r.City, r.ISP} {
			if !utf8.ValidString(s) || len(s) > maxField || s == "0" || s != strings.TrimSpace(s) {
				t.Fatalf("bad name %q in %v", s, r)
			}
		}
		if err := bd.Add(r); err != nil && !strings.HasPrefix(err.Error(), "line ") {
			t.Fatalf("builder error without a line: %v", err)
		}
	}
}

// BenchmarkReadXDB reads an xdb of 200,000 /24 entries (ip2region's IPv4
// file has some 700,000) with 5,000 distinct regions, none adjacent to the
// same region, so nothing merges.
func BenchmarkReadXDB(b *testing.B) {
	segs := make([]xdbSeg, 200_000)
	for i := range segs {
		base := netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 0})
		segs[i] = xdbSeg{base.String(), netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 255}).String(),
			fmt.Sprintf("中国|广东省|城市%d|电信|CN", i%5000)}
	}
	data := makeXDB(3, segs)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadXDB(data); err != nil {
			b.Fatal(err)
		}
	}
}
