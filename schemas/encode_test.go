package schemas

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRoundTrip is the property the aggregator relies on: every valid line
// decodes to the Event it encodes, and AppendJSON's output decodes to the
// same Event again and re-encodes to the same bytes.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var e, e2 Event
	for i := range 20000 {
		line, want := genLine(r)
		if err := ParseLine(line, &e); err != nil {
			t.Fatalf("case %d: ParseLine(%s): %v", i, line, err)
		}
		if !sameEvent(e, want) {
			t.Fatalf("case %d: %s\n got  %+v\n want %+v", i, line, e, want)
		}
		out := AppendJSON(nil, &e)
		if !json.Valid(out) {
			t.Fatalf("case %d: AppendJSON wrote invalid JSON: %s", i, out)
		}
		if err := ParseLine(out, &e2); err != nil {
			t.Fatalf("case %d: ParseLine(AppendJSON) %s: %v", i, out, err)
		}
		if !sameEvent(e2, want) {
			t.Fatalf("case %d: after round trip\n got  %+v\n want %+v\n json %s", i, e2, want, out)
		}
		if out2 := AppendJSON(nil, &e2); !bytes.Equal(out, out2) {
			t.Fatalf("case %d: encoding is not canonical:\n%s\n%s", i, out, out2)
		}
	}
}

func TestAppendJSONExact(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{
			name: "constructed heartbeat: required members even when zero, non-zero ones, version defaulted",
			e: Event{Type: TypeHeartbeat, TS: noon, RecvTS: noon + 5, UserID: "u\"1", StreamID: "s\n",
				VideoBufferMS: 1500, BitrateKbps: 2500.5, Country: "中国"},
			want: `{"v":1,"type":"heartbeat","ts":1795435200000,"recv_ts":1795435200005,"user_id":"u\"1","stream_id":"s\n",` +
				`"country":"中国","video_buffer_ms":1500,"bitrate_kbps":2500.5,"stalled":false}`,
		},
		{
			name: "present zero members are written, extras last",
			e: Event{V: 1, Type: TypePlayEnd, TS: noon, UserID: "u", StreamID: "s", Reason: "eos",
				Present: setOf(PropWatchMS, PropVendor), Extra: []byte(`"app":{"x":[1]}`)},
			want: `{"v":1,"type":"play_end","ts":1795435200000,"user_id":"u","stream_id":"s","vendor":"","reason":"eos","watch_ms":0,"app":{"x":[1]}}`,
		},
		{
			name: "ok play_start requires connect_ms; control characters, invalid UTF-8, tiny and huge floats",
			e: Event{Type: TypePlayStart, TS: noon, UserID: "\x01\xff", StreamID: "s", OK: true, FPS: 1e-7, RTTMS: 1e21,
				BitrateKbps: math.NaN()},
			want: `{"v":1,"type":"play_start","ts":1795435200000,"user_id":"\u0001\ufffd","stream_id":"s","ok":true,"connect_ms":0,` +
				`"bitrate_kbps":null,"fps":1e-07,"rtt_ms":1e+21}`,
		},
		{
			name: "cdn status is an int",
			e:    Event{Type: TypeCDNRequest, TS: noon, Vendor: "v", Node: "n", Status: 503, Bytes: 7},
			want: `{"v":1,"type":"cdn_request","ts":1795435200000,"vendor":"v","node":"n","status":503,"bytes":7,"ttfb_ms":0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendJSON(nil, &tt.e)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestAppendJSONAppends(t *testing.T) {
	e := Event{Type: TypeDNS, TS: noon, UserID: "u", CacheHit: true}
	got := AppendJSON([]byte("prefix\n"), &e)
	want := "prefix\n" + `{"v":1,"type":"dns","ts":1795435200000,"user_id":"u","cache_hit":true}`
	if string(got) != want {
		t.Errorf("got %s", got)
	}
}
