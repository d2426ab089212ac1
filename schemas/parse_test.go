package schemas

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Times used below, computed by hand:
// 2026-11-23T12:00:00Z = 20415 days after 1970-01-01 → 20415·86400 + 12·3600
// = 1795435200 s.
const noon = int64(1795435200000) // 2026-11-23T12:00:00Z in Unix ms

func TestParseLineGood(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Event
	}{
		{
			name: "heartbeat with offset time, extras and nested extra",
			line: `{"v":1,"type":"heartbeat","ts":"2026-11-23T20:00:00.250+08:00","user_id":"u1","stream_id":"s1",` +
				`"stalled":false,"video_buffer_ms":1200,"bitrate_kbps":2500.5,"app":{"a":[1,{"b":null}]},"ip":"1.2.3.4","z":"x"}`,
			want: Event{V: 1, Type: TypeHeartbeat, TS: noon + 250, UserID: "u1", StreamID: "s1", IP: "1.2.3.4",
				VideoBufferMS: 1200, BitrateKbps: 2500.5,
				Present: setOf(PropV, PropType, PropTS, PropUserID, PropStreamID, PropIP, PropVideoBufferMS, PropBitrateKbps, PropStalled),
				Extra:   []byte(`"app":{"a":[1,{"b":null}]},"z":"x"`)},
		},
		{
			name: "failed play_start needs no connect_ms; Unix ms ts; whitespace everywhere",
			line: " \t{ \"v\" : 1 , \"type\":\"play_start\",\"ts\":1795435200000,\"user_id\":\"u\",\"stream_id\":\"s\",\"ok\":false,\"error\":\"timeout\" }\r\n",
			want: Event{V: 1, Type: TypePlayStart, TS: noon, UserID: "u", StreamID: "s", Error: "timeout",
				Present: setOf(PropV, PropType, PropTS, PropUserID, PropStreamID, PropOK, PropError)},
		},
		{
			name: "escapes, surrogate pair, escaped member names",
			line: `{"v":1,"type":"first_frame","ts":"2026-11-23t12:00:00z","user_id":"\u00e9\n\"\\\/","stream_id":"\ud83d\ude00",` +
				`"first_frame_ms":950,"quality":"\uD83D\uDE00x","pl\u0061tform":"ios","\u0078":1}`,
			want: Event{V: 1, Type: TypeFirstFrame, TS: noon, UserID: "é\n\"\\/", StreamID: "😀", FirstFrameMS: 950,
				Quality: "😀x", Platform: "ios",
				Present: setOf(PropV, PropType, PropTS, PropUserID, PropStreamID, PropFirstFrameMS, PropQuality, PropPlatform),
				Extra:   []byte(`"\u0078":1`)},
		},
		{
			name: "integers written as 1.0 and 2.5e3, null optionals are absent, fraction digits truncated",
			line: `{"v":1.0,"type":"stall","ts":"2026-11-23T12:00:00.1239Z","user_id":"u","stream_id":"s","duration_ms":2.5e3,` +
				`"media":"audio","vendor":null,"role":null,"recv_ts":1795435201000}`,
			want: Event{V: 1, Type: TypeStall, TS: noon + 123, RecvTS: noon + 1000, UserID: "u", StreamID: "s",
				DurationMS: 2500, Media: "audio",
				Present: setOf(PropV, PropType, PropTS, PropRecvTS, PropUserID, PropStreamID, PropDurationMS, PropMedia)},
		},
		{
			name: "cdn_request; members of other types are validated and kept",
			line: `{"v":1,"type":"cdn_request","ts":1795435200000,"vendor":"cdnA","node":"edge-1","ip":"2001:db8::1",` +
				`"status":200,"bytes":1048576,"ttfb_ms":35,"duration_ms":0,"fps":25}`,
			want: Event{V: 1, Type: TypeCDNRequest, TS: noon, Vendor: "cdnA", Node: "edge-1", IP: "2001:db8::1",
				Status: 200, Bytes: 1048576, TTFBMS: 35, FPS: 25,
				Present: setOf(PropV, PropType, PropTS, PropVendor, PropNode, PropIP, PropStatus, PropBytes, PropTTFBMS, PropDurationMS, PropFPS)},
		},
		{
			name: "origin_stats with empty optional string",
			line: `{"type":"origin_stats","v":1,"ts":1795435200000,"stream_id":"s","node":"o1","line":"backup","egress_isp":"",` +
				`"bitrate_kbps":0,"fps":29.97,"rtt_ms":12.5}`,
			want: Event{V: 1, Type: TypeOriginStats, TS: noon, StreamID: "s", Node: "o1", Line: "backup",
				FPS: 29.97, RTTMS: 12.5,
				Present: setOf(PropV, PropType, PropTS, PropStreamID, PropNode, PropLine, PropEgressISP, PropBitrateKbps, PropFPS, PropRTTMS)},
		},
		{
			name: "relay ok with duration; dns without stream",
			line: `{"v":1,"type":"relay","ts":1795435200000,"user_id":"u","stream_id":"s","ok":true,"duration_ms":80,"role":"cohost"}`,
			want: Event{V: 1, Type: TypeRelay, TS: noon, UserID: "u", StreamID: "s", OK: true, DurationMS: 80, Role: "cohost",
				Present: setOf(PropV, PropType, PropTS, PropUserID, PropStreamID, PropOK, PropDurationMS, PropRole)},
		},
		{
			name: "dns",
			line: `{"v":1,"type":"dns","ts":1795435200000,"user_id":"u","cache_hit":true}`,
			want: Event{V: 1, Type: TypeDNS, TS: noon, UserID: "u", CacheHit: true,
				Present: setOf(PropV, PropType, PropTS, PropUserID, PropCacheHit)},
		},
		{
			name: "negative offset crosses the day; leap day",
			line: `{"v":1,"type":"push_end","ts":"2028-02-29T23:30:00-01:30","user_id":"u","stream_id":"s","dropped":true}`,
			// 2028-03-01T01:00:00Z: 2028-03-01 is day 21244 → 21244·86400 + 3600 s.
			want: Event{V: 1, Type: TypePushEnd, TS: (21244*86400 + 3600) * 1000, UserID: "u", StreamID: "s", Dropped: true,
				Present: setOf(PropV, PropType, PropTS, PropUserID, PropStreamID, PropDropped)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Event
			if err := ParseLine([]byte(tt.line), &e); err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			if len(tt.want.Extra) == 0 {
				tt.want.Extra = e.Extra[:0:0]
				if len(e.Extra) == 0 {
					e.Extra = tt.want.Extra
				}
			}
			if !reflect.DeepEqual(e, tt.want) {
				t.Errorf("got  %+v\nwant %+v", e, tt.want)
			}
		})
	}
}

// base is a valid heartbeat; most bad lines change one member.
const base = `"v":1,"type":"heartbeat","ts":1795435200000,"user_id":"u","stream_id":"s","stalled":false`

var long = strings.Repeat("é", MaxString+1)

var badLines = []struct {
	line, field, reason string
	// schemaBlind says why JSON Schema cannot see the problem, if it cannot.
	schemaBlind string
}{
	// Whole-line problems.
	{``, "", "not a JSON object", ""},
	{`[{}]`, "", "not a JSON object", ""},
	{`"x"`, "", "not a JSON object", ""},
	{`{` + base, "", "invalid JSON at byte 90: unexpected end of input, want ',' or '}' after a member", ""},
	{`{` + base + `}x`, "", "invalid JSON at byte 91: unexpected data after the object", ""},
	{`{` + base + `,}`, "", `invalid JSON at byte 91: unexpected '}', want a member name in double quotes`, ""},
	{`{"v":1 "type":"x"}`, "", `invalid JSON at byte 7: unexpected '"', want ',' or '}' after a member`, ""},
	{"{\"v\":1,\xc3}", "", "invalid JSON at byte 7: unexpected byte 0xc3, want a member name in double quotes", ""},
	{`{"v":01}`, "", `invalid JSON at byte 6: unexpected '1', want ',' or '}' after a member`, ""},
	{`{"v":-}`, "v", "invalid JSON at byte 6: invalid number", ""},
	{`{"v":1.}`, "v", "invalid JSON at byte 7: invalid number: no digits after '.'", ""},
	{`{"v":1e}`, "v", "invalid JSON at byte 7: invalid number: no digits in exponent", ""},
	{`{"v":tru}`, "v", "invalid JSON at byte 5: invalid literal, want true", ""},
	{`{"v" 1}`, "v", `invalid JSON at byte 5: unexpected '1', want ':' after the member name`, ""},
	{`{"a":"x` + "\x01" + `"}`, "a", `invalid JSON at byte 7: control character '\x01' in string (escape it)`, ""},
	{`{"a":"` + "\xff" + `"}`, "a", "invalid JSON at byte 6: invalid UTF-8 in string", "encoding/json accepts invalid UTF-8"},
	{`{"a":"\x"}`, "a", `invalid JSON at byte 6: invalid escape "\\x" in string`, ""},
	{`{"a":"\u12"}`, "a", `invalid JSON at byte 6: invalid \u escape in string`, ""},
	{`{"a":"abc`, "a", "invalid JSON at byte 9: unterminated string", ""},
	// Lone surrogates: rejected wherever they are (I-JSON), at the escape.
	{`{` + base + `,"quality":"\ud800x"}`, "quality", `invalid JSON at byte 102: lone surrogate \ud800 in string (a character outside the BMP is escaped as a high-low pair, e.g. \ud83d\ude00)`, "encoding/json decodes a lone surrogate to U+FFFD"},
	{`{` + base + `,"quality":"x\uDC00"}`, "quality", `invalid JSON at byte 103: lone surrogate \uDC00 in string (a character outside the BMP is escaped as a high-low pair, e.g. \ud83d\ude00)`, "encoding/json decodes a lone surrogate to U+FFFD"},
	{`{` + base + `,"quality":"\ud800\u0041"}`, "quality", `invalid JSON at byte 102: lone surrogate \ud800 in string (a character outside the BMP is escaped as a high-low pair, e.g. \ud83d\ude00)`, "encoding/json decodes a lone surrogate to U+FFFD"},
	{`{` + base + `,"quality":"\ud800\ud800"}`, "quality", `invalid JSON at byte 102: lone surrogate \ud800 in string (a character outside the BMP is escaped as a high-low pair, e.g. \ud83d\ude00)`, "encoding/json decodes a lone surrogate to U+FFFD"},
	{`{` + base + `,"x":{"y":["\ud800"]}}`, "x", `invalid JSON at byte 102: lone surrogate \ud800 in string (a character outside the BMP is escaped as a high-low pair, e.g. \ud83d\ude00)`, "encoding/json decodes a lone surrogate to U+FFFD"},
	{`{` + base + `,"\udbff":1}`, "", `invalid JSON at byte 92: lone surrogate \udbff in string (a character outside the BMP is escaped as a high-low pair, e.g. \ud83d\ude00)`, "encoding/json decodes a lone surrogate to U+FFFD"},
	{`{"a":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`, "a", "invalid JSON at byte 69: nested deeper than 64 levels", "no depth limit in JSON Schema"},
	{`{"a":[1,]}`, "a", `invalid JSON at byte 8: unexpected ']', want a value`, ""},
	{`{"a":{"b":1,}}`, "a", `invalid JSON at byte 12: unexpected '}', want a member name in double quotes`, ""},
	// Duplicates, known and unknown, also when spelt with escapes.
	{`{` + base + `,"stalled":true}`, "stalled", "duplicate key", "duplicates are invisible after decoding"},
	{`{` + base + `,"x":1,"\u0078":2}`, "x", "duplicate key", "duplicates are invisible after decoding"},
	{`{` + base + `,"a1":1,"a2":1,"a3":1,"a4":1,"a5":1,"a6":1,"a7":1,"a8":1,"a9":1,"a10":1,"a9":2}`, "a9", "duplicate key", "duplicates are invisible after decoding"},
	{`{` + base + `,"us\u0065r_id":"w"}`, "user_id", "duplicate key", "duplicates are invisible after decoding"},
	// v and type.
	{`{"type":"heartbeat"}`, "v", "required", ""},
	{`{"v":null}`, "v", "required", ""},
	{`{"v":"1"}`, "v", "must be an integer", ""},
	{`{"v":1.5}`, "v", "must be an integer", ""},
	{`{"v":2,"type":"heartbeat"}`, "v", "unsupported version 2", ""},
	{`{"v":1}`, "type", "required", ""},
	{`{"v":1,"type":7}`, "type", "must be a string", ""},
	{`{"v":1,"type":"Heartbeat"}`, "type", `unknown type "Heartbeat"`, ""},
	// ts.
	{`{"v":1,"type":"stall"}`, "ts", "required", ""},
	{`{"v":1,"type":"stall","ts":null}`, "ts", reasonTime, ""},
	{`{"v":1,"type":"stall","ts":1795435200}`, "ts", "looks like Unix seconds, want milliseconds", ""},
	{`{"v":1,"type":"stall","ts":1795435200000000}`, "ts", "too large: looks like Unix micro- or nanoseconds, want milliseconds", ""},
	{`{"v":1,"type":"stall","ts":-1}`, "ts", "must be after 1973-03-03T09:46:40Z", ""},
	{`{"v":1,"type":"stall","ts":1795435200000.5}`, "ts", "must be whole Unix milliseconds", ""},
	{`{"v":1,"type":"stall","ts":"2026-11-23T12:00:00"}`, "ts", "RFC 3339 time needs a zone (Z or ±hh:mm)", ""},
	{`{"v":1,"type":"stall","ts":"2026-11-23 12:00:00Z"}`, "ts", reasonTime, ""},
	{`{"v":1,"type":"stall","ts":"2026-02-29T12:00:00Z"}`, "ts", "invalid RFC 3339 time: date or time out of range", ""},
	{`{"v":1,"type":"stall","ts":"2026-11-23T12:00:00+0800"}`, "ts", reasonTime, ""},
	{`{"v":1,"type":"stall","ts":"2026-11-23T12:00:00.Z"}`, "ts", reasonTime, ""},
	{`{"v":1,"type":"stall","ts":"1970-01-01T00:00:00Z"}`, "ts", "must be after 1973-03-03T09:46:40Z", "no date bounds for date-time strings"},
	{`{"v":1,"type":"stall","ts":"1795435200000"}`, "ts", reasonTime, ""},
	{`{"v":1,"type":"stall","ts":true}`, "ts", reasonTime, ""},
	// Required members per type, in table order.
	{`{"v":1,"type":"heartbeat","ts":1795435200000,"stream_id":"s","stalled":true}`, "user_id", "required", ""},
	{`{"v":1,"type":"heartbeat","ts":1795435200000,"user_id":"","stream_id":"s","stalled":true}`, "user_id", "must not be empty", ""},
	{`{"v":1,"type":"heartbeat","ts":1795435200000,"user_id":null,"stream_id":"s","stalled":true}`, "user_id", "must be a string", ""},
	{`{"v":1,"type":"heartbeat","ts":1795435200000,"user_id":"u","stream_id":"s"}`, "stalled", "required", ""},
	{`{"v":1,"type":"dns","ts":1795435200000,"user_id":"u"}`, "cache_hit", "required", ""},
	{`{"v":1,"type":"play_start","ts":1795435200000,"user_id":"u","stream_id":"s"}`, "ok", "required", ""},
	{`{"v":1,"type":"play_start","ts":1795435200000,"user_id":"u","stream_id":"s","ok":true}`, "connect_ms", "required", ""},
	{`{"v":1,"type":"play_start","ts":1795435200000,"user_id":"u","stream_id":"s","ok":true,"connect_ms":null}`, "connect_ms", "must be an integer", ""},
	{`{"v":1,"type":"push_start","ts":1795435200000,"user_id":"u","stream_id":"s","ok":true}`, "connect_ms", "required", ""},
	{`{"v":1,"type":"relay","ts":1795435200000,"user_id":"u","stream_id":"s","ok":true}`, "duration_ms", "required", ""},
	{`{"v":1,"type":"first_frame","ts":1795435200000,"user_id":"u","stream_id":"s"}`, "first_frame_ms", "required", ""},
	{`{"v":1,"type":"stall","ts":1795435200000,"user_id":"u","stream_id":"s","duration_ms":2000}`, "media", "required", ""},
	{`{"v":1,"type":"play_end","ts":1795435200000,"user_id":"u","stream_id":"s"}`, "reason", "required", ""},
	{`{"v":1,"type":"push_end","ts":1795435200000,"user_id":"u","stream_id":"s"}`, "dropped", "required", ""},
	{`{"v":1,"type":"cdn_request","ts":1795435200000,"vendor":"a","node":"n","status":200,"bytes":1}`, "ttfb_ms", "required", ""},
	{`{"v":1,"type":"origin_stats","ts":1795435200000,"stream_id":"s","node":"n","line":"primary","bitrate_kbps":1,"fps":1}`, "rtt_ms", "required", ""},
	// Wrong JSON types, ranges and enumerations.
	{`{` + base + `,"stalled":1}`, "stalled", "duplicate key", "duplicates are invisible after decoding"},
	{`{"v":1,"type":"heartbeat","ts":1795435200000,"user_id":"u","stream_id":"s","stalled":"no"}`, "stalled", "must be a boolean", ""},
	{`{` + base + `,"vendor":5}`, "vendor", "must be a string", ""},
	{`{` + base + `,"video_buffer_ms":"5"}`, "video_buffer_ms", "must be an integer", ""},
	{`{` + base + `,"video_buffer_ms":5.5}`, "video_buffer_ms", "must be an integer", ""},
	{`{` + base + `,"video_buffer_ms":-1}`, "video_buffer_ms", "must be ≥ 0", ""},
	{`{` + base + `,"video_buffer_ms":600001}`, "video_buffer_ms", "600001 is above the maximum 600000", ""},
	{`{` + base + `,"video_buffer_ms":600000}`, "", "", ""}, // 10 min is the bound itself
	{`{` + base + `,"video_buffer_ms":99999999999999999999999}`, "video_buffer_ms", "99999999999999999999999 is above the maximum 600000", ""},
	{`{` + base + `,"video_buffer_ms":1234567890123456789012345678901234567890}`, "video_buffer_ms", "12345678901234567890123456789012… is above the maximum 600000", ""},
	{`{` + base + `,"fps":"25"}`, "fps", "must be a number", ""},
	{`{` + base + `,"fps":-0.5}`, "fps", "must be ≥ 0", ""},
	{`{` + base + `,"fps":1e999}`, "fps", "out of range", "JSON Schema numbers have no float64 limit"},
	// Plausible ranges (docs/INGEST.md): each bound and one past it.
	{`{` + base + `,"fps":240}`, "", "", ""},
	{`{` + base + `,"fps":240.01}`, "fps", "240.01 is above the maximum 240", ""},
	{`{` + base + `,"fps":1e308}`, "fps", "1e308 is above the maximum 240", ""},
	{`{` + base + `,"bitrate_kbps":1000000}`, "", "", ""},
	{`{` + base + `,"bitrate_kbps":1000000.5}`, "bitrate_kbps", "1000000.5 is above the maximum 1e+06", ""},
	{`{` + base + `,"rtt_ms":60000.001}`, "rtt_ms", "60000.001 is above the maximum 60000", ""},
	{`{` + base + `,"connect_ms":600001}`, "connect_ms", "600001 is above the maximum 600000", ""},
	{`{` + base + `,"first_frame_ms":9007199254740991}`, "first_frame_ms", "9007199254740991 is above the maximum 600000", ""},
	{`{` + base + `,"duration_ms":86400000}`, "", "", ""},
	// A 1000-day stall: 1000 × 86,400,000 ms.
	{`{` + base + `,"duration_ms":86400000000}`, "duration_ms", "86400000000 is above the maximum 86400000", ""},
	{`{` + base + `,"watch_ms":604800001}`, "watch_ms", "604800001 is above the maximum 604800000", ""},
	{`{` + base + `,"audio_buffer_ms":6e5}`, "", "", ""},
	{`{` + base + `,"audio_buffer_ms":6.00001e5}`, "audio_buffer_ms", "6.00001e5 is above the maximum 600000", ""},
	{`{` + base + `,"ttfb_ms":600001}`, "ttfb_ms", "600001 is above the maximum 600000", ""},
	{`{` + base + `,"bytes":1099511627776}`, "", "", ""}, // 2^40
	{`{` + base + `,"bytes":1099511627777}`, "bytes", "1099511627777 is above the maximum 1099511627776", ""},
	// clock_skew_ms is signed, bounded by MaxTS − MinTS = 253302300799999.
	{`{` + base + `,"clock_skew_ms":-253302300799999}`, "", "", ""},
	{`{` + base + `,"clock_skew_ms":253302300800000}`, "clock_skew_ms", "must be between -253302300799999 and 253302300799999", ""},
	{`{` + base + `,"sent_at":1795435200}`, "sent_at", "looks like Unix seconds, want milliseconds", ""},
	{`{` + base + `,"sent_at":"yesterday"}`, "sent_at", reasonTime, ""},
	{`{` + base + `,"client_ts":true}`, "client_ts", reasonTime, ""},
	{`{` + base + `,"role":"viewer"}`, "role", "must be one of host, cohost, audience", ""},
	{`{` + base + `,"role":1}`, "role", "must be one of host, cohost, audience", ""},
	{`{` + base + `,"media":"Video"}`, "media", "must be one of video, audio", ""},
	{`{` + base + `,"reason":"crash"}`, "reason", "must be one of user, error, eos", ""},
	{`{` + base + `,"line":"main"}`, "line", "must be one of primary, backup", ""},
	{`{` + base + `,"ip":"1.2.3"}`, "ip", "must be an IP address (IPv4 or IPv6, no zone)", ""},
	{`{` + base + `,"ip":"fe80::1%eth0"}`, "ip", "must be an IP address (IPv4 or IPv6, no zone)", ""},
	{`{` + base + `,"ip":"01.2.3.4"}`, "ip", "must be an IP address (IPv4 or IPv6, no zone)", ""},
	{`{` + base + `,"status":200}`, "", "", ""}, // valid: status is known, just unused by heartbeats
	{`{` + base + `,"status":99}`, "status", "must be between 100 and 599", ""},
	{`{` + base + `,"status":600}`, "status", "must be between 100 and 599", ""},
	{`{` + base + `,"country":"` + long + `"}`, "country", "must be at most 256 characters", ""},
	{`{` + base + `,"error":"` + strings.Repeat("e", MaxErrorString+1) + `"}`, "error", "must be at most 1024 characters", ""},
	{`{` + base + `,"recv_ts":5}`, "recv_ts", "looks like Unix seconds, want milliseconds", ""},
	{`{` + base + `,"eid":"00000000000000ff"}`, "", "", ""},
	{`{` + base + `,"eid":"00AbcDEF00000001"}`, "", "", ""},
	{`{` + base + `,"eid":255}`, "eid", "must be a string of 16 hexadecimal digits, not all zero", ""},
	{`{` + base + `,"eid":"ff"}`, "eid", "must be a string of 16 hexadecimal digits, not all zero", ""},
	{`{` + base + `,"eid":"00000000000000fg"}`, "eid", "must be a string of 16 hexadecimal digits, not all zero", ""},
	{`{` + base + `,"eid":"0000000000000000"}`, "eid", "must be a string of 16 hexadecimal digits, not all zero", ""},
	{`{` + base + `,"eid":"\u0030000000000000001"}`, "", "", ""}, // JSON escapes spell the same string
}

// TestEIDRoundTrip: the identity survives the wire in both directions with
// all 64 bits (a JSON number would keep 53).
func TestEIDRoundTrip(t *testing.T) {
	line := `{"v":1,"type":"dns","ts":1795435200000,"user_id":"u","cache_hit":true,"eid":"FEDCBA9876543210"}`
	var e Event
	if err := ParseLine([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	if e.EID != 0xfedcba9876543210 {
		t.Fatalf("eid %x, want fedcba9876543210", e.EID)
	}
	want := `{"v":1,"type":"dns","ts":1795435200000,"user_id":"u","cache_hit":true,"eid":"fedcba9876543210"}`
	if got := string(AppendJSON(nil, &e)); got != want {
		t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
	}
}

func TestParseLineBad(t *testing.T) {
	tests := badLines
	for _, tt := range tests {
		var e Event
		err := ParseLine([]byte(tt.line), &e)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", tt.line, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%.80s: got %v, want *FieldError %s: %s", tt.line, err, tt.field, tt.reason)
			continue
		}
		if fe.Field != tt.field || fe.Reason != tt.reason {
			t.Errorf("%.80s:\n got field %q reason %q\nwant field %q reason %q", tt.line, fe.Field, fe.Reason, tt.field, tt.reason)
		}
	}
}

func TestMaxStringCountsCharacters(t *testing.T) {
	// 256 two-byte characters are 512 bytes but within the limit.
	line := `{"v":1,"type":"dns","ts":1795435200000,"user_id":"` + strings.Repeat("é", MaxString) + `","cache_hit":false}`
	var e Event
	if err := ParseLine([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.UserID) != 2*MaxString {
		t.Fatalf("user_id has %d bytes", len(e.UserID))
	}
}

func TestFieldErrorMessage(t *testing.T) {
	if got := (&FieldError{Field: "ts", Reason: "required"}).Error(); got != "field ts: required" {
		t.Errorf("got %q", got)
	}
	if got := (&FieldError{Reason: "not a JSON object"}).Error(); got != "not a JSON object" {
		t.Errorf("got %q", got)
	}
}

func TestParseLineResetsAndDoesNotAliasInput(t *testing.T) {
	line := []byte(`{"v":1,"type":"dns","ts":1795435200000,"user_id":"abc","cache_hit":true,"x":1}`)
	var e Event
	e.Vendor = "stale"
	e.Extra = append(e.Extra, `"old":1`...)
	if err := ParseLine(line, &e); err != nil {
		t.Fatal(err)
	}
	for i := range line {
		line[i] = 'X'
	}
	if e.UserID != "abc" || e.Vendor != "" || string(e.Extra) != `"x":1` {
		t.Fatalf("got %+v", e)
	}
	// A failed parse leaves no extras behind.
	if err := ParseLine([]byte(`{"v":1,"type":"dns","y":2}`), &e); err == nil {
		t.Fatal("want error")
	}
	if len(e.Extra) != 0 {
		t.Fatalf("extra after error: %q", e.Extra)
	}
}

func TestParseProp(t *testing.T) {
	for p := Prop(0); p < numProps; p++ {
		if got, ok := ParseProp(p.String()); !ok || got != p {
			t.Errorf("ParseProp(%q) = %v, %v", p.String(), got, ok)
		}
	}
	if _, ok := ParseProp("extra"); ok {
		t.Error("ParseProp accepted an unknown name")
	}
}

// The fast paths must agree exactly with the library functions they skip.
func TestFastPathsAgreeWithStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	digits := "0123456789"
	for range 200000 {
		var b strings.Builder
		if r.IntN(10) == 0 {
			b.WriteByte('-')
		}
		for range 1 + r.IntN(12) {
			b.WriteByte(digits[r.IntN(10)])
		}
		if r.IntN(2) == 0 {
			b.WriteByte('.')
			for range 1 + r.IntN(12) {
				b.WriteByte(digits[r.IntN(10)])
			}
		}
		s := b.String()
		want, err := strconv.ParseFloat(s, 64)
		if got, ok := parseFloatExact([]byte(s)); ok && (err != nil || got != want) {
			t.Fatalf("parseFloatExact(%s) = %v, strconv says %v (%v)", s, got, want, err)
		}
	}
	for _, s := range []string{"29.97", "2800", "0.1", "0", "-0", "9007199254740992", "1.5"} {
		if _, ok := parseFloatExact([]byte(s)); !ok {
			t.Errorf("fast path not taken for %s", s)
		}
	}
	ipChars := "0123456789.:a"
	cases := []string{"0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.", ".1.2.3", "1..2.3", "01.2.3.4", "1.2.3.04", "1.2.3.4.5", "::1", ""}
	for range 200000 {
		var b strings.Builder
		for range r.IntN(16) {
			b.WriteByte(ipChars[r.IntN(len(ipChars))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		a, err := netip.ParseAddr(s)
		want := err == nil && a.Is4()
		if got := isIPv4([]byte(s)); got != want {
			t.Fatalf("isIPv4(%q) = %v, netip says %v", s, got, want)
		}
	}
}

func TestStrSpecial(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := range 8 {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			got := strSpecial(binary.LittleEndian.Uint64(b[:])) != 0
			want := !strPlain[c]
			if got != want {
				t.Fatalf("byte %#x at %d: special=%v, want %v", c, pos, got, want)
			}
		}
	}
}
