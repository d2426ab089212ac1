package aggregator

import (
	"github.com/qoscope/qoscope/aggregator/hist"
	"github.com/qoscope/qoscope/schemas"
)

// Metric is one public metric of a row. Valid is false for a rate whose
// denominator is 0, a quantile or mean of nothing, and every metric but
// no_data of an origin no_data row: it renders as JSON null.
type Metric struct {
	Name  string
	Value float64
	Valid bool
	Bool  bool // Value is 0 or 1 and renders as false/true
}

// Quantiles reported for every histogram metric, as <name>_p50, _p90, _p99.
var Quantiles = []struct {
	Suffix string
	P      float64
}{{"_p50", 0.5}, {"_p90", 0.9}, {"_p99", 0.99}}

func count(name string, v uint64) Metric { return Metric{Name: name, Value: float64(v), Valid: true} }

// ratio is num/den, null when den is 0.
func ratio(name string, num, den uint64) Metric {
	if den == 0 {
		return Metric{Name: name}
	}
	return Metric{Name: name, Value: float64(num) / float64(den), Valid: true}
}

func fratio(name string, num float64, den uint64) Metric {
	if den == 0 {
		return Metric{Name: name}
	}
	return Metric{Name: name, Value: num / float64(den), Valid: true}
}

// histMetrics appends <name>_p50, _p90, _p99 and _avg.
func histMetrics(dst []Metric, name string, h *hist.Histogram) []Metric {
	for _, q := range Quantiles {
		v, ok := h.Quantile(q.P)
		dst = append(dst, Metric{Name: name + q.Suffix, Value: v, Valid: ok})
	}
	v, ok := h.Mean()
	return append(dst, Metric{Name: name + "_avg", Value: v, Valid: ok})
}

// ClientMetrics derives the public client metrics from raw accumulators, in
// output order. The definitions (docs/METRICS.md):
//
//	stutter_rate_uv     = stutter_users / users
//	zero_stutter_rate   = (users − stutter_users) / users
//	stutter_rate_pv     = stalled_samples / samples
//	pull_connect_rate   = plays_ok / plays
//	fast_open_rate      = fast_opens / first_frames
//	video_buffer_ms_avg = video_buffer_ms_sum / video_buffer_samples (same for audio)
//	dns_hit_rate        = dns_hits / dns_lookups
//	push_connect_rate   = pushes_ok / pushes
//	push_drop_rate      = push_drops / push_ends
//	relay_fail_rate     = relays_failed / relays
//	<h>_pNN, <h>_avg    = nearest-rank quantile / mean of histogram h, for
//	                      pull_connect_ms, first_frame_ms, push_connect_ms, relay_ms
func ClientMetrics(dst []Metric, c *ClientRaw) []Metric {
	dst = append(dst,
		count("users", c.Users),
		count("stutter_users", c.StutterUsers),
		count("stutter_users_video", c.StutterUsersVideo),
		count("stutter_users_audio", c.StutterUsersAudio),
		ratio("stutter_rate_uv", c.StutterUsers, c.Users),
		ratio("zero_stutter_rate", c.Users-min(c.StutterUsers, c.Users), c.Users),
		count("stalls", c.Stalls),
		count("stall_ms", c.StallMS),
		count("samples", c.Samples),
		count("stalled_samples", c.StalledSamples),
		ratio("stutter_rate_pv", c.StalledSamples, c.Samples),
		count("plays", c.Plays),
		count("plays_ok", c.PlaysOK),
		ratio("pull_connect_rate", c.PlaysOK, c.Plays),
	)
	dst = histMetrics(dst, "pull_connect_ms", &c.PullConnectMS)
	dst = append(dst, count("first_frames", c.FirstFrames))
	dst = histMetrics(dst, "first_frame_ms", &c.FirstFrameMS)
	dst = append(dst,
		ratio("fast_open_rate", c.FastOpens, c.FirstFrames),
		ratio("video_buffer_ms_avg", c.VideoBufferMSSum, c.VideoBufferSamples),
		ratio("audio_buffer_ms_avg", c.AudioBufferMSSum, c.AudioBufferSamples),
		count("play_errors", c.PlayErrors),
		count("dns_lookups", c.DNSLookups),
		ratio("dns_hit_rate", c.DNSHits, c.DNSLookups),
		count("pushes", c.Pushes),
		count("pushes_ok", c.PushesOK),
		ratio("push_connect_rate", c.PushesOK, c.Pushes),
	)
	dst = histMetrics(dst, "push_connect_ms", &c.PushConnectMS)
	dst = append(dst,
		count("push_ends", c.PushEnds),
		count("push_drops", c.PushDrops),
		ratio("push_drop_rate", c.PushDrops, c.PushEnds),
		count("relays", c.Relays),
		count("relays_failed", c.RelaysFailed),
		ratio("relay_fail_rate", c.RelaysFailed, c.Relays),
	)
	return histMetrics(dst, "relay_ms", &c.RelayMS)
}

// CDNMetrics derives the public CDN metrics:
//
//	bandwidth_mbps  = bytes · 8 / 60 / 10^6 (mean over the one-minute window)
//	errors_4xx_rate = errors_4xx / requests; errors_5xx_rate likewise
//	ttfb_ms_pNN, ttfb_ms_avg from the ttfb_ms histogram
func CDNMetrics(dst []Metric, c *CDNRaw) []Metric {
	dst = append(dst,
		count("requests", c.Requests),
		count("bytes", c.Bytes),
		Metric{Name: "bandwidth_mbps", Value: float64(c.Bytes) * 8 / 60 / 1e6, Valid: true},
		count("errors_4xx", c.Errors4xx),
		ratio("errors_4xx_rate", c.Errors4xx, c.Requests),
		count("errors_5xx", c.Errors5xx),
		ratio("errors_5xx_rate", c.Errors5xx, c.Requests),
	)
	return histMetrics(dst, "ttfb_ms", &c.TTFBMS)
}

// OriginMetrics derives the public origin metrics:
//
//	fps_avg = fps_sum / samples, bitrate_kbps_avg, rtt_ms_avg likewise;
//	fps_min, bitrate_kbps_min as stored (null without samples).
//
// A no_data row has no_data = true and every other metric null.
func OriginMetrics(dst []Metric, c *OriginRaw) []Metric {
	nd := Metric{Name: "no_data", Valid: true, Bool: true}
	if c.NoData {
		nd.Value = 1
		return append(dst, nd,
			Metric{Name: "samples"}, Metric{Name: "fps_avg"}, Metric{Name: "fps_min"},
			Metric{Name: "bitrate_kbps_avg"}, Metric{Name: "bitrate_kbps_min"}, Metric{Name: "rtt_ms_avg"})
	}
	has := c.Samples > 0
	return append(dst, nd,
		count("samples", c.Samples),
		fratio("fps_avg", c.FPSSum, c.Samples),
		Metric{Name: "fps_min", Value: c.FPSMin, Valid: has},
		fratio("bitrate_kbps_avg", c.BitrateKbpsSum, c.Samples),
		Metric{Name: "bitrate_kbps_min", Value: c.BitrateKbpsMin, Valid: has},
		fratio("rtt_ms_avg", c.RTTMSSum, c.Samples),
	)
}

// MetricNames lists the public metric names of a source, in output order.
func MetricNames(s schemas.Source) []string {
	var ms []Metric
	switch s {
	case schemas.SourceClient:
		ms = ClientMetrics(nil, &ClientRaw{})
	case schemas.SourceCDN:
		ms = CDNMetrics(nil, &CDNRaw{})
	case schemas.SourceOrigin:
		ms = OriginMetrics(nil, &OriginRaw{})
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return names
}
