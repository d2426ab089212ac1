package query

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/schemas"
)

func defaultCatalog(t *testing.T) *Catalog {
	t.Helper()
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return NewCatalog(plan)
}

// Every metric the aggregator emits (its offline NDJSON names) is in the
// catalogue, and every catalogue metric marked Offline is emitted.
func TestCatalogueMatchesAggregatorMetrics(t *testing.T) {
	cat := defaultCatalog(t)
	for _, name := range []string{"client", "cdn", "origin"} {
		src, _ := schemas.ParseSource(name)
		emitted := aggregator.MetricNames(src)
		si, err := cat.Source(name)
		if err != nil {
			t.Fatal(err)
		}
		var offline []string
		for _, m := range si.Metrics {
			if m.Offline {
				offline = append(offline, m.Name)
			}
		}
		if !slices.Equal(offline, emitted) {
			t.Errorf("%s: catalogue (offline, in order)\n %q\naggregator emits\n %q", name, offline, emitted)
		}
	}
}

// Each kind has what its derivation needs, names are unique, and every
// column a derivation names is one of the raw columns the aggregator
// writes (or a rollup's renaming of one).
func TestCatalogueDefinitionsAreComplete(t *testing.T) {
	cat := defaultCatalog(t)
	raw := map[string][]string{
		"client": rawCols(aggregator.ClientRaw{}), "cdn": rawCols(aggregator.CDNRaw{}), "origin": rawCols(aggregator.OriginRaw{}),
	}
	for _, si := range cat.Sources() {
		seen := map[string]bool{}
		for _, m := range si.Metrics {
			if seen[m.Name] {
				t.Errorf("%s.%s listed twice", si.Name, m.Name)
			}
			seen[m.Name] = true
			if m.Unit == "" || m.Description == "" || len(m.Periods) == 0 {
				t.Errorf("%s.%s: unit, description and periods are required: %+v", si.Name, m.Name, m)
			}
			switch m.Kind {
			case KindRate:
				if m.Numerator == "" || m.Denominator == "" {
					t.Errorf("%s.%s: a rate needs numerator and denominator", si.Name, m.Name)
				}
			case KindMean:
				if m.Numerator == "" || (m.Denominator == "") == (m.Histogram == "") {
					t.Errorf("%s.%s: a mean needs a numerator and one of denominator, histogram", si.Name, m.Name)
				}
			case KindQuantile:
				if m.Histogram == "" || m.Percentile <= 0 || m.Percentile >= 100 {
					t.Errorf("%s.%s: a quantile needs a histogram and a percentile", si.Name, m.Name)
				}
			case KindThroughput:
				if m.Numerator == "" {
					t.Errorf("%s.%s: a throughput needs a numerator", si.Name, m.Name)
				}
			case KindCount, KindSum, KindGauge:
			default:
				t.Errorf("%s.%s: unknown kind %q", si.Name, m.Name, m.Kind)
			}
			if m.Has(PeriodMinute) {
				for _, c := range append(m.Inputs(PeriodMinute), m.Column(PeriodMinute)) {
					if c != m.Name && !slices.Contains(raw[si.Name], c) {
						t.Errorf("%s.%s: column %s is not a raw column of %s_minute", si.Name, m.Name, c, si.Name)
					}
				}
			}
			if !slices.Equal(m.Dimensions, si.Dimensions) {
				t.Errorf("%s.%s: dimensions %v, want the source's %v", si.Name, m.Name, m.Dimensions, si.Dimensions)
			}
		}
	}
}

func rawCols(v any) []string {
	var out []string
	switch v.(type) {
	case aggregator.ClientRaw:
		out = []string{"samples", "stalled_samples", "video_buffer_ms_sum", "video_buffer_samples", "audio_buffer_ms_sum", "audio_buffer_samples",
			"users", "stutter_users", "stutter_users_video", "stutter_users_audio", "stalls", "stall_ms", "plays", "plays_ok", "play_errors",
			"dns_lookups", "dns_hits", "first_frames", "fast_opens", "pushes", "pushes_ok", "push_ends", "push_drops", "relays", "relays_failed"}
		for _, h := range []string{"pull_connect_ms", "first_frame_ms", "push_connect_ms", "relay_ms"} {
			out = append(out, h+"_sum", h+"_hist")
		}
	case aggregator.CDNRaw:
		out = []string{"requests", "bytes", "errors_4xx", "errors_5xx", "ttfb_ms_sum", "ttfb_ms_hist"}
	case aggregator.OriginRaw:
		out = []string{"samples", "fps_sum", "fps_min", "bitrate_kbps_sum", "bitrate_kbps_min", "rtt_ms_sum", "no_data"}
	}
	return out
}

func TestCatalogueLookupErrorsListValidNames(t *testing.T) {
	cat := defaultCatalog(t)
	if m, err := cat.Metric("client", "stutter_rate_uv"); err != nil || m.Kind != KindRate || m.Numerator != "stutter_users" || m.Denominator != "users" {
		t.Errorf("stutter_rate_uv: %+v, %v", m, err)
	}
	_, err := cat.Metric("client", "stuter_rate")
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Param != "metric" || !strings.Contains(err.Error(), "stutter_rate_uv, zero_stutter_rate") {
		t.Errorf("unknown metric: %v", err)
	}
	if _, err := cat.Metric("cdn", "users"); err == nil || !strings.Contains(err.Error(), "bandwidth_mbps") {
		t.Errorf("client metric asked of cdn: %v", err)
	}
	if _, err := cat.Source("edge"); err == nil || !strings.Contains(err.Error(), "client, cdn, origin") {
		t.Errorf("unknown source: %v", err)
	}
	gs, err := cat.GroupingSetFor("client", []string{"isp", "province", "vendor"}, "group_by")
	if err != nil || gs.Name != "vendor,province,isp" {
		t.Errorf("isp,province,vendor: %+v, %v", gs, err)
	}
	_, err = cat.GroupingSetFor("client", []string{"stream_id", "province"}, "group_by")
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "(total) [province] [isp] [province,isp] [vendor] [vendor,province,isp] [stream_id]") {
		t.Errorf("missing set: %v", err)
	}
	if _, err := cat.GroupingSetFor("client", []string{"city"}, "by"); !errors.As(err, &ve) || ve.Param != "by" || !strings.Contains(err.Error(), "province, isp, vendor") {
		t.Errorf("unknown dimension: %v", err)
	}
}

// Non-default grouping sets give other dimensions and sets.
func TestCatalogueFollowsConfiguredGroupingSets(t *testing.T) {
	cfg := aggregator.DefaultConfig()
	cfg.GroupingSets.Client = [][]string{{}, {"country", "city"}}
	cfg.GroupingSets.Origin = [][]string{{"stream_id", "line", "quality"}}
	plan, err := aggregator.NewPlan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cat := NewCatalog(plan)
	m, _ := cat.Metric("client", "users")
	if !slices.Equal(m.Dimensions, []string{"country", "city"}) {
		t.Errorf("users dimensions: %v", m.Dimensions)
	}
	if gs, err := cat.GroupingSetFor("client", []string{"city", "country"}, "group_by"); err != nil || gs.Name != "country,city" {
		t.Errorf("city,country: %+v, %v", gs, err)
	}
	if _, err := cat.GroupingSetFor("client", []string{"province"}, "group_by"); err == nil {
		t.Error("province is not configured, want an error")
	}
	si, _ := cat.Source("origin")
	if !slices.Equal(si.Dimensions, []string{"stream_id", "line", "quality"}) || si.Views[PeriodHour] != "origin_hour_metrics" || si.Tables[PeriodDay] != "origin_day" {
		t.Errorf("origin: %+v", si)
	}
}

func TestMetricNamesOverMinutes(t *testing.T) {
	cat := defaultCatalog(t)
	u, _ := cat.Metric("client", "users")
	if u.NameFor(false) != "users" || u.NameFor(true) != "users_sum_of_minutes" || u.Column(PeriodHour) != "user_minutes" {
		t.Errorf("users: %q %q %q", u.NameFor(false), u.NameFor(true), u.Column(PeriodHour))
	}
	r, _ := cat.Metric("client", "stutter_rate_uv")
	if r.NameFor(true) != "stutter_rate_uv" || !slices.Equal(r.Inputs(PeriodDay), []string{"stutter_user_minutes", "user_minutes"}) {
		t.Errorf("stutter_rate_uv: %q %v", r.NameFor(true), r.Inputs(PeriodDay))
	}
	nd, _ := cat.Metric("origin", "no_data")
	if nd.NameFor(true) != "no_data_minutes" || nd.Column(PeriodDay) != "no_data_minutes" {
		t.Errorf("no_data: %q %q", nd.NameFor(true), nd.Column(PeriodDay))
	}
}

// Every rate or mean with a denominator divides by a count metric of its
// own source, whose unit names what a point's n counts, or by a raw
// *_samples column (the heartbeats that report a buffer length); quantiles
// and histogram means are over samples; counts and sums over nothing.
func TestBasisUnits(t *testing.T) {
	cat := defaultCatalog(t)
	for _, si := range cat.Sources() {
		for _, m := range si.Metrics {
			if m.Denominator == "" {
				continue
			}
			if strings.HasSuffix(m.Denominator, "_samples") {
				continue
			}
			d, err := cat.Metric(si.Name, m.Denominator)
			if err != nil || d.Kind != KindCount {
				t.Errorf("%s.%s divides by %s, not a count metric of %s: %v", si.Name, m.Name, m.Denominator, si.Name, err)
			}
		}
	}
	for _, c := range []struct {
		source, metric string
		overMinutes    bool
		want           string
	}{
		{"client", "stutter_rate_uv", false, "users"},
		{"client", "zero_stutter_rate", true, "user-minutes"},
		{"client", "push_drop_rate", false, "pushes"},
		{"client", "pull_connect_rate", true, "attempts"},
		{"client", "first_frame_ms_p90", false, "samples"},
		{"client", "first_frame_ms_avg", false, "samples"},
		{"client", "video_buffer_ms_avg", true, "samples"},
		{"cdn", "errors_5xx_rate", false, "requests"},
		{"origin", "fps_avg", false, "samples"},
		{"client", "users", false, ""},
		{"cdn", "bandwidth_mbps", false, ""},
		{"origin", "fps_min", false, ""},
	} {
		m, err := cat.Metric(c.source, c.metric)
		if err != nil {
			t.Fatal(err)
		}
		if got := cat.basisUnit(c.source, m, c.overMinutes); got != c.want {
			t.Errorf("%s.%s (over minutes %v): n counts %q, want %q", c.source, c.metric, c.overMinutes, got, c.want)
		}
		if (basisExpr(m, PeriodMinute) == "") != (c.want == "") {
			t.Errorf("%s.%s: basisExpr %q disagrees with unit %q", c.source, c.metric, basisExpr(m, PeriodMinute), c.want)
		}
	}
}
