package chraw

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/schemas"
)

func genEvents(b *testing.B) *events.File {
	b.Helper()
	path := filepath.Join(b.TempDir(), "events.ndjson")
	o := gen.DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = gen.ModeFast, "none", "warn"
	o.Users, o.Duration, o.Output = 300, 3*time.Minute, path
	if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		b.Fatal(err)
	}
	f, err := events.Read(path)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkNativeColumns is the client-side cost of the native loader
// before clickhouse-go: ParseLine and typed column appends (one op = one
// event).
func BenchmarkNativeColumns(b *testing.B) {
	f := genEvents(b)
	var cols columns
	var e schemas.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(f.NDJSON) / f.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % f.Len()
		if j == 0 {
			cols.reset(f.Len())
		}
		if err := schemas.ParseLine(f.Line(j), &e); err != nil {
			b.Fatal(err)
		}
		cols.add(&e)
	}
}

// BenchmarkHTTPBody is the client-side cost of the HTTP loader: framing
// canonical lines into a request body.
func BenchmarkHTTPBody(b *testing.B) {
	f := genEvents(b)
	var body bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(int64(len(f.NDJSON) / f.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % f.Len()
		if j == 0 {
			body.Reset()
		}
		body.Write(f.Line(j))
		body.WriteByte('\n')
	}
}
