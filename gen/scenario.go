package gen

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qoscope/qoscope/internal/config"
)

// Scenario files are decoded on top of the embedded baseline.yaml, so a
// scenario only states what differs (usually just its incidents). Keys are
// checked strictly: a typo is an error naming the key, never a silent default.

//go:embed scenarios/*.yaml
var scenarioFS embed.FS

// BaseScenario is the scenario every other one is decoded on top of.
const BaseScenario = "baseline"

// Scenario describes the simulated world and the incidents injected into it.
// Every field is documented in gen/README.md.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`

	// Users is the number of concurrent user slots (viewers and on-mic users).
	Users int `yaml:"users"`
	// Duration is the simulated time when --duration is not given.
	Duration time.Duration `yaml:"duration"`
	// RampUp spreads the audience's first joins over this long.
	RampUp time.Duration `yaml:"ramp_up"`

	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	CDNLogInterval    time.Duration `yaml:"cdn_log_interval"`
	OriginInterval    time.Duration `yaml:"origin_interval"`

	Country   string     `yaml:"country"`
	ISPs      []Weighted `yaml:"isps"`
	Provinces []Province `yaml:"provinces"`
	Platforms []Platform `yaml:"platforms"`
	Qualities []Quality  `yaml:"qualities"`
	Streams   Streams    `yaml:"streams"`
	Vendors   []Vendor   `yaml:"vendors"`
	Playback  Playback   `yaml:"playback"`
	Push      Push       `yaml:"push"`
	DNS       DNS        `yaml:"dns"`
	Origin    Origin     `yaml:"origin"`

	Incidents []Incident `yaml:"incidents"`
}

// Weighted is a name drawn with probability weight/sum(weights).
type Weighted struct {
	Name   string  `yaml:"name"`
	Weight float64 `yaml:"weight"`
}

// Province is a province (canonical name of the IP table) and its share of
// users; ISPs, when set, replaces the scenario's carrier mix there.
type Province struct {
	Name   string     `yaml:"name"`
	Weight float64    `yaml:"weight"`
	ISPs   []Weighted `yaml:"isps"`
}

// Platform is a client platform with its client versions.
type Platform struct {
	Name     string     `yaml:"name"`
	Weight   float64    `yaml:"weight"`
	Versions []Weighted `yaml:"versions"`
}

// Quality is a transcoding tier viewers can pick.
type Quality struct {
	Name        string  `yaml:"name"`
	Weight      float64 `yaml:"weight"`
	BitrateKbps float64 `yaml:"bitrate_kbps"`
	FPS         float64 `yaml:"fps"`
}

// Streams describes the live rooms.
type Streams struct {
	Count    int    `yaml:"count"`
	IDPrefix string `yaml:"id_prefix"`
	// Zipf: room k (1-based) draws audience with weight 1/k^zipf.
	Zipf float64 `yaml:"zipf"`
	// Cohosts is the distribution of on-mic co-hosts per room.
	Cohosts []CountWeight `yaml:"cohosts"`
	// BitrateKbps and FPS of the host's push (the "origin" tier).
	BitrateKbps float64 `yaml:"bitrate_kbps"`
	FPS         float64 `yaml:"fps"`
}

// CountWeight is a count drawn with probability weight/sum(weights).
type CountWeight struct {
	Count  int     `yaml:"count"`
	Weight float64 `yaml:"weight"`
}

// Vendor is a CDN vendor.
type Vendor struct {
	Name string `yaml:"name"`
	// Share is the default traffic weight of the vendor in every region.
	Share float64 `yaml:"share"`
	// GuaranteedMbps and MaxMbps are the committed and maximum bandwidth for
	// the scenario's users (scaled when --users differs). New sessions never
	// go to a vendor at its maximum while another has room, and above 90% of
	// the maximum its rebuffering grows (congestion).
	GuaranteedMbps float64 `yaml:"guaranteed_mbps"`
	MaxMbps        float64 `yaml:"max_mbps"`
	// NodesPerRegion is the number of edge nodes per province×ISP.
	NodesPerRegion int `yaml:"nodes_per_region"`
	// Health of the vendor relative to playback's base values.
	StallRateX      float64   `yaml:"stall_rate_x"`
	FirstFrameX     float64   `yaml:"first_frame_x"`
	ConnectFailRate float64   `yaml:"connect_fail_rate"`
	HTTPErrorRate   float64   `yaml:"http_error_rate"`
	TTFBMS          LogNormal `yaml:"ttfb_ms"`
	// Regions override the share (and health) in one province×ISP.
	Regions []VendorRegion `yaml:"regions"`
}

// VendorRegion overrides a vendor's share in one province and ISP ("" = any).
type VendorRegion struct {
	Province   string   `yaml:"province"`
	ISP        string   `yaml:"isp"`
	Share      float64  `yaml:"share"`
	StallRateX *float64 `yaml:"stall_rate_x"`
}

// LogNormal is a log-normal distribution: Median is e^mu, Sigma the standard
// deviation of ln(x); Max (optional) caps a draw. The unit is the key's.
type LogNormal struct {
	Median float64 `yaml:"median"`
	Sigma  float64 `yaml:"sigma"`
	Max    float64 `yaml:"max"`
}

// Playback is the pull side's base behaviour (before vendor health and
// incidents).
type Playback struct {
	FirstFrameMS LogNormal `yaml:"first_frame_ms"`
	// ConnectShare bounds connect_ms as a uniform share of first_frame_ms.
	ConnectShare [2]float64 `yaml:"connect_share"`
	// ConnectTimeoutMS is connect_ms of attempts that time out.
	ConnectTimeoutMS int64 `yaml:"connect_timeout_ms"`
	// Errors of failed connects, with the CDN status each leaves in CDN logs.
	Errors      []ConnectError `yaml:"errors"`
	MaxAttempts int            `yaml:"max_attempts"`
	RetryDelay  time.Duration  `yaml:"retry_delay"`
	// RebuffersPerMin is the Poisson rate of buffer-empty periods per playing
	// user-minute; their lengths follow RebufferMS. Only those of at least
	// 2000 ms are stalls (卡顿).
	RebuffersPerMin float64   `yaml:"rebuffers_per_min"`
	RebufferMS      LogNormal `yaml:"rebuffer_ms"`
	// AudioShare is the share of buffer-empty periods on the audio track.
	AudioShare float64 `yaml:"audio_share"`
	// A stall of at least QuitAfterStallMS makes the viewer leave (reason
	// "error") with probability QuitProb.
	QuitAfterStallMS int64   `yaml:"quit_after_stall_ms"`
	QuitProb         float64 `yaml:"quit_prob"`
	// WatchS is the length of a viewing session in seconds; GapS the pause
	// before the user slot plays again.
	WatchS LogNormal `yaml:"watch_s"`
	GapS   LogNormal `yaml:"gap_s"`
	// EOSShare of sessions end because the show segment ended ("eos").
	EOSShare float64 `yaml:"eos_share"`
	// Buffer targets (ms) of audience (CDN, FLV/HLS) and on-mic (RTC) players.
	AudienceBuffer Buffers `yaml:"audience_buffer"`
	OnMicBuffer    Buffers `yaml:"on_mic_buffer"`
}

// ConnectError is one failure kind of a pull connect.
type ConnectError struct {
	Name   string  `yaml:"name"`
	Weight float64 `yaml:"weight"`
	// Status is the HTTP status in the CDN log; 0 means the request never
	// reached the CDN (no CDN log line).
	Status int `yaml:"status"`
	// Timeout: connect_ms is playback.connect_timeout_ms.
	Timeout bool `yaml:"timeout"`
}

// Buffers are player buffer targets in ms.
type Buffers struct {
	VideoMS float64 `yaml:"video_ms"`
	AudioMS float64 `yaml:"audio_ms"`
}

// Push is the push side (hosts and co-hosts) and relays (转推) to the CDNs.
type Push struct {
	ConnectMS       LogNormal     `yaml:"connect_ms"`
	ConnectFailRate float64       `yaml:"connect_fail_rate"`
	Errors          []Weighted    `yaml:"errors"`
	DropsPerHour    float64       `yaml:"drops_per_hour"`
	ReconnectDelay  time.Duration `yaml:"reconnect_delay"`
	// CohostMicS is how long a co-host stays on the mic (连麦), seconds,
	// before leaving it: a push_end that is not a drop. Without it every
	// push that ends is a drop and the push drop rate reads 100 %.
	// Median 0: co-hosts never leave. Hosts push for the whole run.
	CohostMicS LogNormal `yaml:"cohost_mic_s"`
	// CohostOffS is how long a co-host stays off the mic before joining
	// again (a new push session), seconds.
	CohostOffS    LogNormal `yaml:"cohost_off_s"`
	RelayMS       LogNormal `yaml:"relay_ms"`
	RelayFailRate float64   `yaml:"relay_fail_rate"`
	RelayRetries  int       `yaml:"relay_retries"`
}

// DNS is the httpdns lookup done before each connect.
type DNS struct {
	CacheHitRate float64 `yaml:"cache_hit_rate"`
}

// Origin describes the origin (live source) lines reporting origin_stats.
type Origin struct {
	Lines []OriginLine `yaml:"lines"`
	// BitrateJitter and FPSJitter are relative standard deviations.
	BitrateJitter float64 `yaml:"bitrate_jitter"`
	FPSJitter     float64 `yaml:"fps_jitter"`
}

// OriginLine is one of the dual hot ingest lines of every stream.
type OriginLine struct {
	Name      string    `yaml:"name"`
	Node      string    `yaml:"node"`
	EgressISP string    `yaml:"egress_isp"`
	RTTMS     LogNormal `yaml:"rtt_ms"`
}

// Incident is one injected fault, active in [From, To) of simulated time.
// Exactly one of the kind sections is set.
type Incident struct {
	Name string        `yaml:"name"`
	From time.Duration `yaml:"from"`
	To   time.Duration `yaml:"to"`

	CDNDegradation    *CDNDegradation    `yaml:"cdn_degradation"`
	OriginBitrateDrop *OriginBitrateDrop `yaml:"origin_bitrate_drop"`
	PushFailure       *PushFailure       `yaml:"push_failure"`
	OriginSilent      *OriginSilent      `yaml:"origin_silent"`
}

// CDNDegradation degrades one vendor, optionally only in one province and
// ISP: viewers there rebuffer more often and longer, open slower, fail more
// connects, and the vendor's logs show slower TTFB and more 5xx.
type CDNDegradation struct {
	Vendor          string  `yaml:"vendor"`
	Province        string  `yaml:"province"`
	ISP             string  `yaml:"isp"`
	StallRateX      float64 `yaml:"stall_rate_x"`
	StallDurationX  float64 `yaml:"stall_duration_x"`
	FirstFrameX     float64 `yaml:"first_frame_x"`
	ConnectFailRate float64 `yaml:"connect_fail_rate"`
	TTFBX           float64 `yaml:"ttfb_x"`
	HTTPErrorRate   float64 `yaml:"http_error_rate"`
}

// OriginBitrateDrop scales a stream's upstream bitrate (and optionally fps)
// on one line or both; viewers of the stream may stall more.
type OriginBitrateDrop struct {
	Stream           string  `yaml:"stream"`
	Line             string  `yaml:"line"`
	Factor           float64 `yaml:"factor"`
	FPSFactor        float64 `yaml:"fps_factor"`
	ViewerStallRateX float64 `yaml:"viewer_stall_rate_x"`
}

// PushFailure raises push connect failures, drops and relay failures, for
// every pusher or only those of a stream, province or ISP.
type PushFailure struct {
	Stream          string  `yaml:"stream"`
	Province        string  `yaml:"province"`
	ISP             string  `yaml:"isp"`
	ConnectFailRate float64 `yaml:"connect_fail_rate"`
	DropsPerHour    float64 `yaml:"drops_per_hour"`
	RelayFailRate   float64 `yaml:"relay_fail_rate"`
}

// OriginSilent stops a stream's origin_stats on one line or both.
type OriginSilent struct {
	Stream string `yaml:"stream"`
	Line   string `yaml:"line"`
}

// ScenarioNames lists the embedded scenarios.
func ScenarioNames() []string {
	ents, _ := fs.ReadDir(scenarioFS, "scenarios")
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// LoadScenario returns the file at path when path is set, else the embedded
// scenario called name ("" is the baseline).
func LoadScenario(name, path string) (*Scenario, error) {
	var b []byte
	var err error
	label := BaseScenario
	switch {
	case path != "":
		label = path
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("cannot read scenario file: %w", err)
		}
	case name != "" && name != BaseScenario:
		label = name
		if b, err = scenarioFS.ReadFile("scenarios/" + name + ".yaml"); err != nil {
			return nil, fmt.Errorf("unknown scenario %q (embedded: %s; or use --scenario-file)", name, strings.Join(ScenarioNames(), ", "))
		}
	}
	s, err := ParseScenario(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", label, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(label, ".yaml")
	}
	return s, nil
}

// ParseScenario decodes b on top of the embedded baseline (b empty: the
// baseline itself) and validates the result. A scenario's name, description
// and incidents are its own, never inherited from the baseline.
func ParseScenario(b []byte) (*Scenario, error) {
	base, err := scenarioFS.ReadFile("scenarios/" + BaseScenario + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("cannot read embedded baseline: %w", err)
	}
	var s Scenario
	if err := decodeScenario(base, &s); err != nil {
		return nil, fmt.Errorf("embedded baseline: %w", err)
	}
	if len(b) > 0 {
		s.Name, s.Description, s.Incidents = "", "", nil
		if err := decodeScenario(b, &s); err != nil {
			return nil, err
		}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

var (
	lineRE  = regexp.MustCompile(`line (\d+): `)
	valueRE = regexp.MustCompile("`([^`]*)`")
)

// decodeScenario decodes strictly and rewrites yaml's "line N: ..." errors to
// also name the key at that line, since type errors alone do not.
func decodeScenario(b []byte, s *Scenario) error {
	err := config.DecodeYAML(b, s)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	keys := keysByLine(b)
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		sub := lineRE.FindStringSubmatchIndex(m)
		if sub == nil {
			continue
		}
		n, _ := strconv.Atoi(m[sub[2]:sub[3]])
		cands := keys[n]
		if len(cands) == 0 {
			continue
		}
		// Several keys can share a line ({median: x, sigma: y}): pick the
		// one whose value the message quotes.
		path := cands[0].path
		if v := valueRE.FindStringSubmatch(m); v != nil {
			for _, c := range cands {
				if c.value == v[1] {
					path = c.path
					break
				}
			}
		}
		msgs[i] = fmt.Sprintf("line %d (%s): %s", n, path, m[sub[1]:])
	}
	return errors.New(strings.Join(msgs, "; "))
}

type keyAt struct{ path, value string }

// keysByLine maps a line number to the dotted key paths starting on it
// ("incidents[0].from") with their scalar values.
func keysByLine(b []byte) map[int][]keyAt {
	var root yaml.Node
	if yaml.NewDecoder(bytes.NewReader(b)).Decode(&root) != nil {
		return nil
	}
	out := map[int][]keyAt{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if v.Kind == yaml.ScalarNode {
					out[v.Line] = append(out[v.Line], keyAt{p, v.Value})
				} else {
					out[k.Line] = append(out[k.Line], keyAt{p, ""})
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode {
					out[c.Line] = append(out[c.Line], keyAt{p, c.Value})
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return out
}

// Validate reports every problem, each prefixed by its key path.
func (s *Scenario) Validate() error {
	var e config.Errors
	if s.Users <= 0 {
		e.Addf("users: must be positive")
	}
	if s.Duration <= 0 {
		e.Addf("duration: must be positive")
	}
	if s.RampUp < 0 {
		e.Addf("ramp_up: must not be negative")
	}
	for _, kd := range []struct {
		key string
		d   time.Duration
	}{{"heartbeat_interval", s.HeartbeatInterval}, {"cdn_log_interval", s.CDNLogInterval}, {"origin_interval", s.OriginInterval}} {
		if kd.d < 100*time.Millisecond || kd.d > 10*time.Minute {
			e.Addf("%s: %s is outside [100ms, 10m]", kd.key, kd.d)
		}
	}
	if s.Country == "" {
		e.Addf("country: required")
	}
	checkWeights(&e, "isps", s.ISPs)
	if len(s.Provinces) == 0 {
		e.Addf("provinces: at least one is required")
	}
	seen := map[string]bool{}
	sum := 0.0
	for i, p := range s.Provinces {
		k := fmt.Sprintf("provinces[%d]", i)
		if p.Name == "" {
			e.Addf("%s.name: required", k)
		} else if seen[p.Name] {
			e.Addf("%s.name: %q listed twice", k, p.Name)
		}
		seen[p.Name] = true
		if p.Weight < 0 || math.IsNaN(p.Weight) {
			e.Addf("%s.weight: must not be negative", k)
		}
		sum += p.Weight
		if p.ISPs != nil {
			checkWeights(&e, k+".isps", p.ISPs)
		}
	}
	if len(s.Provinces) > 0 && sum <= 0 {
		e.Addf("provinces: weights sum to zero")
	}
	pw := make([]Weighted, len(s.Platforms))
	for i, p := range s.Platforms {
		pw[i] = Weighted{p.Name, p.Weight}
		checkWeights(&e, fmt.Sprintf("platforms[%d].versions", i), p.Versions)
	}
	checkWeights(&e, "platforms", pw)
	qw := make([]Weighted, len(s.Qualities))
	for i, q := range s.Qualities {
		qw[i] = Weighted{q.Name, q.Weight}
		if q.BitrateKbps <= 0 {
			e.Addf("qualities[%d].bitrate_kbps: must be positive", i)
		}
		if q.FPS <= 0 {
			e.Addf("qualities[%d].fps: must be positive", i)
		}
	}
	checkWeights(&e, "qualities", qw)

	st := &s.Streams
	if st.Count <= 0 {
		e.Addf("streams.count: must be positive")
	}
	if st.IDPrefix == "" {
		e.Addf("streams.id_prefix: required")
	}
	if st.Zipf < 0 {
		e.Addf("streams.zipf: must not be negative")
	}
	if st.BitrateKbps <= 0 {
		e.Addf("streams.bitrate_kbps: must be positive")
	}
	if st.FPS <= 0 {
		e.Addf("streams.fps: must be positive")
	}
	cw := 0.0
	for i, c := range st.Cohosts {
		if c.Count < 0 || c.Count > 8 {
			e.Addf("streams.cohosts[%d].count: must be in [0, 8]", i)
		}
		if c.Weight < 0 {
			e.Addf("streams.cohosts[%d].weight: must not be negative", i)
		}
		cw += c.Weight
	}
	if len(st.Cohosts) > 0 && cw <= 0 {
		e.Addf("streams.cohosts: weights sum to zero")
	}

	if len(s.Vendors) == 0 {
		e.Addf("vendors: at least one is required")
	}
	vendors := map[string]bool{}
	for i := range s.Vendors {
		v := &s.Vendors[i]
		k := fmt.Sprintf("vendors[%d]", i)
		if v.Name == "" {
			e.Addf("%s.name: required", k)
		} else if vendors[v.Name] {
			e.Addf("%s.name: %q listed twice", k, v.Name)
		}
		vendors[v.Name] = true
		if v.Share < 0 {
			e.Addf("%s.share: must not be negative", k)
		}
		if v.MaxMbps <= 0 {
			e.Addf("%s.max_mbps: must be positive", k)
		}
		if v.GuaranteedMbps < 0 || v.GuaranteedMbps > v.MaxMbps {
			e.Addf("%s.guaranteed_mbps: must be in [0, max_mbps]", k)
		}
		if v.NodesPerRegion <= 0 || v.NodesPerRegion > 99 {
			e.Addf("%s.nodes_per_region: must be in [1, 99]", k)
		}
		if v.StallRateX <= 0 {
			e.Addf("%s.stall_rate_x: must be positive", k)
		}
		if v.FirstFrameX <= 0 {
			e.Addf("%s.first_frame_x: must be positive", k)
		}
		checkRate(&e, k+".connect_fail_rate", v.ConnectFailRate)
		checkRate(&e, k+".http_error_rate", v.HTTPErrorRate)
		checkLogNormal(&e, k+".ttfb_ms", v.TTFBMS)
		for j, r := range v.Regions {
			rk := fmt.Sprintf("%s.regions[%d]", k, j)
			if r.Province != "" && !seen[r.Province] {
				e.Addf("%s.province: %q is not in provinces", rk, r.Province)
			}
			if r.Share < 0 {
				e.Addf("%s.share: must not be negative", rk)
			}
			if r.StallRateX != nil && *r.StallRateX <= 0 {
				e.Addf("%s.stall_rate_x: must be positive", rk)
			}
		}
	}

	p := &s.Playback
	checkLogNormal(&e, "playback.first_frame_ms", p.FirstFrameMS)
	if !(p.ConnectShare[0] > 0 && p.ConnectShare[0] <= p.ConnectShare[1] && p.ConnectShare[1] < 1) {
		e.Addf("playback.connect_share: want [lo, hi] with 0 < lo <= hi < 1")
	}
	if p.ConnectTimeoutMS <= 0 {
		e.Addf("playback.connect_timeout_ms: must be positive")
	}
	ew := make([]Weighted, len(p.Errors))
	for i, ce := range p.Errors {
		ew[i] = Weighted{ce.Name, ce.Weight}
		if ce.Status != 0 && (ce.Status < 100 || ce.Status > 599) {
			e.Addf("playback.errors[%d].status: %d is not an HTTP status", i, ce.Status)
		}
	}
	checkWeights(&e, "playback.errors", ew)
	if p.MaxAttempts < 1 {
		e.Addf("playback.max_attempts: must be at least 1")
	}
	if p.RetryDelay < 0 {
		e.Addf("playback.retry_delay: must not be negative")
	}
	if p.RebuffersPerMin < 0 {
		e.Addf("playback.rebuffers_per_min: must not be negative")
	}
	checkLogNormal(&e, "playback.rebuffer_ms", p.RebufferMS)
	checkRate(&e, "playback.audio_share", p.AudioShare)
	if p.QuitAfterStallMS <= 0 {
		e.Addf("playback.quit_after_stall_ms: must be positive")
	}
	checkRate(&e, "playback.quit_prob", p.QuitProb)
	checkLogNormal(&e, "playback.watch_s", p.WatchS)
	checkLogNormal(&e, "playback.gap_s", p.GapS)
	checkRate(&e, "playback.eos_share", p.EOSShare)
	if p.AudienceBuffer.VideoMS <= 0 || p.AudienceBuffer.AudioMS <= 0 {
		e.Addf("playback.audience_buffer: video_ms and audio_ms must be positive")
	}
	if p.OnMicBuffer.VideoMS <= 0 || p.OnMicBuffer.AudioMS <= 0 {
		e.Addf("playback.on_mic_buffer: video_ms and audio_ms must be positive")
	}

	ps := &s.Push
	checkLogNormal(&e, "push.connect_ms", ps.ConnectMS)
	checkRate(&e, "push.connect_fail_rate", ps.ConnectFailRate)
	checkWeights(&e, "push.errors", ps.Errors)
	if ps.DropsPerHour < 0 {
		e.Addf("push.drops_per_hour: must not be negative")
	}
	if ps.ReconnectDelay <= 0 {
		e.Addf("push.reconnect_delay: must be positive")
	}
	if ps.CohostMicS.Median != 0 { // 0: co-hosts never leave the mic
		checkLogNormal(&e, "push.cohost_mic_s", ps.CohostMicS)
		checkLogNormal(&e, "push.cohost_off_s", ps.CohostOffS)
	}
	checkLogNormal(&e, "push.relay_ms", ps.RelayMS)
	checkRate(&e, "push.relay_fail_rate", ps.RelayFailRate)
	if ps.RelayRetries < 0 {
		e.Addf("push.relay_retries: must not be negative")
	}
	checkRate(&e, "dns.cache_hit_rate", s.DNS.CacheHitRate)

	lines := map[string]bool{}
	if len(s.Origin.Lines) == 0 {
		e.Addf("origin.lines: at least one is required")
	}
	for i, l := range s.Origin.Lines {
		k := fmt.Sprintf("origin.lines[%d]", i)
		if l.Name == "" {
			e.Addf("%s.name: required", k)
		} else if lines[l.Name] {
			e.Addf("%s.name: %q listed twice", k, l.Name)
		}
		lines[l.Name] = true
		if l.Node == "" {
			e.Addf("%s.node: required", k)
		}
		checkLogNormal(&e, k+".rtt_ms", l.RTTMS)
	}
	if s.Origin.BitrateJitter < 0 || s.Origin.BitrateJitter > 0.5 {
		e.Addf("origin.bitrate_jitter: must be in [0, 0.5]")
	}
	if s.Origin.FPSJitter < 0 || s.Origin.FPSJitter > 0.5 {
		e.Addf("origin.fps_jitter: must be in [0, 0.5]")
	}

	for i := range s.Incidents {
		s.Incidents[i].validate(fmt.Sprintf("incidents[%d]", i), s, vendors, seen, lines, &e)
	}
	return e.Err()
}

func (in *Incident) validate(k string, s *Scenario, vendors, provinces, lines map[string]bool, e *config.Errors) {
	if in.From < 0 {
		e.Addf("%s.from: must not be negative", k)
	}
	if in.To <= in.From {
		e.Addf("%s.to: must be after from (%s)", k, in.From)
	}
	n := 0
	for _, set := range []bool{in.CDNDegradation != nil, in.OriginBitrateDrop != nil, in.PushFailure != nil, in.OriginSilent != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		e.Addf("%s: exactly one of cdn_degradation, origin_bitrate_drop, push_failure, origin_silent is required", k)
		return
	}
	stream := func(key, id string, required bool) {
		switch {
		case id == "" && required:
			e.Addf("%s: required", key)
		case id != "" && !strings.HasPrefix(id, s.Streams.IDPrefix):
			e.Addf("%s: %q does not start with streams.id_prefix %q", key, id, s.Streams.IDPrefix)
		}
	}
	line := func(key, l string) {
		if l != "" && !lines[l] {
			e.Addf("%s: %q is not one of origin.lines", key, l)
		}
	}
	province := func(key, p string) {
		if p != "" && !provinces[p] {
			e.Addf("%s: %q is not in provinces", key, p)
		}
	}
	switch {
	case in.CDNDegradation != nil:
		d := in.CDNDegradation
		k += ".cdn_degradation"
		if !vendors[d.Vendor] {
			e.Addf("%s.vendor: %q is not one of vendors", k, d.Vendor)
		}
		province(k+".province", d.Province)
		for i, x := range []float64{d.StallRateX, d.StallDurationX, d.FirstFrameX, d.TTFBX} {
			if x < 0 {
				e.Addf("%s.%s: must not be negative (0 means unchanged)", k, [...]string{"stall_rate_x", "stall_duration_x", "first_frame_x", "ttfb_x"}[i])
			}
		}
		checkRate(e, k+".connect_fail_rate", d.ConnectFailRate)
		checkRate(e, k+".http_error_rate", d.HTTPErrorRate)
	case in.OriginBitrateDrop != nil:
		d := in.OriginBitrateDrop
		k += ".origin_bitrate_drop"
		stream(k+".stream", d.Stream, true)
		line(k+".line", d.Line)
		if d.Factor <= 0 || d.Factor > 1 {
			e.Addf("%s.factor: must be in (0, 1]", k)
		}
		if d.FPSFactor < 0 || d.FPSFactor > 1 {
			e.Addf("%s.fps_factor: must be in [0, 1] (0 means unchanged)", k)
		}
		if d.ViewerStallRateX < 0 {
			e.Addf("%s.viewer_stall_rate_x: must not be negative (0 means unchanged)", k)
		}
	case in.PushFailure != nil:
		d := in.PushFailure
		k += ".push_failure"
		stream(k+".stream", d.Stream, false)
		province(k+".province", d.Province)
		checkRate(e, k+".connect_fail_rate", d.ConnectFailRate)
		checkRate(e, k+".relay_fail_rate", d.RelayFailRate)
		if d.DropsPerHour < 0 {
			e.Addf("%s.drops_per_hour: must not be negative", k)
		}
	case in.OriginSilent != nil:
		d := in.OriginSilent
		k += ".origin_silent"
		stream(k+".stream", d.Stream, true)
		line(k+".line", d.Line)
	}
}

func checkWeights(e *config.Errors, key string, ws []Weighted) {
	if len(ws) == 0 {
		e.Addf("%s: at least one entry is required", key)
		return
	}
	sum := 0.0
	var names []string
	for i, w := range ws {
		if w.Name == "" {
			e.Addf("%s[%d].name: required", key, i)
		} else if slices.Contains(names, w.Name) {
			e.Addf("%s[%d].name: %q listed twice", key, i, w.Name)
		}
		names = append(names, w.Name)
		if w.Weight < 0 || math.IsNaN(w.Weight) || math.IsInf(w.Weight, 0) {
			e.Addf("%s[%d].weight: must be a non-negative number", key, i)
		} else {
			sum += w.Weight
		}
	}
	if sum <= 0 {
		e.Addf("%s: weights sum to zero", key)
	}
}

func checkRate(e *config.Errors, key string, p float64) {
	if !(p >= 0 && p <= 1) {
		e.Addf("%s: %v is not a probability in [0, 1]", key, p)
	}
}

func checkLogNormal(e *config.Errors, key string, l LogNormal) {
	if !(l.Median > 0) {
		e.Addf("%s.median: must be positive", key)
	}
	if !(l.Sigma >= 0 && l.Sigma <= 5) {
		e.Addf("%s.sigma: must be in [0, 5]", key)
	}
	if l.Max < 0 || (l.Max > 0 && l.Max < l.Median) {
		e.Addf("%s.max: must be 0 (no cap) or at least the median", key)
	}
}
