package steer

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

// Section is the key of the steer section in the configuration file; its
// environment overrides are QOSCOPE_STEER_<KEY>.
const Section = "steer"

// Config is the steer section (deploy/config/qoscope.yaml documents every
// key). The handler reads TTL, Pathways, TrustedProxies, RateLimit and
// StaleAfter, also when mounted inside `qoscope serve`; the rest is for
// `qoscope steer`.
type Config struct {
	// Listen is the steering server's address. Default 127.0.0.1:8095.
	Listen string `yaml:"listen" env:"LISTEN"`
	// TTL of the manifests: players reload after it, so it is how fast a
	// new split reaches them. Whole seconds, 1s–1h. Default 5m (the TTL
	// players assume without one).
	TTL time.Duration `yaml:"ttl" env:"TTL"`
	// Pathways maps vendors to pathway ids (HLS PATHWAY-ID, DASH
	// BaseURL@serviceLocation), [A-Za-z0-9._-]. Empty (default): every
	// vendor of the score table under its own name.
	Pathways map[string]string `yaml:"pathways" env:"-"`
	// IPDB is the IP table (`qoscope ipdb build`); empty uses the embedded
	// synthetic one (tests, demo).
	IPDB string `yaml:"ipdb" env:"IPDB"`
	// TrustedProxies are the addresses or CIDRs whose X-Forwarded-For is
	// believed: the client is the rightmost address of the header that is
	// not itself a trusted proxy. Empty (default): the TCP peer is the
	// client.
	TrustedProxies []string `yaml:"trusted_proxies" env:"TRUSTED_PROXIES" envSeparator:","`
	// RateLimit bounds requests per client address; off by default.
	RateLimit RateLimit `yaml:"rate_limit" envPrefix:"RATE_LIMIT_"`
	// StaleAfter: a table older than this (since it was last fetched or
	// confirmed) still steers, with a Warning header. Default 3m.
	StaleAfter time.Duration `yaml:"stale_after" env:"STALE_AFTER"`
	// Scores is where `qoscope steer` gets the table.
	Scores Scores `yaml:"scores" envPrefix:"SCORES_"`
	// MetricsListen serves /metrics, /healthz and /readyz on their own
	// address (e.g. 127.0.0.1:9095); empty (default): the steering
	// listener serves /healthz and /readyz only.
	MetricsListen string `yaml:"metrics_listen" env:"METRICS_LISTEN"`
	// ShutdownTimeout is the drain of in-flight requests on stop. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`

	// Log is the shared log section, copied in by the loader.
	Log config.Log `yaml:"-" env:"-"`
}

// RateLimit is a token bucket per client address.
type RateLimit struct {
	// PerIP is the refill rate in requests per second; 0 (default) turns
	// the limit off. A player asks once per TTL, so 1 is generous.
	PerIP float64 `yaml:"per_ip" env:"PER_IP"`
	// Burst is the bucket size. Default 20.
	Burst int `yaml:"burst" env:"BURST"`
}

// Scores is the source of the score table of `qoscope steer`: the scores
// API of `qoscope serve`, or a file.
type Scores struct {
	// URL of serve's GET /api/v1/scores. Default
	// http://127.0.0.1:8090/api/v1/scores.
	URL string `yaml:"url" env:"URL"`
	// The read-scope bearer token for URL: exactly one of token,
	// token_file, token_env (the secret inline, in a file, in a variable).
	Token     string `yaml:"token" env:"-"`
	TokenFile string `yaml:"token_file" env:"TOKEN_FILE"`
	TokenEnv  string `yaml:"token_env" env:"TOKEN_ENV"`
	// Interval between polls (If-None-Match: an unchanged table costs a
	// 304). Default 15s.
	Interval time.Duration `yaml:"interval" env:"INTERVAL"`
	// Timeout of one poll. Default 5s.
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT"`
	// File, when set, is a score table JSON (the document of
	// docs/SCORES.md, e.g. `qoscope scores --output`) read once at start
	// instead of polling URL: tests and benchmarks.
	File string `yaml:"file" env:"FILE"`
}

// DefaultListen is the default address of `qoscope steer`.
const DefaultListen = "127.0.0.1:8095"

// DefaultConfig returns the documented defaults of the steer section.
func DefaultConfig() Config {
	return Config{
		Listen:          DefaultListen,
		TTL:             5 * time.Minute,
		RateLimit:       RateLimit{Burst: 20},
		StaleAfter:      3 * time.Minute,
		Scores:          Scores{URL: "http://127.0.0.1:8090/api/v1/scores", Interval: 15 * time.Second, Timeout: 5 * time.Second},
		ShutdownTimeout: 10 * time.Second,
		Log:             config.DefaultLog(),
	}
}

// ValidateHandler checks the keys the handler reads (for serve, which
// mounts the handler without running the server); errs prefixes them with
// "steer.".
func (c *Config) ValidateHandler(errs *config.Errors) {
	if c.TTL < time.Second || c.TTL > time.Hour || c.TTL%time.Second != 0 {
		errs.Addf("ttl: %s is not a whole number of seconds between 1s and 1h", c.TTL)
	}
	seen := map[string]string{}
	for _, v := range slices.Sorted(maps.Keys(c.Pathways)) {
		id := c.Pathways[v]
		if !validPathwayID(id) {
			errs.Addf("pathways.%s: %q is not a pathway id (1-64 of A-Z a-z 0-9 . - _)", v, id)
		}
		if other, ok := seen[id]; ok {
			errs.Addf("pathways: vendors %s and %s have the same pathway id %q", other, v, id)
		}
		seen[id] = v
	}
	if _, err := c.trusted(); err != nil {
		errs.Addf("trusted_proxies: %v", err)
	}
	if c.RateLimit.PerIP < 0 {
		errs.Addf("rate_limit.per_ip: must not be negative")
	}
	if c.RateLimit.PerIP > 0 && c.RateLimit.Burst < 1 {
		errs.Addf("rate_limit.burst: must be at least 1 when rate_limit.per_ip is set")
	}
	if c.StaleAfter <= 0 {
		errs.Addf("stale_after: must be positive")
	}
}

// ValidateSection checks the whole steer section (`qoscope steer`).
func (c *Config) ValidateSection(errs *config.Errors) {
	c.ValidateHandler(errs)
	for _, a := range []struct{ key, v string }{{"listen", c.Listen}, {"metrics_listen", c.MetricsListen}} {
		if a.v == "" && a.key == "metrics_listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs.Addf("%s: %q is not host:port (e.g. %s)", a.key, a.v, DefaultListen)
		}
	}
	s := &c.Scores
	if s.File == "" {
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Addf("scores.url: %q is not an http(s) URL of serve's /api/v1/scores", s.URL)
		}
		set := 0
		for _, x := range []string{s.Token, s.TokenFile, s.TokenEnv} {
			if x != "" {
				set++
			}
		}
		if set != 1 {
			errs.Addf("scores: exactly one of token, token_file, token_env is required (a read-scope token of serve), or scores.file")
		}
		if s.Interval < time.Second {
			errs.Addf("scores.interval: %s is under 1s", s.Interval)
		}
		if s.Timeout <= 0 {
			errs.Addf("scores.timeout: must be positive")
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs.Addf("shutdown_timeout: must be positive")
	}
}

// trusted parses TrustedProxies: a bare address is its own /32 or /128.
func (c *Config) trusted() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
