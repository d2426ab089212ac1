package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"unsafe"
)

func seedLines(f *testing.F, path string) {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) > 0 {
			f.Add(l)
		}
	}
}

// FuzzParseLine: ParseLine never panics, rejects only with a *FieldError,
// accepts only valid JSON, and every accepted event round-trips through
// AppendJSON → ParseLine to the same Event and the same bytes.
func FuzzParseLine(f *testing.F) {
	seedLines(f, "testdata/events.ndjson")
	for _, tt := range badLines {
		f.Add([]byte(tt.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var e, e2 Event
		err := ParseLine(line, &e)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Reason == "" {
				t.Fatalf("error %#v is not a *FieldError with a reason", err)
			}
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		out := AppendJSON(nil, &e)
		if !json.Valid(out) {
			t.Fatalf("AppendJSON wrote invalid JSON %q", out)
		}
		if err := ParseLine(out, &e2); err != nil {
			t.Fatalf("ParseLine(AppendJSON(%q)) = %v; encoded %q", line, err, out)
		}
		if !sameEvent(e, e2) {
			t.Fatalf("round trip of %q:\n got  %+v\n want %+v", line, e2, e)
		}
		if out2 := AppendJSON(nil, &e2); !bytes.Equal(out, out2) {
			t.Fatalf("not canonical: %q vs %q", out, out2)
		}
	})
}

func within(sub, body []byte) bool {
	if len(sub) == 0 {
		return false
	}
	b := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return s >= b && s+uintptr(len(sub)) <= b+uintptr(len(body))
}

// FuzzSplit: Split never panics, yields non-empty sub-slices of the body in
// increasing line order, agrees with a plain line split for NDJSON, and
// with encoding/json for every valid JSON array.
func FuzzSplit(f *testing.F) {
	seedLines(f, "testdata/split_bodies.txt")
	f.Add([]byte("{\"a\":1}\r\n\r\n{\"b\":2}"))
	f.Add([]byte("\xef\xbb\xbf[{}]"))
	f.Add([]byte(`[{"a":"\\"},"\"",[[],{}]]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got [][]byte
		last := 0
		err := Split(body, func(line int, raw []byte) bool {
			if line <= last {
				t.Fatalf("line %d after %d", line, last)
			}
			last = line
			if !within(raw, body) {
				t.Fatalf("line %d: %q is not a non-empty part of the body", line, raw)
			}
			got = append(got, raw)
			return true
		})
		trimmed := bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
		if t0 := bytes.TrimLeft(trimmed, " \t\r\n"); len(t0) == 0 || t0[0] != '[' {
			if err != nil {
				t.Fatalf("NDJSON error %v", err)
			}
			var want [][]byte
			for _, l := range bytes.Split(trimmed, []byte("\n")) {
				if l = bytes.Trim(l, " \t\r\n"); len(l) > 0 {
					want = append(want, l)
				}
			}
			if len(want) != len(got) {
				t.Fatalf("%d lines, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(want[i], got[i]) {
					t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
				}
			}
			return
		}
		var elems []json.RawMessage
		if len(trimmed) != len(body) || json.Unmarshal(body, &elems) != nil {
			return
		}
		if err != nil {
			t.Fatalf("valid array %q: %v", body, err)
		}
		if len(elems) != len(got) {
			t.Fatalf("%d elements, want %d", len(got), len(elems))
		}
		for i := range elems {
			if !bytes.Equal(elems[i], got[i]) {
				t.Fatalf("element %d: %q, want %q", i+1, got[i], elems[i])
			}
		}
	})
}
