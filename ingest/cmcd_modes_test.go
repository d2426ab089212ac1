package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/qoscope/qoscope/ingest/cmcd"
	"github.com/qoscope/qoscope/ingest/cmcd/cmcdtest"
	"github.com/qoscope/qoscope/internal/config"
)

// cmcdRecv is the receive time of the CMCD vectors (their ts are near it).
var cmcdRecv = time.UnixMilli(1795435200000)

func newCMCDServer(t *testing.T, cfg Config, fp *fakeProducer) *Server {
	t.Helper()
	s, err := NewServer(cfg, Deps{Producer: fp, Now: func() time.Time { return cmcdRecv }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sendCMCD sends one request with the given headers (repeatable) to h.
func sendCMCD(t *testing.T, h http.Handler, method, target, body string, hdr http.Header) reply {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	if rd != nil {
		req = httptest.NewRequest(method, target, rd)
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Authorization", "Bearer "+tokSDK)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(r.body, &r.resp); err != nil {
			t.Fatalf("cannot decode %q: %v", r.body, err)
		}
	} else {
		var e struct{ Error string }
		_ = json.Unmarshal(r.body, &e)
		r.errMsg = e.Error
	}
	return r
}

func violations(s *Server) map[string]float64 {
	out := map[string]float64{}
	for _, r := range cmcd.Rules() {
		if v := testutil.ToFloat64(s.m.cmcdViolations.WithLabelValues(string(r))); v != 0 {
			out[string(r)] = v
		}
	}
	return out
}

// TestCMCDVectorsThroughHandler replays every vector of
// ingest/cmcd/testdata/vectors.txt through GET|POST /v1/cmcd in each of its
// forms: the answer, the events' stream_id, the dead letter and the
// violation counts are those the vector states.
func TestCMCDVectorsThroughHandler(t *testing.T) {
	for _, v := range cmcdtest.LoadVectors(t, "cmcd/testdata/vectors.txt") {
		for _, form := range v.Forms {
			t.Run(v.Name+"/"+form, func(t *testing.T) {
				cfg := testConfig()
				fp := &fakeProducer{}
				s := newCMCDServer(t, cfg, fp)
				target := "/v1/cmcd"
				if v.Collector != "" {
					target += "?" + v.Collector
				}
				sep := "?"
				if strings.Contains(target, "?") {
					sep = "&"
				}
				hdr := http.Header{}
				var r reply
				switch form {
				case "query":
					r = sendCMCD(t, s.Handler(), http.MethodGet, target+sep+"CMCD="+url.QueryEscape(v.Payload), "", nil)
				case "header":
					for _, l := range v.HeaderLines() {
						name, val, _ := strings.Cut(l, ":")
						hdr.Add(name, strings.TrimSpace(val))
					}
					r = sendCMCD(t, s.Handler(), http.MethodGet, target, "", hdr)
				case "line":
					hdr.Set("Content-Type", "application/cmcd")
					r = sendCMCD(t, s.Handler(), http.MethodPost, target, v.Payload+"\n", hdr)
				case "json":
					hdr.Set("Content-Type", "application/json")
					r = sendCMCD(t, s.Handler(), http.MethodPost, target, v.JSON, hdr)
				}
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
				if v.Error != "" {
					key, reason, _ := strings.Cut(v.Error, ": ")
					if r.resp.Rejected != 1 || r.resp.Accepted != 0 || r.resp.Errors[0].Field != key || r.resp.Errors[0].Reason != reason {
						t.Fatalf("want rejected %q: %s", v.Error, r.body)
					}
					if dl := fp.byTopic(cfg.Kafka.Topics.DeadLetter); len(dl) != 1 || decodeDeadLetter(t, dl[0].Value).Field != key {
						t.Fatalf("dead letters %d", len(dl))
					}
					return
				}
				want := 0
				if v.Events != "" {
					want = strings.Count(v.Events, "|") + 1
				}
				if r.resp.Accepted != want || r.resp.Rejected != 0 {
					t.Fatalf("accepted %d, want %d: %s", r.resp.Accepted, want, r.body)
				}
				for _, m := range fp.byTopic(cfg.Kafka.Topics.Client) {
					if got := decodeValue(t, m.Value)["stream_id"]; got != v.Stream {
						t.Errorf("stream_id %v, want %q", got, v.Stream)
					}
				}
				wantV := map[string]float64{}
				for _, rule := range strings.Fields(v.Violations) {
					wantV[rule]++
				}
				if got := violations(s); !mapsEqual(got, wantV) {
					t.Errorf("violations %v, want %v", got, wantV)
				}
			})
		}
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestCMCDStreamFrom: each source of the stream_id through the handler.
func TestCMCDStreamFrom(t *testing.T) {
	sidOnly := url.QueryEscape(`bl=1000,ot=v,sid="s-1"`)
	withCID := url.QueryEscape(`bl=1000,cid="c-1",ot=v,sid="s-1"`)
	tests := []struct {
		name              string
		from              []string
		pattern, target   string
		body, contentType string
		stream, rejected  string
	}{
		{"cid", []string{"cid", "query", "unknown"}, "", "/v1/cmcd?stream=q-1&CMCD=" + withCID, "", "", "c-1", ""},
		{"query when no cid", []string{"cid", "query", "unknown"}, "", "/v1/cmcd?stream=q-1&CMCD=" + sidOnly, "", "", "q-1", ""},
		{"query before cid", []string{"query", "cid"}, "", "/v1/cmcd?stream=q-1&CMCD=" + withCID, "", "", "q-1", ""},
		{"unknown", []string{"cid", "query", "unknown"}, "", "/v1/cmcd?CMCD=" + sidOnly, "", "", "unknown", ""},
		{"path of the v2 url key (JSON event report)", []string{"cid", "path"}, `^/live/(?P<stream>[^/]+)/`, "/v1/cmcd",
			`{"v":2,"e":"rr","sid":"s-1","ot":"v","bl":[1000],"url":"https://cdn.example.com/live/room-3/seg-1.m4s","ts":1795435200000}`,
			"application/json", "room-3", ""},
		{"path of a nor line", []string{"path", "unknown"}, `/live/([^/]+)/`, "/v1/cmcd",
			`v=2,sid="s-1",ot=v,bl=(1000),nor=("/live/room-4/seg-2.m4s")`, "text/cmcd", "room-4", ""},
		{"no source yields", []string{"cid", "query"}, "", "/v1/cmcd?CMCD=" + sidOnly, "", "", "",
			`required: it is the stream_id (none from cid, query parameter "stream")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.CMCD.StreamFrom, cfg.CMCD.StreamPathPattern = tt.from, tt.pattern
			fp := &fakeProducer{}
			s := newCMCDServer(t, cfg, fp)
			method, hdr := http.MethodGet, http.Header{}
			if tt.body != "" {
				method = http.MethodPost
				hdr.Set("Content-Type", tt.contentType)
			}
			r := sendCMCD(t, s.Handler(), method, tt.target, tt.body, hdr)
			if tt.rejected != "" {
				if r.status != 200 || r.resp.Rejected != 1 || r.resp.Errors[0].Field != "cid" || r.resp.Errors[0].Reason != tt.rejected {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			evs := fp.byTopic(cfg.Kafka.Topics.Client)
			if r.status != 200 || r.resp.Accepted != 1 || len(evs) != 1 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if got := decodeValue(t, evs[0].Value)["stream_id"]; got != tt.stream {
				t.Errorf("stream_id %v, want %s", got, tt.stream)
			}
		})
	}
}

// TestCMCDJSONMode: CTA-5004 v1 JSON mode, one object or an array of
// objects, declared or not; each object is a "line" (its index).
func TestCMCDJSONMode(t *testing.T) {
	cfg := testConfig()
	fp := &fakeProducer{}
	s := newCMCDServer(t, cfg, fp)
	body := `[
 {"bl":21300,"br":3200,"bs":true,"cid":"faec5fc2-ac30-11eabb37-0242ac130002","d":4004,"dl":18500,"mtp":48100,"nor":"..%2F300kbps%2Ftrack.m4v","nrr":"12323-48763","ot":"v","pr":1.08,"rtp":12000,"sf":"d","sid":"6e2fb550-c457-11e9-bb97-0800200c9a66","st":"v","su":true,"tb":6000},
 {"bl":20900,"mtp":1500,"ot":"a","sid":"s-2","v":1},
 {"bl":"lots","ot":"v","sid":"s-3"}
]`
	for _, ct := range []string{"application/json; charset=utf-8", ""} {
		hdr := http.Header{}
		if ct != "" {
			hdr.Set("Content-Type", ct)
		}
		fp.msgs = nil
		r := sendCMCD(t, s.Handler(), http.MethodPost, "/v1/cmcd", body, hdr)
		if r.status != 200 || r.resp.Accepted != 2 || r.resp.Rejected != 1 {
			t.Fatalf("content-type %q: %d %s", ct, r.status, r.body)
		}
		if e := r.resp.Errors[0]; e.Line != 3 || e.Field != "bl" || e.Reason != "must be an integer or an inner list of integers" {
			t.Errorf("error %+v", e)
		}
		evs := fp.byTopic(cfg.Kafka.Topics.Client)
		if len(evs) != 2 {
			t.Fatalf("%d events", len(evs))
		}
		first, second := decodeValue(t, evs[0].Value), decodeValue(t, evs[1].Value)
		if first["stream_id"] != "faec5fc2-ac30-11eabb37-0242ac130002" || first["stalled"] != true || first["video_buffer_ms"] != 21300.0 ||
			first["bitrate_kbps"] != 3200.0 {
			t.Errorf("spec example event %v", first)
		}
		if second["user_id"] != "s-2" || second["stream_id"] != "unknown" || second["audio_buffer_ms"] != 20900.0 {
			t.Errorf("second event %v", second)
		}
		if ctx, _ := second["cmcd"].(map[string]any); ctx["mtp"] != 1500.0 || ctx["ot"] != "a" {
			t.Errorf("context %v", second["cmcd"])
		}
		dl := fp.byTopic(cfg.Kafka.Topics.DeadLetter)
		if len(dl) != 1 || decodeDeadLetter(t, dl[0].Value).Raw != `{"bl":"lots","ot":"v","sid":"s-3"}` {
			t.Errorf("dead letters %d", len(dl))
		}
	}
	r := sendCMCD(t, s.Handler(), http.MethodPost, "/v1/cmcd", `[{"sid":"a"},`, http.Header{"Content-Type": {"application/json"}})
	if r.status != 400 || r.errMsg != "cmcd: CMCD JSON body is not valid JSON (want an object or an array of objects): unexpected end of JSON input at byte 13" {
		t.Errorf("broken JSON: %d %q", r.status, r.errMsg)
	}
}

// TestCMCDHeadersWinOverQuery: CTA-5004 section 6, with the mixed request
// counted once.
func TestCMCDHeadersWinOverQuery(t *testing.T) {
	cfg := testConfig()
	fp := &fakeProducer{}
	s := newCMCDServer(t, cfg, fp)
	hdr := http.Header{"CMCD-Request": {"bl=2000"}, "CMCD-Object": {"ot=v"}, "CMCD-Session": {`sid="from-headers"`}}
	r := sendCMCD(t, s.Handler(), http.MethodGet, "/v1/cmcd?CMCD="+url.QueryEscape(`bl=100,ot=v,sid="from-query"`), "", hdr)
	evs := fp.byTopic(cfg.Kafka.Topics.Client)
	if r.status != 200 || len(evs) != 1 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if v := decodeValue(t, evs[0].Value); v["user_id"] != "from-headers" || v["video_buffer_ms"] != 2000.0 {
		t.Errorf("event %v", v)
	}
	if got := violations(s); !mapsEqual(got, map[string]float64{"mixed_transmission": 1}) {
		t.Errorf("violations %v", got)
	}
}

// TestCMCDViolationsCountedOnlyWhenAccepted: a request answered 503 is
// retried; its violations count once, with the accepted retry.
func TestCMCDViolationsCountedOnlyWhenAccepted(t *testing.T) {
	cfg := testConfig()
	fp := &fakeProducer{err: errors.New("broker down")}
	s := newCMCDServer(t, cfg, fp)
	target := "/v1/cmcd?CMCD=" + url.QueryEscape(`bl=1234,ot=v,sid="s"`)
	if r := sendCMCD(t, s.Handler(), http.MethodGet, target, "", nil); r.status != 503 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := violations(s); len(got) != 0 {
		t.Errorf("after 503: %v", got)
	}
	fp.err = nil
	if r := sendCMCD(t, s.Handler(), http.MethodGet, target, "", nil); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := violations(s); !mapsEqual(got, map[string]float64{"unrounded_bl": 1}) {
		t.Errorf("after retry: %v", got)
	}
}

func TestCMCDConfig(t *testing.T) {
	for _, tc := range []struct {
		edit func(*CMCDConfig)
		want string
	}{
		{func(c *CMCDConfig) { c.StreamFrom = []string{"cid", "header"} }, `cmcd.stream_from: "header" is not one of cid, query, path, unknown`},
		{func(c *CMCDConfig) { c.StreamFrom = []string{"unknown", "cid"} }, `cmcd.stream_from: unknown must come last`},
		{func(c *CMCDConfig) { c.StreamParam = "" }, "cmcd.stream_param: the query source needs a parameter name other than CMCD"},
		{func(c *CMCDConfig) { c.StreamFrom = []string{"path"} }, "cmcd.stream_path_pattern: the path source needs a pattern"},
		{func(c *CMCDConfig) { c.StreamFrom, c.StreamPathPattern = []string{"path"}, "(" }, "cmcd.stream_path_pattern: error parsing regexp"},
	} {
		cfg := testConfig()
		tc.edit(&cfg.CMCD)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
	d := DefaultConfig().CMCD
	if !slices.Equal(d.StreamFrom, []string{"cid", "query", "unknown"}) || d.StreamParam != "stream" || d.StreamPathPattern != "" {
		t.Errorf("defaults %+v", d)
	}
	path := filepath.Join(t.TempDir(), "ingest.yaml")
	yaml := "tokens: [{name: sdk, token: " + tokSDK + ", sources: [cmcd]}]\n" +
		"cmcd: {stream_from: [query, path], stream_path_pattern: '^/live/([^/]+)/'}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QOSCOPE_INGEST_CMCD_STREAM_PARAM", "room")
	cfg := DefaultConfig()
	if err := config.Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.CMCD.StreamFrom, []string{"query", "path"}) || cfg.CMCD.StreamPathPattern != "^/live/([^/]+)/" ||
		cfg.CMCD.StreamParam != "room" {
		t.Errorf("loaded %+v", cfg.CMCD)
	}
}
