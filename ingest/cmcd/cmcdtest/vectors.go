// Package cmcdtest reads ingest/cmcd/testdata/vectors.txt, the CMCD test
// vectors shared by the cmcd and ingest tests. Test support only.
package cmcdtest

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// Vector is one block of testdata/vectors.txt (see its header).
type Vector struct {
	Name, Payload, JSON, Collector, Events, Stream, Context, Violations, Error string
	Headers                                                                    []string
	Forms                                                                      []string
	HasJSON                                                                    bool
}

// LoadVectors reads testdata/vectors.txt.
func LoadVectors(t testing.TB, path string) []Vector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Vector
	var v *Vector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			v = nil
			continue
		}
		if v == nil {
			out = append(out, Vector{})
			v = &out[len(out)-1]
		}
		field, val, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s:%d: want field: value", path, n)
		}
		val = strings.TrimPrefix(val, " ")
		switch field {
		case "name":
			v.Name = val
		case "payload":
			v.Payload = val
		case "header":
			v.Headers = append(v.Headers, val)
		case "json":
			v.JSON, v.HasJSON = val, true
		case "forms":
			v.Forms = strings.Fields(val)
		case "collector":
			v.Collector = val
		case "events":
			v.Events = val
		case "stream":
			v.Stream = val
		case "context":
			v.Context = val
		case "violations":
			v.Violations = val
		case "error":
			v.Error = val
		default:
			t.Fatalf("%s:%d: unknown field %q", path, n, field)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		v := &out[i]
		if v.Forms == nil {
			if len(v.Headers) > 0 {
				v.Forms = []string{"header"}
			} else {
				v.Forms = []string{"query", "header", "line"}
			}
			if v.HasJSON {
				v.Forms = append(v.Forms, "json")
			}
		}
	}
	return out
}

// testHomes is CTA-5004-A Table 1's header per key, transcribed for the
// tests (pr as in v2; nrr from v1).
var testHomes = map[string]string{
	"br": "CMCD-Object", "d": "CMCD-Object", "ot": "CMCD-Object", "tb": "CMCD-Object",
	"bl": "CMCD-Request", "dl": "CMCD-Request", "mtp": "CMCD-Request", "nor": "CMCD-Request", "nrr": "CMCD-Request",
	"su": "CMCD-Request", "sta": "CMCD-Request",
	"cid": "CMCD-Session", "sf": "CMCD-Session", "sid": "CMCD-Session", "st": "CMCD-Session", "v": "CMCD-Session", "msd": "CMCD-Session",
	"bs": "CMCD-Status", "rtp": "CMCD-Status", "pr": "CMCD-Status", "bsd": "CMCD-Status", "ec": "CMCD-Status",
}

// HeaderLines spreads a payload's members over their headers, each header
// keeping the members in payload order, or returns the explicit headers.
func (v *Vector) HeaderLines() []string {
	if len(v.Headers) > 0 {
		return v.Headers
	}
	byHeader := map[string][]string{}
	for _, m := range splitMembers(v.Payload) {
		key, _, _ := strings.Cut(m, "=")
		h, ok := testHomes[key]
		if !ok {
			h = "CMCD-Session"
		}
		byHeader[h] = append(byHeader[h], m)
	}
	var out []string
	for _, h := range []string{"CMCD-Object", "CMCD-Request", "CMCD-Session", "CMCD-Status"} {
		if ms := byHeader[h]; len(ms) > 0 {
			out = append(out, h+": "+strings.Join(ms, ","))
		}
	}
	return out
}

// splitMembers splits a dictionary at the commas outside strings and inner
// lists.
func splitMembers(s string) []string {
	var out []string
	depth, inStr, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && c == '(':
			depth++
		case !inStr && c == ')':
			depth--
		case !inStr && depth == 0 && c == ',':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
