// Package route holds the rules that decide where an event goes: its Kafka
// topic and partition key, the index of its source in per-source arrays,
// and the one-minute window it belongs to. Ingest, the aggregator, its
// runner, the benchmark peers and the end-to-end producers all import
// them, so a producer written for a test cannot route differently from
// ingest (docs/INGEST.md, "Kafka"; aggregator/README.md, "Runner").
package route

import (
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
)

// NumSources counts the sources that carry events and windows: client,
// cdn, origin.
const NumSources = 3

// Sources lists them in index order (Index is its inverse).
var Sources = [NumSources]schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin}

// Index maps a source to 0..2 (client, cdn, origin) for per-source arrays,
// -1 for any other value.
func Index(s schemas.Source) int {
	switch s {
	case schemas.SourceClient:
		return 0
	case schemas.SourceCDN:
		return 1
	case schemas.SourceOrigin:
		return 2
	}
	return -1
}

// AppendKey appends e's Kafka partition key to dst: user_id for client
// events (the aggregator's distinct users are exact only because one
// user's events share a partition), vendor + "/" + node for CDN events,
// stream_id for origin events (a stream's no_data row then comes from one
// partition). An empty key appends nothing: the record is sent without a
// key and spread over partitions, instead of piling every such record
// into the one partition of the empty key. For CDN that means both vendor
// and node empty; one of them empty still gives "vendor/" or "/node".
func AppendKey(dst []byte, e *schemas.Event) []byte {
	switch e.Type.Source() {
	case schemas.SourceClient:
		return append(dst, e.UserID...)
	case schemas.SourceCDN:
		if e.Vendor == "" && e.Node == "" {
			return dst
		}
		dst = append(dst, e.Vendor...)
		dst = append(dst, '/')
		return append(dst, e.Node...)
	case schemas.SourceOrigin:
		return append(dst, e.StreamID...)
	}
	return dst
}

// Key is AppendKey into a new slice, nil when the key is empty (kafka-go
// and franz-go treat a nil key as "no key").
func Key(e *schemas.Event) []byte {
	k := AppendKey(nil, e)
	if len(k) == 0 {
		return nil
	}
	return k
}

// Topic is the configured topic of a source's events, "" for a source
// without one.
func Topic(t config.Topics, s schemas.Source) string {
	switch s {
	case schemas.SourceClient:
		return t.Client
	case schemas.SourceCDN:
		return t.CDN
	case schemas.SourceOrigin:
		return t.Origin
	}
	return ""
}

// TopicSource is the source whose events topic carries, SourceUnknown for a
// topic that is not one of the configured event topics (the dead-letter
// topic included).
func TopicSource(t config.Topics, topic string) schemas.Source {
	for _, s := range Sources {
		if topic == Topic(t, s) {
			return s
		}
	}
	return schemas.SourceUnknown
}

// WindowMS is the window length: tumbling one-minute windows [m, m+60s) UTC.
const WindowMS = 60_000

// WindowStart is the start (Unix ms) of the window holding ts: the floor to
// the minute, also before 1970 (Go's division truncates towards zero).
func WindowStart(ts int64) int64 {
	q := ts / WindowMS
	if ts%WindowMS < 0 {
		q--
	}
	return q * WindowMS
}
