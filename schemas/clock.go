package schemas

import (
	"math"
	"strconv"
	"time"
)

// Clock correction (docs/INGEST.md, "Clock correction"). A client that says
// when, by its own clock, it sent a batch (sent_at) lets ingest remove that
// clock's error from every event of the batch: the time between the event
// and the send is measured on one clock, so it is right even when the clock
// is not, and the send happened at (about) the receive time.

// CorrectTS is Segment's rule: ts' = receivedAt − (sentAt − ts), all in Unix
// ms. Network time between send and receive is counted as clock error; it
// is small next to the errors this corrects (minutes, hours, years).
func CorrectTS(ts, sentAt, receivedAt int64) int64 {
	return receivedAt - (sentAt - ts)
}

// CorrectClock applies CorrectTS to e with the line's sent_at or, when the
// line has none, headerSentAt (0: no header), e having been received at
// recvMS. On correction it records the client's reading in ClientTS and the
// offset added (recvMS − sent_at) in ClockSkewMS. It always removes SentAt
// (consumed) and any ClientTS/ClockSkewMS a producer sent (they are ingest's
// to stamp, as recv_ts is). The result is not checked against the future:
// that is the caller's max_future_skew check, on the corrected ts. It
// returns a *FieldError when the corrected ts would be before MinTS.
func CorrectClock(e *Event, headerSentAt, recvMS int64) *FieldError {
	sent := headerSentAt
	if e.Has(PropSentAt) {
		sent = e.SentAt
	}
	e.SentAt, e.ClientTS, e.ClockSkewMS = 0, 0, 0
	e.Present &^= setOf(PropSentAt, PropClientTS, PropClockSkewMS)
	if sent == 0 {
		return nil
	}
	ts := CorrectTS(e.TS, sent, recvMS)
	if ts < MinTS {
		return &FieldError{Field: "ts", Reason: "is " + FormatSpan(sent-e.TS) + " before sent_at: corrected, it would be before 1973-03-03T09:46:40Z"}
	}
	e.ClientTS, e.ClockSkewMS = e.TS, recvMS-sent
	e.TS = ts
	e.Present |= setOf(PropClientTS, PropClockSkewMS)
	return nil
}

// ParseTime parses a time in the wire formats of "ts" (RFC 3339 with a zone,
// or Unix milliseconds as decimal digits), for values outside a JSON line
// such as ingest's Sent-At header. It returns Unix ms, or the reason the
// value is not a time (the same reasons ParseLine gives for "ts").
func ParseTime(s string) (int64, string) {
	if s == "" {
		return 0, reasonTime
	}
	digits := true
	for i := 0; i < len(s); i++ {
		digits = digits && s[i] >= '0' && s[i] <= '9'
	}
	if !digits {
		ms, reason := parseRFC3339([]byte(s))
		switch {
		case reason != "":
			return 0, reason
		case ms < MinTS:
			return 0, reasonTooEarly
		}
		return ms, ""
	}
	if len(s) > 18 {
		return 0, reasonMicros
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil:
		return 0, reasonTime
	case ms < MinTS:
		return 0, reasonSeconds
	case ms > MaxTS:
		return 0, reasonMicros
	}
	return ms, ""
}

// FormatSpan writes a non-negative span of ms for people: a Go duration up
// to 48 h ("6m0s"), whole days beyond ("2912383 days"), so that spans of
// centuries (a ts in year 9999) neither overflow time.Duration nor read as
// "2540160h0m0s".
func FormatSpan(ms int64) string {
	if ms < 0 {
		return "-" + FormatSpan(-max(ms, -math.MaxInt64))
	}
	if ms <= 48*3_600_000 {
		return (time.Duration(ms) * time.Millisecond).String()
	}
	return strconv.FormatInt(ms/86_400_000, 10) + " days"
}
