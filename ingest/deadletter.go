package ingest

import (
	"encoding/json"
	"unicode/utf8"
)

// DeadLetter is the JSON value of a record in the dead-letter topic: one
// rejected line with enough context to find its sender and fix it. The
// token's name is recorded, never its secret.
type DeadLetter struct {
	Source    string `json:"source"` // client, cdn, origin or cmcd
	Line      int    `json:"line"`
	Field     string `json:"field,omitempty"`
	Reason    string `json:"reason"`
	Class     string `json:"class"`
	Token     string `json:"token"`
	RecvTS    int64  `json:"recv_ts"`
	RequestID string `json:"request_id,omitempty"` // the Idempotency-Key header, if any
	// Raw is the line as received when it is valid UTF-8; otherwise RawBase64
	// holds it, so that binary garbage survives the round trip exactly.
	Raw       string `json:"raw,omitempty"`
	RawBase64 []byte `json:"raw_base64,omitempty"`
	// RawBytes is the line's full length; Truncated says Raw was cut to
	// limits.deadletter_max_raw.
	RawBytes  int  `json:"raw_bytes"`
	Truncated bool `json:"truncated,omitempty"`
}

// NewDeadLetter builds the envelope of a rejected line, cutting raw to max
// bytes (on a UTF-8 boundary when it is text).
func NewDeadLetter(source, token, requestID string, recvMS int64, le *LineError, max int) DeadLetter {
	d := DeadLetter{
		Source: source, Line: le.Line, Field: le.Field, Reason: le.Reason, Class: le.Class,
		Token: token, RecvTS: recvMS, RequestID: requestID, RawBytes: len(le.Raw),
	}
	raw := le.Raw
	if len(raw) > max {
		raw = raw[:max]
		d.Truncated = true
		// Back off to a rune start so a cut multi-byte character does not
		// turn valid text into "binary".
		for i := 0; i < utf8.UTFMax && len(raw) > 0 && !utf8.Valid(raw); i++ {
			raw = raw[:len(raw)-1]
		}
	}
	if utf8.Valid(raw) {
		d.Raw = string(raw)
	} else {
		d.RawBase64 = raw
	}
	return d
}

// AppendJSON appends the envelope's JSON. encoding/json is fine here: dead
// letters are the exception path and must escape arbitrary input correctly.
func (d *DeadLetter) AppendJSON(dst []byte) []byte {
	// Marshal cannot fail: every field is a string, int, bool or []byte.
	b, _ := json.Marshal(d)
	return append(dst, b...)
}
