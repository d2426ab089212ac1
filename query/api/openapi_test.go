package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/qoscope/qoscope/notify"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// openAPIDoc is the part of openapi.json the tests read.
type openAPIDoc struct {
	OpenAPI    string `json:"openapi"`
	Paths      map[string]map[string]operation
	Components struct {
		Parameters map[string]parameter
	}
}

type operation struct {
	Parameters []parameter
	Responses  map[string]struct {
		Ref     string `json:"$ref"`
		Content map[string]any
	}
}

type parameter struct {
	Ref      string `json:"$ref"`
	Name     string
	In       string
	Required bool
	Schema   struct {
		Ref     string `json:"$ref"`
		Type    any
		Enum    []string
		Minimum *float64
		Maximum *float64
	}
	Example any
}

func loadDoc(t *testing.T) openAPIDoc {
	t.Helper()
	var d openAPIDoc
	if err := json.Unmarshal(OpenAPI, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if d.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: version %q, want 3.1.0", d.OpenAPI)
	}
	return d
}

// params resolves the operation's parameters.
func (d openAPIDoc) params(op operation) []parameter {
	var out []parameter
	for _, p := range op.Parameters {
		if p.Ref != "" {
			p = d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
		}
		out = append(out, p)
	}
	return out
}

// Every route of the router is documented, every documented route answers
// (neither 404 nor 405), and the document is served.
func TestEveryRouteDocumented(t *testing.T) {
	f := newFixture(t, time.Time{}, withScores(t), withNotify)
	f.steerable(t, time.Now())
	if err := f.srv.Scores().Rebuild(f.ctx); err != nil {
		t.Fatal(err)
	}
	doc := loadDoc(t)
	var routes []string
	err := chi.Walk(f.srv.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	if !slices.Equal(routes, documented) {
		t.Errorf("routes\n %q\ndocumented\n %q", routes, documented)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, r := range documented {
		path, get := strings.CutPrefix(r, "GET ")
		if !get {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+path+"?metric=users&by=province", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := f.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // the live stream ends here
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode >= 500 {
			t.Errorf("%s: %d", r, resp.StatusCode)
		}
	}
	code, b := f.getWith(t, "", "/api/v1/openapi.json")
	if code != 200 || !bytes.Equal(b, OpenAPI) {
		t.Errorf("GET /api/v1/openapi.json: %d, %d bytes", code, len(b))
	}
}

// hostile are values no parameter should choke on: injection shapes,
// unicode, control characters, huge and odd numbers, odd times, lists.
var hostile = []string{
	"", " ", "'", "\"", "' OR 1=1 --", "'; DROP TABLE client_minute; --", "1); SELECT 1; --", "{p0:String}", "dims['x']",
	"\\", "%", "%00", "\x00", "\u202e\u0645", "省份", "🚀🚀", "ｐｒｏｖｉｎｃｅ", strings.Repeat("a", 3000),
	"-1", "0", "1e309", "NaN", "Infinity", "0x10", "1.5", "99999999999999999999999", "-9223372036854775808", "2147483648",
	"2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2099-12-31T23:59:59+14:00",
	",", ",,", "a,b", "province,province", "province,isp,vendor,platform,role", ":", "province:", ":x", "province:'x'",
	"1m", "5m", "1h", "1d", "users", "value", "asc", "client", "cdn", "origin",
}

// validValue is a plausible value of p: an enum member, its example, a
// recent time, an integer in range, a catalogue name.
func validValue(rng *rand.Rand, p parameter, now time.Time, dims []string) string {
	switch {
	case len(p.Schema.Enum) > 0:
		return p.Schema.Enum[rng.IntN(len(p.Schema.Enum))]
	case strings.HasSuffix(p.Schema.Ref, "/TimeParam"):
		return now.Add(-time.Duration(rng.IntN(180)) * time.Minute).Format(time.RFC3339)
	case p.Schema.Type == "integer":
		lo, hi := 0, 100
		if p.Schema.Minimum != nil {
			lo = int(*p.Schema.Minimum)
		}
		if p.Schema.Maximum != nil {
			hi = min(int(*p.Schema.Maximum), lo+100)
		}
		return strconv.Itoa(lo + rng.IntN(hi-lo+1))
	case p.Name == "metric" || p.Name == "extra":
		return []string{"users", "stutter_rate_uv", "first_frame_ms_p90", "zero_stutter_rate", "requests", "bandwidth_mbps", "fps_avg"}[rng.IntN(7)]
	case p.Name == "group_by" || p.Name == "by":
		return dims[rng.IntN(len(dims))]
	case p.Name == "filter":
		return []string{"isp:telecom", "vendor:cdn-b", "province:guangdong"}[rng.IntN(3)]
	}
	if s, ok := p.Example.(string); ok {
		return s
	}
	return "x"
}

// TestFuzzFromOpenAPI is the schemathesis-style property test: requests
// generated from the document's parameters, with random mixes of valid,
// hostile, empty, repeated and unknown values, never get a 5xx, and every
// answer is a documented status whose body matches its documented schema.
// QOSCOPE_FUZZ_SEED replays a run; QOSCOPE_FUZZ_N sets the requests per
// operation (default 150).
func TestFuzzFromOpenAPI(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 5, 0, 0, time.UTC)
	f := newFixture(t, now, withScores(t), withNotify)
	f.exec(t, `INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users, first_frames, first_frame_ms_hist) VALUES
		('2026-11-23 12:00:00', '', map(), 'c', 0, 1, 1, 40, 4, 3, map(100, 2, 200, 1)),
		('2026-11-23 12:01:00', '', map(), 'c', 0, 1, 0, 0, 0, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 1, 1, 40, 4, 0, map()),
		('2026-11-23 12:00:00', 'province', map('province','省份'), 'c', 0, 1, 1, 1, 0, 0, map())`)
	f.exec(t, `INSERT INTO origin_minute (window_start, grouping, dims, topic, kafka_partition, version, final, samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum, no_data) VALUES
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s1','line','primary'), 'o', 0, 1, 1, 2, 50, 24, 4000, 1900, 80, 0),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s4','line','primary'), 'o', 0, 1, 1, 0, 0, inf, 0, inf, 0, 1)`)
	f.exec(t, `INSERT INTO client_day (window_start, grouping, dims, topic, kafka_partition, version, minutes, pushes, pushes_ok) VALUES
		('2026-11-23 00:00:00', '', map(), 'c', 0, 1, 720, 10, 9), ('2026-11-22 00:00:00', '', map(), 'c', 0, 1, 1440, 0, 0)`)
	f.exec(t, `INSERT INTO cdn_minute (window_start, grouping, dims, topic, kafka_partition, version, final, requests, bytes) VALUES
		('2026-11-23 12:00:00', '', map(), 'd', 0, 1, 1, 10, 1000)`)
	f.steerable(t, now)
	if err := f.srv.Scores().Rebuild(f.ctx); err != nil {
		t.Fatal(err)
	}

	doc := loadDoc(t)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI))
	if err != nil {
		t.Fatal(err)
	}
	const docURL = "file:///openapi.json"
	if err := c.AddResource(docURL, raw); err != nil {
		t.Fatal(err)
	}
	schemas := map[string]*jsonschema.Schema{}
	schemaFor := func(path, status string) (*jsonschema.Schema, bool) {
		resp, ok := doc.Paths[path]["get"].Responses[status]
		if !ok {
			return nil, false
		}
		ptr := "#/paths/" + strings.ReplaceAll(strings.ReplaceAll(path, "~", "~0"), "/", "~1") + "/get/responses/" + status
		if resp.Ref != "" {
			ptr = resp.Ref
		}
		ptr += "/content/application~1json/schema"
		if s, ok := schemas[ptr]; ok {
			return s, true
		}
		s, err := c.Compile(docURL + ptr)
		if err != nil {
			t.Fatalf("schema %s: %v", ptr, err)
		}
		schemas[ptr] = s
		return s, true
	}

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QOSCOPE_FUZZ_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	n := 150
	if s := os.Getenv("QOSCOPE_FUZZ_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (QOSCOPE_FUZZ_SEED=%d replays it), %d requests per operation", seed, seed, n)
	rng := rand.New(rand.NewPCG(seed, 0))
	dims := append([]string{"province", "isp", "province,isp", "vendor,province,isp", "stream_id,line"}, hostile...)
	pick := func() string { return hostile[rng.IntN(len(hostile))] }

	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	statuses := map[int]int{}
	for _, path := range paths {
		op, get := doc.Paths[path]["get"]
		if !get {
			continue // POST routes have their own tests
		}
		for range n {
			q := url.Values{}
			header := http.Header{}
			for _, p := range doc.params(op) {
				var vals []string
				switch r := rng.IntN(10); {
				case r < 3 && !p.Required: // omitted
				case r < 6:
					vals = []string{validValue(rng, p, now, dims)}
				case r < 9:
					vals = []string{pick()}
				default: // repeated
					vals = []string{validValue(rng, p, now, dims), pick()}
				}
				for _, v := range vals {
					if p.In == "header" {
						// Header values cannot carry control characters.
						header.Add(p.Name, strings.Map(func(r rune) rune {
							if r < 0x20 || r == 0x7f {
								return -1
							}
							return r
						}, v))
					} else {
						q.Add(p.Name, v)
					}
				}
			}
			if rng.IntN(20) == 0 {
				q.Add(pick()+"x", pick()) // an unknown parameter
			}
			code, ctype, body := f.fuzzGet(t, path, q, header)
			statuses[code]++
			what := fmt.Sprintf("GET %s?%s", path, q.Encode())
			if code >= 500 {
				t.Fatalf("%s: %d %s", what, code, body)
			}
			if !strings.HasPrefix(ctype, "application/json") {
				if path == "/api/v1/live" && code == 200 && ctype == "text/event-stream" || path == "/metrics" && code == 200 {
					continue
				}
				if documentedMedia(op, code, ctype) {
					continue // a page or a static file of the wall: no JSON schema to check
				}
				t.Fatalf("%s: %d with content type %q", what, code, ctype)
			}
			s, ok := schemaFor(path, strconv.Itoa(code))
			if !ok {
				t.Fatalf("%s: status %d is not documented: %s", what, code, body)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: not JSON: %v: %s", what, err, body)
			}
			if err := s.Validate(inst); err != nil {
				t.Fatalf("%s: %d answer does not match its schema: %v\n%s", what, code, err, body)
			}
		}
	}
	t.Logf("statuses: %v", statuses)
	if statuses[200] == 0 || statuses[400] == 0 {
		t.Errorf("the generator should reach both answers and refusals: %v", statuses)
	}
}

// documentedMedia: the operation documents status code with a media type
// that ctype (parameters aside) is.
func documentedMedia(op operation, code int, ctype string) bool {
	media, _, _ := strings.Cut(ctype, ";")
	_, ok := op.Responses[strconv.Itoa(code)].Content[strings.TrimSpace(media)]
	return ok
}

// fuzzGet requests with the read token; a live stream is cut after its
// headers.
func (f *fixture) fuzzGet(t *testing.T, path string, q url.Values, h http.Header) (int, string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+path+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ctype := resp.Header.Get("Content-Type")
	if ctype == "text/event-stream" {
		return resp.StatusCode, ctype, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, ctype, b
}

// withScores turns the live scores on (score/live) with a one-vendor
// scores file and builds their first snapshot when the fixture starts.
func withScores(t *testing.T) func(*Config) {
	p := filepath.Join(t.TempDir(), "scores.yaml")
	if err := os.WriteFile(p, []byte("vendors:\n  cdn-a: {guaranteed_mbps: 100, max_mbps: 200}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Scores.Config, c.Scores.KafkaTopic = p, "" }
}

// withNotify gives alert.notify a receiver, which mounts the silences API
// (no alert is ever sent: there are no rules).
func withNotify(c *Config) {
	c.Alert.Notify.Receivers = []notify.ReceiverConfig{{Name: "hook", Type: "webhook", URL: "http://127.0.0.1:1/hook", Secret: "s"}}
}

// steerable gives the scores a region with traffic of cdn-a, the vendor of
// withScores, in the minute before now: the steering endpoints then answer
// with a manifest rather than "no table yet".
func (f *fixture) steerable(t *testing.T, now time.Time) {
	m := now.UTC().Truncate(time.Minute).Add(-time.Minute).Format(time.DateTime)
	f.exec(t, `INSERT INTO cdn_minute (window_start, grouping, dims, topic, kafka_partition, version, final, requests, bytes) VALUES
		('`+m+`', 'vendor,province,isp', map('vendor','cdn-a','province','guangdong','isp','telecom'), 'd', 0, 1, 1, 10, 75000000)`)
}
