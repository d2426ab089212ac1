package ingest

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// This file is the pure half of ingest: request body in, Kafka-ready records
// and per-line errors out. It does no I/O and keeps no state between calls,
// so it is benchmarked and fuzzed on its own; server.go is the stream half
// (HTTP, decompression, Kafka, counting).

// Geo resolves IP addresses to their region and ISP, a batch at a time:
// locs[i] and found[i] for ips[i] (found false when the address is not in the
// table). It must be safe for concurrent use and cheap: it runs for every
// client and CDN event. Batches let the table's reads overlap in memory
// (ipdb.Table.LookupMany), which matters when the audience is spread over
// more /24s than the caches hold.
type Geo func(ips []netip.Addr, locs []Location, found []bool)

// Codec is the schema layer ingest relies on. DefaultCodec wires the schemas
// package; tests may substitute parts.
type Codec struct {
	// ParseLine decodes and validates one JSON event into e (reset first);
	// a *schemas.FieldError names the field and reason of a rejection.
	ParseLine func(line []byte, e *schemas.Event) error
	// AppendJSON appends e's canonical JSON (the Kafka message value).
	AppendJSON func(dst []byte, e *schemas.Event) []byte
	// Split calls yield for every element of an NDJSON or JSON-array body with
	// its 1-based line (NDJSON: line number in the body; array: element
	// index), skipping blank lines. It stops early when yield returns false
	// and returns an error only when the body's framing is broken.
	Split func(body []byte, yield func(line int, raw []byte) bool) error
}

// Decoder turns request bodies into Batches. It is immutable after
// construction and safe for concurrent use.
type Decoder struct {
	codec        Codec
	geo          Geo
	maxLineBytes int
	maxLines     int
	skewMS       int64
}

// NewDecoder returns a Decoder enforcing lim and skew; geo may be nil (no
// enrichment).
func NewDecoder(codec Codec, geo Geo, lim Limits, skew time.Duration) *Decoder {
	return &Decoder{
		codec:        codec,
		geo:          geo,
		maxLineBytes: lim.MaxLineBytes,
		maxLines:     lim.MaxLines,
		skewMS:       skew.Milliseconds(),
	}
}

// LineError is one rejected line.
type LineError struct {
	Line   int    // 1-based line (NDJSON) or element (JSON array) number
	Field  string // offending field, "" when the line is not valid JSON at all
	Reason string
	// Class is the bounded-cardinality reason label for metrics.
	Class string
	// Raw is the rejected line; it aliases the request body.
	Raw []byte
}

// Reason classes (label values of qoscope_ingest_events_rejected_total).
const (
	ClassSyntax      = "syntax"       // not a JSON object
	ClassType        = "type"         // missing or unknown type, unsupported version
	ClassField       = "field"        // a field is missing or invalid
	ClassWrongSource = "wrong_source" // the type belongs to another endpoint
	ClassFuture      = "future_ts"    // ts further ahead than max_future_skew
)

// record is one accepted event, encoded in Batch.buf.
type record struct {
	line           int
	keyOff, keyEnd int
	valOff, valEnd int
}

// Batch is the result of decoding one request. Reuse it with Reset.
type Batch struct {
	Source schemas.Source
	// Identity stamps each accepted event's eid; set it before Decode or
	// AddEvents (the zero value is a request without token or key).
	Identity Identity
	Lines    int         // elements seen (accepted + rejected)
	Errors   []LineError // every rejected line, in order

	buf  []byte
	recs []record

	// The chunk of parsed events waiting for enrichment and encoding: up to
	// chunkEvents of them, so that their IP lookups go to Geo together.
	evs   []schemas.Event
	pend  []pending
	ips   []netip.Addr
	ipEv  []int // ipEv[i] is the index in evs of ips[i]
	locs  []Location
	found []bool
	// unsorted is set once an error was added out of line order (a parse
	// error is recorded at once, a check failure only when its chunk is
	// flushed).
	unsorted bool
	// sentAtMS is the request's Sent-At header (Unix ms), 0 when absent.
	sentAtMS int64
}

// chunkEvents is how many parsed events wait for a batched IP lookup. The
// events hold slices of the body, so a chunk costs only their structs.
const chunkEvents = 64

// pending is a parsed event of the chunk, with the line it came from.
type pending struct {
	line     int
	raw      []byte
	sub      int    // index of the event among those of its line (CMCD)
	extra    uint64 // mixed into the eid (Identity.Of)
	rejected bool   // by flush's checks
}

// Reset empties b, keeping its buffers.
func (b *Batch) Reset() {
	b.Source = schemas.SourceUnknown
	b.Identity = Identity{}
	b.Lines = 0
	clear(b.Errors) // drop references to the old body
	b.Errors = b.Errors[:0]
	b.buf = b.buf[:0]
	b.recs = b.recs[:0]
	b.dropChunk()
	b.unsorted = false
	b.sentAtMS = 0
}

func (b *Batch) dropChunk() {
	clear(b.pend) // drop references to the old body
	b.pend = b.pend[:0]
	b.evs = b.evs[:0]
}

// Accepted is the number of accepted events.
func (b *Batch) Accepted() int { return len(b.recs) }

// Record returns the i-th accepted event: its source line, partition key
// (nil when the key field is empty: such events are spread over partitions)
// and canonical JSON value. Both slices alias b until the next Reset.
func (b *Batch) Record(i int) (line int, key, value []byte) {
	r := &b.recs[i]
	if r.keyEnd > r.keyOff {
		key = b.buf[r.keyOff:r.keyEnd:r.keyEnd]
	}
	return r.line, key, b.buf[r.valOff:r.valEnd:r.valEnd]
}

// RequestError rejects a whole request; Status is the HTTP status to return.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

// Decode splits body, parses, validates and enriches every line of an event
// request for source src received at recvMS (Unix ms), appending to b.
// Per-line problems become b.Errors; a *RequestError rejects the request.
func (d *Decoder) Decode(src schemas.Source, body []byte, recvMS int64, b *Batch) error {
	return d.DecodeSentAt(src, body, recvMS, 0, b)
}

// DecodeSentAt is Decode for a request that said when it was sent
// (sentAtMS, Unix ms by the client's clock, from the Sent-At header; 0 when
// it did not): each event's ts is corrected with it, or with the line's own
// sent_at, before the future check (docs/INGEST.md, "Clock correction").
func (d *Decoder) DecodeSentAt(src schemas.Source, body []byte, recvMS, sentAtMS int64, b *Batch) error {
	b.Source = src
	b.sentAtMS = sentAtMS
	var reqErr error
	err := d.codec.Split(body, func(line int, raw []byte) bool {
		if b.Lines >= d.maxLines {
			reqErr = &RequestError{Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("request has more than %d events (limits.max_lines); split it", d.maxLines)}
			return false
		}
		if len(raw) > d.maxLineBytes {
			reqErr = &RequestError{Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("line %d is %d bytes, over the %d-byte limit (limits.max_line_bytes)", line, len(raw), d.maxLineBytes)}
			return false
		}
		b.Lines++
		e := b.nextEvent()
		if err := d.codec.ParseLine(raw, e); err != nil {
			b.evs = b.evs[:len(b.evs)-1]
			b.reject(line, raw, err)
			return true
		}
		b.pend = append(b.pend, pending{line: line, raw: raw})
		if len(b.evs) == chunkEvents {
			d.flush(src, recvMS, b)
		}
		return true
	})
	if reqErr != nil {
		b.dropChunk()
		return reqErr
	}
	if err != nil {
		b.dropChunk()
		return &RequestError{Status: http.StatusBadRequest, Msg: "malformed body: " + err.Error()}
	}
	d.flush(src, recvMS, b)
	b.sortErrors()
	if b.Lines == 0 {
		return &RequestError{Status: http.StatusBadRequest, Msg: "body holds no events (expected NDJSON lines or a JSON array)"}
	}
	return nil
}

// AddEvents validates and encodes already-decoded client events (CMCD): all
// come from the payload at line, whose text raw is kept for dead letters.
// Each event counts as one line of the batch.
func (d *Decoder) AddEvents(evs []schemas.Event, line int, raw []byte, recvMS int64, b *Batch) {
	b.Source = schemas.SourceClient
	b.sentAtMS = 0 // CMCD carries no send time
	for i := range evs {
		b.Lines++
		// Mapped events skip ParseLine: hold them to its ranges here, or
		// the aggregator would refuse a record ingest answered 2xx for.
		if fe := schemas.CheckRanges(&evs[i]); fe != nil {
			b.reject(line, raw, fe)
			continue
		}
		*b.nextEvent() = evs[i]
		// A payload's events may take their time (no "ts" key) and user
		// from the request rather than from raw: both join the identity.
		extra := uint64(evs[i].TS)*0x9e3779b97f4a7c15 ^ xxhash.Sum64String(evs[i].UserID)
		b.pend = append(b.pend, pending{line: line, raw: raw, sub: i, extra: extra})
		if len(b.evs) == chunkEvents {
			d.flush(schemas.SourceClient, recvMS, b)
		}
	}
	d.flush(schemas.SourceClient, recvMS, b)
	b.sortErrors()
}

// nextEvent adds a reset event to the chunk and returns it.
func (b *Batch) nextEvent() *schemas.Event {
	if len(b.evs) < cap(b.evs) {
		b.evs = b.evs[:len(b.evs)+1]
	} else {
		b.evs = append(b.evs, schemas.Event{})
	}
	e := &b.evs[len(b.evs)-1]
	e.Reset()
	return e
}

// flush runs the checks ParseLine cannot do (they depend on the endpoint and
// the receive time) on every event of the chunk, enriches the survivors with
// one Geo call and encodes them in line order.
func (d *Decoder) flush(src schemas.Source, recvMS int64, b *Batch) {
	if len(b.evs) == 0 {
		return
	}
	b.ips, b.ipEv = b.ips[:0], b.ipEv[:0]
	for i := range b.evs {
		e, p := &b.evs[i], &b.pend[i]
		if !d.check(src, p.line, p.raw, recvMS, e, b) {
			p.rejected = true
			continue
		}
		e.RecvTS = recvMS
		e.EID = b.Identity.Of(p.line, p.sub, p.raw, p.extra)
		if src == schemas.SourceOrigin || d.geo == nil || e.IP == "" ||
			(e.Country != "" && e.Province != "" && e.City != "" && e.ISP != "") {
			continue
		}
		// Unparsable IPs stay unenriched: the aggregator reports them as
		// "unknown", like addresses the table does not know.
		if addr, err := netip.ParseAddr(e.IP); err == nil {
			b.ips = append(b.ips, addr.Unmap())
			b.ipEv = append(b.ipEv, i)
		}
	}
	if len(b.ips) > 0 {
		b.locs = growTo(b.locs, len(b.ips))
		b.found = growTo(b.found, len(b.ips))
		d.geo(b.ips, b.locs, b.found)
		for j, i := range b.ipEv {
			if b.found[j] {
				fill(&b.evs[i], &b.locs[j])
			}
		}
	}
	for i := range b.evs {
		if p := &b.pend[i]; !p.rejected {
			d.encode(p.line, &b.evs[i], b)
		}
	}
	b.dropChunk()
}

func growTo[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// check rejects an event sent to the wrong endpoint or too far in the
// future, recording the error; it reports whether e passed. It corrects
// e's clock first, so the future check judges the corrected ts.
func (d *Decoder) check(src schemas.Source, line int, raw []byte, recvMS int64, e *schemas.Event, b *Batch) bool {
	if ts := e.Type.Source(); ts != src {
		b.addError(LineError{Line: line, Field: "type", Class: ClassWrongSource, Raw: raw,
			Reason: fmt.Sprintf("type %q is a %s event; send it to /v1/events/%s, not /v1/events/%s", e.Type, ts, ts, src)})
		return false
	}
	if fe := schemas.CorrectClock(e, b.sentAtMS, recvMS); fe != nil {
		b.addError(LineError{Line: line, Field: fe.Field, Class: ClassField, Raw: raw, Reason: fe.Reason})
		return false
	}
	if ahead := e.TS - recvMS; ahead > d.skewMS {
		allowed := schemas.FormatSpan(d.skewMS)
		reason := fmt.Sprintf("ts is %s ahead of the server clock, more than the allowed %s (max_future_skew)",
			schemas.FormatSpan(ahead), allowed)
		if e.Has(schemas.PropClientTS) {
			// Corrected ts − receive time = ts − sent_at, on the client's
			// own clock: the event claims to follow its own send.
			reason = fmt.Sprintf("ts is %s after sent_at, more than the allowed %s (max_future_skew): an event cannot happen after its batch was sent",
				schemas.FormatSpan(ahead), allowed)
		}
		b.addError(LineError{Line: line, Field: "ts", Class: ClassFuture, Raw: raw, Reason: reason})
		return false
	}
	return true
}

// encode appends e's record: its partition key and canonical JSON.
func (d *Decoder) encode(line int, e *schemas.Event, b *Batch) {
	r := record{line: line, keyOff: len(b.buf)}
	b.buf = route.AppendKey(b.buf, e)
	r.keyEnd = len(b.buf)
	r.valOff = len(b.buf)
	b.buf = d.codec.AppendJSON(b.buf, e)
	r.valEnd = len(b.buf)
	b.recs = append(b.recs, r)
}

// fill sets each absent region field from the IP table. Fields the sender
// set are kept: an SDK may know better (e.g. its carrier) than the table.
func fill(e *schemas.Event, loc *Location) {
	if e.Country == "" {
		e.Country = loc.Country
	}
	if e.Province == "" {
		e.Province = loc.Province
	}
	if e.City == "" {
		e.City = loc.City
	}
	if e.ISP == "" {
		e.ISP = loc.ISP
	}
}

func (b *Batch) addError(le LineError) {
	if n := len(b.Errors); n > 0 && b.Errors[n-1].Line > le.Line {
		b.unsorted = true
	}
	b.Errors = append(b.Errors, le)
}

// sortErrors restores line order after a chunk's check errors were added
// behind parse errors of later lines.
func (b *Batch) sortErrors() {
	if b.unsorted {
		slices.SortStableFunc(b.Errors, func(x, y LineError) int { return cmp.Compare(x.Line, y.Line) })
		b.unsorted = false
	}
}

func (b *Batch) reject(line int, raw []byte, err error) {
	le := LineError{Line: line, Raw: raw, Class: ClassSyntax, Reason: err.Error()}
	var fe *schemaFieldError
	if errors.As(err, &fe) {
		le.Field, le.Reason = fe.Field, fe.Reason
		switch fe.Field {
		case "":
			le.Class = ClassSyntax
		case "type", "v":
			le.Class = ClassType
		default:
			le.Class = ClassField
		}
	}
	b.addError(le)
}
