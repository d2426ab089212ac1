package events

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/qoscope/qoscope/schemas"
)

const sample = `{"v":1,"type":"heartbeat","ts":"2026-11-23T12:00:01Z","user_id":"u1","stream_id":"s1","stalled":false,"x":{"y":1}}

{"v":1,"type":"cdn_request","ts":1795435202000,"vendor":"a","node":"n1","status":200,"bytes":10,"ttfb_ms":5}
{"v":1,"type":"origin_stats","ts":1795435203000,"stream_id":"s1","node":"o","line":"primary","fps":25,"bitrate_kbps":1,"rtt_ms":2}
`

func TestDecodeCanonicalizes(t *testing.T) {
	for _, gz := range []bool{false, true} {
		in := []byte(sample)
		if gz {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write(in)
			w.Close()
			in = b.Bytes()
		}
		f, err := Decode(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if f.Len() != 3 {
			t.Fatalf("%d events", f.Len())
		}
		// RFC 3339 ts becomes Unix ms; unknown members are kept.
		if got := string(f.Line(0)); !strings.Contains(got, `"ts":1795435201000`) || !strings.Contains(got, `"x":{"y":1}`) {
			t.Fatalf("line 0: %s", got)
		}
		if f.Count(schemas.SourceClient) != 1 || f.Count(schemas.SourceCDN) != 1 || f.Count(schemas.SourceOrigin) != 1 {
			t.Fatalf("sources %v", f.Sources)
		}
		if f.MinTS != 1795435201000 || f.MaxTS != 1795435203000 {
			t.Fatalf("ts range %d..%d", f.MinTS, f.MaxTS)
		}
	}
}

func TestDecodeNamesTheBadLine(t *testing.T) {
	_, err := Decode(strings.NewReader(sample + `{"v":1,"type":"stall","ts":1795435203000}` + "\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "line 5: ") {
		t.Fatalf("error %v", err)
	}
}
