package ingest

import (
	"errors"

	"github.com/qoscope/qoscope/ingest/cmcd"
	"github.com/qoscope/qoscope/internal/config"
)

// CMCDConfig tunes how CMCD requests map onto client events
// (docs/INGEST.md, "CMCD").
type CMCDConfig struct {
	// StreamFrom lists where a payload's stream_id comes from, in order;
	// the first that yields a value wins: cid (the CMCD key), query (the
	// collector URL's query parameter StreamParam), path (the v2 url key or
	// a nor entry matched against StreamPathPattern), unknown (the literal
	// stream "unknown"; must be last). Players send cid only when the
	// application configures it. Default [cid, query, unknown].
	StreamFrom []string `yaml:"stream_from" env:"STREAM_FROM" envSeparator:","`
	// StreamParam is the collector URL's query parameter for the query
	// source, e.g. /v1/cmcd?stream=room-1. Default "stream".
	StreamParam string `yaml:"stream_param" env:"STREAM_PARAM"`
	// StreamPathPattern is the regular expression for the path source,
	// with a group named stream or exactly one group, e.g.
	// ^/live/(?P<stream>[^/]+)/. Default empty (path unused).
	StreamPathPattern string `yaml:"stream_path_pattern" env:"STREAM_PATH_PATTERN"`
}

// DefaultCMCDConfig returns the documented defaults.
func DefaultCMCDConfig() CMCDConfig {
	return CMCDConfig{
		StreamFrom:  []string{cmcd.StreamFromCID, cmcd.StreamFromQuery, cmcd.StreamFromUnknown},
		StreamParam: "stream",
	}
}

func (c *CMCDConfig) validate(key string, errs *config.Errors) {
	if _, err := c.streams(); err != nil {
		var se *cmcd.StreamConfigError
		if !errors.As(err, &se) {
			errs.Addf("%s: %v", key, err)
			return
		}
		errs.Addf("%s.stream_%s: %s", key, se.Setting, se.Reason)
	}
}

func (c *CMCDConfig) streams() (*cmcd.StreamSource, error) {
	return cmcd.NewStreamSource(c.StreamFrom, c.StreamParam, c.StreamPathPattern)
}
