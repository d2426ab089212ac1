package ingest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// cmcdQueryPath is the query form of one v1 media request from a player.
var cmcdQueryPath = "/v1/cmcd?foo=1&CMCD=" + url.QueryEscape(`bl=3000,br=2500,cid="live-1",com.qoscope-uid="u-42",ot=v,sid="s-1",su`)

// cmcdHeaders is the header form of a v1 media request after a rebuffer.
var cmcdHeaders = map[string]string{
	"CMCD-Request": `bl=2000,com.qoscope-uid="u-43"`,
	"CMCD-Object":  `br=1200,ot=v`,
	"CMCD-Session": `cid="live-2",sid="s-2"`,
	"CMCD-Status":  `bs`,
}

// cmcdBody is CMCD v2 event mode: a start-up report, a report of one 2.5 s
// stall, and a payload with an unknown key.
func cmcdBody(reportMS int64) string {
	return strings.Join([]string{
		`v=2,cid="live-3",sid="s-3",msd=850`,
		``,
		`v=2,cid="live-3",sid="s-3",bsd=(2500;v),ts=` + strconv.FormatInt(reportMS, 10),
		`v=2,cid="live-3",sid="s-3",bogus=1`,
	}, "\n")
}

func TestCMCDForms(t *testing.T) {
	cfg := testConfig()
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	now := ms(testNow)

	r := do(t, h, http.MethodGet, cmcdQueryPath, tokSDK, nil, nil)
	if r.status != 200 || r.resp.Accepted != 1 || r.resp.Rejected != 0 {
		t.Fatalf("query form: %d %s", r.status, r.body)
	}
	r = do(t, h, http.MethodGet, "/v1/cmcd", tokSDK, nil, cmcdHeaders)
	if r.status != 200 || r.resp.Accepted != 1 {
		t.Fatalf("header form: %d %s", r.status, r.body)
	}
	r = do(t, h, http.MethodPost, "/v1/cmcd", tokSDK, strings.NewReader(cmcdBody(now-1000)), map[string]string{"Content-Type": "application/cmcd"})
	if r.status != 200 || r.resp.Accepted != 3 || r.resp.Rejected != 1 {
		t.Fatalf("body form: %d %s", r.status, r.body)
	}
	if e := r.resp.Errors[0]; e.Line != 4 || e.Field != "bogus" || !strings.Contains(e.Reason, "unknown key") {
		t.Fatalf("body error %+v", e)
	}

	got := fp.byTopic(cfg.Kafka.Topics.Client)
	if len(got) != 5 {
		t.Fatalf("%d client events, want 5", len(got))
	}
	type ev struct {
		key, typ, user, session, stream, ip string
		ts                                  float64
		extra                               map[string]any
	}
	var evs []ev
	for _, m := range got {
		v := decodeValue(t, m.Value)
		str := func(k string) string { s, _ := v[k].(string); return s }
		ts, _ := v["ts"].(float64)
		evs = append(evs, ev{string(m.Key), str("type"), str("user_id"), str("session_id"), str("stream_id"), str("ip"), ts, v})
	}
	// Query form: one heartbeat, video buffer and bitrate from bl/br, the
	// request's peer address as ip, the receive time as ts.
	hb := evs[0]
	if hb.key != "u-42" || hb.typ != "heartbeat" || hb.session != "s-1" || hb.stream != "live-1" || hb.ip != "192.0.2.1" ||
		hb.ts != float64(now) || hb.extra["video_buffer_ms"] != 3000.0 || hb.extra["bitrate_kbps"] != 2500.0 || hb.extra["stalled"] != false {
		t.Errorf("query heartbeat %+v", hb)
	}
	// Header form: bs marks the heartbeat stalled.
	hb = evs[1]
	if hb.key != "u-43" || hb.typ != "heartbeat" || hb.stream != "live-2" || hb.extra["video_buffer_ms"] != 2000.0 ||
		hb.extra["bitrate_kbps"] != 1200.0 || hb.extra["stalled"] != true {
		t.Errorf("header heartbeat %+v", hb)
	}
	// Body form: msd → first_frame; bsd → a stall ending at the report time
	// and a stalled heartbeat. Without com.qoscope-uid the user is the sid.
	var types []string
	for _, e := range evs[2:] {
		types = append(types, e.typ)
		if e.key != "s-3" || e.stream != "live-3" {
			t.Errorf("body event %+v", e)
		}
		switch e.typ {
		case "first_frame":
			if e.extra["first_frame_ms"] != 850.0 || e.ts != float64(now) {
				t.Errorf("first_frame %+v", e)
			}
		case "stall":
			if e.extra["duration_ms"] != 2500.0 || e.extra["media"] != "video" || e.ts != float64(now-1000-2500) {
				t.Errorf("stall %+v", e)
			}
		case "heartbeat":
			if e.extra["stalled"] != true || e.ts != float64(now-1000) {
				t.Errorf("body heartbeat %+v", e)
			}
		}
	}
	sort.Strings(types)
	if strings.Join(types, ",") != "first_frame,heartbeat,stall" {
		t.Errorf("body types %v", types)
	}
	dl := fp.byTopic(cfg.Kafka.Topics.DeadLetter)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters", len(dl))
	}
	if d := decodeDeadLetter(t, dl[0].Value); d.Source != "cmcd" || d.Line != 4 || d.Field != "bogus" || d.Raw != `v=2,cid="live-3",sid="s-3",bogus=1` {
		t.Errorf("dead letter %+v", d)
	}
}

func TestCMCDRequestErrors(t *testing.T) {
	cfg := testConfig()
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	if r := do(t, h, http.MethodGet, "/v1/cmcd?x=1", tokSDK, nil, nil); r.status != 400 || !strings.HasPrefix(r.errMsg, "no CMCD data") {
		t.Fatalf("no cmcd: %d %q", r.status, r.errMsg)
	}
	// A payload without anything measurable (a manifest request) maps to
	// no event: 200, nothing accepted, nothing rejected.
	r := do(t, h, http.MethodGet, "/v1/cmcd?CMCD="+url.QueryEscape(`cid="c",ot=m,sid="s"`), tokSDK, nil, nil)
	if r.status != 200 || r.resp.Accepted != 0 || r.resp.Rejected != 0 {
		t.Fatalf("manifest: %d %s", r.status, r.body)
	}
	// A media request without sid (the viewer) is rejected, naming the key.
	r = do(t, h, http.MethodGet, "/v1/cmcd?CMCD="+url.QueryEscape(`bl=100,ot=v,cid="c"`), tokSDK, nil, nil)
	if r.status != 200 || r.resp.Rejected != 1 || r.resp.Errors[0].Field != "sid" || r.resp.Errors[0].Line != 1 {
		t.Fatalf("missing sid: %d %s", r.status, r.body)
	}
	if len(fp.msgs) != 1 || fp.msgs[0].Topic != cfg.Kafka.Topics.DeadLetter {
		t.Fatalf("messages %+v", fp.msgs)
	}
}

func TestCMCDClientIPAndEnrichment(t *testing.T) {
	for _, trust := range []bool{false, true} {
		cfg := testConfig()
		cfg.TrustForwardedFor = trust
		fp := &fakeProducer{}
		h := newTestServer(t, cfg, fp).Handler()
		req := httptest.NewRequest(http.MethodGet, cmcdQueryPath, nil)
		req.RemoteAddr = "10.1.0.5:5555" // beijing telecom in the synthetic table
		req.Header.Set("Authorization", "Bearer "+tokSDK)
		req.Header.Set("X-Forwarded-For", "10.200.0.7, 10.1.0.5") // first entry: us/california
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || len(fp.msgs) != 1 {
			t.Fatalf("trust=%v: %d %s", trust, rec.Code, rec.Body)
		}
		v := decodeValue(t, fp.msgs[0].Value)
		want := []any{"10.1.0.5", "cn", "beijing", "telecom"}
		if trust {
			want = []any{"10.200.0.7", "us", "california", "comcast"}
		}
		if got := []any{v["ip"], v["country"], v["province"], v["isp"]}; !equalAny(got, want) {
			t.Errorf("trust=%v: %v, want %v", trust, got, want)
		}
	}
}

func equalAny(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
