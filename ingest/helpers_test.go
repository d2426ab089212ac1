package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go"
)

// Test secrets; every one is at least MinTokenLength long.
const (
	tokSDK    = "sdk-secret-0123456789"
	tokCDN    = "cdn-secret-0123456789"
	tokOrigin = "origin-secret-0123456789"
	tokAll    = "all-secret-0123456789"
	tokScrape = "scrape-secret-0123456789"
)

// testNow is the fixed receive time of unit tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Tokens = []TokenConfig{
		{Name: "sdk", Token: tokSDK, Sources: []string{"client", "cmcd"}},
		{Name: "cdn-logs", Token: tokCDN, Sources: []string{"cdn"}},
		{Name: "origin", Token: tokOrigin, Sources: []string{"origin"}},
		{Name: "all", Token: tokAll, Sources: []string{"client", "cdn", "origin", "cmcd"}},
		{Name: "prometheus", Token: tokScrape, Sources: []string{"metrics"}},
	}
	return cfg
}

// fakeProducer records produced messages (deep copies: the server reuses
// its buffers after Produce returns) or fails with err.
type fakeProducer struct {
	mu      sync.Mutex
	msgs    []kafka.Message
	calls   int
	err     error
	pingErr error
	closed  bool
	block   chan struct{} // when set, Produce waits for it to close
}

func (f *fakeProducer) Produce(ctx context.Context, msgs []kafka.Message) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return f.err
	}
	for _, m := range msgs {
		c := kafka.Message{Topic: m.Topic, Key: bytes.Clone(m.Key), Value: bytes.Clone(m.Value), Time: m.Time}
		for _, h := range m.Headers {
			c.Headers = append(c.Headers, kafka.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
		}
		f.msgs = append(f.msgs, c)
	}
	return nil
}

func (f *fakeProducer) Ping(context.Context) error { return f.pingErr }

func (f *fakeProducer) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeProducer) byTopic(topic string) []kafka.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []kafka.Message
	for _, m := range f.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

func newTestServer(t testing.TB, cfg Config, p Producer) *Server {
	t.Helper()
	s, err := NewServer(cfg, Deps{Producer: p, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type reply struct {
	status int
	header http.Header
	body   []byte
	resp   response
	errMsg string
}

func do(t testing.TB, h http.Handler, method, path, token string, body io.Reader, hdr map[string]string) reply {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if rec.Code == http.StatusOK && strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/schemas") {
		if err := json.Unmarshal(r.body, &r.resp); err != nil {
			t.Fatalf("%s %s: cannot decode 200 body %q: %v", method, path, r.body, err)
		}
	} else if rec.Code >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: status %d without a JSON error: %q", method, path, rec.Code, r.body)
		}
		r.errMsg = e.Error
	}
	return r
}

func post(t testing.TB, h http.Handler, path, token, body string) reply {
	t.Helper()
	return do(t, h, http.MethodPost, path, token, strings.NewReader(body), nil)
}

// Valid example events, one per type, all with ts = testNow - 1s unless
// given. They carry every required member of the schema.
func clientEvent(typ, user string, tsMS int64) string {
	common := fmt.Sprintf(`"v":1,"type":%q,"ts":%d,"user_id":%q,"session_id":"s-%s","stream_id":"live-1","vendor":"cdnA","node":"edge-7","platform":"android","client_version":"5.2.0","quality":"1080p","role":"audience"`,
		typ, tsMS, user, user)
	var extra string
	switch typ {
	case "play_start":
		extra = `"ok":true,"connect_ms":320`
	case "first_frame":
		extra = `"first_frame_ms":850`
	case "stall":
		extra = `"duration_ms":2500,"media":"video"`
	case "heartbeat":
		extra = `"video_buffer_ms":3000,"audio_buffer_ms":3100,"bitrate_kbps":2500.5,"fps":29.97,"stalled":false`
	case "play_end":
		extra = `"reason":"user","watch_ms":600000`
	case "push_start":
		extra = `"ok":false,"error":"timeout"`
	case "push_end":
		extra = `"dropped":true`
	case "relay":
		extra = `"ok":true,"duration_ms":120`
	case "dns":
		extra = `"cache_hit":true`
	default:
		panic("unknown client type " + typ)
	}
	return "{" + common + "," + extra + "}"
}

var clientTypes = []string{"play_start", "first_frame", "stall", "heartbeat", "play_end", "push_start", "push_end", "relay", "dns"}

func cdnEvent(vendor, node string, tsMS int64) string {
	return fmt.Sprintf(`{"v":1,"type":"cdn_request","ts":%d,"vendor":%q,"node":%q,"ip":"10.2.0.9","stream_id":"live-1","status":200,"bytes":1048576,"ttfb_ms":35,"duration_ms":900}`,
		tsMS, vendor, node)
}

func originEvent(stream string, tsMS int64) string {
	return fmt.Sprintf(`{"v":1,"type":"origin_stats","ts":%d,"stream_id":%q,"node":"origin-1","line":"primary","egress_isp":"telecom","bitrate_kbps":4000,"fps":30,"rtt_ms":12.5}`,
		tsMS, stream)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// decodeValue decodes a Kafka message value (canonical event JSON).
func decodeValue(t testing.TB, v []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		t.Fatalf("message value %q is not JSON: %v", v, err)
	}
	return m
}

func decodeDeadLetter(t testing.TB, v []byte) DeadLetter {
	t.Helper()
	var d DeadLetter
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dead letter %q: %v", v, err)
	}
	return d
}
