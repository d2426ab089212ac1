package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The golden cases (testdata/golden/*/) are hand-written event files with
// expected rows computed by hand from the metric definitions; see
// testdata/golden/README.md for the format. The code's own output is never
// copied into them.

type goldenRow struct {
	WindowStart string                     `json:"window_start"`
	Source      string                     `json:"source"`
	Dims        json.RawMessage            `json:"dims"`
	Metrics     map[string]json.RawMessage `json:"metrics"`
}

// stripComments removes // comments outside JSON strings.
func stripComments(b []byte) []byte {
	var out []byte
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}

func decodeRows(t *testing.T, b []byte) []goldenRow {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rows []goldenRow
	for {
		var r goldenRow
		err := dec.Decode(&r)
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatalf("row %d: %v", len(rows)+1, err)
		}
		rows = append(rows, r)
	}
}

// nullable reports whether an omitted expected metric means null (rates,
// quantiles, means, minimums) rather than 0 (counts, sums, bandwidth).
func nullable(name string) bool {
	for _, s := range []string{"_rate", "_rate_uv", "_rate_pv", "_p50", "_p90", "_p99", "_avg", "_min"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

func isQuantile(name string) bool {
	return strings.HasSuffix(name, "_p50") || strings.HasSuffix(name, "_p90") || strings.HasSuffix(name, "_p99")
}

func compact(t *testing.T, b json.RawMessage) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*/events.ndjson")
	if err != nil || len(dirs) < 4 {
		t.Fatalf("golden cases: %v %v", dirs, err)
	}
	for _, ev := range dirs {
		dir := filepath.Dir(ev)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			opts := OfflineOptions{Inputs: []string{ev}}
			if _, err := os.Stat(filepath.Join(dir, "config.yaml")); err == nil {
				opts.ConfigFile = filepath.Join(dir, "config.yaml")
			}
			var out bytes.Buffer
			if err := RunOffline(context.Background(), opts, &out); err != nil {
				t.Fatal(err)
			}
			exp, err := os.ReadFile(filepath.Join(dir, "expected.jsonc"))
			if err != nil {
				t.Fatal(err)
			}
			got := decodeRows(t, out.Bytes())
			want := decodeRows(t, stripComments(exp))
			for i := range max(len(got), len(want)) {
				if i >= len(got) {
					t.Fatalf("row %d missing: want %s %s %s", i+1, want[i].WindowStart, want[i].Source, want[i].Dims)
				}
				if i >= len(want) {
					t.Fatalf("unexpected row %d: %s %s %s", i+1, got[i].WindowStart, got[i].Source, got[i].Dims)
				}
				g, w := got[i], want[i]
				id := w.WindowStart + " " + w.Source + " " + compact(t, w.Dims)
				if g.WindowStart != w.WindowStart || g.Source != w.Source || compact(t, g.Dims) != compact(t, w.Dims) {
					t.Fatalf("row %d is %s %s %s, want %s", i+1, g.WindowStart, g.Source, compact(t, g.Dims), id)
				}
				for name := range w.Metrics {
					if _, ok := g.Metrics[name]; !ok {
						t.Errorf("%s: expected metric %q is not in the output", id, name)
					}
				}
				for name, gv := range g.Metrics {
					wv, listed := w.Metrics[name]
					if !listed {
						wv = json.RawMessage("0")
						if nullable(name) {
							wv = json.RawMessage("null")
						}
					}
					compareMetric(t, id, name, gv, wv)
				}
			}
		})
	}
}

func compareMetric(t *testing.T, id, name string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s %s: %v", id, name, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s %s: %v", id, name, err)
	}
	gf, gok := g.(float64)
	wf, wok := w.(float64)
	switch {
	case gok && wok:
		tol := 1e-9
		if isQuantile(name) {
			tol = 0.01 + 1e-9 // the histogram's relative accuracy
		}
		if relErr(gf, wf) > tol {
			t.Errorf("%s: %s = %v, want %v", id, name, gf, wf)
		}
	case g != w:
		t.Errorf("%s: %s = %s, want %s", id, name, got, want)
	}
}
