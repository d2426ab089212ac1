package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzip"
)

var fpField = regexp.MustCompile(`"fingerprint":"([0-9a-f]*)"`)

// CheckIncidentOutput compares the output of the incident case with the
// hand-written expected.ndjson: each fingerprint must be the documented hash
// of the line's rule and labels, then the lines must be equal byte for byte
// with the fingerprint replaced by FP. cmd/qoscope's test calls it too.
func CheckIncidentOutput(t testing.TB, got []byte, expectedFile string) {
	t.Helper()
	want, err := os.ReadFile(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	for i, l := range lines {
		var c struct {
			Rule        string
			Fingerprint string
			Labels      map[string]string
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		names := make([]string, 0, len(c.Labels))
		for k := range c.Labels {
			names = append(names, k)
		}
		sort.Strings(names)
		s := c.Rule + "\xff"
		for _, k := range names {
			s += k + "\xff" + c.Labels[k] + "\xff"
		}
		if fp := fmt.Sprintf("%016x", xxhash.Sum64String(s)); c.Fingerprint != fp {
			t.Errorf("line %d: fingerprint %s, want %s", i+1, c.Fingerprint, fp)
		}
		lines[i] = fpField.ReplaceAllString(l, `"fingerprint":"FP"`)
	}
	if g := strings.Join(lines, "\n") + "\n"; g != string(want) {
		t.Errorf("output\n%s\nwant\n%s", g, want)
	}
}

func TestOfflineIncident(t *testing.T) {
	dir := "testdata/incident"
	rs, err := LoadRules(filepath.Join(dir, "rules.yaml"), catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := RunOffline(OfflineOptions{Rules: rs, Inputs: []string{filepath.Join(dir, "rows.ndjson")}}, nil, &out); err != nil {
		t.Fatal(err)
	}
	CheckIncidentOutput(t, out.Bytes(), filepath.Join(dir, "expected.ndjson"))

	// The same rows split over a gzip file and stdin, to a file: the same
	// lines (rows of all inputs are evaluated together).
	raw, _ := os.ReadFile(filepath.Join(dir, "rows.ndjson"))
	lines := strings.SplitAfter(string(raw), "\n")
	half := len(lines) / 2
	gzFile := filepath.Join(t.TempDir(), "rows.ndjson.gz")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Join(lines[half:], "")))
	zw.Close()
	if err := os.WriteFile(gzFile, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "changes.ndjson")
	err = RunOffline(OfflineOptions{Rules: rs, Inputs: []string{gzFile, "-"}, Output: outFile},
		strings.NewReader(strings.Join(lines[:half], "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(outFile)
	CheckIncidentOutput(t, got, filepath.Join(dir, "expected.ndjson"))
}

func TestReadRowsErrors(t *testing.T) {
	cases := map[string]string{
		`{"window_start":"2026-11-20T12:00:00Z","source":"client","dims":{},"metrics":{"users":"3"}}`: "x.ndjson:2: field metrics.users: not a number",
		`{"window_start":"2026-11-20T12:00:30Z","source":"client","dims":{},"metrics":{}}`:            "x.ndjson:2: field window_start: \"2026-11-20T12:00:30Z\" is not the start of a minute",
		`{"window_start":"yesterday","source":"client","dims":{},"metrics":{}}`:                       "x.ndjson:2: field window_start",
		`{"window_start":"2026-11-20T12:00:00Z","source":"server","dims":{},"metrics":{}}`:            "x.ndjson:2: field source: \"server\"",
		`{"window_start":"2026-11-20T12:00:00Z","source":"client","metrics":{}}`:                      "x.ndjson:2: field dims: required",
		`{"window_start":"2026-11-20T12:00:00Z","source":"client","dims":{},"metrics":{},"extra":1}`:  "x.ndjson:2: not a row",
		`{"window_start":"2026-11-20T12:00:00Z","source":"client","dims":{"isp":1},"metrics":{}}`:     "x.ndjson:2: not a row",
		`not json`: "x.ndjson:2: not a row",
	}
	good := `{"window_start":"2026-11-20T12:00:00Z","source":"origin","dims":{"stream_id":"s","line":"l"},"metrics":{"no_data":true,"samples":0,"fps_avg":null}}` + "\n"
	for line, want := range cases {
		_, err := parseRows("x.ndjson", strings.NewReader(good+line+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", line, err, want)
		}
	}
	rows, err := parseRows("x.ndjson", strings.NewReader(good+"\n"))
	if err != nil || len(rows) != 1 {
		t.Fatalf("good row: %v", err)
	}
	if m := rows[0].Metrics; m["no_data"] != (Value{1, true}) || m["samples"] != (Value{0, true}) || m["fps_avg"] != (Value{}) {
		t.Errorf("metrics %+v", m)
	}
	if _, err := ReadRows("does-not-exist.ndjson", nil); err == nil || !strings.Contains(err.Error(), "cannot open input") {
		t.Errorf("missing file: %v", err)
	}
}
