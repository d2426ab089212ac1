package score

import (
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

// Contracts is the scores file: score settings plus one contract per vendor.
// deploy/config/scores.yaml documents every key.
type Contracts struct {
	Settings Settings `yaml:"settings"`
	// Vendors maps a vendor name (as in the events' vendor field) to its contract.
	Vendors map[string]Contract `yaml:"vendors"`
}

// Contract is a vendor's committed and maximum bandwidth.
type Contract struct {
	GuaranteedMbps float64 `yaml:"guaranteed_mbps"`
	MaxMbps        float64 `yaml:"max_mbps"`
	// Weight tilts the split (ratio ∝ weight × score); default 1.
	Weight *float64 `yaml:"weight"`
	// Provinces are separately contracted capacity pools: traffic of that
	// province counts against them instead of the global figures.
	Provinces map[string]Capacity `yaml:"provinces"`
}

// Capacity is one pool's committed and maximum bandwidth.
type Capacity struct {
	GuaranteedMbps float64 `yaml:"guaranteed_mbps"`
	MaxMbps        float64 `yaml:"max_mbps"`
}

// Settings are the scoring parameters.
type Settings struct {
	// HalfLife of a minute's weight in the quality: weight = 2^(−age/half_life).
	HalfLife time.Duration `yaml:"half_life"`
	// Lookback bounds the minutes the quality reads (older ones weigh ~0 anyway).
	Lookback time.Duration `yaml:"lookback"`
	// MinUsers is the decayed user count a level needs before it is used.
	MinUsers float64 `yaml:"min_users"`
	// TrendMinutes is N of the least-squares bandwidth trend.
	TrendMinutes int `yaml:"trend_minutes"`
	// CDNMaxLag is how late a vendor's CDN minute may arrive: the trend
	// ends at the vendor's newest minute with a row while that is within
	// CDNMaxLag of the newest closed minute (0: every missing minute is a
	// minute without traffic).
	CDNMaxLag time.Duration `yaml:"cdn_max_lag"`
	Quality   Quality       `yaml:"quality"`
	// QualityWeight is the share of quality in the capacity score (0..1).
	QualityWeight float64 `yaml:"quality_weight"`
	// UnknownQuality (0..100) stands in for a vendor with no data at any level.
	UnknownQuality float64 `yaml:"unknown_quality"`
	// Regions maps each big region to its provinces; default: internal/ipdb's.
	Regions map[string][]string `yaml:"regions"`
}

// Quality holds the quality formula's constants (docs/SCORES.md).
type Quality struct {
	FirstFrameGoodMS float64 `yaml:"first_frame_good_ms"`
	FirstFrameBadMS  float64 `yaml:"first_frame_bad_ms"`
	StutterPenalty   float64 `yaml:"stutter_penalty"`
	FailurePenalty   float64 `yaml:"failure_penalty"`
}

// DefaultSettings returns the documented defaults.
func DefaultSettings() Settings {
	return Settings{
		HalfLife:     5 * time.Minute,
		Lookback:     30 * time.Minute,
		MinUsers:     30,
		TrendMinutes: 5,
		CDNMaxLag:    30 * time.Minute,
		Quality: Quality{
			FirstFrameGoodMS: 1000,
			FirstFrameBadMS:  5000,
			StutterPenalty:   100,
			FailurePenalty:   100,
		},
		QualityWeight:  0.5,
		UnknownQuality: 50,
	}
}

// LoadContracts reads and validates a scores file.
func LoadContracts(path string) (*Contracts, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read scores file: %w", err)
	}
	return ParseContracts(b, path)
}

// ParseContracts decodes strictly (unknown keys are errors) and validates;
// every error names the file and the key path.
func ParseContracts(b []byte, name string) (*Contracts, error) {
	c := &Contracts{Settings: DefaultSettings()}
	if err := config.DecodeYAML(b, c); err != nil {
		return nil, fmt.Errorf("scores file %s: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("scores file %s: %w", name, err)
	}
	return c, nil
}

// Validate checks every key and fills the default region map.
func (c *Contracts) Validate() error {
	var errs config.Errors
	s := &c.Settings
	se := errs.In("settings")
	if s.HalfLife <= 0 {
		se.Addf("half_life: must be positive")
	}
	if s.Lookback < time.Minute {
		se.Addf("lookback: must be at least 1m")
	}
	if !finiteNonNeg(s.MinUsers) {
		se.Addf("min_users: must be a number >= 0")
	}
	if s.TrendMinutes < 2 || s.TrendMinutes > 60 {
		se.Addf("trend_minutes: must be between 2 and 60 (a slope needs two points)")
	}
	if s.CDNMaxLag < 0 || s.CDNMaxLag > 24*time.Hour || s.CDNMaxLag%time.Minute != 0 {
		se.Addf("cdn_max_lag: must be whole minutes between 0 and 24h")
	}
	q := s.Quality
	qe := se.In("quality")
	if !finiteNonNeg(q.FirstFrameGoodMS) {
		qe.Addf("first_frame_good_ms: must be a number >= 0")
	}
	if !(q.FirstFrameBadMS > q.FirstFrameGoodMS) || math.IsInf(q.FirstFrameBadMS, 0) {
		qe.Addf("first_frame_bad_ms: must be greater than first_frame_good_ms")
	}
	if !finiteNonNeg(q.StutterPenalty) {
		qe.Addf("stutter_penalty: must be a number >= 0")
	}
	if !finiteNonNeg(q.FailurePenalty) {
		qe.Addf("failure_penalty: must be a number >= 0")
	}
	if !(s.QualityWeight > 0 && s.QualityWeight < 1) {
		se.Addf("quality_weight: must be strictly between 0 and 1 (both terms of the capacity score must count)")
	}
	if !(s.UnknownQuality >= 0 && s.UnknownQuality <= 100) {
		se.Addf("unknown_quality: must be between 0 and 100")
	}
	if s.Regions == nil {
		s.Regions = DefaultRegions()
	} else {
		validateRegions(s.Regions, se.In("regions"))
	}

	if len(c.Vendors) == 0 {
		errs.Addf("vendors: at least one vendor contract is required")
	}
	for _, name := range sortedKeys(c.Vendors) {
		v := c.Vendors[name]
		ve := errs.In("vendors." + name)
		if name == "" {
			ve.Addf("name: must not be empty")
		}
		validateCapacity(v.GuaranteedMbps, v.MaxMbps, ve)
		if w := v.Weight; w != nil && (!(*w > 0) || math.IsInf(*w, 0)) {
			ve.Addf("weight: must be a positive number")
		}
		for _, p := range sortedKeys(v.Provinces) {
			pe := ve.In("provinces." + p)
			if !knownProvince(s.Regions, p) {
				pe.Addf("name: %q is not a province of settings.regions (nor a known province outside them)", p)
			}
			pc := v.Provinces[p]
			validateCapacity(pc.GuaranteedMbps, pc.MaxMbps, pe)
		}
	}
	return errs.Err()
}

func validateCapacity(g, m float64, e *config.Errors) {
	if !finiteNonNeg(g) {
		e.Addf("guaranteed_mbps: must be a number >= 0")
	}
	if !(m > 0) || math.IsInf(m, 0) {
		e.Addf("max_mbps: must be a positive number")
	} else if m < g {
		e.Addf("max_mbps: %g is below guaranteed_mbps %g", m, g)
	}
}

func finiteNonNeg(f float64) bool { return f >= 0 && !math.IsInf(f, 0) }

// weight returns the business weight, 1 when unset.
func (v Contract) weight() float64 {
	if v.Weight == nil {
		return 1
	}
	return *v.Weight
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
