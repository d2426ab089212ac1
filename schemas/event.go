// Package schemas is the single source of truth for qoscope's event model:
// the Go types below, from which the JSON Schema documents served by ingest and
// the Arrow schemas used by the aggregator are generated or checked in tests.
//
// Events are flat: one struct for every type, with the fields a type does not
// use left at their zero value. A flat struct keeps the decoder allocation-free
// and lets the aggregator read any dimension by a precomputed Field index
// instead of a map lookup per event.
package schemas

// Version is the only event schema version this build understands ("v": 1).
const Version = 1

// Source is the producer family of an event; each has its own Kafka topic.
type Source uint8

const (
	SourceUnknown Source = iota
	SourceClient         // player / push SDKs
	SourceCDN            // CDN vendor access logs
	SourceOrigin         // origin (media source) stream statistics
)

var sourceNames = [...]string{"unknown", "client", "cdn", "origin"}

func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// ParseSource maps "client", "cdn" or "origin" to a Source.
func ParseSource(s string) (Source, bool) {
	for i, n := range sourceNames {
		if i > 0 && n == s {
			return Source(i), true
		}
	}
	return SourceUnknown, false
}

// Type is the event's "type" field.
type Type uint8

const (
	TypeUnknown Type = iota
	// Client, pull side.
	TypePlayStart  // pull-connect attempt: ok, connect_ms, error
	TypeFirstFrame // first_frame_ms
	TypeStall      // buffer-empty period that ended; ts = its start; duration_ms, media
	TypeHeartbeat  // periodic sample: buffers, bitrate, fps, stalled
	TypePlayEnd    // reason, watch_ms
	// Client, push side.
	TypePushStart // push-connect attempt: ok, connect_ms, error
	TypePushEnd   // dropped
	TypeRelay     // relay (转推) attempt: ok, duration_ms
	TypeDNS       // httpdns lookup: cache_hit
	// CDN.
	TypeCDNRequest
	// Origin.
	TypeOriginStats
	numTypes
)

var typeNames = [...]string{
	"unknown", "play_start", "first_frame", "stall", "heartbeat", "play_end",
	"push_start", "push_end", "relay", "dns", "cdn_request", "origin_stats",
}

var typeSources = [...]Source{
	SourceUnknown, SourceClient, SourceClient, SourceClient, SourceClient, SourceClient,
	SourceClient, SourceClient, SourceClient, SourceClient, SourceCDN, SourceOrigin,
}

func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return "unknown"
}

// Source is the family the type belongs to (and so the endpoint and topic).
func (t Type) Source() Source {
	if t < numTypes {
		return typeSources[t]
	}
	return SourceUnknown
}

// PullSide reports whether an event of this type makes its user an active
// viewer for the UV metrics (users, stutter_users): play_start, first_frame,
// stall, heartbeat and play_end.
func (t Type) PullSide() bool { return t >= TypePlayStart && t <= TypePlayEnd }

// ParseType maps a "type" value to a Type; unknown names are rejected.
func ParseType(s string) (Type, bool) {
	for i := TypePlayStart; i < numTypes; i++ {
		if typeNames[i] == s {
			return i, true
		}
	}
	return TypeUnknown, false
}

// Types lists every known type, in declaration order.
func Types() []Type {
	out := make([]Type, 0, numTypes-1)
	for t := TypePlayStart; t < numTypes; t++ {
		out = append(out, t)
	}
	return out
}

// StallThresholdMS is the minimum buffer-empty duration that counts as a stall
// (卡顿): the buffer must be empty for at least two seconds continuously.
const StallThresholdMS = 2000

// Event is one decoded event of any type. JSON field names are the wire names
// (snake_case) and are also the dimension names used by grouping sets.
type Event struct {
	V    int   `json:"v"`
	Type Type  `json:"type"`
	TS   int64 `json:"ts"` // event time, Unix milliseconds UTC (wire: RFC 3339 with zone, or Unix ms)
	// RecvTS is stamped by ingest when the request arrived (Unix ms); 0 before ingest.
	RecvTS int64 `json:"recv_ts"`

	// Client common fields; CDN and origin events use the subset they carry.
	UserID        string `json:"user_id"`
	SessionID     string `json:"session_id"`
	StreamID      string `json:"stream_id"`
	Vendor        string `json:"vendor"`
	Node          string `json:"node"`
	IP            string `json:"ip"`
	Country       string `json:"country"`
	Province      string `json:"province"`
	City          string `json:"city"`
	ISP           string `json:"isp"`
	Platform      string `json:"platform"`
	ClientVersion string `json:"client_version"`
	Quality       string `json:"quality"`
	Role          string `json:"role"` // host, cohost (on-mic), audience (off-mic)

	// play_start, push_start, relay
	OK        bool   `json:"ok"`
	ConnectMS int64  `json:"connect_ms"`
	Error     string `json:"error"`
	// first_frame
	FirstFrameMS int64 `json:"first_frame_ms"`
	// stall, relay, cdn_request
	DurationMS int64 `json:"duration_ms"`
	// stall: "video" or "audio"
	Media string `json:"media"`
	// heartbeat
	VideoBufferMS int64   `json:"video_buffer_ms"`
	AudioBufferMS int64   `json:"audio_buffer_ms"`
	BitrateKbps   float64 `json:"bitrate_kbps"` // heartbeat, origin_stats
	FPS           float64 `json:"fps"`          // heartbeat, origin_stats
	Stalled       bool    `json:"stalled"`
	// play_end
	Reason  string `json:"reason"` // user, error, eos
	WatchMS int64  `json:"watch_ms"`
	// push_end
	Dropped bool `json:"dropped"`
	// dns
	CacheHit bool `json:"cache_hit"`
	// cdn_request
	Status int   `json:"status"`
	Bytes  int64 `json:"bytes"`
	TTFBMS int64 `json:"ttfb_ms"`
	// origin_stats
	Line      string  `json:"line"` // primary, backup
	EgressISP string  `json:"egress_isp"`
	RTTMS     float64 `json:"rtt_ms"`

	// EID is the event's identity, stamped by ingest (0: none): copies of
	// one event (a retried request) share it, and the aggregator applies
	// only the first (docs/INGEST.md, Event identity).
	EID uint64 `json:"eid"`
	// Clock correction (docs/INGEST.md): SentAt is the client's clock when it
	// sent the batch (input only: ingest removes it); ClientTS is the ts the
	// client sent and ClockSkewMS the correction added to it, both stamped by
	// ingest when it corrected ts (0 otherwise).
	SentAt      int64 `json:"sent_at"`
	ClientTS    int64 `json:"client_ts"`
	ClockSkewMS int64 `json:"clock_skew_ms"`

	// Present is the set of members the decoded line carried with a non-null
	// value (set by ParseLine), so that an absent measurement can be told
	// apart from a zero one (see Has). AppendJSON writes a member when it is
	// required for the type, present, or non-zero.
	Present PropSet `json:"-"`

	// Extra holds the fields this schema does not know, as the raw JSON members
	// `"k":v,"k2":v2` (no braces), so they survive ingest unchanged.
	Extra []byte `json:"-"`
}

// IsStall reports whether a stall event qualifies as a stall (卡顿).
func (e *Event) IsStall() bool {
	return e.Type == TypeStall && e.DurationMS >= StallThresholdMS
}

// Field identifies a string-valued dimension of an Event, so that grouping
// sets can be resolved to field indexes once, at configuration time.
type Field uint8

const (
	FieldUnknown Field = iota
	FieldUserID
	FieldSessionID
	FieldStreamID
	FieldVendor
	FieldNode
	FieldIP
	FieldCountry
	FieldProvince
	FieldCity
	FieldISP
	FieldPlatform
	FieldClientVersion
	FieldQuality
	FieldRole
	FieldMedia
	FieldLine
	FieldEgressISP
	FieldErr // the "error" member (FieldError is the validation error type)
	FieldReason
	numFields
)

var fieldNames = [...]string{
	"unknown", "user_id", "session_id", "stream_id", "vendor", "node", "ip",
	"country", "province", "city", "isp", "platform", "client_version",
	"quality", "role", "media", "line", "egress_isp", "error", "reason",
}

func (f Field) String() string {
	if f < numFields {
		return fieldNames[f]
	}
	return "unknown"
}

// ParseField maps a dimension name (the event's JSON field name) to a Field.
func ParseField(s string) (Field, bool) {
	for i := FieldUserID; i < numFields; i++ {
		if fieldNames[i] == s {
			return i, true
		}
	}
	return FieldUnknown, false
}

// Get returns the value of a string field, "" when absent.
func (e *Event) Get(f Field) string {
	switch f {
	case FieldUserID:
		return e.UserID
	case FieldSessionID:
		return e.SessionID
	case FieldStreamID:
		return e.StreamID
	case FieldVendor:
		return e.Vendor
	case FieldNode:
		return e.Node
	case FieldIP:
		return e.IP
	case FieldCountry:
		return e.Country
	case FieldProvince:
		return e.Province
	case FieldCity:
		return e.City
	case FieldISP:
		return e.ISP
	case FieldPlatform:
		return e.Platform
	case FieldClientVersion:
		return e.ClientVersion
	case FieldQuality:
		return e.Quality
	case FieldRole:
		return e.Role
	case FieldMedia:
		return e.Media
	case FieldLine:
		return e.Line
	case FieldEgressISP:
		return e.EgressISP
	case FieldErr:
		return e.Error
	case FieldReason:
		return e.Reason
	}
	return ""
}

// Reset clears e for reuse while keeping Extra's capacity.
func (e *Event) Reset() {
	extra := e.Extra[:0]
	*e = Event{}
	e.Extra = extra
}
