package ipdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func buildCSV(t testing.TB, csv string) (*Table, Stats) {
	t.Helper()
	tb, st, err := BuildFrom(strings.NewReader(csv), FormatCSV, "test")
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return tb, st
}

func smallTable(t testing.TB) (*Table, Stats) {
	t.Helper()
	b, err := os.ReadFile("testdata/small.csv")
	if err != nil {
		t.Fatal(err)
	}
	return buildCSV(t, string(b))
}

func TestLookupSmall(t *testing.T) {
	tb, _ := smallTable(t)
	cn := func(p, c, isp string) Location { return Location{"cn", p, c, isp} }
	cases := []struct {
		ip   string
		want Location
		ok   bool
	}{
		{"0.0.0.0", cn("beijing", "beijing", "telecom"), true},
		{"0.0.0.255", cn("beijing", "beijing", "telecom"), true},
		{"0.0.1.0", Location{}, false},
		{"1.0.0.255", Location{}, false},
		{"1.0.1.0", cn("guangdong", "广州市", "telecom"), true},
		{"1.0.3.255", cn("guangdong", "广州市", "telecom"), true},
		{"1.0.4.0", Location{}, false},
		{"1.0.8.0", cn("guangdong", "shenzhen", "unicom"), true},
		{"1.0.15.255", cn("guangdong", "shenzhen", "unicom"), true},
		// 2.0.0.0/24: jiangsu 128 addresses, zhejiang 64+64 = 128: a tie,
		// won by the code covering the lowest address.
		{"2.0.0.200", cn("jiangsu", "nanjing", "mobile"), true},
		// 2.0.1.0/24: jiangsu 100, zhejiang 156.
		{"2.0.1.5", cn("zhejiang", "hangzhou", "unicom"), true},
		// 2.0.2.0/24: 11 addresses of xinjiang, the rest uncovered.
		{"2.0.2.200", cn("xinjiang", "urumqi", "cernet"), true},
		{"3.0.0.1", cn("sichuan", "chengdu", "telecom"), true},
		{"3.0.1.1", cn("sichuan", "chengdu", "telecom"), true},
		// 3.0.2.0/24: sichuan 128 (lower), chongqing 128.
		{"3.0.2.255", cn("sichuan", "chengdu", "telecom"), true},
		{"3.0.3.0", Location{}, false},
		{"4.0.0.7", cn("hongkong", "", "hkt"), true},
		{"4.0.1.7", cn("hongkong", "", "telecom"), true},
		{"4.0.2.7", cn("", "", "mobile"), true},
		{"4.0.3.7", cn("beijing", "beijing", "other"), true},
		{"4.0.4.7", cn("neimenggu", "hohhot", "mobile"), true},
		{"8.8.8.8", Location{"us", "california", "mountain view, ca", "google"}, true},
		{"9.0.0.1", Location{Country: "jp"}, true},
		{"::ffff:9.0.0.1", Location{Country: "jp"}, true},
		{"255.255.255.255", Location{Country: "de"}, true},
		{"255.255.254.255", Location{}, false},
		{"2001:db8::1", Location{}, false},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		got, ok := tb.Lookup(ip)
		if got != c.want || ok != c.ok {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v, %v", c.ip, got, ok, c.want, c.ok)
		}
		got, ok = tb.LookupString(c.ip)
		if got != c.want || ok != c.ok {
			t.Errorf("LookupString(%s) = %+v, %v; want %+v, %v", c.ip, got, ok, c.want, c.ok)
		}
		if (tb.Code(ip) != 0) != c.ok {
			t.Errorf("Code(%s) = %#x, want known=%v", c.ip, tb.Code(ip), c.ok)
		}
	}
}

func TestStatsSmall(t *testing.T) {
	_, st := smallTable(t)
	want := Stats{
		Ranges: 19, Blocks: 4 + 8 + 3 + 3 + 5 + 1 + 1 + 1, PartialBlocks: 5,
		// beijing/beijing/telecom, guangdong x2, jiangsu, zhejiang, xinjiang,
		// sichuan, hongkong hkt, hongkong telecom, cn mobile, beijing other,
		// neimenggu, us, jp, de. Chongqing lost its only block.
		Codes: 15, Countries: 4, OtherISP: 1,
	}
	if st != want {
		t.Errorf("stats = %+v\nwant    %+v", st, want)
	}
}

// TestCodeLayout checks code bits against values worked out by hand from the
// layout documented on Code.
func TestCodeLayout(t *testing.T) {
	tb, _ := smallTable(t)
	code := func(ip string) Code { return tb.Code(netip.MustParseAddr(ip)) }
	// guangdong is south (2), slot 2. Its cities by size: shenzhen 2048
	// addresses → city 1, 广州市 768 → city 2. telecom 1, unicom 2.
	if got, want := code("1.0.1.1"), Code(0x8000|2<<13|2<<10|2<<5|1); got != want || want != 0xC841 {
		t.Errorf("guangzhou telecom code = %#x, want %#x", got, want)
	}
	if got := code("1.0.8.1"); got != 0xC822 {
		t.Errorf("shenzhen unicom code = %#x, want 0xc822", got)
	}
	// beijing is north (0) slot 0: beijing city 1 (two rows), telecom / other.
	if got := code("0.0.0.1"); got != 0x8000|1<<5|1 {
		t.Errorf("beijing telecom code = %#x", got)
	}
	if got := code("4.0.3.1"); got != 0x8000|1<<5|7 {
		t.Errorf("beijing other code = %#x", got)
	}
	if code("1.0.1.1")&MaskProvince != code("1.0.8.1")&MaskProvince || code("1.0.1.1")&MaskCity == code("1.0.8.1")&MaskCity {
		t.Error("province mask should join and city mask should split guangzhou and shenzhen")
	}
	if c := code("1.0.1.1"); c.Region() != RegionSouth || c.ISP() != ISPTelecom || !c.Domestic() {
		t.Errorf("parts of %#x: region %d isp %d", c, c.Region(), c.ISP())
	}
	// Hong Kong is fixed domain 2; its localities by size tie at 256
	// addresses, broken by name: hkt < telecom.
	if got := code("4.0.0.1"); got != 2<<7|1 {
		t.Errorf("hongkong hkt code = %#x, want %#x", got, 2<<7|1)
	}
	if got := code("4.0.1.1"); got != 2<<7|2 {
		t.Errorf("hongkong telecom code = %#x, want %#x", got, 2<<7|2)
	}
	if got := code("4.0.2.1"); got != 1<<7|1 {
		t.Errorf("cn without province code = %#x", got)
	}
	// Countries by size: us, jp, de all 256 addresses → by name de, jp, us
	// → domains 5, 6, 7; jp and de have no detail: locality 0.
	if got := code("255.255.255.1"); got != 5<<7 {
		t.Errorf("de code = %#x, want %#x", got, 5<<7)
	}
	if got := code("8.8.8.8"); got != 7<<7|1 || got.Domestic() || got.Country() != 7<<7 {
		t.Errorf("us code = %#x, want %#x", got, 7<<7|1)
	}
}

func TestBuildErrors(t *testing.T) {
	const head = "start,end,country,province,city,isp\n"
	cases := []struct{ csv, want string }{
		{head + "1.2.3.x,1.2.3.255,cn,beijing,,\n", `line 2: start "1.2.3.x" is not an IPv4 address`},
		{"1.2.3.0,1.2.3.255,cn,beijing,,\n1.2.4.0,2001:db8::1,us,,,\n", `line 2: end "2001:db8::1" is not an IPv4 address (the table covers IPv4 only)`},
		{head + "1.2.3.0,1.2.2.255,cn,beijing,,\n", "line 2: start 1.2.3.0 is after end 1.2.2.255"},
		{head + "1.0.0.0,1.0.255.255,cn,beijing,,\n\n2.0.0.0,2.0.0.255,us,,,\n1.0.3.0,1.0.3.0,cn,hebei,,\n",
			"line 5: range 1.0.3.0-1.0.3.0 overlaps line 2 (1.0.0.0-1.0.255.255)"},
		{head + "1.0.0.0,1.0.0.10,cn,beijing,,\n1.0.0.10,1.0.0.20,cn,hebei,,\n", "line 3: range 1.0.0.10-1.0.0.20 overlaps line 2 (1.0.0.0-1.0.0.10)"},
		{head + "1.0.0.0,1.0.0.255,cn,atlantis,,\n", `line 2: unknown province "atlantis" for country cn`},
		{head + "1.0.0.0,1.0.0.255,,beijing,,\n", "line 2: country is empty"},
		{head + "1.0.0.0,1.0.0.255,cn,beijing\n", "line 2: has 4 fields, want 6"},
		{head + "1.0.0.0,1.0.0.255,cn,beijing,\"x,\n", "line 2: extraneous or missing \" in quoted-field"},
		{head + "1.0.0.0,1.0.0.255,cn,beijing,\xff,\n", "line 2: city is not valid UTF-8"},
		{head + "1.0.0.0,1.0.0.255,cn,beijing," + strings.Repeat("a", 256) + ",\n", "line 2: city is 256 bytes, longer than 255"},
	}
	for _, c := range cases {
		_, _, err := BuildFrom(strings.NewReader(c.csv), FormatCSV, "")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("csv %q:\n got %v\nwant %s", c.csv, err, c.want)
		}
	}
}

func TestBOM(t *testing.T) {
	tb, _ := buildCSV(t, "\ufeffstart,end,country,province,city,isp\n1.0.0.0,1.0.0.255,cn,hebei,,\n")
	if loc, _ := tb.LookupString("1.0.0.1"); loc.Province != "hebei" {
		t.Errorf("after a BOM: %+v", loc)
	}
}

func TestCoarsening(t *testing.T) {
	var b strings.Builder
	// 33 cities in guangdong: the two smallest (one /24 each) lose their city.
	for i := range 33 {
		n := 2
		if i >= 31 {
			n = 1
		}
		for k := range n {
			b.WriteString(addr(uint32(1<<24 | i<<8 | k<<16)).String())
			b.WriteString(",")
			b.WriteString(addr(uint32(1<<24 | i<<8 | k<<16 | 255)).String())
			b.WriteString(",cn,guangdong,city")
			b.WriteString(string(rune('A' + i)))
			b.WriteString(",telecom\n")
		}
	}
	tb, st := buildCSV(t, b.String())
	if st.CoarsenedCity != 2 {
		t.Errorf("CoarsenedCity = %d, want 2", st.CoarsenedCity)
	}
	if loc, _ := tb.LookupString("1.0.32.1"); loc != (Location{"cn", "guangdong", "", "telecom"}) {
		t.Errorf("33rd city = %+v, want its city dropped", loc)
	}
	if loc, _ := tb.LookupString("1.0.30.1"); loc.City != "city_" {
		t.Errorf("31st city = %+v, want city_ kept", loc)
	}
}

func TestLoadRoundTrip(t *testing.T) {
	tb, _ := smallTable(t)
	for _, compress := range []bool{true, false} {
		var buf bytes.Buffer
		if err := tb.Write(&buf, compress); err != nil {
			t.Fatal(err)
		}
		got, err := LoadBytes(buf.Bytes())
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		if *got.codes != *tb.codes || got.Source() != "test" || len(got.Locations()) != len(tb.Locations()) {
			t.Errorf("compress=%v: loaded table differs", compress)
		}
		path := filepath.Join(t.TempDir(), "t.ipdb")
		if err := tb.WriteFile(path, compress); err != nil {
			t.Fatal(err)
		}
		opened, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if mapped := opened.release != nil; mapped == compress {
			t.Errorf("compress=%v: mapped=%v", compress, mapped)
		}
		if loc, ok := opened.LookupString("8.8.8.8"); !ok || loc.ISP != "google" {
			t.Errorf("compress=%v: 8.8.8.8 = %+v", compress, loc)
		}
		if *opened.codes != *tb.codes {
			t.Errorf("compress=%v: opened table differs", compress)
		}
		if err := opened.Close(); err != nil {
			t.Error(err)
		}
	}
}

// corrupt returns a copy of b changed by f.
func corrupt(b []byte, f func([]byte) []byte) []byte {
	return f(bytes.Clone(b))
}

func TestLoadCorrupt(t *testing.T) {
	tb, _ := smallTable(t)
	var zbuf, rbuf bytes.Buffer
	if err := tb.Write(&zbuf, true); err != nil {
		t.Fatal(err)
	}
	if err := tb.Write(&rbuf, false); err != nil {
		t.Fatal(err)
	}
	z, raw := zbuf.Bytes(), rbuf.Bytes()
	dictLen := int(le32(z[12:]))
	rawOff := len(raw) - tableBytes
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "shorter than the 32-byte header"},
		{"magic", corrupt(z, func(b []byte) []byte { b[0] = 'X'; return b }), "bad magic"},
		{"version", corrupt(z, func(b []byte) []byte { b[8] = 9; return b }), "version 9 is not supported"},
		{"flags", corrupt(z, func(b []byte) []byte { b[10] = 6; return b }), "unknown flags 0x6"},
		{"huge dictionary", corrupt(z, func(b []byte) []byte { b[15] = 0x7f; return b }), "dictionary length"},
		{"raw size", corrupt(raw, func(b []byte) []byte { b[16] = 1; return b }), "uncompressed payload length"},
		{"truncated", z[:len(z)-5], "file is truncated: compressed code array"},
		{"truncated dictionary", z[:40], "file is truncated: dictionary"},
		{"trailing", append(bytes.Clone(z), 0), "unexpected data after the payload"},
		{"dictionary bit", corrupt(z, func(b []byte) []byte { b[headerSize+3] ^= 1; return b }), "dictionary checksum mismatch"},
		{"raw array bit", corrupt(raw, func(b []byte) []byte { b[rawOff+2*0x010001] ^= 1; return b }), "code array checksum mismatch"},
		{"payload bit", corrupt(z, func(b []byte) []byte { b[len(b)-20] ^= 0xff; return b }), ""},
		{"unknown code", rehash(corrupt(raw, func(b []byte) []byte { b[rawOff+2*0x050000+1] = 0x99; return b })), "code 0x9900 of block 5.0.0.0/24 is not in the dictionary"},
		// Source "test" (1+4 bytes), entry count (1 byte), then the first code.
		{"reserved domain", rehash(corrupt(raw, func(b []byte) []byte { b[headerSize+6], b[headerSize+7] = 5, 0; return b })), "code 0x0005 is in the reserved domain 0"},
		{"wrong province", rehash(corrupt(raw, func(b []byte) []byte {
			i := bytes.Index(b[:headerSize+dictLen], []byte("beijing"))
			copy(b[i:], "hebeixx")
			return b
		})), "names cn/hebeixx but its bits say cn/beijing"},
	}
	// Compressed files with hand-made runs (header and dictionary of z).
	withRunBytes := func(rb []byte) []byte {
		enc, _ := zstd.NewWriter(nil)
		payload := enc.EncodeAll(rb, nil)
		off := headerSize + dictLen + (8-(headerSize+dictLen)%8)%8
		b := append(bytes.Clone(z[:off]), payload...)
		binary.LittleEndian.PutUint64(b[16:], uint64(len(payload)))
		return b
	}
	withRuns := func(runs ...uint64) []byte {
		var rb []byte
		for i := 0; i+1 < len(runs); i += 2 {
			rb = binary.AppendUvarint(rb, runs[i])
			rb = binary.LittleEndian.AppendUint16(rb, uint16(runs[i+1]))
		}
		return withRunBytes(rb)
	}
	beijing := uint64(tb.Code(netip.MustParseAddr("0.0.0.1")))
	cases = append(cases, []struct {
		name string
		file []byte
		want string
	}{
		{"runs short", withRuns(1, beijing, Blocks-2, 0), "code array: runs cover 16777215 blocks, want 16777216"},
		{"runs long", withRuns(Blocks, 0, 1, beijing), "code array: run of 1 blocks at block 16777216 does not fit"},
		{"empty run", withRuns(0, 0), "code array: run of 0 blocks at block 0"},
		{"run code", withRuns(5, 0, 1, 0x1234, Blocks-6, 0), "code 0x1234 of block 0.0.5.0/24 is not in the dictionary"},
		{"run truncated", withRunBytes([]byte{5, 0}), "code array: run at block 0 is truncated"},
		{"runs ok", withRuns(1, beijing, Blocks-1, 0), "code array checksum mismatch"},
	}...)
	for _, c := range cases {
		_, err := LoadBytes(c.file)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an ErrFormat containing %q", c.name, err, c.want)
		}
	}
	// The mapped path validates the same way.
	path := filepath.Join(t.TempDir(), "bad.ipdb")
	if err := os.WriteFile(path, corrupt(raw, func(b []byte) []byte { b[rawOff+7] ^= 1; return b }), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "code array checksum mismatch") || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a corrupted raw file: %v", err)
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// rehash recomputes both checksums of an uncompressed file.
func rehash(b []byte) []byte {
	dictLen := int(le32(b[12:]))
	put := func(off int, v uint32) {
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	put(24, crc(b[headerSize:headerSize+dictLen]))
	put(28, crc(b[len(b)-tableBytes:]))
	return b
}

func TestParseBlockAgreesWithNetip(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1",
		"1.2.3.4 ", " 1.2.3.4", "1..3.4", "1.2.3.", "", "::ffff:1.2.3.4", "1.2.3.04", "1.2.3.0000", "9999.1.1.1"} {
		checkParseBlock(t, s)
	}
}

func checkParseBlock(t *testing.T, s string) {
	blk, ok := parseBlock(s)
	ip, err := netip.ParseAddr(s)
	if ok && (err != nil || !ip.Is4() || ip.As4() != [4]byte{byte(blk >> 16), byte(blk >> 8), byte(blk), ip.As4()[3]}) {
		t.Errorf("parseBlock(%q) = %#x but netip says %v, %v", s, blk, ip, err)
	}
	if !ok && err == nil && ip.Is4() {
		t.Errorf("parseBlock(%q) rejected an address netip accepts", s)
	}
}

func TestDefault(t *testing.T) {
	tb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if tb.Source() != SyntheticSource {
		t.Errorf("source = %q", tb.Source())
	}
	// Worked out from WriteSyntheticCSV: guangdong is province 18 in
	// Provinces order → 10.19.0.0/16; telecom is the first quarter, split
	// guangzhou 10.19.0-39, shenzhen 10.19.40-63; cernet is the last quarter
	// (192-231, 232-255). xinjiang is 30, hongkong 31, macau 32, taiwan 33.
	cases := map[string]Location{
		"10.19.0.1":     {"cn", "guangdong", "guangzhou", "telecom"},
		"10.19.39.255":  {"cn", "guangdong", "guangzhou", "telecom"},
		"10.19.40.0":    {"cn", "guangdong", "shenzhen", "telecom"},
		"10.19.64.1":    {"cn", "guangdong", "guangzhou", "unicom"},
		"10.19.255.254": {"cn", "guangdong", "shenzhen", "cernet"},
		"10.1.130.1":    {"cn", "beijing", "beijing", "mobile"},
		"10.31.200.1":   {"cn", "xinjiang", "urumqi", "cernet"},
		"10.31.232.1":   {"cn", "xinjiang", "kashgar", "cernet"},
		"10.32.0.1":     {"cn", "hongkong", "hongkong", "hkt"},
		"10.33.200.1":   {"cn", "macau", "macau", "mtel"},
		"10.34.210.1":   {"cn", "taiwan", "kaohsiung", "fetnet"},
		"10.100.0.9":    {"cn", "", "", "mobile"},
		"10.200.0.1":    {"us", "california", "los angeles", "comcast"},
		"10.202.200.1":  {"kr", "seoul", "seoul", "kt"},
	}
	for ip, want := range cases {
		if got, ok := tb.LookupString(ip); !ok || got != want {
			t.Errorf("%s = %+v, %v; want %+v", ip, got, ok, want)
		}
	}
	for _, ip := range []string{"10.0.0.1", "10.35.0.1", "10.100.1.0", "8.8.8.8", "192.168.1.1"} {
		if got, ok := tb.LookupString(ip); ok {
			t.Errorf("%s = %+v, want not found", ip, got)
		}
	}
	// Every province with the four mainland carriers, or two local ones.
	seen := map[[2]string]bool{}
	for _, l := range tb.Locations() {
		seen[[2]string{l.Province, l.ISP}] = true
	}
	for _, p := range Provinces() {
		isps := []string{"telecom", "unicom", "mobile", "cernet"}
		if l, ok := syntheticLocalISPs[p]; ok {
			isps = l
		}
		for _, isp := range isps {
			if !seen[[2]string{p, isp}] {
				t.Errorf("no %s/%s in the synthetic table", p, isp)
			}
		}
	}
}

func TestSyntheticCSVUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSyntheticCSV(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), syntheticCSV) {
		t.Error("synthetic.csv is stale: run go generate ./internal/ipdb")
	}
}

func TestSample(t *testing.T) {
	tb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	cities := map[string]int{}
	for range 2000 {
		ip, ok := tb.Sample("cn", "guangdong", "telecom", r)
		if !ok {
			t.Fatal("no sample for guangdong telecom")
		}
		loc, ok := tb.Lookup(ip)
		if !ok || loc.Province != "guangdong" || loc.ISP != "telecom" {
			t.Fatalf("sample %s is %+v", ip, loc)
		}
		if h := ip.As4()[3]; h == 0 || h == 255 {
			t.Fatalf("sample %s has a network or broadcast host part", ip)
		}
		cities[loc.City]++
	}
	// 40 of the 64 blocks are guangzhou: expect 1250 of 2000, well within ±150.
	if g := cities["guangzhou"]; g < 1100 || g > 1400 || cities["shenzhen"] != 2000-g {
		t.Errorf("city split %v, want about 1250 guangzhou", cities)
	}
	if _, ok := tb.Sample("cn", "atlantis", "", r); ok {
		t.Error("sample of an unknown province succeeded")
	}
	ip, ok := tb.Sample("us", "", "", r)
	if loc, _ := tb.Lookup(ip); !ok || loc.Country != "us" {
		t.Errorf("us sample %s = %+v", ip, loc)
	}
	provinces := map[string]bool{}
	for range 5000 {
		ip, _ := tb.Sample("cn", "", "mobile", r)
		loc, _ := tb.Lookup(ip)
		provinces[loc.Province] = true
	}
	if len(provinces) < 30 {
		t.Errorf("cn/mobile samples reached %d provinces, want about all 32 (31 + none)", len(provinces))
	}
}

func TestRanges(t *testing.T) {
	tb, _ := smallTable(t)
	rs := tb.Ranges()
	// 0.0.0, 1.0.1-3, 1.0.8-15, 2.0.0, 2.0.1, 2.0.2, 3.0.0-2, 4.0.0..4.0.4 (5 codes),
	// 8.8.8, 9.0.0, 255.255.255.
	if len(rs) != 15 {
		t.Fatalf("%d runs: %+v", len(rs), rs)
	}
	if r := rs[6]; r.First != netip.MustParseAddr("3.0.0.0") || r.Last != netip.MustParseAddr("3.0.2.255") || r.Province != "sichuan" {
		t.Errorf("sichuan run = %+v", r)
	}
}

func TestRegions(t *testing.T) {
	counts := map[string]int{}
	for _, p := range Provinces() {
		counts[RegionOf(p)]++
	}
	want := map[string]int{"north": 8, "central": 8, "south": 7, "west": 8, "": 3}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("region %q has %d provinces, want %d", k, counts[k], v)
		}
	}
	if RegionOf("广东省") != "south" || RegionOf("Inner Mongolia") != "north" || RegionOf("hongkong") != "" {
		t.Error("RegionOf aliases")
	}
}
