package cmcd

import (
	"bufio"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/schemas"
)

// Vector is one block of testdata/vectors.txt (see its header).
type Vector struct {
	Name, Payload, JSON, Collector, Events, Stream, Context, Violations, Error string
	Headers                                                                     []string
	Forms                                                                       []string
	HasJSON                                                                     bool
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

// Summary renders events as the vectors write them.
func Summary(evs []schemas.Event) string {
	var parts []string
	for _, e := range evs {
		s := e.Type.String() + " user=" + e.UserID
		if e.TS != recv.UnixMilli() {
			s += " ts=" + itoa(e.TS)
		}
		switch e.Type {
		case schemas.TypeHeartbeat:
			if e.Stalled {
				s += " stalled"
			}
			if e.Has(schemas.PropVideoBufferMS) {
				s += " video=" + itoa(e.VideoBufferMS)
			}
			if e.Has(schemas.PropAudioBufferMS) {
				s += " audio=" + itoa(e.AudioBufferMS)
			}
			if e.Has(schemas.PropBitrateKbps) {
				s += " br=" + itoa(int64(e.BitrateKbps))
			}
		case schemas.TypePlayEnd:
			s += " " + e.Reason
		case schemas.TypeStall:
			s += " " + itoa(e.DurationMS) + " " + e.Media
		case schemas.TypeFirstFrame:
			s += " " + itoa(e.FirstFrameMS)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "|")
}

func violationList(vs []Violation) string {
	var rules []string
	for _, v := range vs {
		rules = append(rules, string(v.Rule))
	}
	slices.Sort(rules)
	return strings.Join(rules, " ")
}

// TestVectors decodes every vector in each of its forms (query parameter,
// CMCD-* headers, POST line, JSON mode) and checks the events, stream,
// context, violations or error written by hand.
func TestVectors(t *testing.T) {
	streams, err := NewStreamSource([]string{StreamFromCID, StreamFromQuery, StreamFromUnknown}, "stream", "")
	if err != nil {
		t.Fatal(err)
	}
	vectors := LoadVectors(t, "testdata/vectors.txt")
	if len(vectors) < 20 {
		t.Fatalf("%d vectors", len(vectors))
	}
	for _, v := range vectors {
		for _, form := range v.Forms {
			t.Run(v.Name+"/"+form, func(t *testing.T) {
				var d Data
				var err error
				switch form {
				case "query":
					d, err = Parse("foo=1&CMCD=" + url.QueryEscape(v.Payload))
				case "header":
					h := http.Header{}
					for _, l := range v.HeaderLines() {
						name, val, _ := strings.Cut(l, ":")
						h.Add(name, strings.TrimSpace(val))
					}
					d, err = ParseHeaders(h)
				case "line":
					var ds []Data
					if ds, err = ParseBody([]byte(v.Payload + "\n")); err == nil {
						d = ds[0]
					}
				case "json":
					d, err = ParseJSON([]byte(v.JSON))
				default:
					t.Fatalf("unknown form %q", form)
				}
				var evs []schemas.Event
				if err == nil {
					q, _ := url.ParseQuery(v.Collector)
					evs, err = streams.ToEvents(d, q, recv, "192.0.2.9")
				}
				if v.Error != "" {
					ce, ok := err.(*Error)
					if !ok {
						t.Fatalf("got %v, want error %s", err, v.Error)
					}
					if got := ce.Key + ": " + ce.Reason; got != v.Error {
						t.Fatalf("error %q, want %q", got, v.Error)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := Summary(evs); got != v.Events {
					t.Errorf("events\n got %q\nwant %q", got, v.Events)
				}
				for _, e := range evs {
					if e.StreamID != v.Stream {
						t.Errorf("stream %q, want %q", e.StreamID, v.Stream)
					}
				}
				if v.Context != "" && (len(evs) == 0 || string(evs[0].Extra) != `"cmcd":`+v.Context) {
					t.Errorf("context of %+v, want %s", evs, v.Context)
				}
				if got := violationList(d.Violations); got != v.Violations {
					t.Errorf("violations %q, want %q", got, v.Violations)
				}
			})
		}
	}
}
