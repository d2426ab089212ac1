package cmcd

import (
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

func isMedia(ot string) bool { return ot == "v" || ot == "a" || ot == "av" }

// pick returns the value of vals for video (OT v, av, or none with the
// request's ot not audio) or audio (OT a or av).
func pick(vals []Value, reqOT string, audio bool) (int64, bool) {
	for _, v := range vals {
		ot := v.OT
		if ot == "" {
			ot = reqOT
		}
		switch {
		case ot == "av":
			return v.N, true
		case audio && ot == "a":
			return v.N, true
		case !audio && (ot == "v" || ot == ""):
			return v.N, true
		}
	}
	return 0, false
}

func checkTS(ms int64) *Error {
	switch {
	case ms < schemas.MinTS:
		return &Error{Key: "ts", Reason: "looks like Unix seconds, want milliseconds"}
	case ms > schemas.MaxTS:
		return &Error{Key: "ts", Reason: "too large: looks like Unix micro- or nanoseconds, want milliseconds"}
	}
	return nil
}

// ToEvents maps one CMCD payload onto qoscope client events (the table in
// README.md), received at recv from ip (the client address as ingest sees
// it; ignored unless it is a valid IP), with cid as the stream_id. It
// returns no events and no error for a payload that carries nothing
// qoscope measures (e.g. a manifest request with only sid and cid). Every
// event passes schemas.ParseLine once encoded with schemas.AppendJSON.
func ToEvents(d Data, recv time.Time, ip string) ([]schemas.Event, error) {
	return toEvents(d, nil, nil, recv, ip)
}

// ToEvents is the package's ToEvents with the stream_id taken from s's
// sources; query is the collector request's URL query (for the query
// source). The stream_id is looked for only when the payload yields
// events.
func (s *StreamSource) ToEvents(d Data, query url.Values, recv time.Time, ip string) ([]schemas.Event, error) {
	return toEvents(d, s, query, recv, ip)
}

func toEvents(d Data, streams *StreamSource, query url.Values, recv time.Time, ip string) ([]schemas.Event, error) {
	ts := recv.UnixMilli()
	if d.Has(KeyTS) {
		if err := checkTS(d.Timestamp); err != nil {
			return nil, err
		}
		ts = d.Timestamp
	}

	stalled := d.Starved || d.State == "r" || len(d.StarvationDurations) > 0
	heartbeat := isMedia(d.ObjectType) ||
		(!d.Has(KeyOT) && (d.Has(KeyBL) || d.Has(KeyBR) || d.Has(KeySTA))) ||
		stalled
	var endReason string
	switch d.State {
	case "e":
		endReason = "eos"
	case "q":
		endReason = "user"
	case "f":
		endReason = "error"
	}
	n := len(d.StarvationDurations)
	if heartbeat {
		n++
	}
	if d.Has(KeyMSD) {
		n++
	}
	if endReason != "" {
		n++
	}
	if n == 0 {
		return nil, nil
	}

	base, err := baseEvent(&d, streams, query, ts, recv, ip)
	if err != nil {
		return nil, err
	}
	evs := make([]schemas.Event, 0, n)
	add := func(t schemas.Type, ts int64, f func(e *schemas.Event)) {
		e := base
		e.Type, e.TS = t, ts
		// Each event owns its Extra: callers reuse Events (Reset keeps
		// Extra's array), which must not write into a sibling's.
		e.Extra = slices.Clone(base.Extra)
		f(&e)
		evs = append(evs, e)
	}

	if d.Has(KeyMSD) {
		add(schemas.TypeFirstFrame, ts, func(e *schemas.Event) { e.FirstFrameMS = d.MediaStartDelay })
	}
	// Each bsd element is one buffer-empty period that ended before this
	// report. CMCD does not say when each began: place them back to back,
	// the last one ending at the report time.
	start := ts
	for _, v := range d.StarvationDurations {
		start -= v.N
	}
	for _, v := range d.StarvationDurations {
		media := "video"
		if v.OT == "a" {
			media = "audio"
		}
		t := start
		if t < schemas.MinTS {
			return nil, &Error{Key: "bsd", Reason: "starvation durations reach back before 1973"}
		}
		add(schemas.TypeStall, t, func(e *schemas.Event) { e.DurationMS, e.Media = v.N, media })
		start += v.N
	}
	if heartbeat {
		add(schemas.TypeHeartbeat, ts, func(e *schemas.Event) {
			e.Stalled = stalled
			if n, ok := pick(d.BufferLength, d.ObjectType, false); ok {
				e.VideoBufferMS = n
				e.Present = e.Present.With(schemas.PropVideoBufferMS)
			}
			if n, ok := pick(d.BufferLength, d.ObjectType, true); ok {
				e.AudioBufferMS = n
				e.Present = e.Present.With(schemas.PropAudioBufferMS)
			}
			if n, ok := pick(d.Bitrate, d.ObjectType, false); ok {
				e.BitrateKbps = float64(n)
				e.Present = e.Present.With(schemas.PropBitrateKbps)
			}
		})
	}
	if endReason != "" {
		add(schemas.TypePlayEnd, ts, func(e *schemas.Event) {
			e.Reason = endReason
			if endReason == "error" && len(d.ErrorCodes) > 0 {
				e.Error = d.ErrorCodes[0]
			}
		})
	}
	// The mapped events must be within the event schema's plausible ranges
	// (docs/INGEST.md, "Bounds"): a payload outside them (bl=1000000, a
	// 1000 s buffer) is refused here, naming its CMCD key, like any other
	// bad value, and never becomes an event the aggregator would refuse.
	for i := range evs {
		if fe := schemas.CheckRanges(&evs[i]); fe != nil {
			return nil, &Error{Key: cmcdKeyOf[fe.Field], Reason: fe.Error()}
		}
	}
	return evs, nil
}

// cmcdKeyOf names the CMCD key an event field is mapped from.
var cmcdKeyOf = map[string]string{
	"video_buffer_ms": "bl", "audio_buffer_ms": "bl", "bitrate_kbps": "br",
	"duration_ms": "bsd", "first_frame_ms": "msd", "ts": "ts",
}

// baseEvent holds what every event of the payload shares.
func baseEvent(d *Data, streams *StreamSource, query url.Values, ts int64, recv time.Time, ip string) (schemas.Event, error) {
	e := schemas.Event{V: schemas.Version, TS: ts, RecvTS: recv.UnixMilli(), SessionID: d.SessionID,
		StreamID: d.ContentID, Vendor: d.CDN}
	uid, _ := d.CustomValue(UserIDKey)
	e.UserID = uid
	if e.UserID == "" {
		e.UserID = d.SessionID
	}
	if e.UserID == "" {
		return e, &Error{Key: "sid", Reason: "required: send sid or " + UserIDKey + " to identify the viewer"}
	}
	if streams != nil {
		var err error
		if e.StreamID, _, err = streams.Stream(d, query); err != nil {
			return e, err
		}
	}
	if e.StreamID == "" {
		return e, &Error{Key: "cid", Reason: "required: it is the stream_id"}
	}
	for _, c := range []struct {
		key string
		dst *string
	}{{PlatformKey, &e.Platform}, {VersionKey, &e.ClientVersion}, {QualityKey, &e.Quality},
		{RoleKey, &e.Role}, {NodeKey, &e.Node}, {VendorKey, &e.Vendor}} {
		if v, ok := d.CustomValue(c.key); ok && v != "" {
			*c.dst = v
		}
	}
	switch e.Role {
	case "", "host", "cohost", "audience":
	default:
		return e, &Error{Key: RoleKey, Reason: "must be one of host, cohost, audience"}
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.Zone() == "" {
		e.IP = ip
	}
	e.Extra = appendContext(e.Extra, d)
	return e, nil
}

// appendContext appends the "cmcd" member every event carries: the
// request's CMCD context, every one of these keys the payload carried
// (zero and false included: pr=0 means not playing), so that what qoscope
// does not map is kept for later analysis. Tokens and numbers need no JSON
// escaping.
func appendContext(dst []byte, d *Data) []byte {
	dst = append(dst, `"cmcd":{"v":`...)
	dst = strconv.AppendInt(dst, int64(d.Version), 10)
	tok := func(k Key, v string) {
		if d.Has(k) {
			dst = append(dst, `,"`...)
			dst = append(dst, k.String()...)
			dst = append(dst, `":"`...)
			dst = append(dst, v...)
			dst = append(dst, '"')
		}
	}
	tok(KeyOT, d.ObjectType)
	tok(KeySF, d.StreamingFormat)
	tok(KeyST, d.StreamType)
	tok(KeySTA, d.State)
	if d.Has(KeySU) {
		dst = append(dst, `,"su":`...)
		dst = strconv.AppendBool(dst, d.Startup)
	}
	if d.Has(KeyMTP) {
		// Every element whatever the object type: a v1 value (or a
		// one-element list without type) as a number, else a list of
		// numbers and {"<ot>":n} for typed elements, in order.
		dst = append(dst, `,"mtp":`...)
		if len(d.Throughput) == 1 && d.Throughput[0].OT == "" {
			dst = strconv.AppendInt(dst, d.Throughput[0].N, 10)
		} else {
			dst = append(dst, '[')
			for i, v := range d.Throughput {
				if i > 0 {
					dst = append(dst, ',')
				}
				if v.OT == "" {
					dst = strconv.AppendInt(dst, v.N, 10)
					continue
				}
				dst = append(dst, `{"`...)
				dst = append(dst, v.OT...)
				dst = append(dst, `":`...)
				dst = strconv.AppendInt(dst, v.N, 10)
				dst = append(dst, '}')
			}
			dst = append(dst, ']')
		}
	}
	if d.Has(KeyD) {
		dst = append(dst, `,"d":`...)
		dst = strconv.AppendInt(dst, d.Duration, 10)
	}
	if d.Has(KeyPR) {
		dst = append(dst, `,"pr":`...)
		dst = strconv.AppendFloat(dst, d.PlaybackRate, 'f', -1, 64)
	}
	return append(dst, '}')
}
