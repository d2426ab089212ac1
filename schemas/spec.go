package schemas

// This file is the single source of truth for the wire format: one row per
// JSON member (propSpecs) and one row per event type (typeSpecs). ParseLine,
// AppendJSON, the JSON Schema documents and the Arrow schemas are all driven
// by these two tables; tests check the tables against the Event struct.

// Prop numbers the JSON members ("properties") the schema knows, in wire
// order. Every Prop is a field of Event; Prop.String is its JSON name.
type Prop uint8

const (
	PropV Prop = iota
	PropType
	PropTS
	PropRecvTS
	PropUserID
	PropSessionID
	PropStreamID
	PropVendor
	PropNode
	PropIP
	PropCountry
	PropProvince
	PropCity
	PropISP
	PropPlatform
	PropClientVersion
	PropQuality
	PropRole
	PropOK
	PropConnectMS
	PropError
	PropFirstFrameMS
	PropDurationMS
	PropMedia
	PropVideoBufferMS
	PropAudioBufferMS
	PropBitrateKbps
	PropFPS
	PropStalled
	PropReason
	PropWatchMS
	PropDropped
	PropCacheHit
	PropStatus
	PropBytes
	PropTTFBMS
	PropLine
	PropEgressISP
	PropRTTMS
	PropEID
	// Clock correction (docs/INGEST.md, "Clock correction"): sent_at is read
	// by ingest and removed; client_ts and clock_skew_ms are stamped by it.
	PropSentAt
	PropClientTS
	PropClockSkewMS
	numProps
)

// PropSet is a set of Props (a bit mask).
type PropSet uint64

// Has reports whether p is in s.
func (s PropSet) Has(p Prop) bool { return s&(1<<p) != 0 }

// With returns s with p added.
func (s PropSet) With(p Prop) PropSet { return s | 1<<p }

func setOf(ps ...Prop) PropSet {
	var s PropSet
	for _, p := range ps {
		s = s.With(p)
	}
	return s
}

// Has reports whether the decoded line carried member p with a non-null
// value. Use it where an absent measurement must not count as zero, e.g.
// averaging heartbeat buffers: only heartbeats with PropVideoBufferMS count
// towards video_buffer_ms_avg.
func (e *Event) Has(p Prop) bool { return e.Present.Has(p) }

func (p Prop) String() string {
	if p < numProps {
		return propSpecs[p].name
	}
	return "unknown"
}

// ParseProp maps a JSON member name to its Prop.
func ParseProp(name string) (Prop, bool) {
	p := lookupProp(name)
	return p, p < numProps
}

// Limits shared by the validator, the schemas and the documentation.
const (
	// MaxString is the longest string value, in Unicode code points, unless a
	// field says otherwise.
	MaxString = 256
	// MaxErrorString is the longest "error" value.
	MaxErrorString = 1024
	// MaxInt is the largest integer value: 2^53-1, so that every accepted
	// number survives a trip through a float64 (JavaScript, JSON tools).
	MaxInt = 1<<53 - 1
	// MinTS and MaxTS bound "ts" and "recv_ts" in Unix milliseconds:
	// 1973-03-03T09:46:40Z (smaller integers look like Unix seconds) and
	// 9999-12-31T23:59:59.999Z (the last RFC 3339 instant).
	MinTS = 100_000_000_000
	MaxTS = 253_402_300_799_999
	// maxDepth bounds the nesting of unknown members' values.
	maxDepth = 64
	// MaxClockSkewMS bounds clock_skew_ms: the difference of two valid times.
	MaxClockSkewMS = MaxTS - MinTS
)

// Plausibility bounds of measurements (docs/INGEST.md, "Plausible ranges"):
// a value beyond one is a broken clock, counter or unit, not a measurement,
// and accepting it would distort a minute's sums and averages for everyone.
const (
	// MaxConnectMS: players and SDKs give up a connect attempt long before
	// 10 min.
	MaxConnectMS = 10 * 60_000
	// MaxFirstFrameMS: a first frame after 10 min is a viewer who left the
	// tab open, not a start-up time.
	MaxFirstFrameMS = 10 * 60_000
	// MaxDurationMS (stall, relay, CDN request): 24 h; a longer stall or
	// request is a stuck timer.
	MaxDurationMS = 24 * 3_600_000
	// MaxWatchMS: 7 days; a set-top box can leave a 24/7 channel playing
	// for days, beyond a week the counter is stuck.
	MaxWatchMS = 7 * 24 * 3_600_000
	// MaxBufferMS: 10 min; live players buffer seconds and VOD players cap
	// the forward buffer at minutes (hls.js maxMaxBufferLength: 600 s).
	MaxBufferMS = 10 * 60_000
	// MaxTTFBMS: 10 min; no HTTP client waits that long for a first byte.
	MaxTTFBMS = 10 * 60_000
	// MaxBytes: 1 TiB per request; a day-long HTTP-FLV pull at 100 Mbit/s
	// is 1.08 TB.
	MaxBytes = 1 << 40
	// MaxBitrateKbps: 1 Gbit/s; 8K live is about 100 Mbit/s.
	MaxBitrateKbps = 1_000_000
	// MaxFPS: 240 frames/s, the fastest consumer displays and encoders.
	MaxFPS = 240
	// MaxRTTMS: 1 min; a longer round trip is a dead link, not a latency.
	MaxRTTMS = 60_000
)

type kind uint8

const (
	kVersion kind = iota // "v": integer, must equal Version
	kType                // "type": string naming a Type
	kTime                // RFC 3339 string with zone, or integer Unix ms
	kString
	kEnum
	kIP // string holding an IPv4 or IPv6 address (no zone)
	kInt
	kFloat
	kBool
	kID // string of 16 hexadecimal digits holding a non-zero 64-bit identity
)

type propSpec struct {
	name string
	kind kind
	doc  string
	// strings
	maxLen int
	enum   []string
	// integers
	min, max int64
	// floats: the largest accepted value (all are ≥ 0 and finite)
	fmax float64
	// why the bound is what it is, for docs/INGEST.md (tested)
	why string
	// accessors; exactly one is set for every kind but kType
	str  func(*Event) *string
	i64  func(*Event) *int64
	intp func(*Event) *int
	f64  func(*Event) *float64
	bl   func(*Event) *bool
	u64  func(*Event) *uint64
}

var (
	roles   = []string{"host", "cohost", "audience"}
	medias  = []string{"video", "audio"}
	reasons = []string{"user", "error", "eos"}
	lines   = []string{"primary", "backup"}
)

func strP(name, doc string, f func(*Event) *string) propSpec {
	return propSpec{name: name, kind: kString, doc: doc, maxLen: MaxString, str: f}
}

func enumP(name, doc string, values []string, f func(*Event) *string) propSpec {
	return propSpec{name: name, kind: kEnum, doc: doc, enum: values, str: f}
}

func msP(name, doc string, max int64, why string, f func(*Event) *int64) propSpec {
	return propSpec{name: name, kind: kInt, doc: doc, min: 0, max: max, why: why, i64: f}
}

func floatP(name, doc string, max float64, why string, f func(*Event) *float64) propSpec {
	return propSpec{name: name, kind: kFloat, doc: doc, fmax: max, why: why, f64: f}
}

func boolP(name, doc string, f func(*Event) *bool) propSpec {
	return propSpec{name: name, kind: kBool, doc: doc, bl: f}
}

// propSpecs is indexed by Prop.
var propSpecs = [numProps]propSpec{
	PropV:    {name: "v", kind: kVersion, doc: "Schema version; must be 1.", intp: func(e *Event) *int { return &e.V }},
	PropType: {name: "type", kind: kType, doc: "Event type."},
	PropTS: {name: "ts", kind: kTime, i64: func(e *Event) *int64 { return &e.TS },
		doc: "Event time: RFC 3339 with a zone (Z or ±hh:mm, fractional seconds allowed, truncated to ms) or Unix milliseconds (integer). Stored as Unix ms UTC."},
	PropRecvTS: {name: "recv_ts", kind: kTime, i64: func(e *Event) *int64 { return &e.RecvTS },
		doc: "Receive time stamped by ingest (Unix ms); ingest overwrites any value sent by a producer."},

	PropUserID:        strP("user_id", "User (viewer or broadcaster) identifier; Kafka key of client events.", func(e *Event) *string { return &e.UserID }),
	PropSessionID:     strP("session_id", "Play or push session identifier.", func(e *Event) *string { return &e.SessionID }),
	PropStreamID:      strP("stream_id", "Live stream identifier.", func(e *Event) *string { return &e.StreamID }),
	PropVendor:        strP("vendor", "CDN vendor.", func(e *Event) *string { return &e.Vendor }),
	PropNode:          strP("node", "Edge (or origin) node.", func(e *Event) *string { return &e.Node }),
	PropIP:            {name: "ip", kind: kIP, maxLen: 64, doc: "Client IP address (IPv4 or IPv6, no zone); ingest derives country/province/city/isp from it when they are absent.", str: func(e *Event) *string { return &e.IP }},
	PropCountry:       strP("country", "Country; filled from ip by ingest when absent.", func(e *Event) *string { return &e.Country }),
	PropProvince:      strP("province", "Province; filled from ip by ingest when absent.", func(e *Event) *string { return &e.Province }),
	PropCity:          strP("city", "City; filled from ip by ingest when absent.", func(e *Event) *string { return &e.City }),
	PropISP:           strP("isp", "ISP; filled from ip by ingest when absent.", func(e *Event) *string { return &e.ISP }),
	PropPlatform:      strP("platform", "Client platform (e.g. android, ios, web).", func(e *Event) *string { return &e.Platform }),
	PropClientVersion: strP("client_version", "Player or SDK version.", func(e *Event) *string { return &e.ClientVersion }),
	PropQuality:       strP("quality", "Quality tier (e.g. 1080p).", func(e *Event) *string { return &e.Quality }),
	PropRole:          enumP("role", "host, cohost (on-mic) or audience (off-mic).", roles, func(e *Event) *string { return &e.Role }),

	PropOK:            boolP("ok", "Whether the attempt succeeded.", func(e *Event) *bool { return &e.OK }),
	PropConnectMS:     msP("connect_ms", "Connect time in ms.", MaxConnectMS, "players give up a connect attempt long before 10 min", func(e *Event) *int64 { return &e.ConnectMS }),
	PropError:         {name: "error", kind: kString, maxLen: MaxErrorString, doc: "Error code or message of a failed attempt.", str: func(e *Event) *string { return &e.Error }},
	PropFirstFrameMS:  msP("first_frame_ms", "Play request to first rendered frame, ms.", MaxFirstFrameMS, "later than 10 min is a tab left open, not a start-up time", func(e *Event) *int64 { return &e.FirstFrameMS }),
	PropDurationMS:    msP("duration_ms", "Duration in ms (stall: buffer-empty time; relay: relay time; cdn_request: request time).", MaxDurationMS, "a stall, relay or request longer than a day is a stuck timer", func(e *Event) *int64 { return &e.DurationMS }),
	PropMedia:         enumP("media", "Which buffer ran empty: video or audio.", medias, func(e *Event) *string { return &e.Media }),
	PropVideoBufferMS: msP("video_buffer_ms", "Video buffer length, ms.", MaxBufferMS, "players cap the forward buffer at minutes (hls.js: 600 s)", func(e *Event) *int64 { return &e.VideoBufferMS }),
	PropAudioBufferMS: msP("audio_buffer_ms", "Audio buffer length, ms.", MaxBufferMS, "players cap the forward buffer at minutes (hls.js: 600 s)", func(e *Event) *int64 { return &e.AudioBufferMS }),
	PropBitrateKbps:   floatP("bitrate_kbps", "Bitrate, kbit/s.", MaxBitrateKbps, "1 Gbit/s is 10× 8K live", func(e *Event) *float64 { return &e.BitrateKbps }),
	PropFPS:           floatP("fps", "Frame rate, frames/s.", MaxFPS, "the fastest displays and encoders", func(e *Event) *float64 { return &e.FPS }),
	PropStalled:       boolP("stalled", "Whether this sample's interval held a stall.", func(e *Event) *bool { return &e.Stalled }),
	PropReason:        enumP("reason", "Why playback ended: user, error or eos.", reasons, func(e *Event) *string { return &e.Reason }),
	PropWatchMS:       msP("watch_ms", "Watch time of the session, ms.", MaxWatchMS, "a set-top box may play a channel for days; past a week the counter is stuck", func(e *Event) *int64 { return &e.WatchMS }),
	PropDropped:       boolP("dropped", "The push ended by disconnection, not by the user.", func(e *Event) *bool { return &e.Dropped }),
	PropCacheHit:      boolP("cache_hit", "The httpdns lookup was served from cache.", func(e *Event) *bool { return &e.CacheHit }),
	PropStatus:        {name: "status", kind: kInt, min: 100, max: 599, why: "the HTTP status code classes", doc: "HTTP status code.", intp: func(e *Event) *int { return &e.Status }},
	PropBytes: {name: "bytes", kind: kInt, min: 0, max: MaxBytes, why: "a day-long HTTP-FLV pull at 100 Mbit/s is 1.08 TB",
		doc: "Bytes sent.", i64: func(e *Event) *int64 { return &e.Bytes }},
	PropTTFBMS:    msP("ttfb_ms", "Time to first byte, ms.", MaxTTFBMS, "no HTTP client waits 10 min for a first byte", func(e *Event) *int64 { return &e.TTFBMS }),
	PropLine:      enumP("line", "Origin line: primary or backup.", lines, func(e *Event) *string { return &e.Line }),
	PropEgressISP: strP("egress_isp", "Egress ISP of the origin.", func(e *Event) *string { return &e.EgressISP }),
	PropRTTMS:     floatP("rtt_ms", "Round-trip time, ms.", MaxRTTMS, "a round trip over a minute is a dead link", func(e *Event) *float64 { return &e.RTTMS }),

	PropSentAt: {name: "sent_at", kind: kTime, i64: func(e *Event) *int64 { return &e.SentAt },
		doc: "When the client sent the batch, by its own clock (same formats as ts). Ingest corrects ts with it and removes it (docs/INGEST.md, Clock correction)."},
	PropClientTS: {name: "client_ts", kind: kTime, i64: func(e *Event) *int64 { return &e.ClientTS },
		doc: "The ts the client sent, before ingest corrected its clock; stamped by ingest only when it corrected ts."},
	PropClockSkewMS: {name: "clock_skew_ms", kind: kInt, min: -MaxClockSkewMS, max: MaxClockSkewMS, i64: func(e *Event) *int64 { return &e.ClockSkewMS },
		why: "the difference of two valid times",
		doc: "The correction ingest added to ts: recv_ts − sent_at, ms (positive when the client clock is slow); stamped with client_ts."},
	PropEID: {name: "eid", kind: kID, u64: func(e *Event) *uint64 { return &e.EID },
		doc: "Event identity stamped by ingest (16 hex digits; ingest overwrites any value sent by a producer): the aggregator counts events with the same eid once (docs/INGEST.md, Event identity)."},
}

// typeSpec says which members a type uses. Members a type does not use are
// still validated when present (one meaning per name) and preserved.
type typeSpec struct {
	doc      string
	required []Prop
	// ifOK are required when "ok" is true (a failed attempt has no time).
	ifOK     []Prop
	optional []Prop
}

var (
	// Dimensions every client event may carry; user_id and stream_id are
	// required separately where they are.
	clientDims = []Prop{PropSessionID, PropVendor, PropNode, PropIP, PropCountry, PropProvince,
		PropCity, PropISP, PropPlatform, PropClientVersion, PropQuality, PropRole}
	clientReq = []Prop{PropUserID, PropStreamID}
)

func cat(lists ...[]Prop) []Prop {
	var out []Prop
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// typeSpecs is indexed by Type.
var typeSpecs = [numTypes]typeSpec{
	TypePlayStart: {doc: "A pull-connect attempt.",
		required: cat(clientReq, []Prop{PropOK}), ifOK: []Prop{PropConnectMS},
		optional: cat(clientDims, []Prop{PropError})},
	TypeFirstFrame: {doc: "The first frame was rendered.",
		required: cat(clientReq, []Prop{PropFirstFrameMS}), optional: clientDims},
	TypeStall: {doc: "A buffer-empty period that ended; ts is when it began. A stall (卡顿) only if duration_ms ≥ 2000.",
		required: cat(clientReq, []Prop{PropDurationMS, PropMedia}), optional: clientDims},
	TypeHeartbeat: {doc: "A periodic playback sample. Buffers, bitrate and fps are optional: an absent one is not a zero (see Event.Has).",
		required: cat(clientReq, []Prop{PropStalled}),
		optional: cat(clientDims, []Prop{PropVideoBufferMS, PropAudioBufferMS, PropBitrateKbps, PropFPS})},
	TypePlayEnd: {doc: "Playback ended.",
		required: cat(clientReq, []Prop{PropReason}), optional: cat(clientDims, []Prop{PropWatchMS, PropError})},
	TypePushStart: {doc: "A push-connect attempt.",
		required: cat(clientReq, []Prop{PropOK}), ifOK: []Prop{PropConnectMS},
		optional: cat(clientDims, []Prop{PropError})},
	TypePushEnd: {doc: "A push ended.",
		required: cat(clientReq, []Prop{PropDropped}), optional: cat(clientDims, []Prop{PropError})},
	TypeRelay: {doc: "A relay (转推) attempt.",
		required: cat(clientReq, []Prop{PropOK}), ifOK: []Prop{PropDurationMS},
		optional: cat(clientDims, []Prop{PropError})},
	TypeDNS: {doc: "An httpdns lookup.",
		required: []Prop{PropUserID, PropCacheHit}, optional: cat([]Prop{PropStreamID}, clientDims)},
	TypeCDNRequest: {doc: "One CDN access-log record.",
		required: []Prop{PropVendor, PropNode, PropStatus, PropBytes, PropTTFBMS},
		optional: []Prop{PropStreamID, PropIP, PropCountry, PropProvince, PropCity, PropISP, PropDurationMS}},
	TypeOriginStats: {doc: "Upstream statistics of one pushed stream at the origin.",
		required: []Prop{PropStreamID, PropNode, PropLine, PropBitrateKbps, PropFPS, PropRTTMS},
		optional: []Prop{PropEgressISP}},
}

// ingestProps are the members of every type that ingest reads (sent_at) or
// stamps (recv_ts, client_ts, clock_skew_ms).
var ingestProps = setOf(PropRecvTS, PropEID, PropSentAt, PropClientTS, PropClockSkewMS)

// typeMasks are typeSpecs as bit sets, for the hot path.
type typeMask struct {
	required, ifOK, used PropSet
}

var typeMasks = func() (m [numTypes]typeMask) {
	base := setOf(PropV, PropType, PropTS)
	for t := TypePlayStart; t < numTypes; t++ {
		s := &typeSpecs[t]
		m[t].required = base | setOf(s.required...)
		m[t].ifOK = setOf(s.ifOK...)
		m[t].used = m[t].required | m[t].ifOK | setOf(s.optional...) | ingestProps
	}
	return m
}()

// requiredFor reports whether p must be present on an event of type t whose
// "ok" member decoded to ok.
func requiredFor(t Type, p Prop, ok bool) bool {
	m := &typeMasks[t]
	return m.required.Has(p) || (ok && m.ifOK.Has(p))
}

// lookupProp maps a member name to its Prop, numProps when unknown. A switch
// compiles to a length-then-compare search and does not allocate.
func lookupProp(s string) Prop {
	switch s {
	case "v":
		return PropV
	case "type":
		return PropType
	case "ts":
		return PropTS
	case "recv_ts":
		return PropRecvTS
	case "user_id":
		return PropUserID
	case "session_id":
		return PropSessionID
	case "stream_id":
		return PropStreamID
	case "vendor":
		return PropVendor
	case "node":
		return PropNode
	case "ip":
		return PropIP
	case "country":
		return PropCountry
	case "province":
		return PropProvince
	case "city":
		return PropCity
	case "isp":
		return PropISP
	case "platform":
		return PropPlatform
	case "client_version":
		return PropClientVersion
	case "quality":
		return PropQuality
	case "role":
		return PropRole
	case "ok":
		return PropOK
	case "connect_ms":
		return PropConnectMS
	case "error":
		return PropError
	case "first_frame_ms":
		return PropFirstFrameMS
	case "duration_ms":
		return PropDurationMS
	case "media":
		return PropMedia
	case "video_buffer_ms":
		return PropVideoBufferMS
	case "audio_buffer_ms":
		return PropAudioBufferMS
	case "bitrate_kbps":
		return PropBitrateKbps
	case "fps":
		return PropFPS
	case "stalled":
		return PropStalled
	case "reason":
		return PropReason
	case "watch_ms":
		return PropWatchMS
	case "dropped":
		return PropDropped
	case "cache_hit":
		return PropCacheHit
	case "status":
		return PropStatus
	case "bytes":
		return PropBytes
	case "ttfb_ms":
		return PropTTFBMS
	case "line":
		return PropLine
	case "egress_isp":
		return PropEgressISP
	case "rtt_ms":
		return PropRTTMS
	case "eid":
		return PropEID
	case "sent_at":
		return PropSentAt
	case "client_ts":
		return PropClientTS
	case "clock_skew_ms":
		return PropClockSkewMS
	}
	return numProps
}

// isZero reports whether e's value for p is its type's zero value.
func isZero(e *Event, p Prop) bool {
	s := &propSpecs[p]
	switch {
	case p == PropType:
		return e.Type == TypeUnknown
	case s.str != nil:
		return *s.str(e) == ""
	case s.i64 != nil:
		return *s.i64(e) == 0
	case s.intp != nil:
		return *s.intp(e) == 0
	case s.f64 != nil:
		return *s.f64(e) == 0
	case s.bl != nil:
		return !*s.bl(e)
	case s.u64 != nil:
		return *s.u64(e) == 0
	}
	return true
}
