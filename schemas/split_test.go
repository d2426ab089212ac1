package schemas

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

type splitRec struct {
	Line int
	Raw  string
}

func collect(body string) ([]splitRec, error) {
	var out []splitRec
	err := Split([]byte(body), func(line int, raw []byte) bool {
		out = append(out, splitRec{line, string(raw)})
		return true
	})
	return out, err
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []splitRec
		err  string
	}{
		{"empty", "", nil, ""},
		{"ndjson with CRLF, blank lines and no final newline", "{\"a\":1}\r\n\r\n  \n\t{\"b\":2} \n{bad", []splitRec{{1, `{"a":1}`}, {4, `{"b":2}`}, {5, `{bad`}}, ""},
		{"ndjson keeps pretty-printed objects apart line by line", "{\n}\n", []splitRec{{1, "{"}, {2, "}"}}, ""},
		{"byte order mark", "\xef\xbb\xbf{\"a\":1}\n", []splitRec{{1, `{"a":1}`}}, ""},
		{"array", ` [ {"a":"],}[{\"x"} , {"b":[1,{"c":2}]},3,"s", null]  `,
			[]splitRec{{1, `{"a":"],}[{\"x"}`}, {2, `{"b":[1,{"c":2}]}`}, {3, `3`}, {4, `"s"`}, {5, `null`}}, ""},
		{"empty array", "[ ]\n", nil, ""},
		{"array of a malformed element", `[{"a":},{"b":1}]`, []splitRec{{1, `{"a":}`}, {2, `{"b":1}`}}, ""},
		{"array with a BOM", "\xef\xbb\xbf[{}]", []splitRec{{1, `{}`}}, ""},
		{"trailing comma", `[{"a":1},]`, []splitRec{{1, `{"a":1}`}}, "JSON array element 2 (byte 9): empty element"},
		{"double comma", `[1,,2]`, []splitRec{{1, `1`}}, "JSON array element 2 (byte 3): empty element"},
		{"missing bracket", `[{"a":1},{"b":2}`, []splitRec{{1, `{"a":1}`}}, "JSON array element 2 (byte 16): unexpected end of body, want ',' or ']'"},
		{"unterminated string", `[{"a":"x]`, nil, "JSON array element 1 (byte 9): unterminated string"},
		{"stray brace", `[{"a":1}}]`, nil, "JSON array element 1 (byte 8): unexpected '}'"},
		{"data after the array", `[1] [2]`, []splitRec{{1, `1`}}, "JSON array element 1 (byte 4): unexpected data after the closing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(tt.body)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if fmt.Sprint(err) != fmt.Sprint(tt.err) && !(err == nil && tt.err == "") {
				t.Errorf("err = %v, want %s", err, tt.err)
			}
			if err != nil {
				var be *BodyError
				if !errors.As(err, &be) {
					t.Errorf("error %T is not a *BodyError", err)
				}
			}
		})
	}
}

func TestSplitStopsEarly(t *testing.T) {
	for _, body := range []string{"1\n2\n3\n", "[1,2,3"} {
		n := 0
		err := Split([]byte(body), func(int, []byte) bool { n++; return n < 2 })
		if n != 2 || err != nil {
			t.Errorf("%q: %d calls, err %v", body, n, err)
		}
	}
}
