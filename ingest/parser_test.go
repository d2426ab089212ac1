package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

func testDecoder(t testing.TB, geo Geo) *Decoder {
	t.Helper()
	return NewDecoder(DefaultCodec(), geo, DefaultConfig().Limits, 5*time.Minute)
}

func TestDecodeRecordsAndKeys(t *testing.T) {
	d := testDecoder(t, nil)
	now := ms(testNow)
	var b Batch
	// A CDN event without vendor and node has no key (spread over partitions).
	body := cdnEvent("v1", "n1", now) + "\n" + strings.Replace(strings.Replace(cdnEvent("", "", now), `"vendor":"",`, ``, 1), `"node":"",`, ``, 1)
	if err := d.Decode(schemas.SourceCDN, []byte(body), now, &b); err != nil {
		t.Fatal(err)
	}
	if b.Lines != 2 {
		t.Fatalf("lines %d errors %+v", b.Lines, b.Errors)
	}
	// vendor and node are required for cdn_request: the second line is
	// rejected by the schema, so only the first is a record.
	if b.Accepted() != 1 || len(b.Errors) != 1 || b.Errors[0].Line != 2 {
		t.Fatalf("accepted %d errors %+v", b.Accepted(), b.Errors)
	}
	line, key, val := b.Record(0)
	if line != 1 || string(key) != "v1/n1" || !json.Valid(val) {
		t.Fatalf("record %d %q %s", line, key, val)
	}
	b.Reset()
	if b.Accepted() != 0 || b.Lines != 0 || len(b.Errors) != 0 {
		t.Fatal("Reset left state")
	}
}

func TestDecodeUserlessClientEventHasNilKey(t *testing.T) {
	// dns events require user_id, so every accepted client event has a key;
	// AddEvents (CMCD) may carry an empty user id, which must not become an
	// empty-but-non-nil key (murmur2 would put all of them in one partition).
	d := testDecoder(t, nil)
	var b Batch
	e := schemas.Event{V: 1, Type: schemas.TypeHeartbeat, TS: ms(testNow), StreamID: "s"}
	d.AddEvents([]schemas.Event{e}, 1, []byte("raw"), ms(testNow), &b)
	if b.Accepted() != 1 {
		t.Fatalf("errors %+v", b.Errors)
	}
	if _, key, _ := b.Record(0); key != nil {
		t.Fatalf("key %q, want nil", key)
	}
}

func TestDecodeFramingErrors(t *testing.T) {
	d := testDecoder(t, nil)
	for _, body := range []string{"", "\n\n", "[]", `[{"v":1}`} {
		var b Batch
		err := d.Decode(schemas.SourceClient, []byte(body), ms(testNow), &b)
		var re *RequestError
		if !errors.As(err, &re) || re.Status != http.StatusBadRequest {
			t.Errorf("body %q: %v, want a 400 RequestError", body, err)
		}
	}
}

func TestDeadLetterEnvelope(t *testing.T) {
	le := &LineError{Line: 7, Field: "ts", Reason: "bad", Class: ClassField, Raw: []byte(`{"x":"é"}`)}
	d := NewDeadLetter("client", "sdk", "k1", 42, le, 100)
	if d.Raw != `{"x":"é"}` || d.RawBytes != 10 || d.Truncated || d.RawBase64 != nil {
		t.Fatalf("%+v", d)
	}
	// Cut inside "é" (2 bytes at offsets 6-7): back off to a rune start.
	d = NewDeadLetter("client", "sdk", "", 42, le, 7)
	if d.Raw != `{"x":"` || !d.Truncated || d.RawBytes != 10 {
		t.Fatalf("truncated: %+v", d)
	}
	bin := &LineError{Line: 1, Raw: []byte{0xff, 0xfe, 'a'}}
	d = NewDeadLetter("cdn", "t", "", 1, bin, 100)
	if d.Raw != "" || !bytes.Equal(d.RawBase64, bin.Raw) {
		t.Fatalf("binary: %+v", d)
	}
	var back DeadLetter
	if err := json.Unmarshal(d.AppendJSON(nil), &back); err != nil || !bytes.Equal(back.RawBase64, bin.Raw) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

// FuzzDecode feeds arbitrary bodies through the pure path: it must never
// panic, every line is either accepted or rejected, accepted values are JSON
// with the receive time, and error lines are ascending.
func FuzzDecode(f *testing.F) {
	now := ms(testNow)
	f.Add([]byte(clientEvent("heartbeat", "u", now) + "\n" + "garbage\n"))
	f.Add([]byte("[" + clientEvent("dns", "u", now) + "," + cdnEvent("v", "n", now) + "]"))
	f.Add([]byte(clientEvent("stall", "u", now+time.Hour.Milliseconds())))
	f.Add([]byte(`{"v":1,"type":"heartbeat","ts":"2026-03-01T12:00:00+08:00","user_id":"u","stream_id":"s","stalled":true,"ip":"10.1.2.3"}`))
	f.Add([]byte{0xff, '\n', '{', '}'})
	geo := func(ips []netip.Addr, locs []Location, found []bool) {
		for i := range ips {
			locs[i], found[i] = Location{Country: "cn", Province: "p", City: "c", ISP: "i"}, true
		}
	}
	d := testDecoder(f, geo)
	f.Fuzz(func(t *testing.T, body []byte) {
		var b Batch
		err := d.Decode(schemas.SourceClient, body, now, &b)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("non-request error %v", err)
			}
			return
		}
		if b.Lines != b.Accepted()+len(b.Errors) {
			t.Fatalf("lines %d != accepted %d + rejected %d", b.Lines, b.Accepted(), len(b.Errors))
		}
		for i := 0; i < b.Accepted(); i++ {
			_, _, val := b.Record(i)
			var m map[string]any
			if err := json.Unmarshal(val, &m); err != nil {
				t.Fatalf("accepted value %q is not JSON: %v", val, err)
			}
			if m["recv_ts"] != float64(now) {
				t.Fatalf("recv_ts %v", m["recv_ts"])
			}
		}
		for i := 1; i < len(b.Errors); i++ {
			if b.Errors[i].Line <= b.Errors[i-1].Line {
				t.Fatalf("error lines not ascending: %d then %d", b.Errors[i-1].Line, b.Errors[i].Line)
			}
		}
		for _, e := range b.Errors {
			if e.Reason == "" || e.Class == "" {
				t.Fatalf("error without reason or class: %+v", e)
			}
		}
	})
}

// benchBody builds n mixed client events with IPs from the synthetic table
// and no region fields, so that every event is enriched.
func benchBody(n int, now int64) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		line := clientEvent(clientTypes[i%len(clientTypes)], fmt.Sprintf("user-%d", i), now)
		line = strings.Replace(line, `"user_id"`, fmt.Sprintf(`"ip":"10.%d.%d.%d","user_id"`, 1+i%31, i%200, i%250), 1)
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkDecode measures the pure path (split, parse, validate, enrich,
// encode) on one core. Goal: at least 150,000 events/s.
func BenchmarkDecode(b *testing.B) {
	geo, _, err := LoadGeo("")
	if err != nil {
		b.Fatal(err)
	}
	d := testDecoder(b, geo)
	now := ms(testNow)
	const n = 1000
	body := benchBody(n, now)
	var batch Batch
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.Reset()
		if err := d.Decode(schemas.SourceClient, body, now, &batch); err != nil {
			b.Fatal(err)
		}
		if batch.Accepted() != n {
			b.Fatalf("accepted %d: %+v", batch.Accepted(), batch.Errors[0])
		}
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
}
