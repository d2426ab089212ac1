package cmcd

import (
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

// The CTA-5004 example payload (a DASH video segment request), as a player
// puts it in the query string: the CMCD value URL-encoded, the nor value
// URL-encoded once more inside it.
const specQuery = "foo=1&CMCD=bl%3D21300%2Cbr%3D3200%2Cbs%2Ccid%3D%22faec5fc2-ac30-11eabb37-0242ac130002%22%2Cd%3D4004" +
	"%2Cdl%3D18500%2Cmtp%3D48100%2Cnor%3D%22..%252F300kbps%252Ftrack.m4v%22%2Cnrr%3D%2212323-48763%22%2Cot%3Dv" +
	"%2Cpr%3D1.08%2Crtp%3D12000%2Csf%3Dd%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22%2Cst%3Dv%2Csu%2Ctb%3D6000&bar=2"

func specData() Data {
	d := Data{
		Version: 1, SessionID: "6e2fb550-c457-11e9-bb97-0800200c9a66", ContentID: "faec5fc2-ac30-11eabb37-0242ac130002",
		ObjectType: "v", StreamingFormat: "d", StreamType: "v",
		Bitrate: []Value{{N: 3200}}, BufferLength: []Value{{N: 21300}}, TopBitrate: []Value{{N: 6000}},
		Throughput: []Value{{N: 48100}}, Duration: 4004, Deadline: 18500, RequestedThroughput: 12000,
		PlaybackRate: 1.08, NextObjects: []string{"..%2F300kbps%2Ftrack.m4v"}, NextRange: "12323-48763",
		Startup: true, Starved: true,
	}
	for _, k := range []Key{KeyBL, KeyBR, KeyBS, KeyCID, KeyD, KeyDL, KeyMTP, KeyNOR, KeyNRR, KeyOT, KeyPR,
		KeyRTP, KeySF, KeySID, KeyST, KeySU, KeyTB} {
		d.has |= 1 << k
	}
	return d
}

func TestParseQuery(t *testing.T) {
	got, err := Parse(specQuery)
	if err != nil {
		t.Fatal(err)
	}
	if want := specData(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.Has(KeyTS) || !got.Has(KeyBS) {
		t.Error("Has is wrong")
	}
}

func TestParseHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("CMCD-Object", "br=3200,d=4004,ot=v,tb=6000")
	h.Set("CMCD-Request", `bl=21300, dl=18500, mtp=48100, nor="..%2F300kbps%2Ftrack.m4v", nrr="12323-48763", su`)
	h.Set("CMCD-Session", `cid="faec5fc2-ac30-11eabb37-0242ac130002",pr=1.08,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v`)
	h.Add("CMCD-Status", "bs")
	h.Add("CMCD-Status", "rtp=12000") // a repeated header is a continuation
	got, err := ParseHeaders(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := specData(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseV2(t *testing.T) {
	got, err := ParseValue(`v=2,bl=(21300;v 3000;a),br=(3200;v 128;a),bsd=(2500;v 800),msd=950,sta=p,` +
		`cdn="cdn-a",ts=1795435200000,com.qoscope-uid="u-1",com.qoscope-role=cohost,ec=("E1" "E2"),ltc=1200,` +
		`nor=("a.m4s" "b.m4s";r="100-"),bs=?0,com.example-n=5`)
	if err != nil {
		t.Fatal(err)
	}
	want := Data{Version: 2, CDN: "cdn-a", State: "p", MediaStartDelay: 950, Timestamp: 1795435200000,
		BufferLength:        []Value{{21300, "v"}, {3000, "a"}},
		Bitrate:             []Value{{3200, "v"}, {128, "a"}},
		StarvationDurations: []Value{{2500, "v"}, {800, ""}},
		ErrorCodes:          []string{"E1", "E2"}, NextObjects: []string{"a.m4s", "b.m4s"},
		Custom:   []Custom{{UserIDKey, "u-1"}, {RoleKey, "cohost"}, {"com.example-n", "5"}},
		Unmapped: []string{"ltc"},
	}
	for _, k := range []Key{KeyV, KeyBL, KeyBR, KeyBSD, KeyMSD, KeySTA, KeyCDN, KeyTS, KeyEC, KeyNOR, KeyBS} {
		want.has |= 1 << k
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, key, reason string
	}{
		{`bl=-5`, "bl", "must be ≥ 0"},
		{`bl=1.5`, "bl", "must be an integer or an inner list of integers"},
		{`bl=("x")`, "bl", "must be an integer or an inner list of integers"},
		{`ot=x`, "ot", "must be one of m, a, v, av, i, c, tt, k, o"},
		{`ot="v"`, "ot", "must be one of m, a, v, av, i, c, tt, k, o"},
		{`sta=z`, "sta", "must be one of s, p, k, r, a, w, e, f, q, d"},
		{`sid=abc`, "sid", "must be a quoted string"},
		{`sid="` + strings.Repeat("x", 65) + `"`, "sid", "must be at most 64 characters"},
		{`bs=1`, "bs", "must be a boolean (bare key, ?0 or ?1)"},
		{`pr=fast`, "pr", "must be a decimal"},
		{`v=3`, "v", "unsupported CMCD version 3 (want 1 or 2)"},
		{`xyz=1`, "xyz", "unknown key (custom keys must contain a hyphen, e.g. com.example-name)"},
		{`Bl=1`, "", "want a key (lowercase letter or '*' first) at byte 0"},
		{`bl=1,`, "", "trailing ',' at byte 5"},
		{`bl=1;`, "bl", "want a parameter name after ';' at byte 5"},
		{`bl=1 br=2`, "bl", "want ',' between keys at byte 5"},
		{`cid="abc`, "cid", "unterminated string at byte 8"},
		{"cid=\"a\tb\"", "cid", "string holds a character outside printable ASCII at byte 6"},
		{`com.x-uid=%"%E4"`, "com.x-uid", "invalid %-escape in display string (lowercase hex) at byte 12"},
		{`com.x-uid=%"%ff"`, "com.x-uid", "display string is not UTF-8 at byte 16"},
		{`com.x-uid="` + strings.Repeat("u", 257) + `"`, "com.x-uid", "must be at most 256 characters"},
		{`cid="a\nb"`, "cid", `invalid escape in string (only \" and \\) at byte 6`},
		{`bl=(1 2`, "bl", "unterminated inner list at byte 7"},
		{`bl=1234567890123456`, "bl", "integer with more than 15 digits at byte 19"},
		{`pr=1.2345`, "pr", "decimal needs 1 to 3 fraction digits at byte 9"},
		{`bs=?2`, "bs", "invalid boolean, want ?0 or ?1 at byte 3"},
		{`bl=`, "bl", "missing value at byte 3"},
	}
	for _, tt := range tests {
		_, err := ParseValue(tt.in)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: got %v, want *Error", tt.in, err)
			continue
		}
		if ce.Key != tt.key || ce.Reason != tt.reason {
			t.Errorf("%s:\n got key %q reason %q\nwant key %q reason %q", tt.in, ce.Key, ce.Reason, tt.key, tt.reason)
		}
	}
	for _, q := range []string{"", "foo=1", "CMCD=%zz", "CMCD=bl%3D1&CMCD=br%3D2"} {
		if _, err := Parse(q); err == nil {
			t.Errorf("Parse(%q) accepted", q)
		}
	}
	if _, err := ParseHeaders(http.Header{"X": {"1"}}); err == nil {
		t.Error("ParseHeaders accepted no CMCD headers")
	}
	if got := (&Error{Line: 2, Key: "bl", Reason: "must be ≥ 0"}).Error(); got != `cmcd line 2 key "bl": must be ≥ 0` {
		t.Errorf("Error() = %s", got)
	}
}

func TestParseBody(t *testing.T) {
	ds, err := ParseBody([]byte("sid=\"s\",cid=\"c\",sta=p\r\n\nsid=\"s\",cid=\"c\",sta=e\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].State != "p" || ds[1].State != "e" {
		t.Fatalf("got %+v", ds)
	}
	_, err = ParseBody([]byte("sta=p\nsta=zz\n"))
	if err == nil || err.Error() != `cmcd line 2 key "sta": must be one of s, p, k, r, a, w, e, f, q, d` {
		t.Errorf("err = %v", err)
	}
	if _, err := ParseBody([]byte("\n \n")); err == nil {
		t.Error("empty body accepted")
	}
}

var recv = time.UnixMilli(1795435200000) // 2026-11-23T12:00:00Z

func mustEvents(t *testing.T, payload, ip string) []schemas.Event {
	t.Helper()
	d, err := ParseValue(payload)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ToEvents(d, recv, ip)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestToEventsV1VideoRequest(t *testing.T) {
	d, err := Parse(specQuery)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ToEvents(d, recv, "113.108.12.34")
	if err != nil {
		t.Fatal(err)
	}
	want := []schemas.Event{{
		V: 1, Type: schemas.TypeHeartbeat, TS: 1795435200000, RecvTS: 1795435200000,
		UserID: "6e2fb550-c457-11e9-bb97-0800200c9a66", SessionID: "6e2fb550-c457-11e9-bb97-0800200c9a66",
		StreamID: "faec5fc2-ac30-11eabb37-0242ac130002", IP: "113.108.12.34",
		Stalled: true, VideoBufferMS: 21300, BitrateKbps: 3200,
		Present: schemas.PropSet(0).With(schemas.PropVideoBufferMS).With(schemas.PropBitrateKbps),
		Extra:   []byte(`"cmcd":{"v":1,"ot":"v","sf":"d","st":"v","su":true,"mtp":48100,"d":4004,"pr":1.08}`),
	}}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("got  %+v\nwant %+v", evs, want)
	}
}

func TestToEventsV2(t *testing.T) {
	evs := mustEvents(t, `v=2,bl=(21300;v 3000;a),br=(3200;v 128;a),bsd=(2500;v 800;a),msd=950,sta=p,cdn="cdn-a",`+
		`ts=1795435260000,sid="s-1",cid="room-1",com.qoscope-uid="u-1",com.qoscope-role=cohost,com.qoscope-platform=web`, "bad-ip")
	common := schemas.Event{V: 1, RecvTS: 1795435200000, UserID: "u-1", SessionID: "s-1", StreamID: "room-1",
		Vendor: "cdn-a", Role: "cohost", Platform: "web",
		Extra: []byte(`"cmcd":{"v":2,"sta":"p"}`)}
	ev := func(f func(e *schemas.Event)) schemas.Event {
		e := common
		e.Extra = append([]byte(nil), common.Extra...)
		f(&e)
		return e
	}
	want := []schemas.Event{
		ev(func(e *schemas.Event) { e.Type, e.TS, e.FirstFrameMS = schemas.TypeFirstFrame, 1795435260000, 950 }),
		// 2500 + 800 ms back to back, ending at ts: starts at ts−3300 and ts−800.
		ev(func(e *schemas.Event) {
			e.Type, e.TS, e.DurationMS, e.Media = schemas.TypeStall, 1795435256700, 2500, "video"
		}),
		ev(func(e *schemas.Event) {
			e.Type, e.TS, e.DurationMS, e.Media = schemas.TypeStall, 1795435259200, 800, "audio"
		}),
		ev(func(e *schemas.Event) {
			e.Type, e.TS = schemas.TypeHeartbeat, 1795435260000
			e.Stalled, e.VideoBufferMS, e.AudioBufferMS, e.BitrateKbps = true, 21300, 3000, 3200
			e.Present = schemas.PropSet(0).With(schemas.PropVideoBufferMS).With(schemas.PropAudioBufferMS).With(schemas.PropBitrateKbps)
		}),
	}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("got\n%+v\nwant\n%+v", evs, want)
	}
}

func TestToEventsCases(t *testing.T) {
	tests := []struct {
		name, payload string
		want          string // types, and the fields that matter, by hand
	}{
		{"manifest request: nothing to report", `sid="s",cid="c",ot=m,su`, ""},
		{"manifest request after a starvation still reports the stalled sample", `sid="s",cid="c",ot=m,bs`, "heartbeat stalled"},
		{"audio segment: audio buffer only, no bitrate", `sid="s",cid="c",ot=a,bl=900,br=128`, "heartbeat audio=900"},
		{"muxed segment: one buffer for both", `sid="s",cid="c",ot=av,bl=1500,br=2000`, "heartbeat video=1500 audio=1500 br=2000"},
		{"v1 without ot", `sid="s",cid="c",bl=700`, "heartbeat video=700"},
		{"init segment", `sid="s",cid="c",ot=i`, ""},
		{"rebuffering state", `sid="s",cid="c",sta=r`, "heartbeat stalled"},
		{"ended", `v=2,sid="s",cid="c",ot=m,sta=e`, "play_end eos"},
		{"quit", `v=2,sid="s",cid="c",ot=m,sta=q`, "play_end user"},
		{"fatal error with codes", `v=2,sid="s",cid="c",sta=f,ec=("E42" "E7")`, "heartbeat|play_end error E42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var parts []string
			for _, e := range mustEvents(t, tt.payload, "") {
				s := e.Type.String()
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
					if e.Error != "" {
						s += " " + e.Error
					}
				}
				parts = append(parts, s)
			}
			if got := strings.Join(parts, "|"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestToEventsErrors(t *testing.T) {
	tests := []struct{ payload, key, reason string }{
		{`cid="c",bl=1`, "sid", "required: send sid or com.qoscope-uid to identify the viewer"},
		{`sid="s",bl=1`, "cid", "required: it is the stream_id"},
		{`sid="s",cid="c",bl=1,ts=1795435200`, "ts", "looks like Unix seconds, want milliseconds"},
		{`sid="s",cid="c",bl=1,ts=999999999999999`, "ts", "too large: looks like Unix micro- or nanoseconds, want milliseconds"},
		{`sid="s",cid="c",bl=1,com.qoscope-role=viewer`, "com.qoscope-role", "must be one of host, cohost, audience"},
	}
	for _, tt := range tests {
		d, err := ParseValue(tt.payload)
		if err != nil {
			t.Fatalf("%s: %v", tt.payload, err)
		}
		_, err = ToEvents(d, recv, "")
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tt.key || ce.Reason != tt.reason {
			t.Errorf("%s: got %v, want key %q reason %q", tt.payload, err, tt.key, tt.reason)
		}
	}
}

// TestEventsPassTheSchema: what ToEvents makes is what ingest encodes and
// the aggregator decodes, so it must pass ParseLine.
func TestEventsPassTheSchema(t *testing.T) {
	evs := mustEvents(t, `v=2,bl=(0;v 0;a),br=(0;v),bsd=(0 2000;a),msd=0,sta=f,ec=("x"),sid="s",cid="c",`+
		`com.qoscope-uid=%"%e4%b8%ad%e6%96%87 %22quoted%22",com.qoscope-node=n1,com.qoscope-version="5.1",com.qoscope-quality="1080p"`, "2001:db8::1")
	for _, e := range evs {
		line := schemas.AppendJSON(nil, &e)
		var got schemas.Event
		if err := schemas.ParseLine(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if got.UserID != `中文 "quoted"` || got.Node != "n1" || got.ClientVersion != "5.1" || got.Quality != "1080p" || got.IP != "2001:db8::1" {
			t.Errorf("dimensions lost: %+v", got)
		}
	}
}
