package aggregator

import (
	"math"

	"github.com/qoscope/qoscope/aggregator/hist"
	"github.com/qoscope/qoscope/schemas"
)

// The raw accumulators below are exactly the value columns of the minute
// tables (migrations/0001_minute_tables.sql; the `col` tag names the column):
// sums, counts, minimums and histograms that merge across partitions and
// windows by addition (min for minimums, sumMap for histograms). Every
// public metric is derived from them by metrics.go, and the SQL views derive
// the same values from the same columns.

// Overflow. The schema bounds every summed value (schemas/spec.go, the
// table in docs/INGEST.md "Plausible ranges"), so at realistic volumes no
// sum below can overflow or lose exactness; per grouping key and window:
//   - uint64 ms sums: StallMS adds ≤ 86,400,000 per stall (2.1e11 stalls to
//     reach 2^64); the buffer sums ≤ 600,000 per heartbeat (3.1e13).
//   - CDNRaw.Bytes adds ≤ 2^40 per request: 2^24 (16.7 M) requests of the
//     maximum size in one key's minute would wrap it; at a generous 100 MB
//     per request it takes 1.8e11. Only a sender lying on purpose, millions
//     of lines a minute past its rate limit, could get there.
//   - float64 sums (OriginRaw): fps ≤ 240, bitrate ≤ 1e6, rtt ≤ 60,000 per
//     sample; +Inf needs ~1e302 samples, and whole-number inputs stay exact
//     while the sum is below 2^53 (9e9 samples at the bitrate bound).
//   - histogram sums (float64, documented exact): ≤ 86,400,000 per value
//     (relay durations; connect, first frame and TTFB ≤ 600,000), exact up
//     to 2^53 ≈ 9.0e15, i.e. 1e8 relays of a full day or 1.5e10 first frames.
//   - counters add 1 per event.
// Hence no sum is widened or checked.

// ClientRaw is one client grouping key's partial aggregate.
type ClientRaw struct {
	Samples            uint64 `col:"samples"` // heartbeats
	StalledSamples     uint64 `col:"stalled_samples"`
	VideoBufferMSSum   uint64 `col:"video_buffer_ms_sum"`
	VideoBufferSamples uint64 `col:"video_buffer_samples"` // heartbeats carrying video_buffer_ms
	AudioBufferMSSum   uint64 `col:"audio_buffer_ms_sum"`
	AudioBufferSamples uint64 `col:"audio_buffer_samples"` // heartbeats carrying audio_buffer_ms

	Users             uint64 `col:"users"`
	StutterUsers      uint64 `col:"stutter_users"`
	StutterUsersVideo uint64 `col:"stutter_users_video"`
	StutterUsersAudio uint64 `col:"stutter_users_audio"`

	Stalls     uint64 `col:"stalls"`   // qualifying stalls (duration_ms ≥ 2000)
	StallMS    uint64 `col:"stall_ms"` // their summed duration_ms
	Plays      uint64 `col:"plays"`    // play_start
	PlaysOK    uint64 `col:"plays_ok"`
	PlayErrors uint64 `col:"play_errors"` // play_end with reason "error"
	DNSLookups uint64 `col:"dns_lookups"`
	DNSHits    uint64 `col:"dns_hits"`

	FirstFrames uint64 `col:"first_frames"`
	FastOpens   uint64 `col:"fast_opens"` // first_frame_ms ≤ 1000

	Pushes       uint64 `col:"pushes"` // push_start
	PushesOK     uint64 `col:"pushes_ok"`
	PushEnds     uint64 `col:"push_ends"`
	PushDrops    uint64 `col:"push_drops"` // push_end with dropped
	Relays       uint64 `col:"relays"`
	RelaysFailed uint64 `col:"relays_failed"`

	PullConnectMS hist.Histogram `col:"pull_connect_ms"` // connect_ms of play_start with ok; _sum and _hist columns
	FirstFrameMS  hist.Histogram `col:"first_frame_ms"`
	PushConnectMS hist.Histogram `col:"push_connect_ms"` // connect_ms of push_start with ok
	RelayMS       hist.Histogram `col:"relay_ms"`        // duration_ms of relays with ok
}

// addHot adds a key's hot accumulator into c (c's own hot fields are zero:
// the window keeps them in clientHot).
func (c *ClientRaw) addHot(h *clientHot) {
	c.Samples += h.samples
	c.StalledSamples += h.stalled
	c.VideoBufferMSSum += h.videoSum
	c.VideoBufferSamples += h.videoN
	c.AudioBufferMSSum += h.audioSum
	c.AudioBufferSamples += h.audioN
}

// CDNRaw is one CDN grouping key's partial aggregate.
type CDNRaw struct {
	Requests  uint64         `col:"requests"`
	Bytes     uint64         `col:"bytes"`
	Errors4xx uint64         `col:"errors_4xx"`
	Errors5xx uint64         `col:"errors_5xx"`
	TTFBMS    hist.Histogram `col:"ttfb_ms"`
}

// OriginRaw is one origin grouping key's partial aggregate. The minimums are
// +Inf while Samples is 0 (the table ignores them then).
type OriginRaw struct {
	Samples        uint64  `col:"samples"`
	FPSSum         float64 `col:"fps_sum"`
	FPSMin         float64 `col:"fps_min"`
	BitrateKbpsSum float64 `col:"bitrate_kbps_sum"`
	BitrateKbpsMin float64 `col:"bitrate_kbps_min"`
	RTTMSSum       float64 `col:"rtt_ms_sum"`
	// NoData: the key was seen in one of the N windows before this one and
	// has no event in this one (the war room's N/A); every other field is 0.
	NoData bool `col:"no_data"`
}

func newOriginRaw() OriginRaw {
	return OriginRaw{FPSMin: math.Inf(1), BitrateKbpsMin: math.Inf(1)}
}

// nonNeg clamps a millisecond value to ≥ 0: the schema rejects negative
// durations, and unsigned sums must not wrap if one slipped through.
func nonNeg(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

// clientHot is the part of a client key's accumulator that heartbeats (most
// events) touch, one cache line, kept apart from the rest (ClientRaw) so the
// hot parts of every grouping key of a window stay in the CPU cache.
type clientHot struct {
	events                             uint64 // events applied: a key with 0 has no row
	samples, stalled                   uint64
	videoSum, videoN, audioSum, audioN uint64
	_                                  uint64
}

// hbDelta is what one heartbeat adds to each of its keys' clientHot.
type hbDelta struct {
	stalled, videoSum, videoN, audioSum, audioN uint64
}

func heartbeatDelta(e *schemas.Event) hbDelta {
	// An absent buffer length is not a zero: only heartbeats that carry
	// one count towards its mean.
	var d hbDelta
	if e.Stalled {
		d.stalled = 1
	}
	if e.Has(schemas.PropVideoBufferMS) {
		d.videoN = 1
		d.videoSum = nonNeg(e.VideoBufferMS)
	}
	if e.Has(schemas.PropAudioBufferMS) {
		d.audioN = 1
		d.audioSum = nonNeg(e.AudioBufferMS)
	}
	return d
}

// applyClient adds one client event other than a heartbeat to the (cold)
// accumulators of its grouping keys; the caller counts it in the hot parts.
// The switch is outside the loop so each type pays only for its own fields.
func applyClient(e *schemas.Event, accs []*ClientRaw) {
	switch e.Type {
	case schemas.TypeStall:
		if !e.IsStall() {
			return
		}
		d := nonNeg(e.DurationMS)
		for _, a := range accs {
			a.Stalls++
			a.StallMS += d
		}
	case schemas.TypePlayStart:
		if !e.OK {
			for _, a := range accs {
				a.Plays++
			}
			return
		}
		v := float64(nonNeg(e.ConnectMS))
		i := hist.Index(v)
		for _, a := range accs {
			a.Plays++
			a.PlaysOK++
			a.PullConnectMS.AddWithIndex(v, i)
		}
	case schemas.TypeFirstFrame:
		v := float64(nonNeg(e.FirstFrameMS))
		i := hist.Index(v)
		var fast uint64
		if e.FirstFrameMS <= 1000 {
			fast = 1
		}
		for _, a := range accs {
			a.FirstFrames++
			a.FastOpens += fast
			a.FirstFrameMS.AddWithIndex(v, i)
		}
	case schemas.TypePlayEnd:
		var er uint64
		if e.Reason == "error" {
			er = 1
		}
		for _, a := range accs {
			a.PlayErrors += er
		}
	case schemas.TypeDNS:
		var hit uint64
		if e.CacheHit {
			hit = 1
		}
		for _, a := range accs {
			a.DNSLookups++
			a.DNSHits += hit
		}
	case schemas.TypePushStart:
		if !e.OK {
			for _, a := range accs {
				a.Pushes++
			}
			return
		}
		v := float64(nonNeg(e.ConnectMS))
		i := hist.Index(v)
		for _, a := range accs {
			a.Pushes++
			a.PushesOK++
			a.PushConnectMS.AddWithIndex(v, i)
		}
	case schemas.TypePushEnd:
		var dr uint64
		if e.Dropped {
			dr = 1
		}
		for _, a := range accs {
			a.PushEnds++
			a.PushDrops += dr
		}
	case schemas.TypeRelay:
		if !e.OK {
			for _, a := range accs {
				a.Relays++
				a.RelaysFailed++
			}
			return
		}
		v := float64(nonNeg(e.DurationMS))
		i := hist.Index(v)
		for _, a := range accs {
			a.Relays++
			a.RelayMS.AddWithIndex(v, i)
		}
	}
}

func applyCDN(e *schemas.Event, accs []*CDNRaw) {
	b := nonNeg(e.Bytes)
	var e4, e5 uint64
	switch {
	case e.Status >= 400 && e.Status <= 499:
		e4 = 1
	case e.Status >= 500 && e.Status <= 599:
		e5 = 1
	}
	v := float64(nonNeg(e.TTFBMS))
	i := hist.Index(v)
	for _, a := range accs {
		a.Requests++
		a.Bytes += b
		a.Errors4xx += e4
		a.Errors5xx += e5
		a.TTFBMS.AddWithIndex(v, i)
	}
}

func applyOrigin(e *schemas.Event, accs []*OriginRaw) {
	for _, a := range accs {
		a.Samples++
		a.FPSSum += e.FPS
		a.FPSMin = min(a.FPSMin, e.FPS)
		a.BitrateKbpsSum += e.BitrateKbps
		a.BitrateKbpsMin = min(a.BitrateKbpsMin, e.BitrateKbps)
		a.RTTMSSum += e.RTTMS
	}
}

// Merge adds o into c: the same sums the queries take over partitions.
// Distinct users add exactly only when o's users are disjoint from c's (true
// across Kafka partitions of a topic keyed by user_id).
func (c *ClientRaw) Merge(o *ClientRaw) {
	c.Users += o.Users
	c.StutterUsers += o.StutterUsers
	c.StutterUsersVideo += o.StutterUsersVideo
	c.StutterUsersAudio += o.StutterUsersAudio
	c.mergeCounts(o)
}

// mergeCounts merges everything except the distinct-user counts.
func (c *ClientRaw) mergeCounts(o *ClientRaw) {
	c.Stalls += o.Stalls
	c.StallMS += o.StallMS
	c.Samples += o.Samples
	c.StalledSamples += o.StalledSamples
	c.Plays += o.Plays
	c.PlaysOK += o.PlaysOK
	c.PullConnectMS.Merge(&o.PullConnectMS)
	c.FirstFrames += o.FirstFrames
	c.FirstFrameMS.Merge(&o.FirstFrameMS)
	c.FastOpens += o.FastOpens
	c.VideoBufferMSSum += o.VideoBufferMSSum
	c.VideoBufferSamples += o.VideoBufferSamples
	c.AudioBufferMSSum += o.AudioBufferMSSum
	c.AudioBufferSamples += o.AudioBufferSamples
	c.PlayErrors += o.PlayErrors
	c.DNSLookups += o.DNSLookups
	c.DNSHits += o.DNSHits
	c.Pushes += o.Pushes
	c.PushesOK += o.PushesOK
	c.PushConnectMS.Merge(&o.PushConnectMS)
	c.PushEnds += o.PushEnds
	c.PushDrops += o.PushDrops
	c.Relays += o.Relays
	c.RelaysFailed += o.RelaysFailed
	c.RelayMS.Merge(&o.RelayMS)
}

// clone deep-copies c (the histograms keep filling after a provisional snapshot).
func (c *ClientRaw) clone() *ClientRaw {
	d := *c
	d.PullConnectMS = c.PullConnectMS.Clone()
	d.FirstFrameMS = c.FirstFrameMS.Clone()
	d.PushConnectMS = c.PushConnectMS.Clone()
	d.RelayMS = c.RelayMS.Clone()
	return &d
}

// Merge adds o into c.
func (c *CDNRaw) Merge(o *CDNRaw) {
	c.Requests += o.Requests
	c.Bytes += o.Bytes
	c.Errors4xx += o.Errors4xx
	c.Errors5xx += o.Errors5xx
	c.TTFBMS.Merge(&o.TTFBMS)
}

func (c *CDNRaw) clone() *CDNRaw {
	d := *c
	d.TTFBMS = c.TTFBMS.Clone()
	return &d
}

// Merge combines o into c like the queries do: sums add, minimums take the
// smaller, and the key has no data only if no part has samples.
func (c *OriginRaw) Merge(o *OriginRaw) {
	if o.Samples > 0 {
		if c.Samples == 0 {
			c.FPSMin, c.BitrateKbpsMin = o.FPSMin, o.BitrateKbpsMin
		} else {
			c.FPSMin = min(c.FPSMin, o.FPSMin)
			c.BitrateKbpsMin = min(c.BitrateKbpsMin, o.BitrateKbpsMin)
		}
	}
	c.Samples += o.Samples
	c.FPSSum += o.FPSSum
	c.BitrateKbpsSum += o.BitrateKbpsSum
	c.RTTMSSum += o.RTTMSSum
	c.NoData = c.Samples == 0 && (c.NoData || o.NoData)
}
