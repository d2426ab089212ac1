package aggregator

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
)

// Lateness is the allowed lateness of each source (Config.Lateness).
type Lateness struct {
	Client time.Duration `yaml:"client"`
	CDN    time.Duration `yaml:"cdn"`
	Origin time.Duration `yaml:"origin"`
}

// DefaultLateness is how late each source's data really arrives
// (docs/METRICS.md, "Late data"): SDKs flush buffered beacons within minutes
// of a reconnect, CDN vendors push their logs in batches 5–30 minutes after
// the requests, origin servers report continuously but may resend after an
// outage.
func DefaultLateness() Lateness {
	return Lateness{Client: 10 * time.Minute, CDN: 30 * time.Minute, Origin: 10 * time.Minute}
}

// AllLateness is the same allowed lateness for every source.
func AllLateness(d time.Duration) Lateness { return Lateness{Client: d, CDN: d, Origin: d} }

// Of returns the allowed lateness of source s; for SourceUnknown (a
// partition that may hold several sources) the largest, so that no event
// is late for one source that would not be for another.
func (l Lateness) Of(s schemas.Source) time.Duration {
	switch s {
	case schemas.SourceClient:
		return l.Client
	case schemas.SourceCDN:
		return l.CDN
	case schemas.SourceOrigin:
		return l.Origin
	}
	return max(l.Client, l.CDN, l.Origin)
}

func (l *Lateness) set(name string, d time.Duration) bool {
	switch name {
	case "client":
		l.Client = d
	case "cdn":
		l.CDN = d
	case "origin":
		l.Origin = d
	default:
		return false
	}
	return true
}

// UnmarshalYAML takes one duration for every source, or a map of source to
// duration (sources left out keep their default).
func (l *Lateness) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var d time.Duration
		if err := n.Decode(&d); err != nil {
			return fmt.Errorf("line %d: lateness: want a duration such as 10m or a map of client/cdn/origin: %w", n.Line, err)
		}
		*l = AllLateness(d)
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var d time.Duration
			if err := v.Decode(&d); err != nil {
				return fmt.Errorf("line %d: lateness.%s: want a duration such as 10m: %w", v.Line, k.Value, err)
			}
			if !l.set(k.Value, d) {
				return fmt.Errorf("line %d: lateness.%s: unknown source (want client, cdn or origin)", k.Line, k.Value)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: lateness: want a duration or a map of client/cdn/origin", n.Line)
}

// MarshalYAML writes the map form.
func (l Lateness) MarshalYAML() (any, error) {
	return map[string]string{"client": l.Client.String(), "cdn": l.CDN.String(), "origin": l.Origin.String()}, nil
}

// MarshalText writes the environment form, client=…,cdn=…,origin=….
func (l Lateness) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "client=%s,cdn=%s,origin=%s", l.Client, l.CDN, l.Origin), nil
}

// UnmarshalText reads the environment form: "10m" for every source, or
// "client=10m,cdn=30m" (sources left out keep their value).
func (l *Lateness) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if !strings.Contains(s, "=") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("lateness: want a duration such as 10m or client=10m,cdn=30m: %w", err)
		}
		*l = AllLateness(d)
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("lateness.%s: want a duration such as 10m: %w", name, err)
		}
		if !l.set(strings.TrimSpace(name), d) {
			return fmt.Errorf("lateness.%s: unknown source (want client, cdn or origin)", name)
		}
	}
	return nil
}

func (l Lateness) validate(key string, errs *config.Errors) {
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"client", l.Client}, {"cdn", l.CDN}, {"origin", l.Origin}} {
		switch {
		case s.d < 0:
			errs.Addf("%s.%s: must not be negative", key, s.name)
		case s.d%time.Millisecond != 0:
			errs.Addf("%s.%s: must be a whole number of milliseconds", key, s.name)
		case s.d > 7*24*time.Hour:
			// Every open window is replayed after a restart and held in
			// memory: a week is already far beyond any real delivery.
			errs.Addf("%s.%s: %s is more than 168h", key, s.name, s.d)
		}
	}
}
