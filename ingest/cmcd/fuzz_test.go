package cmcd

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"testing"

	"github.com/qoscope/qoscope/ingest/cmcd/cmcdtest"
	"github.com/qoscope/qoscope/schemas"
)

// FuzzCMCD: the parsers (plain, headers, JSON) never panic and reject only
// with an *Error; the
// query form decodes like the plain payload; and every event ToEvents makes
// from an accepted payload passes schemas.ParseLine once encoded, and then
// round-trips exactly.
func FuzzCMCD(f *testing.F) {
	file, err := os.Open("testdata/payloads.txt")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	for _, v := range cmcdtest.LoadVectors(f, "testdata/vectors.txt") {
		f.Add(v.Payload)
		if v.HasJSON {
			f.Add(v.JSON)
		}
	}
	f.Fuzz(func(t *testing.T, payload string) {
		// The other forms never panic and reject only with an *Error.
		if _, err := ParseJSON([]byte(payload)); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("json: error %T %v is not *Error", err, err)
			}
		}
		if _, err := ParseHeaders(http.Header{"Cmcd-Status": {payload}, "Cmcd-Request": {payload}}); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("headers: error %T %v is not *Error", err, err)
			}
		}
		d, err := ParseValue(payload)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			return
		}
		q, err := Parse("CMCD=" + url.QueryEscape(payload))
		if err != nil || !reflect.DeepEqual(q, d) {
			t.Fatalf("query form differs: %+v, %v\nplain %+v", q, err, d)
		}
		evs, err := ToEvents(d, recv, "10.1.2.3")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			return
		}
		for _, e := range evs {
			line := schemas.AppendJSON(nil, &e)
			var got, again schemas.Event
			if err := schemas.ParseLine(line, &got); err != nil {
				t.Fatalf("event from %q is rejected: %v\n%s", payload, err, line)
			}
			out := schemas.AppendJSON(nil, &got)
			if err := schemas.ParseLine(out, &again); err != nil || !bytes.Equal(out, schemas.AppendJSON(nil, &again)) {
				t.Fatalf("round trip of %s: %v", out, err)
			}
			if got.Type != e.Type || got.UserID != e.UserID || got.TS != e.TS || !bytes.Equal(got.Extra, e.Extra) {
				t.Fatalf("event changed through JSON:\n%+v\n%+v", e, got)
			}
		}
	})
}
