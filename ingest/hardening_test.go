package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testNow = 2026-03-01T12:00:00Z = 1772366400000 ms (20513 days · 86400 s
// + 43200 s); every expectation below is an offset from it, by hand.

func TestClockCorrection(t *testing.T) {
	fp := &fakeProducer{}
	cfg := testConfig()
	h := newTestServer(t, cfg, fp).Handler()
	now := ms(testNow)
	hb := func(user string, ts int64, extra string) string {
		return fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":%q,"stream_id":"s","stalled":false%s}`, ts, user, extra)
	}
	// The batch says it was sent at 12:04:00 by a clock 4 min fast.
	header := "2026-03-01T12:04:00Z" // now + 240,000
	lines := []string{
		// 1: stamped 3 s before the send: ts' = now − 3,000.
		hb("u1", now+237_000, ""),
		// 2: its own sent_at (a clock 1 h slow) wins over the header:
		// ts' = now − (−3,600,000 + 3,660,000) = now − 60,000.
		hb("u2", now-3_660_000, fmt.Sprintf(`,"sent_at":%d`, now-3_600_000)),
		// 3: 6 min after the send: ts' = now + 360,000, over the 5 min skew.
		hb("u3", now+240_000+360_000, ""),
		// 4: 4 min after the send: ts' = now + 240,000, within the skew,
		// although uncorrected it would be 8 min ahead.
		hb("u4", now+480_000, ""),
		// 5: an unparsable sent_at is the line's error.
		hb("u5", now, `,"sent_at":"yesterday"`),
	}
	r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(strings.Join(lines, "\n")),
		map[string]string{"Sent-At": header})
	if r.status != http.StatusOK || r.resp.Accepted != 3 || r.resp.Rejected != 2 {
		t.Fatalf("got %d %s, want 200 with 3 accepted, 2 rejected", r.status, r.body)
	}
	wantErrs := []lineErrorJSON{
		{Line: 3, Field: "ts", Reason: "ts is 6m0s after sent_at, more than the allowed 5m0s (max_future_skew): an event cannot happen after its batch was sent"},
		{Line: 5, Field: "sent_at", Reason: "must be an RFC 3339 time with a zone (e.g. 2026-11-23T12:00:00.250Z) or Unix milliseconds"},
	}
	for i, w := range wantErrs {
		if r.resp.Errors[i] != w {
			t.Errorf("error %d = %+v, want %+v", i, r.resp.Errors[i], w)
		}
	}
	type out struct {
		TS, ClientTS, Skew int64
	}
	want := []out{
		{now - 3_000, now + 237_000, -240_000},
		{now - 60_000, now - 3_660_000, 3_600_000},
		{now + 240_000, now + 480_000, -240_000},
	}
	msgs := fp.byTopic(cfg.Kafka.Topics.Client)
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		v := decodeValue(t, m.Value)
		got := out{int64(v["ts"].(float64)), int64(v["client_ts"].(float64)), int64(v["clock_skew_ms"].(float64))}
		if got != want[i] {
			t.Errorf("message %d: got %+v, want %+v (%s)", i, got, want[i], m.Value)
		}
		if _, ok := v["sent_at"]; ok {
			t.Errorf("message %d keeps sent_at: %s", i, m.Value)
		}
		if v["recv_ts"] != float64(now) {
			t.Errorf("message %d recv_ts = %v", i, v["recv_ts"])
		}
	}

	// Without Sent-At or sent_at nothing is corrected, and stamps a
	// producer sent are dropped (they are ingest's, like recv_ts).
	fp.msgs = nil
	r = post(t, h, "/v1/events/client", tokSDK, hb("u6", now-1_000, `,"client_ts":1,"clock_skew_ms":5`))
	if r.status != http.StatusOK || r.resp.Rejected != 1 || r.resp.Errors[0].Field != "client_ts" {
		// client_ts 1 is not a valid time: the schema checks it like ts.
		t.Fatalf("bad client_ts: %d %s", r.status, r.body)
	}
	r = post(t, h, "/v1/events/client", tokSDK, hb("u6", now-1_000, fmt.Sprintf(`,"client_ts":%d,"clock_skew_ms":5`, now)))
	if r.status != http.StatusOK || r.resp.Accepted != 1 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	msgs = fp.byTopic(cfg.Kafka.Topics.Client)
	if len(msgs) != 1 {
		t.Fatalf("%d client messages, want 1", len(msgs))
	}
	v := decodeValue(t, msgs[0].Value)
	if v["ts"] != float64(now-1_000) || v["client_ts"] != nil || v["clock_skew_ms"] != nil {
		t.Errorf("uncorrected event: %s", msgs[0].Value)
	}
}

func TestSentAtHeaderErrors(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	body := clientEvent("dns", "u", ms(testNow))
	for _, tc := range []struct{ header, want string }{
		{"1772366400", `header Sent-At "1772366400": looks like Unix seconds, want milliseconds`},
		{"2026-03-01T12:00:00", `header Sent-At "2026-03-01T12:00:00": RFC 3339 time needs a zone (Z or ±hh:mm)`},
		{"soon", `header Sent-At "soon": must be an RFC 3339 time with a zone (e.g. 2026-11-23T12:00:00.250Z) or Unix milliseconds`},
	} {
		r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(body), map[string]string{"Sent-At": tc.header})
		if r.status != http.StatusBadRequest || r.errMsg != tc.want {
			t.Errorf("Sent-At %q: got %d %q, want 400 %q", tc.header, r.status, r.errMsg, tc.want)
		}
	}
	// Unix ms works as well as RFC 3339: sent 1 s after the receive time
	// (clock 1 s fast), so ts moves 1 s back.
	r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(body),
		map[string]string{"Sent-At": fmt.Sprint(ms(testNow) + 1000)})
	if r.status != http.StatusOK || r.resp.Accepted != 1 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if v := decodeValue(t, fp.msgs[0].Value); v["ts"] != float64(ms(testNow)-1000) || v["clock_skew_ms"] != float64(-1000) {
		t.Errorf("Unix ms Sent-At: %s", fp.msgs[0].Value)
	}
	if len(fp.msgs) != 1 {
		t.Errorf("rejected requests produced: %d messages", len(fp.msgs))
	}
}

func TestFarFutureReason(t *testing.T) {
	h := newTestServer(t, testConfig(), &fakeProducer{}).Handler()
	// 9999-12-31T23:59:59.999Z − testNow = 253402300799999 − 1772366400000
	// = 251629934399999 ms = 2912383 whole days; as a time.Duration in ns
	// it would overflow.
	r := post(t, h, "/v1/events/client", tokSDK, clientEvent("dns", "u", 253402300799999))
	want := "ts is 2912383 days ahead of the server clock, more than the allowed 5m0s (max_future_skew)"
	if r.status != http.StatusOK || r.resp.Rejected != 1 || r.resp.Errors[0].Reason != want {
		t.Fatalf("got %d %s, want the reason %q", r.status, r.body, want)
	}
}

func TestBoundsAndSurrogatesAtIngest(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	now := ms(testNow)
	lines := []string{
		strings.Replace(clientEvent("heartbeat", "u1", now), `"fps":29.97`, `"fps":1e308`, 1),
		strings.Replace(clientEvent("stall", "u2", now), `"duration_ms":2500`, `"duration_ms":86400000000`, 1),
		strings.Replace(clientEvent("first_frame", "u3", now), `"first_frame_ms":850`, `"first_frame_ms":9007199254740991`, 1),
		strings.Replace(clientEvent("dns", "u4", now), `"quality":"1080p"`, `"quality":"\ud800"`, 1),
	}
	r := post(t, h, "/v1/events/client", tokSDK, strings.Join(lines, "\n"))
	want := []lineErrorJSON{
		{Line: 1, Field: "fps", Reason: "1e308 is above the maximum 240"},
		{Line: 2, Field: "duration_ms", Reason: "86400000000 is above the maximum 86400000"},
		{Line: 3, Field: "first_frame_ms", Reason: "9007199254740991 is above the maximum 600000"},
	}
	if r.status != http.StatusOK || r.resp.Accepted != 0 || len(r.resp.Errors) != 4 {
		t.Fatalf("got %d %s, want 4 rejected lines", r.status, r.body)
	}
	for i, w := range want {
		if r.resp.Errors[i] != w {
			t.Errorf("error %d = %+v, want %+v", i, r.resp.Errors[i], w)
		}
	}
	if e := r.resp.Errors[3]; e.Field != "quality" || !strings.Contains(e.Reason, `lone surrogate \ud800`) {
		t.Errorf("lone surrogate: %+v", e)
	}
}

func TestContentType(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	body := clientEvent("dns", "u", ms(testNow))
	accepted := 0
	for _, tc := range []struct {
		ct   string
		want int
	}{
		{"", http.StatusOK},
		{"application/x-ndjson", http.StatusOK},
		{"application/ndjson", http.StatusOK},
		{"application/jsonl", http.StatusOK},
		{"application/x-jsonlines", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"Application/JSON", http.StatusOK},
		{"text/plain;charset=UTF-8", http.StatusOK}, // navigator.sendBeacon
		{"multipart/form-data; boundary=xyz", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType}, // curl -d without -H
		{"application/json; charset=iso-8859-1", http.StatusUnsupportedMediaType},
		{"text/csv", http.StatusUnsupportedMediaType},
		{"json", http.StatusUnsupportedMediaType},
	} {
		hdr := map[string]string{}
		if tc.ct != "" {
			hdr["Content-Type"] = tc.ct
		}
		r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(body), hdr)
		if r.status != tc.want {
			t.Errorf("Content-Type %q: got %d %s, want %d", tc.ct, r.status, r.body, tc.want)
			continue
		}
		if r.status == http.StatusOK {
			accepted++
		} else if !strings.HasPrefix(r.errMsg, fmt.Sprintf("Content-Type %q ", tc.ct)) || !strings.Contains(r.errMsg, "application/x-ndjson") {
			t.Errorf("Content-Type %q: message %q does not name the type and the accepted ones", tc.ct, r.errMsg)
		}
	}
	if got := len(fp.msgs); got != accepted {
		t.Errorf("%d messages, want %d (one per accepted request, none for 415)", got, accepted)
	}
}

func TestMethodNotAllowedHasAllow(t *testing.T) {
	h := newTestServer(t, testConfig(), &fakeProducer{}).Handler()
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/events/client", "POST"},
		{http.MethodPut, "/v1/cmcd", "GET, POST"},
		{http.MethodDelete, "/healthz", "GET"},
		{http.MethodPost, "/v1/schemas/heartbeat", "GET"},
	} {
		r := do(t, h, tc.method, tc.path, tokSDK, nil, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: got %d Allow %q, want 405 Allow %q", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.allow)
		}
	}
}

// A request whose header is over the 64 KiB limit gets a JSON 431 through
// the real http.Server configuration of Serve, like every other error.
func TestHeaderTooLargeIsJSON(t *testing.T) {
	s, err := NewServer(testConfig(), Deps{Producer: &fakeProducer{}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	send := func(pad int) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/events/client",
			strings.NewReader(clientEvent("dns", "u", ms(time.Now()))))
		req.Header.Set("Authorization", "Bearer "+tokSDK)
		req.Header.Set("X-Pad", strings.Repeat("a", pad))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, body := send(1000); code != http.StatusOK {
		t.Fatalf("small header: %d %s", code, body)
	}
	code, ct, body := send(70 << 10)
	var e struct{ Error string }
	if code != http.StatusRequestHeaderFieldsTooLarge || ct != "application/json" || json.Unmarshal([]byte(body), &e) != nil ||
		!strings.Contains(e.Error, "over the 65536-byte limit") {
		t.Fatalf("70 KiB header: got %d %q %s, want a JSON 431", code, ct, body)
	}
}

// CMCD events are built in code, not parsed: the CMCD mapping holds them
// to the same ranges (naming the CMCD key and the event field), else the
// aggregator would refuse a record answered 2xx.
func TestCMCDEventsHeldToRanges(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	// bl = 700,000 ms of buffer: over the 600,000 maximum.
	path := "/v1/cmcd?CMCD=" + url.QueryEscape(`bl=700000,cid="live-1",com.qoscope-uid="u-42",ot=v,sid="s-1",su`)
	r := do(t, h, http.MethodGet, path, tokSDK, nil, nil)
	if r.status != http.StatusOK || r.resp.Accepted != 0 || r.resp.Rejected != 1 ||
		r.resp.Errors[0].Field != "bl" || r.resp.Errors[0].Reason != "field video_buffer_ms: 700000 is above the maximum 600000" {
		t.Fatalf("got %d %s, want the line rejected on bl (video_buffer_ms)", r.status, r.body)
	}
}
