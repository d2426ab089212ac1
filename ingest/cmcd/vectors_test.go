package cmcd

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/ingest/cmcd/cmcdtest"
	"github.com/qoscope/qoscope/schemas"
)

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
	vectors := cmcdtest.LoadVectors(t, "testdata/vectors.txt")
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
