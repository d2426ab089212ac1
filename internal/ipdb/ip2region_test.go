package ipdb

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Rows in the shape of ip2region's data/ipv4_source.txt in its three
// layouts, with the names expected by hand.
func TestIP2RegionLayouts(t *testing.T) {
	cases := []struct {
		name string
		src  []string
		want []Range
	}{
		{"plain, 6 fields (2025-09 to 2026-01)", []string{
			"0.0.0.0|0.255.255.255|0|0|0|内网IP",
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0",
			"1.0.1.0|1.0.3.255|中国|福建省|福州市|电信",
			"1.0.128.0|1.0.128.255|泰国|清莱府|0|TOT",
		}, []Range{
			rng("0.0.0.0", "0.255.255.255", 1, "", "", "", "内网IP"),
			rng("1.0.0.0", "1.0.0.255", 2, "澳大利亚", "", "", ""),
			rng("1.0.1.0", "1.0.3.255", 3, "中国", "福建省", "福州市", "电信"),
			rng("1.0.128.0", "1.0.128.255", 4, "泰国", "清莱府", "", "TOT"),
		}},
		{"iso, 7 fields (since 2026-01)", []string{
			"0.0.0.0|0.255.255.255|0|0|0|内网IP|0", // ambiguous until line 2
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN",
			"1.0.16.0|1.0.31.255|Japan|Tokyo|0|0|JP",
			"1.0.32.0|1.0.32.255|中国|台湾省|台北市|中华电信|TW",
			"1.0.33.0|1.0.33.255|Nowhere|0|0|0|0", // decided: "0" is an unknown code
			"1.2.3.0|1.2.3.255|Australia|Queensland|Brisbane|0| au ",
		}, []Range{
			rng("0.0.0.0", "0.255.255.255", 1, "", "", "", "内网IP"),
			rng("1.0.8.0", "1.0.15.255", 2, "CN", "广东省", "广州市", "电信"),
			rng("1.0.16.0", "1.0.31.255", 3, "JP", "Tokyo", "", ""),
			rng("1.0.32.0", "1.0.32.255", 4, "TW", "台湾省", "台北市", "中华电信"),
			rng("1.0.33.0", "1.0.33.255", 5, "Nowhere", "", "", ""),
			rng("1.2.3.0", "1.2.3.255", 6, "au", "Queensland", "Brisbane", ""),
		}},
		{"legacy, 7 fields (2022 to 2025-09)", []string{
			"0.0.0.0|0.255.255.255|0|0|0|内网IP|内网IP",
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0|0",
			"1.0.32.0|1.0.63.255|中国|0|广东省|广州市|电信",
			"1.0.64.0|1.0.79.255|中国|华南|广东省|深圳市|联通",
			"1.0.128.0|1.0.128.255|泰国|0|曼谷|曼谷|TOT",
			// Two letters after the decision: a legacy ISP, not a code.
			"1.0.129.0|1.0.129.255|韩国|0|首尔|首尔|KT",
		}, []Range{
			rng("0.0.0.0", "0.255.255.255", 1, "", "", "内网IP", "内网IP"),
			rng("1.0.0.0", "1.0.0.255", 2, "澳大利亚", "", "", ""),
			rng("1.0.32.0", "1.0.63.255", 3, "中国", "广东省", "广州市", "电信"),
			rng("1.0.64.0", "1.0.79.255", 4, "中国", "广东省", "深圳市", "联通"),
			rng("1.0.128.0", "1.0.128.255", 5, "泰国", "曼谷", "曼谷", "TOT"),
			rng("1.0.129.0", "1.0.129.255", 6, "韩国", "首尔", "首尔", "KT"),
		}},
		// The rows before the deciding one read differently in the two
		// layouts (维多利亚 is a province, or a region that is dropped).
		{"ambiguous first rows, then an iso code", []string{
			"# 7 fields",
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0|0",
			"",
			"1.0.4.0|1.0.7.255|澳大利亚|维多利亚|墨尔本|0|0",
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN",
		}, []Range{
			rng("1.0.0.0", "1.0.0.255", 2, "澳大利亚", "", "", ""),
			rng("1.0.4.0", "1.0.7.255", 4, "澳大利亚", "维多利亚", "墨尔本", ""),
			rng("1.0.8.0", "1.0.15.255", 5, "CN", "广东省", "广州市", "电信"),
		}},
		{"ambiguous first rows, then an isp", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0|0",
			"1.0.4.0|1.0.7.255|澳大利亚|维多利亚|墨尔本|0|0",
			"1.0.32.0|1.0.63.255|中国|华南|广东省|广州市|电信",
		}, []Range{
			rng("1.0.0.0", "1.0.0.255", 1, "澳大利亚", "", "", ""),
			rng("1.0.4.0", "1.0.7.255", 2, "澳大利亚", "墨尔本", "", ""),
			rng("1.0.32.0", "1.0.63.255", 3, "中国", "广东省", "广州市", "电信"),
		}},
		// No ISO code anywhere: legacy, as an xdb without one.
		{"only ambiguous rows", []string{
			"1.0.4.0|1.0.7.255|澳大利亚|维多利亚|墨尔本|0|0",
			"1.0.8.0|1.0.15.255|中国|0|广东省|广州市|0",
		}, []Range{
			rng("1.0.4.0", "1.0.7.255", 1, "澳大利亚", "墨尔本", "", ""),
			rng("1.0.8.0", "1.0.15.255", 2, "中国", "广东省", "广州市", ""),
		}},
		{"crlf, no final newline", []string{
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN\r",
			"1.0.16.0|1.0.31.255|Japan|Tokyo|0|0|JP",
		}, []Range{
			rng("1.0.8.0", "1.0.15.255", 1, "CN", "广东省", "广州市", "电信"),
			rng("1.0.16.0", "1.0.31.255", 2, "JP", "Tokyo", "", ""),
		}},
	}
	for _, c := range cases {
		src := strings.Join(c.src, "\n")
		if !strings.HasPrefix(c.name, "crlf") {
			src += "\n"
		}
		got, err := ParseRanges(strings.NewReader(src), FormatIP2Region)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
}

// The names are then normalized by the builder like any other source.
func TestIP2RegionBuild(t *testing.T) {
	cases := []struct {
		name    string
		src     []string
		want    map[string]Location
		unknown int
	}{
		{"iso", []string{
			"0.0.0.0|0.255.255.255|0|0|0|内网IP|0",
			"1.0.1.0|1.0.3.255|中国|福建省|福州市|电信|CN",
			"1.0.8.0|1.0.15.255|中国|广东省|深圳市|联通|CN",
			"1.0.16.0|1.0.31.255|Japan|Tokyo|0|0|JP",
			"1.0.32.0|1.0.32.255|中国|台湾省|台北市|中华电信|TW",
			"1.0.33.0|1.0.33.255|中国|内蒙古|呼和浩特市|铁通|CN",
		}, map[string]Location{
			"0.1.2.3":  {},
			"1.0.2.1":  {"cn", "fujian", "福州市", "telecom"},
			"1.0.9.1":  {"cn", "guangdong", "深圳市", "unicom"},
			"1.0.20.1": {"jp", "Tokyo", "", ""},
			"1.0.32.1": {"cn", "taiwan", "台北市", "中华电信"},
			"1.0.33.1": {"cn", "neimenggu", "呼和浩特市", "mobile"},
		}, 1},
		{"legacy", []string{
			"0.0.0.0|0.255.255.255|0|0|0|内网IP|内网IP",
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0|0",
			"1.0.32.0|1.0.63.255|中国|0|广东省|广州市|电信",
			"1.0.64.0|1.0.79.255|中国|华南|广东省|深圳市|联通",
		}, map[string]Location{
			"0.1.2.3":  {},
			"1.0.0.1":  {Country: "澳大利亚"},
			"1.0.40.1": {"cn", "guangdong", "广州市", "telecom"},
			"1.0.70.1": {"cn", "guangdong", "深圳市", "unicom"},
		}, 1},
		{"plain", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0",
			"1.0.1.0|1.0.3.255|中国|福建省|福州市|电信",
		}, map[string]Location{
			"1.0.0.1": {Country: "澳大利亚"},
			"1.0.2.1": {"cn", "fujian", "福州市", "telecom"},
		}, 0},
	}
	for _, c := range cases {
		tb, st, err := BuildFrom(strings.NewReader(strings.Join(c.src, "\n")+"\n"), FormatIP2Region, "ip2region sample")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for ip, want := range c.want {
			got, ok := tb.LookupString(ip)
			if got != want || ok != (want != Location{}) {
				t.Errorf("%s: %s = %+v, %v; want %+v", c.name, ip, got, ok, want)
			}
		}
		if st.Ranges != len(c.src) || st.UnknownRanges != c.unknown {
			t.Errorf("%s: stats %+v, want %d ranges, %d unknown", c.name, st, len(c.src), c.unknown)
		}
	}
}

func TestIP2RegionErrors(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		name string
		src  []string
		want string // the whole error
	}{
		{"too few fields", []string{"1.0.0.0|1.0.0.255|中国|广东省"},
			"line 1: has 4 fields, want " + sourceLayouts},
		{"iso, then a legacy row", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0|0",
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN",
			"1.0.16.0|1.0.16.255|Nowhere|0|0|0|0",
			"1.0.32.0|1.0.63.255|中国|0|广东省|广州市|电信",
		}, `line 4: 7th field "电信" is not an ISO 3166 code or 0, but line 2's "CN" made the layout start|end|country|province|city|isp|iso (a file has one layout; this row looks like the older start|end|country|region|province|city|isp)`},
		{"iso, then an empty 7th field", []string{
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN",
			"1.0.16.0|1.0.16.255|中国|广东省|广州市|电信|",
		}, `line 2: 7th field "" is not an ISO 3166 code or 0, but line 1's "CN" made the layout start|end|country|province|city|isp|iso (a file has one layout; this row looks like the older start|end|country|region|province|city|isp)`},
		{"6 fields, then 7", []string{
			"# plain",
			"1.0.1.0|1.0.3.255|中国|福建省|福州市|电信",
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN",
		}, "line 3: has 7 fields, but line 2 has 6 (a file has one layout, want " + sourceLayouts + ")"},
		{"7 fields, then 6", []string{
			"1.0.32.0|1.0.63.255|中国|0|广东省|广州市|电信",
			"1.0.64.0|1.0.79.255|中国|广东省|深圳市|联通",
		}, "line 2: has 6 fields, but line 1 has 7 (a file has one layout, want " + sourceLayouts + ")"},
		// A row held back is checked when the layout is decided...
		{"bad name in an ambiguous row", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|" + long + "|0|0",
			"1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN",
		}, "line 1: city is 300 bytes, longer than 255"},
		// ...or when a later row is bad, so that the first bad row is named.
		{"bad ambiguous row before a bad address", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|\xff|0|0",
			"1.0.8.x|1.0.15.255|中国|广东省|广州市|电信|CN",
		}, "line 1: province is not valid UTF-8"},
		{"good ambiguous row before a bad address", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|0|0|0",
			"1.0.8.x|1.0.15.255|中国|广东省|广州市|电信|CN",
		}, `line 2: start "1.0.8.x" is not an IPv4 address`},
		// An ambiguous row that the builder would refuse in the legacy
		// layout (广州市 is no province) is not built before the bad row.
		{"ambiguous row before a bad address", []string{
			"1.0.0.0|1.0.0.255|中国|广东省|广州市|0|0",
			"1.0.8.x|1.0.15.255|中国|广东省|广州市|电信|CN",
		}, `line 2: start "1.0.8.x" is not an IPv4 address`},
		{"bad ambiguous row at the end", []string{
			"1.0.0.0|1.0.0.255|澳大利亚|0|" + long + "|0|0",
		}, "line 1: province is 300 bytes, longer than 255"},
		{"start after end in an ambiguous row", []string{
			"1.0.0.9|1.0.0.0|澳大利亚|0|0|0|0",
		}, "line 1: start 1.0.0.9 is after end 1.0.0.0"},
	}
	for _, c := range cases {
		_, err := ParseRanges(strings.NewReader(strings.Join(c.src, "\n")+"\n"), FormatIP2Region)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, c.want)
		}
		// The build stops at the same row.
		_, _, berr := BuildFrom(strings.NewReader(strings.Join(c.src, "\n")+"\n"), FormatIP2Region, "")
		if berr == nil || berr.Error() != c.want {
			t.Errorf("%s: build:\n got %v\nwant %s", c.name, berr, c.want)
		}
	}
}

// FuzzParseIP2Region: errors name a line, and whatever the streaming scan
// accepts is read as the whole-file rule of the xdb reader reads it (the
// layout decided over all rows, worked out here independently).
func FuzzParseIP2Region(f *testing.F) {
	f.Add("0.0.0.0|0.255.255.255|0|0|0|内网IP|0\n1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN\n")
	f.Add("1.0.0.0|1.0.0.255|澳大利亚|维多利亚|墨尔本|0|0\n1.0.32.0|1.0.63.255|中国|华南|广东省|广州市|电信\n1.0.64.0|1.0.64.255|韩国|0|首尔|首尔|KT\n")
	f.Add("1.0.0.0|1.0.0.255|澳大利亚|0|0|0\n1.0.1.0|1.0.3.255|中国|福建省|福州市|电信\n")
	f.Add("1.0.0.0|1.0.0.255|a|b|c|0|0\r\n# x\n\n1.0.1.0|1.0.1.1|a|b|c|d| jp \n")
	f.Add("1.0.8.0|1.0.15.255|中国|广东省|广州市|电信|CN\n1.0.32.0|1.0.63.255|中国|0|广东省|广州市|电信\n")
	code := regexp.MustCompile(`^[A-Za-z]{2}$`)
	f.Fuzz(func(t *testing.T, src string) {
		got, err := ParseRanges(strings.NewReader(src), FormatIP2Region)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		type row struct {
			line  int
			names []string
		}
		var rows []row
		for i, l := range strings.Split(strings.TrimPrefix(src, "\ufeff"), "\n") {
			l = strings.TrimRight(l, "\r")
			if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
				continue
			}
			names := strings.Split(l, "|")[2:]
			for j := range names {
				names[j] = strings.TrimSpace(names[j])
			}
			rows = append(rows, row{i + 1, names})
		}
		if len(got) != len(rows) {
			t.Fatalf("%d ranges from %d rows", len(got), len(rows))
		}
		iso, anyCode := true, false
		for _, r := range rows {
			if len(r.names) != len(rows[0].names) {
				t.Fatalf("line %d: %d fields accepted after %d", r.line, len(r.names)+2, len(rows[0].names)+2)
			}
			if len(r.names) == 5 {
				switch last := r.names[4]; {
				case code.MatchString(last):
					anyCode = true
				case last != "0":
					iso = false
				}
			}
		}
		iso = iso && anyCode
		unknown := func(s string) string {
			if s == "0" {
				return ""
			}
			return s
		}
		for i, r := range rows {
			n := r.names
			var want Location
			switch {
			case len(n) == 4:
				want = Location{n[0], n[1], n[2], n[3]}
			case iso && n[4] != "0" && n[4] != "":
				want = Location{n[4], n[1], n[2], n[3]}
			case iso:
				want = Location{n[0], n[1], n[2], n[3]}
			default:
				want = Location{n[0], n[2], n[3], n[4]}
			}
			want = Location{unknown(want.Country), unknown(want.Province), unknown(want.City), unknown(want.ISP)}
			if got[i].Line != r.line || got[i].Location != want {
				t.Fatalf("line %d read as line %d %+v, want %+v (iso layout %v)", r.line, got[i].Line, got[i].Location, want, iso)
			}
		}
	})
}
