package ingest

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Identity gives the accepted events of one request their "eid", the
// identity the aggregator de-duplicates on (docs/INGEST.md, "Event
// identity"). It is the same on every retry of the request: derived from
// what the client sends, never from what ingest adds (recv_ts, enrichment,
// clock correction).
type Identity struct {
	scope uint64 // token, endpoint and, when sent, the Idempotency-Key
	keyed bool
}

// NewIdentity is the identity scope of a request of token on the endpoint
// of source ("client", "cdn", "origin", "cmcd"), with its Idempotency-Key
// (empty when none was sent).
func NewIdentity(token, source, key string) Identity {
	d := xxhash.New()
	_, _ = d.WriteString(token)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(source)
	if key != "" {
		_, _ = d.Write([]byte{0})
		_, _ = d.WriteString(key)
	}
	return Identity{scope: d.Sum64(), keyed: key != ""}
}

// Of is the eid of the sub-th event (from 0; a CMCD payload may map onto
// several) of the line-th line of the request, raw being that line as
// received (decompressed, before any rewriting). With an Idempotency-Key
// the key and the position identify the event and raw is not read; without
// one the line's bytes stand in for the key. The position is part of both:
// the retry of a request resends the same lines at the same positions,
// while two byte-identical lines of one request (a CDN log with two equal
// records in one second) stay two events.
//
// Without a key, extra is mixed in as well: CMCD passes the event's time
// and user, which may come from the request rather than from raw (a
// payload without "ts" is stamped with the receive time: two such identical
// payloads are two events). With a key the position alone decides, so the
// retry of such a payload is still a copy of the first event.
func (id Identity) Of(line, sub int, raw []byte, extra uint64) uint64 {
	var b [33]byte
	binary.LittleEndian.PutUint64(b[0:], id.scope)
	binary.LittleEndian.PutUint64(b[8:], uint64(line))
	binary.LittleEndian.PutUint64(b[16:], uint64(sub))
	if !id.keyed {
		b[32] = 1
		binary.LittleEndian.PutUint64(b[24:], extra^xxhash.Sum64(raw))
	}
	eid := xxhash.Sum64(b[:])
	if eid == 0 {
		eid = 1 // 0 means "no identity"
	}
	return eid
}
