package schemas

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestBoundsDocumented keeps the "Plausible ranges" table of docs/INGEST.md
// in step with the field table: every bounded number has a row starting
// with its bound.
func TestBoundsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/INGEST.md")
	if err != nil {
		t.Fatal(err)
	}
	for p := Prop(0); p < numProps; p++ {
		s := &propSpecs[p]
		if s.kind != kInt && s.kind != kFloat {
			continue
		}
		if s.why == "" {
			t.Errorf("%s has no reason for its bound (propSpec.why)", s.name)
			continue
		}
		var bound string
		switch {
		case s.kind == kFloat:
			bound = "≤ " + strconv.FormatFloat(s.fmax, 'f', -1, 64)
		case s.min == 0:
			bound = "≤ " + strconv.FormatInt(s.max, 10)
		case s.min == -s.max:
			bound = "± " + strconv.FormatInt(s.max, 10)
		default:
			bound = strconv.FormatInt(s.min, 10) + " – " + strconv.FormatInt(s.max, 10)
		}
		if row := "| `" + s.name + "` | " + bound; !strings.Contains(string(doc), row) {
			t.Errorf("docs/INGEST.md has no row %q", row)
		}
	}
}
