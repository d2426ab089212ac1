package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/ipdb"
)

func TestAuth(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	body := clientEvent("heartbeat", "u1", ms(testNow))

	r := post(t, h, "/v1/events/client", "", body)
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer realm="qoscope-ingest"` {
		t.Fatalf("no token: got %d %q, want 401 with a Bearer challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
	r = post(t, h, "/v1/events/client", "sdk-secret-0123456788", body) // one character off
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("wrong token: got %d %q, want 401 invalid_token", r.status, r.header.Get("WWW-Authenticate"))
	}
	r = do(t, h, http.MethodPost, "/v1/events/client", "", strings.NewReader(body), map[string]string{"Authorization": "Basic " + tokSDK})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("basic scheme: got %d, want 401", r.status)
	}
	r = post(t, h, "/v1/events/client", tokCDN, body)
	if r.status != http.StatusForbidden || r.errMsg != `token "cdn-logs" may not write client events` {
		t.Fatalf("cdn token on client endpoint: got %d %q, want 403", r.status, r.errMsg)
	}
	r = post(t, h, "/v1/events/origin", tokSDK, originEvent("s", ms(testNow)))
	if r.status != http.StatusForbidden {
		t.Fatalf("sdk token on origin endpoint: got %d, want 403", r.status)
	}
	r = do(t, h, http.MethodGet, "/v1/cmcd?CMCD=sid%3D%22x%22", tokCDN, nil, nil)
	if r.status != http.StatusForbidden {
		t.Fatalf("cdn token on cmcd: got %d, want 403", r.status)
	}
	if len(fp.msgs) != 0 {
		t.Fatalf("rejected requests produced %d messages", len(fp.msgs))
	}
	// The scheme is case-insensitive (RFC 7235).
	r = do(t, h, http.MethodPost, "/v1/events/client", "", strings.NewReader(body), map[string]string{"Authorization": "bearer " + tokSDK})
	if r.status != http.StatusOK || r.resp.Accepted != 1 {
		t.Fatalf("valid token: got %d %s", r.status, r.body)
	}
}

func TestPerLineValidation(t *testing.T) {
	fp := &fakeProducer{}
	cfg := testConfig()
	s := newTestServer(t, cfg, fp)
	now := ms(testNow)
	lines := []string{
		clientEvent("heartbeat", "u1", now-1000), // 1 ok
		`this is not json`,                       // 2 syntax
		fmt.Sprintf(`{"v":1,"type":"teleport","ts":%d,"user_id":"u3"}`, now),                   // 3 unknown type
		strings.Replace(clientEvent("heartbeat", "u4", now), `"user_id":"u4",`, "", 1),         // 4 missing user_id
		cdnEvent("cdnA", "edge-1", now),                                                        // 5 wrong endpoint
		clientEvent("stall", "u6", now+6*60*1000),                                              // 6 6 min ahead
		clientEvent("stall", "u7", now+4*60*1000),                                              // 7 4 min ahead: ok
		clientEvent("play_end", "u8", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()), // 8 old: ok
		``,                             // 9 blank: skipped
		clientEvent("dns", "u10", now), // 10 ok
	}
	r := do(t, s.Handler(), http.MethodPost, "/v1/events/client", tokSDK,
		strings.NewReader(strings.Join(lines, "\n")+"\n"), map[string]string{"Content-Type": "application/x-ndjson"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r.resp.Accepted != 4 || r.resp.Rejected != 5 || r.resp.Truncated != 0 {
		t.Fatalf("got accepted=%d rejected=%d truncated=%d, want 4/5/0: %s", r.resp.Accepted, r.resp.Rejected, r.resp.Truncated, r.body)
	}
	wantFields := map[int]string{2: "", 3: "type", 4: "user_id", 5: "type", 6: "ts"}
	wantLines := []int{2, 3, 4, 5, 6}
	for i, e := range r.resp.Errors {
		if e.Line != wantLines[i] || e.Field != wantFields[e.Line] || e.Reason == "" {
			t.Errorf("error %d = %+v, want line %d field %q", i, e, wantLines[i], wantFields[wantLines[i]])
		}
	}
	if got, want := r.resp.Errors[3].Reason, `type "cdn_request" is a cdn event; send it to /v1/events/cdn, not /v1/events/client`; got != want {
		t.Errorf("wrong-source reason = %q, want %q", got, want)
	}
	if got, want := r.resp.Errors[4].Reason, "ts is 6m0s ahead of the server clock, more than the allowed 5m0s (max_future_skew)"; got != want {
		t.Errorf("future reason = %q, want %q", got, want)
	}

	evs := fp.byTopic(cfg.Kafka.Topics.Client)
	wantKeys := []string{"u1", "u7", "u8", "u10"}
	if len(evs) != len(wantKeys) {
		t.Fatalf("client topic got %d messages, want %d", len(evs), len(wantKeys))
	}
	for i, m := range evs {
		if string(m.Key) != wantKeys[i] {
			t.Errorf("message %d key %q, want %q", i, m.Key, wantKeys[i])
		}
		v := decodeValue(t, m.Value)
		if v["recv_ts"] != float64(now) {
			t.Errorf("message %d recv_ts = %v, want %d", i, v["recv_ts"], now)
		}
		if v["user_id"] != wantKeys[i] {
			t.Errorf("message %d user_id = %v", i, v["user_id"])
		}
		if !m.Time.Equal(testNow) {
			t.Errorf("message %d time %v, want the receive time", i, m.Time)
		}
	}
	if v := decodeValue(t, evs[2].Value); v["ts"] != float64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()) {
		t.Errorf("old event ts = %v, changed", v["ts"])
	}

	dls := fp.byTopic(cfg.Kafka.Topics.DeadLetter)
	if len(dls) != 5 {
		t.Fatalf("dead-letter topic got %d records, want 5", len(dls))
	}
	for i, m := range dls {
		d := decodeDeadLetter(t, m.Value)
		line := wantLines[i]
		if d.Source != "client" || d.Line != line || d.Field != wantFields[line] || d.Token != "sdk" ||
			d.RecvTS != now || d.Raw != lines[line-1] || d.RawBytes != len(lines[line-1]) || d.Truncated || d.Reason != r.resp.Errors[i].Reason {
			t.Errorf("dead letter %d = %+v, want line %d of the body", i, d, line)
		}
		if string(m.Key) != "client" {
			t.Errorf("dead letter key %q", m.Key)
		}
		if strings.Contains(string(m.Value), tokSDK) {
			t.Errorf("dead letter leaks the token secret: %s", m.Value)
		}
	}
	if got := testutil.ToFloat64(s.m.accepted.WithLabelValues("client")); got != 4 {
		t.Errorf("accepted metric = %v, want 4", got)
	}
	for class, want := range map[string]float64{ClassSyntax: 1, ClassType: 1, ClassField: 1, ClassWrongSource: 1, ClassFuture: 1} {
		if got := testutil.ToFloat64(s.m.rejected.WithLabelValues("client", class)); got != want {
			t.Errorf("rejected{%s} = %v, want %v", class, got, want)
		}
	}
	if got := testutil.ToFloat64(s.m.deadLettered.WithLabelValues("client")); got != 5 {
		t.Errorf("deadlettered metric = %v, want 5", got)
	}
}

func TestKeysPerSource(t *testing.T) {
	fp := &fakeProducer{}
	cfg := testConfig()
	h := newTestServer(t, cfg, fp).Handler()
	now := ms(testNow)
	if r := post(t, h, "/v1/events/cdn", tokCDN, cdnEvent("cdnA", "edge-1", now)+"\n"+cdnEvent("cdnB", "edge-2", now)); r.status != 200 || r.resp.Accepted != 2 {
		t.Fatalf("cdn: %d %s", r.status, r.body)
	}
	if r := post(t, h, "/v1/events/origin", tokOrigin, originEvent("stream-9", now)); r.status != 200 || r.resp.Accepted != 1 {
		t.Fatalf("origin: %d %s", r.status, r.body)
	}
	var keys []string
	for _, m := range fp.byTopic(cfg.Kafka.Topics.CDN) {
		keys = append(keys, string(m.Key))
	}
	if strings.Join(keys, ",") != "cdnA/edge-1,cdnB/edge-2" {
		t.Errorf("cdn keys %v", keys)
	}
	o := fp.byTopic(cfg.Kafka.Topics.Origin)
	if len(o) != 1 || string(o[0].Key) != "stream-9" {
		t.Errorf("origin messages %v", o)
	}
}

func TestEnrichment(t *testing.T) {
	fp := &fakeProducer{}
	cfg := testConfig()
	h := newTestServer(t, cfg, fp).Handler()
	now := ms(testNow)
	withIP := func(user, extra string) string {
		return strings.Replace(clientEvent("heartbeat", user, now), `"user_id"`, extra+`"user_id"`, 1)
	}
	body := strings.Join([]string{
		// The synthetic table gives 10.1.0.0/16 to the first province
		// (beijing), its first quarter to telecom, city beijing.
		withIP("a", `"ip":"10.1.0.5",`),
		// Fields the sender set win; only the absent ones are filled.
		withIP("b", `"ip":"10.1.0.5","province":"shanghai","isp":"mobile",`),
		withIP("c", `"ip":"192.0.2.1",`), // not in the table
		withIP("d", ``),                  // no ip
		withIP("e", `"ip":"::ffff:10.1.0.5",`),
	}, "\n")
	if r := post(t, h, "/v1/events/client", tokSDK, body); r.status != 200 || r.resp.Accepted != 5 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := map[string][4]string{
		"a": {"cn", "beijing", "beijing", "telecom"},
		"b": {"cn", "shanghai", "beijing", "mobile"},
		"c": {"", "", "", ""},
		"d": {"", "", "", ""},
		"e": {"cn", "beijing", "beijing", "telecom"},
	}
	for _, m := range fp.byTopic(cfg.Kafka.Topics.Client) {
		v := decodeValue(t, m.Value)
		str := func(k string) string { s, _ := v[k].(string); return s }
		got := [4]string{str("country"), str("province"), str("city"), str("isp")}
		if got != want[string(m.Key)] {
			t.Errorf("user %s: region %v, want %v", m.Key, got, want[string(m.Key)])
		}
	}
}

func TestJSONArrayBody(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	now := ms(testNow)
	body := "[\n" + clientEvent("heartbeat", "u1", now) + ",\n" + `{"v":1,"type":"heartbeat","ts":` + fmt.Sprint(now) + `}` + ",\n" + clientEvent("dns", "u3", now) + "\n]"
	r := post(t, h, "/v1/events/client", tokSDK, body)
	if r.status != 200 || r.resp.Accepted != 2 || r.resp.Rejected != 1 || r.resp.Errors[0].Line != 2 {
		t.Fatalf("array body: %d %s", r.status, r.body)
	}
}

func TestLimits(t *testing.T) {
	fp := &fakeProducer{}
	cfg := testConfig()
	cfg.Limits.MaxBodyBytes = 4096
	cfg.Limits.MaxLineBytes = 1024
	cfg.Limits.MaxLines = 5
	h := newTestServer(t, cfg, fp).Handler()
	now := ms(testNow)
	line := clientEvent("heartbeat", "u1", now)

	big := strings.Repeat(line+"\n", 4096/len(line)+1)
	r := post(t, h, "/v1/events/client", tokSDK, big)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.errMsg, "limits.max_body_bytes") {
		t.Fatalf("big body: %d %q", r.status, r.errMsg)
	}
	// Without Content-Length (chunked) the limit still holds.
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, io.MultiReader(strings.NewReader(big)), nil)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked big body: %d %q", r.status, r.errMsg)
	}
	// A gzip bomb: 1 MiB of spaces compresses to about a kilobyte.
	bomb := gzipBytes(t, bytes.Repeat([]byte(" "), 1<<20))
	if len(bomb) >= 4096 {
		t.Fatalf("bomb is %d bytes, not small", len(bomb))
	}
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, bytes.NewReader(bomb), map[string]string{"Content-Encoding": "gzip"})
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.errMsg, "decompressed body exceeds 4096 bytes") {
		t.Fatalf("gzip bomb: %d %q", r.status, r.errMsg)
	}
	zbomb := zstdBytes(t, bytes.Repeat([]byte(" "), 1<<20))
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, bytes.NewReader(zbomb), map[string]string{"Content-Encoding": "zstd"})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("zstd bomb: %d %q", r.status, r.errMsg)
	}

	long := strings.Replace(line, `"platform":"android"`, `"platform":"android","pad":"`+strings.Repeat("x", 1100)+`"`, 1)
	r = post(t, h, "/v1/events/client", tokSDK, line+"\n"+long)
	if r.status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(r.errMsg, "line 2 is ") || !strings.Contains(r.errMsg, "limits.max_line_bytes") {
		t.Fatalf("long line: %d %q", r.status, r.errMsg)
	}
	r = post(t, h, "/v1/events/client", tokSDK, strings.Repeat(line+"\n", 6))
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.errMsg, "more than 5 events") {
		t.Fatalf("too many lines: %d %q", r.status, r.errMsg)
	}
	r = post(t, h, "/v1/events/client", tokSDK, strings.Repeat(line+"\n", 5))
	if r.status != http.StatusOK || r.resp.Accepted != 5 {
		t.Fatalf("exactly max lines: %d %s", r.status, r.body)
	}
	r = post(t, h, "/v1/events/client", tokSDK, "\n \n")
	if r.status != http.StatusBadRequest {
		t.Fatalf("empty body: %d %q", r.status, r.errMsg)
	}
	if n := len(fp.msgs); n != 5 {
		t.Fatalf("produced %d messages, want only the 5 of the accepted request", n)
	}
}

func TestCompression(t *testing.T) {
	fp := &fakeProducer{}
	h := newTestServer(t, testConfig(), fp).Handler()
	now := ms(testNow)
	body := []byte(clientEvent("heartbeat", "g", now) + "\n" + clientEvent("dns", "g", now) + "\n")
	for _, tc := range []struct {
		enc  string
		data []byte
	}{{"gzip", gzipBytes(t, body)}, {"zstd", zstdBytes(t, body)}, {"x-gzip", gzipBytes(t, body)}, {"identity", body}} {
		for i := 0; i < 3; i++ { // pooled decoders must reset cleanly
			r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, bytes.NewReader(tc.data), map[string]string{"Content-Encoding": tc.enc})
			if r.status != http.StatusOK || r.resp.Accepted != 2 {
				t.Fatalf("%s #%d: %d %s", tc.enc, i, r.status, r.body)
			}
		}
	}
	r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, bytes.NewReader(body), map[string]string{"Content-Encoding": "gzip"})
	if r.status != http.StatusBadRequest || !strings.HasPrefix(r.errMsg, "invalid gzip body") {
		t.Fatalf("plain body labelled gzip: %d %q", r.status, r.errMsg)
	}
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, bytes.NewReader(body), map[string]string{"Content-Encoding": "zstd"})
	if r.status != http.StatusBadRequest || !strings.HasPrefix(r.errMsg, "invalid zstd body") {
		t.Fatalf("plain body labelled zstd: %d %q", r.status, r.errMsg)
	}
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, bytes.NewReader(body), map[string]string{"Content-Encoding": "br"})
	if r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("br: %d %q", r.status, r.errMsg)
	}
}

func TestProduceFailureAcceptsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		kind string
	}{
		{"unreachable", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "produce"},
		{"partial", kafka.WriteErrors{nil, kafka.NotEnoughReplicas, nil}, "partial"},
		{"timeout", context.DeadlineExceeded, "timeout"},
		// The cluster cannot meet min.insync.replicas for any message.
		{"replicas", kafka.WriteErrors{kafka.NotEnoughReplicas, kafka.NotEnoughReplicasAfterAppend}, "replicas"},
		{"replicas single", kafka.NotEnoughReplicas, "replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProducer{err: tc.err}
			s := newTestServer(t, testConfig(), fp)
			now := ms(testNow)
			body := clientEvent("heartbeat", "u1", now) + "\nbad line\n" + clientEvent("dns", "u2", now)
			r := post(t, s.Handler(), "/v1/events/client", tokSDK, body)
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" {
				t.Fatalf("got %d Retry-After=%q, want 503 with Retry-After 5", r.status, r.header.Get("Retry-After"))
			}
			if !strings.Contains(string(r.body), `"accepted":0`) || !strings.Contains(r.errMsg, "nothing from this request was accepted") {
				t.Fatalf("body %s", r.body)
			}
			if fp.calls != 1 {
				t.Fatalf("Produce called %d times, want once (events and dead letters together)", fp.calls)
			}
			if got := testutil.ToFloat64(s.m.accepted.WithLabelValues("client")); got != 0 {
				t.Errorf("accepted metric %v after a failed produce", got)
			}
			if got := testutil.ToFloat64(s.m.deadLettered.WithLabelValues("client")); got != 0 {
				t.Errorf("deadlettered metric %v after a failed produce", got)
			}
			if got := testutil.ToFloat64(s.m.kafkaErrors.WithLabelValues(tc.kind)); got != 1 {
				t.Errorf("kafka_errors{kind=%s} = %v, want 1", tc.kind, got)
			}
			// Recovery: the same request succeeds once Kafka is back.
			fp.mu.Lock()
			fp.err = nil
			fp.mu.Unlock()
			if r := post(t, s.Handler(), "/v1/events/client", tokSDK, body); r.status != 200 || r.resp.Accepted != 2 || r.resp.Rejected != 1 {
				t.Fatalf("after recovery: %d %s", r.status, r.body)
			}
		})
	}
}

func TestRequestRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit = RateLimit{RequestsPerSecond: 0.5, RequestBurst: 2}
	cfg.Tokens[3].RateLimit = &RateLimit{} // "all" is unlimited
	h := newTestServer(t, cfg, &fakeProducer{}).Handler()
	body := clientEvent("heartbeat", "u1", ms(testNow))
	for i := 0; i < 2; i++ {
		if r := post(t, h, "/v1/events/client", tokSDK, body); r.status != 200 {
			t.Fatalf("request %d within burst: %d", i, r.status)
		}
	}
	// The clock is frozen: the next token comes in 1/0.5 = 2 s.
	r := post(t, h, "/v1/events/client", tokSDK, body)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" || !strings.Contains(r.errMsg, `"sdk"`) {
		t.Fatalf("over limit: %d Retry-After=%q %q", r.status, r.header.Get("Retry-After"), r.errMsg)
	}
	// Limits are per token.
	if r := post(t, h, "/v1/events/client", tokAll, body); r.status != 200 {
		t.Fatalf("other token: %d", r.status)
	}
}

func TestEventRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxLines = 10
	cfg.RateLimit = RateLimit{EventsPerSecond: 10, EventBurst: 15}
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	body := strings.Repeat(clientEvent("heartbeat", "u1", ms(testNow))+"\n", 10)
	if r := post(t, h, "/v1/events/client", tokSDK, body); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	r := post(t, h, "/v1/events/client", tokSDK, body) // needs 10, has 5: wait 0.5 s
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("second: %d Retry-After=%q", r.status, r.header.Get("Retry-After"))
	}
	if len(fp.msgs) != 10 {
		t.Fatalf("produced %d, want 10 (the limited request produces nothing)", len(fp.msgs))
	}
}

func TestCORS(t *testing.T) {
	cfg := testConfig()
	cfg.CORS.AllowedOrigins = []string{"https://player.example.com"}
	h := newTestServer(t, cfg, &fakeProducer{}).Handler()
	pre := func(origin string) reply {
		return do(t, h, http.MethodOptions, "/v1/events/client", "", nil, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-encoding,content-type", // browsers sort and lowercase them
		})
	}
	r := pre("https://player.example.com")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://player.example.com" ||
		r.header.Get("Access-Control-Max-Age") != "600" || !strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	r = pre("https://evil.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin got ACAO %q", r.header.Get("Access-Control-Allow-Origin"))
	}
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(clientEvent("dns", "u", ms(testNow))),
		map[string]string{"Origin": "https://player.example.com"})
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://player.example.com" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("actual request: %d %v", r.status, r.header)
	}
	// Without configured origins there are no CORS headers at all.
	h2 := newTestServer(t, testConfig(), &fakeProducer{}).Handler()
	r = do(t, h2, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(clientEvent("dns", "u", ms(testNow))),
		map[string]string{"Origin": "https://player.example.com"})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off but ACAO %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestErrorListTruncated(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxErrors = 100
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	body := strings.Repeat("nope\n", 150) + clientEvent("dns", "u", ms(testNow))
	r := post(t, h, "/v1/events/client", tokSDK, body)
	if r.status != 200 || r.resp.Accepted != 1 || r.resp.Rejected != 150 || len(r.resp.Errors) != 100 || r.resp.Truncated != 50 {
		t.Fatalf("got %d accepted=%d rejected=%d errors=%d truncated=%d", r.status, r.resp.Accepted, r.resp.Rejected, len(r.resp.Errors), r.resp.Truncated)
	}
	if r.resp.Errors[99].Line != 100 {
		t.Fatalf("last listed error is line %d", r.resp.Errors[99].Line)
	}
	if n := len(fp.byTopic(cfg.Kafka.Topics.DeadLetter)); n != 150 {
		t.Fatalf("dead letters %d, want all 150", n)
	}
}

func TestIdempotencyKeyHeaders(t *testing.T) {
	cfg := testConfig()
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	now := ms(testNow)
	body := clientEvent("dns", "a", now) + "\nbroken\n" + clientEvent("dns", "b", now)
	r := do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(body), map[string]string{"Idempotency-Key": "req-42"})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	got := map[string]string{}
	for _, m := range fp.msgs {
		if len(m.Headers) != 2 || m.Headers[0].Key != "idempotency-key" || string(m.Headers[0].Value) != "req-42" || m.Headers[1].Key != "line" {
			t.Fatalf("headers %+v", m.Headers)
		}
		got[m.Topic+"#"+string(m.Headers[1].Value)] = string(m.Key)
	}
	want := map[string]string{cfg.Kafka.Topics.Client + "#1": "a", cfg.Kafka.Topics.Client + "#3": "b", cfg.Kafka.Topics.DeadLetter + "#2": "client"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages by topic#line %v, want %v", got, want)
	}
	if d := decodeDeadLetter(t, fp.byTopic(cfg.Kafka.Topics.DeadLetter)[0].Value); d.RequestID != "req-42" {
		t.Fatalf("dead letter request_id %q", d.RequestID)
	}
	fp.msgs = nil
	if r := post(t, h, "/v1/events/client", tokSDK, clientEvent("dns", "c", now)); r.status != 200 || len(fp.msgs[0].Headers) != 0 {
		t.Fatalf("without Idempotency-Key: headers %+v", fp.msgs[0].Headers)
	}
	r = do(t, h, http.MethodPost, "/v1/events/client", tokSDK, strings.NewReader(body), map[string]string{"Idempotency-Key": "has space"})
	if r.status != http.StatusBadRequest {
		t.Fatalf("bad key: %d", r.status)
	}
}

func TestReadyz(t *testing.T) {
	cfg := testConfig()
	cfg.ReadyCacheTTL = time.Hour
	fp := &fakeProducer{pingErr: errors.New("cannot reach kafka: connection refused")}
	s := newTestServer(t, cfg, fp)
	r := do(t, s.Handler(), http.MethodGet, "/readyz", "", nil, nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.errMsg, "connection refused") {
		t.Fatalf("kafka down: %d %q", r.status, r.errMsg)
	}
	fp.pingErr = nil
	if r := do(t, s.Handler(), http.MethodGet, "/readyz", "", nil, nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("within ready_cache_ttl the cached answer must be reused, got %d", r.status)
	}
	s.readyMu.Lock()
	s.readyAt = time.Time{}
	s.readyMu.Unlock()
	if r := do(t, s.Handler(), http.MethodGet, "/readyz", "", nil, nil); r.status != 200 {
		t.Fatalf("kafka up: %d", r.status)
	}
	if r := do(t, s.Handler(), http.MethodGet, "/healthz", "", nil, nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	s := newTestServer(t, testConfig(), &fakeProducer{})
	h := s.Handler()
	post(t, h, "/v1/events/client", tokSDK, clientEvent("dns", "u", ms(testNow))+"\nbad")
	post(t, h, "/v1/events/client", "nope-nope-nope-nope", "x")
	if r := do(t, h, http.MethodGet, "/metrics", "", nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("metrics without a token: %d, want 401", r.status)
	}
	if r := do(t, h, http.MethodGet, "/metrics", tokSDK, nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("metrics with a write-only token: %d, want 403", r.status)
	}
	r := do(t, h, http.MethodGet, "/metrics", tokScrape, nil, nil)
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	for _, want := range []string{
		`qoscope_ingest_events_accepted_total{source="client"} 1`,
		`qoscope_ingest_events_rejected_total{reason_class="syntax",source="client"} 1`,
		`qoscope_ingest_deadlettered_total{source="client"} 1`,
		`qoscope_ingest_http_requests_total{code="200",route="/v1/events/client"} 1`,
		`qoscope_ingest_http_requests_total{code="401",route="/v1/events/client"} 1`,
		`qoscope_ingest_produce_duration_seconds_count 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsPublic(t *testing.T) {
	cfg := testConfig()
	cfg.MetricsPublic = true
	h := newTestServer(t, cfg, &fakeProducer{}).Handler()
	if r := do(t, h, http.MethodGet, "/metrics", "", nil, nil); r.status != 200 {
		t.Fatalf("metrics_public: %d, want 200 without a token", r.status)
	}
}

func TestSchemaEndpoints(t *testing.T) {
	h := newTestServer(t, testConfig(), &fakeProducer{}).Handler()
	r := do(t, h, http.MethodGet, "/v1/schemas", "", nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"schemas":[`) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	names := schemaNames()
	if len(names) == 0 {
		t.Fatal("no schemas")
	}
	r = do(t, h, http.MethodGet, "/v1/schemas/"+names[0], "", nil, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/schema+json" || !strings.Contains(string(r.body), "json-schema.org") {
		t.Fatalf("schema %s: %d %s", names[0], r.status, r.body)
	}
	if r := do(t, h, http.MethodGet, "/v1/schemas/nosuch", "", nil, nil); r.status != 404 {
		t.Fatalf("unknown schema: %d", r.status)
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	fp := &fakeProducer{block: make(chan struct{})}
	s, err := NewServer(testConfig(), Deps{Producer: fp})
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

	url := "http://" + ln.Addr().String() + "/v1/events/client"
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(clientEvent("dns", "u", ms(time.Now()))))
		req.Header.Set("Authorization", "Bearer "+tokSDK)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	// Wait until the request is in flight (blocked in Produce), then stop.
	for inflight(t, s) < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	for !s.stopping.Load() {
		time.Sleep(time.Millisecond)
	}
	if r := do(t, s.Handler(), http.MethodGet, "/readyz", "", nil, nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("readyz while stopping: %d", r.status)
	}
	fp.mu.Lock()
	closedEarly := fp.closed
	fp.mu.Unlock()
	if closedEarly {
		t.Fatal("producer closed while a request was in flight")
	}
	close(fp.block)
	r := <-res
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"accepted":1`) {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !fp.closed || len(fp.msgs) != 1 {
		t.Fatalf("after Serve: closed=%v msgs=%d", fp.closed, len(fp.msgs))
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	h := newTestServer(t, testConfig(), &fakeProducer{}).Handler()
	if r := do(t, h, http.MethodGet, "/v1/events/client", tokSDK, nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET events: %d", r.status)
	}
	if r := do(t, h, http.MethodPost, "/v1/events/nope", tokSDK, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown source: %d", r.status)
	}
}

func TestIPDBFromFile(t *testing.T) {
	tbl, err := ipdb.Default()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.ipdb")
	if err := tbl.WriteFile(path, true); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.IPDB = path
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	body := strings.Replace(clientEvent("dns", "u", ms(testNow)), `"user_id"`, `"ip":"10.1.0.5","user_id"`, 1)
	if r := post(t, h, "/v1/events/client", tokSDK, body); r.status != 200 || r.resp.Accepted != 1 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if v := decodeValue(t, fp.msgs[0].Value); v["province"] != "beijing" {
		t.Fatalf("not enriched from the file table: %v", v)
	}
	cfg.IPDB = filepath.Join(t.TempDir(), "missing.ipdb")
	if _, err := NewServer(cfg, Deps{Producer: &fakeProducer{}}); err == nil || !strings.Contains(err.Error(), "ipdb: cannot open") {
		t.Fatalf("missing table: %v", err)
	}
}

// inflight reads qoscope_ingest_http_inflight_requests from the server's
// registry.
func inflight(t *testing.T, s *Server) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "qoscope_ingest_http_inflight_requests" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no qoscope_ingest_http_inflight_requests")
	return 0
}

// A token may name scopes instead of (or beside) sources; both give the
// same rights (docs/INGEST.md, "Security").
func TestTokenScopes(t *testing.T) {
	const tokScoped = "scoped-secret-0123456789"
	cfg := testConfig()
	cfg.Tokens = append(cfg.Tokens, TokenConfig{Name: "scoped", Token: tokScoped, Sources: []string{"cdn"}, Scopes: []string{"ingest:origin", "metrics"}})
	fp := &fakeProducer{}
	h := newTestServer(t, cfg, fp).Handler()
	if r := post(t, h, "/v1/events/origin", tokScoped, originEvent("s", ms(testNow))); r.status != 200 {
		t.Errorf("origin with scope ingest:origin: %d %s", r.status, r.body)
	}
	if r := post(t, h, "/v1/events/client", tokScoped, clientEvent("heartbeat", "u1", ms(testNow))); r.status != 403 ||
		r.errMsg != `token "scoped" may not write client events` {
		t.Errorf("client without the scope: %d %q", r.status, r.errMsg)
	}
	if r := do(t, h, http.MethodGet, "/metrics", tokScoped, nil, nil); r.status != 200 {
		t.Errorf("metrics with scope metrics: %d", r.status)
	}
	if len(fp.msgs) != 1 {
		t.Errorf("%d messages, want the one origin event", len(fp.msgs))
	}

	cfg = testConfig()
	cfg.Tokens[0].Sources = nil
	cfg.Tokens[0].Scopes = []string{"ingest:client", "write"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `tokens[0].scopes: "write" is not one of ingest:client, ingest:cdn`) {
		t.Errorf("unknown scope: %v", err)
	}
}
