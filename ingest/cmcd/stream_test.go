package cmcd

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
)

func TestStreamSources(t *testing.T) {
	withCID := Data{ContentID: "c-1", NextObjects: []string{"..%2F..%2Flive%2Froom-5%2Fseg-2.m4s"}, Version: 1}
	noCID := Data{Version: 2, URL: "https://cdn.example.com/live/room-6/720p/seg-9.m4s?tok=1", NextObjects: []string{"seg-10.m4s"}}
	norOnly := Data{Version: 1, NextObjects: []string{"%2Flive%2Froom-5%2Fseg-2.m4s"}}
	q := url.Values{"stream": {"q-1"}}
	const pattern = `/live/(?P<stream>[^/]+)/`
	tests := []struct {
		name   string
		from   []string
		d      Data
		query  url.Values
		stream string
		source string
	}{
		{"cid first", []string{"cid", "query", "unknown"}, withCID, q, "c-1", "cid"},
		{"query when no cid", []string{"cid", "query", "unknown"}, Data{}, q, "q-1", "query"},
		{"query before cid when listed first", []string{"query", "cid"}, withCID, q, "q-1", "query"},
		{"unknown when nothing else", []string{"cid", "query", "unknown"}, Data{}, url.Values{}, "unknown", "unknown"},
		{"path from the v2 url key", []string{"cid", "path"}, noCID, nil, "room-6", "path"},
		{"path from a v1 nor, URL-decoded", []string{"path"}, norOnly, nil, "room-5", "path"},
	}
	for _, tt := range tests {
		s, err := NewStreamSource(tt.from, "stream", pattern)
		if err != nil {
			t.Fatal(err)
		}
		stream, source, err := s.Stream(&tt.d, tt.query)
		if err != nil || stream != tt.stream || source != tt.source {
			t.Errorf("%s: got %q from %q, %v; want %q from %q", tt.name, stream, source, err, tt.stream, tt.source)
		}
	}
	s, _ := NewStreamSource([]string{"cid", "query", "path"}, "room", `^/v/([a-z]+)/`)
	_, _, err := s.Stream(&Data{NextObjects: []string{"seg.m4s"}}, url.Values{})
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "cid" ||
		ce.Reason != `required: it is the stream_id (none from cid, query parameter "room", the url/nor path)` {
		t.Errorf("no stream: %v", err)
	}
}

func TestNewStreamSourceErrors(t *testing.T) {
	tests := []struct {
		from           []string
		param, pattern string
		setting, want  string
	}{
		{nil, "stream", "", "from", "want at least one of cid, query, path, unknown"},
		{[]string{"cid", "header"}, "stream", "", "from", `"header" is not one of cid, query, path, unknown`},
		{[]string{"cid", "cid"}, "stream", "", "from", `"cid" is listed twice`},
		{[]string{"unknown", "cid"}, "stream", "", "from", `unknown must come last: it always yields, so "cid" after it would never be tried`},
		{[]string{"query"}, "", "", "param", "the query source needs a parameter name other than CMCD"},
		{[]string{"query"}, "CMCD", "", "param", "the query source needs a parameter name other than CMCD"},
		{[]string{"path"}, "", "", "path_pattern", "the path source needs a pattern"},
		{[]string{"path"}, "", "(", "path_pattern", "error parsing regexp: missing closing ): `(`"},
		{[]string{"path"}, "", "/live/([^/]+)/([^/]+)", "path_pattern", "\"/live/([^/]+)/([^/]+)\" needs a group named stream, (?P<stream>...), or exactly one group"},
	}
	for _, tt := range tests {
		_, err := NewStreamSource(tt.from, tt.param, tt.pattern)
		var se *StreamConfigError
		if !errors.As(err, &se) || se.Setting != tt.setting || se.Reason != tt.want {
			t.Errorf("%v %q %q: got %v, want %s: %s", tt.from, tt.param, tt.pattern, err, tt.setting, tt.want)
		}
	}
	// The path source is not needed when not listed: no pattern is fine.
	if _, err := NewStreamSource([]string{"cid", "query", "unknown"}, "stream", ""); err != nil {
		t.Error(err)
	}
}

// TestStreamOnlyWhenEvents: a payload with nothing to report needs no
// stream, so a manifest request without any stream source is no error.
func TestStreamOnlyWhenEvents(t *testing.T) {
	s, _ := NewStreamSource([]string{"cid"}, "", "")
	d, _ := ParseValue(`ot=m,sid="s"`)
	if evs, err := s.ToEvents(d, nil, recv, ""); err != nil || len(evs) != 0 {
		t.Errorf("manifest: %v %v", evs, err)
	}
	d, _ = ParseValue(`ot=v,bl=100,sid="s"`)
	if _, err := s.ToEvents(d, nil, recv, ""); err == nil || err.Error() != `cmcd key "cid": required: it is the stream_id (none from cid)` {
		t.Errorf("segment without stream: %v", err)
	}
}

func TestSplitJSON(t *testing.T) {
	objs, err := SplitJSON([]byte(" [ {\"sid\":\"a\",\"bl\":100}, {\"sid\":\"b\"} ,7]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"sid":"a","bl":100}`, `{"sid":"b"}`, `7`}
	if len(objs) != 3 {
		t.Fatalf("got %d elements", len(objs))
	}
	for i := range want {
		if string(objs[i]) != want[i] {
			t.Errorf("element %d = %s, want %s", i, objs[i], want[i])
		}
	}
	if _, err := ParseJSON(objs[2]); err == nil || err.Error() != "cmcd: want a JSON object of CMCD keys" {
		t.Errorf("a number as payload: %v", err)
	}
	one, err := SplitJSON([]byte(`{"sid":"a"}`))
	if err != nil || len(one) != 1 || string(one[0]) != `{"sid":"a"}` {
		t.Errorf("one object: %q %v", one, err)
	}
	for body, reason := range map[string]string{
		``:              "empty CMCD JSON body",
		`[]`:            "empty CMCD JSON array",
		`{"sid":"a"`:    "CMCD JSON body is not valid JSON (want an object or an array of objects)",
		`[{"sid":"a"},`: "CMCD JSON body is not valid JSON (want an object or an array of objects): unexpected end of JSON input at byte 13",
	} {
		_, err := SplitJSON([]byte(body))
		var ce *Error
		if !errors.As(err, &ce) || ce.Reason != reason {
			t.Errorf("%q: got %v, want %s", body, err, reason)
		}
	}
}

func TestParseJSONErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"BL":1}`:                `cmcd key "BL": not a CMCD key (lowercase letter or '*' first, then a-z 0-9 _ - . *)`,
		`{"bl":{"v":1}}`:          `cmcd key "bl": must be a string, number, boolean or an array of them, not a JSON object`,
		`{"bl":1234567890123456}`: `cmcd key "bl": integer with more than 15 digits`,
		`{"bl":1.5}`:              `cmcd key "bl": must be an integer or an inner list of integers`,
		`{"sid":"s"} {}`:          `cmcd: want one JSON object`,
		`{"xyz":1}`:               `cmcd key "xyz": unknown key (custom keys must contain a hyphen, e.g. com.example-name)`,
	} {
		_, err := ParseJSON([]byte(in))
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
	// Arrays are v2 inner lists; strings are tokens for token keys.
	d, err := ParseJSON([]byte(`{"v":2,"bl":[2000,1000],"nor":["a.m4s","b.m4s"],"sta":"r","sid":"s","com.x-k":"1","pr":0}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.BufferLength) != 2 || d.BufferLength[1].N != 1000 || len(d.NextObjects) != 2 || d.State != "r" ||
		d.Version != 2 || !d.Has(KeyPR) || d.PlaybackRate != 0 {
		t.Errorf("got %+v", d)
	}
	if v, _ := d.CustomValue("com.x-k"); v != "1" {
		t.Errorf("custom key %q", v)
	}
	if _, err := json.Marshal(d); err != nil { // Data stays plain data
		t.Error(err)
	}
}
