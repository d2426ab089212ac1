package ipdb

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzLoad: the loader never panics on garbage, and whatever it accepts is a
// consistent table (every code has names, lookups work).
func FuzzLoad(f *testing.F) {
	tb, _ := smallTable(f)
	var buf bytes.Buffer
	if err := tb.Write(&buf, true); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:headerSize])
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := LoadBytes(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		for _, ip := range []string{"0.0.0.0", "1.0.1.1", "8.8.8.8", "255.255.255.255"} {
			loc, ok := got.LookupString(ip)
			if ok && loc.Country == "" {
				t.Fatalf("%s found without a country", ip)
			}
		}
	})
}

// FuzzBuildCSV: the CSV builder never panics, reports errors with the line,
// and a table it builds answers for the first address of each row.
func FuzzBuildCSV(f *testing.F) {
	f.Add("start,end,country,province,city,isp\n1.0.1.0,1.0.3.255,中国,广东省,广州市,电信\n")
	f.Add("1.2.3.0,1.2.3.7,cn,beijing,,\n1.2.3.8,1.2.3.255,us,ca,la,x\n")
	f.Add("1.2.3.0,1.2.3.7,cn,beijing,,\n1.2.3.7,1.2.3.255,us,ca,la,x\n")
	f.Add("0.0.0.0,255.255.255.255,hk,,,\n")
	f.Add("::ffff:1.2.3.4,1.2.3.5,jp,,,\n# c\n\"1.0.0.0\",1.0.0.0,de,\"a,b\",,\n")
	f.Fuzz(func(t *testing.T, csv string) {
		rows, perr := ParseRanges(strings.NewReader(csv), FormatCSV)
		tb, _, err := BuildFrom(strings.NewReader(csv), FormatCSV, "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("build accepted what ParseRanges rejects: %v", perr)
		}
		for _, r := range rows {
			if r.Last.As4()[3] == 255 && r.First.As4()[3] == 0 {
				if _, ok := tb.Lookup(r.First); !ok {
					t.Fatalf("line %d: %s not found after a successful build", r.Line, r.First)
				}
			}
		}
	})
}

// FuzzParseBlock: the fast dotted-quad parser accepts only what netip does,
// and agrees with it.
func FuzzParseBlock(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "01.2.3.4", "255.255.255.255", "1.2.3", "::ffff:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(checkParseBlock)
}
