package schemas

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite the generated files under schemas/jsonschema")

// TestSchemaFilesUpToDate keeps the committed copies in schemas/jsonschema
// (for readers and for tools outside Go) equal to what SchemaJSON serves.
// Regenerate with: go test ./schemas -run TestSchemaFilesUpToDate -update
func TestSchemaFilesUpToDate(t *testing.T) {
	dir := "jsonschema"
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	names := SchemaNames()
	for _, name := range names {
		doc, _ := SchemaJSON(name)
		path := filepath.Join(dir, name+".json")
		if *update {
			if err := os.WriteFile(path, doc, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, doc) {
			t.Errorf("%s is stale or missing; run go test ./schemas -run TestSchemaFilesUpToDate -update", path)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != len(names) {
		t.Errorf("%d files in %s, want %d (remove stale ones)", len(files), dir, len(names))
	}
}

func TestSchemaNames(t *testing.T) {
	want := []string{"cdn", "cdn_request", "client", "dns", "first_frame", "heartbeat", "origin",
		"origin_stats", "play_end", "play_start", "push_end", "push_start", "relay", "stall"}
	if got := SchemaNames(); !slices.Equal(got, want) {
		t.Errorf("SchemaNames() = %v", got)
	}
	if _, ok := SchemaJSON("nope"); ok {
		t.Error("SchemaJSON accepted an unknown name")
	}
	// Source documents hold props and types side by side under $defs.
	for _, tp := range Types() {
		if _, ok := ParseProp(tp.String()); ok {
			t.Errorf("type %s has the name of a member", tp)
		}
	}
}

// compileSchemas compiles every document with a maintained validator,
// asserting formats (date-time, ipv4, ipv6) as ParseLine does.
func compileSchemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, name := range SchemaNames() {
		b, _ := SchemaJSON(name)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.AddResource(SchemaIDPrefix+name, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range SchemaNames() {
		s, err := c.Compile(SchemaIDPrefix + name)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

var typeRE = regexp.MustCompile(`"type"\s*:\s*"([a-z_]+)"`)

// checkAgreement validates line against the source documents and, when it
// names a known type, against that type's document, and compares the
// verdicts with ParseLine's.
func checkAgreement(t *testing.T, docs map[string]*jsonschema.Schema, line []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
	if err != nil {
		t.Fatalf("not JSON, cannot validate: %s", line)
	}
	var e Event
	perr := ParseLine(line, &e)
	for src := SourceClient; src <= SourceOrigin; src++ {
		verr := docs[src.String()].Validate(inst)
		want := perr == nil && e.Type.Source() == src
		if (verr == nil) != want {
			t.Errorf("%s document says valid=%v, ParseLine says %v (%v) for\n%s\nschema: %v", src, verr == nil, perr == nil, perr, line, verr)
		}
	}
	if m := typeRE.FindSubmatch(line); m != nil {
		if doc, ok := docs[string(m[1])]; ok {
			verr := doc.Validate(inst)
			if (verr == nil) != (perr == nil) {
				t.Errorf("%s document says valid=%v, ParseLine says %v (%v) for\n%s\nschema: %v", m[1], verr == nil, perr == nil, perr, line, verr)
			}
		}
	}
}

func TestSchemaAgreesWithParseLine(t *testing.T) {
	docs := compileSchemas(t)
	var lines [][]byte
	for _, tt := range badLines {
		if tt.schemaBlind == "" && json.Valid([]byte(tt.line)) {
			lines = append(lines, []byte(tt.line))
		}
	}
	good := `{"v":1,"type":"play_start","ts":"2026-11-23T12:00:00Z","user_id":"u","stream_id":"s","ok":false}`
	lines = append(lines,
		[]byte(good),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":true,"connect_ms":120`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":true,"connect_ms":1.2e2`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"connect_ms":null,"error":null,"vendor":null`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"ip":""`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"ip":"::ffff:1.2.3.4"`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"ip":"2001:db8::"`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"ip":null`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"ip":"1.2.3.4.5"`, 1)),
		[]byte(strings.Replace(good, `"ok":false`, `"ok":false,"status":200`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":"2026-11-23T12:00:00.123456789-05:30"`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":"2026-11-23T25:00:00Z"`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":"2026-11-31T12:00:00Z"`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":"2026-11-23T12:00:00+24:00"`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":253402300799999`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":253402300800000`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":99999999999`, 1)),
		[]byte(strings.Replace(good, `"ts":"2026-11-23T12:00:00Z"`, `"ts":100000000000`, 1)),
		[]byte(strings.Replace(good, `"user_id":"u"`, `"user_id":"`+strings.Repeat("é", MaxString)+`"`, 1)),
		[]byte(strings.Replace(good, `"user_id":"u"`, `"user_id":"`+strings.Repeat("é", MaxString+1)+`"`, 1)),
		[]byte(`{"v":1,"type":"cdn_request","ts":1795435200000,"vendor":"a","node":"n","status":200,"bytes":1,"ttfb_ms":3}`),
		[]byte(`{"v":1,"type":"origin_stats","ts":1795435200000,"stream_id":"s","node":"n","line":"primary","bitrate_kbps":1,"fps":1,"rtt_ms":0}`),
		[]byte(`{"v":1,"type":"nope","ts":1795435200000}`),
		[]byte(`{}`),
		[]byte(`[]`),
	)
	r := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		line, _ := genLine(r)
		lines = append(lines, line)
	}
	for _, line := range lines {
		checkAgreement(t, docs, line)
	}
}
