package api

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/dashboards"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/query"
	"github.com/qoscope/qoscope/score/live"
	"github.com/qoscope/qoscope/steer"
)

// Section is the key of serve's section in the configuration file; its
// environment overrides are QOSCOPE_SERVE_<KEY>.
const Section = "serve"

// Config is the serve section, plus the shared sections it reads
// (clickhouse, log) and the aggregator's windowing keys, whose grouping
// sets and lateness make the metric catalogue; internal/appconfig fills
// those. deploy/config/qoscope.yaml documents every key.
type Config struct {
	// Listen is the API's address. Default 127.0.0.1:8090.
	Listen string `yaml:"listen" env:"LISTEN"`
	// Tokens are the bearer tokens; scopes read (the API), admin, metrics
	// (/metrics). At least one with read is required. No environment
	// variable: each secret can come from one (token_env).
	Tokens []httpx.TokenConfig `yaml:"tokens" env:"-"`
	// MetricsPublic serves /metrics without a token. Default false.
	MetricsPublic bool `yaml:"metrics_public" env:"METRICS_PUBLIC"`
	// Limits bound what one request may ask for.
	Limits Limits `yaml:"limits" envPrefix:"LIMITS_"`
	// Streams are the thresholds of the upstream cards (GET /api/v1/streams).
	Streams query.StreamOptions `yaml:"streams" env:"-"`
	// Live tunes GET /api/v1/live.
	Live Live `yaml:"live" envPrefix:"LIVE_"`
	// CORS lets a browser wall on another origin read the API.
	CORS CORS `yaml:"cors" envPrefix:"CORS_"`
	// Wall is the war-room page at / (docs/WALL.md).
	Wall dashboards.Config `yaml:"wall" envPrefix:"WALL_"`
	// Lookback is how far back "the newest minute" is searched (breakdown
	// and streams without at, live). Default 1h.
	Lookback time.Duration `yaml:"lookback" env:"LOOKBACK"`
	// AnswerTTL is how long an answer is shared with the clients asking the
	// same question (a wall on many screens): at most this much older than
	// ClickHouse. 0 turns the sharing off. Default 1s.
	AnswerTTL time.Duration `yaml:"answer_ttl" env:"ANSWER_TTL"`
	// QueryTimeout bounds one request's queries. Default 10s.
	QueryTimeout time.Duration `yaml:"query_timeout" env:"QUERY_TIMEOUT"`
	// ShutdownTimeout is the drain of in-flight requests on stop. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT"`

	// The shared sections and the aggregator's windowing keys, copied in
	// by the loader.
	ClickHouse config.ClickHouse `yaml:"-" env:"-"`
	// Steer is the top-level steer section: with scores on, serve answers
	// GET /steer/hls and /steer/dash from its own snapshot.
	Steer      steer.Config      `yaml:"-" env:"-"`
	Log        config.Log        `yaml:"-" env:"-"`
	Aggregator aggregator.Config `yaml:"-" env:"-"`
	// Scores is the scores section (score/live), copied in by the loader:
	// serve runs the live scores when Scores.Config is set.
	Scores live.Config `yaml:"-" env:"-"`
	// Alert is the alert section (its own top-level section of the file,
	// docs/ALERTS.md "Live"), copied in by the loader.
	Alert alertlive.Config `yaml:"-" env:"-"`
}

// Limits are the request limits; each 400 names its parameter.
type Limits struct {
	// MaxRange1m … MaxRange1d bound a series' from–to per step. Defaults
	// 24h, 168h (7 days), 2208h (92 days), 9600h (400 days).
	MaxRange1m time.Duration `yaml:"max_range_1m" env:"MAX_RANGE_1M"`
	MaxRange5m time.Duration `yaml:"max_range_5m" env:"MAX_RANGE_5M"`
	MaxRange1h time.Duration `yaml:"max_range_1h" env:"MAX_RANGE_1H"`
	MaxRange1d time.Duration `yaml:"max_range_1d" env:"MAX_RANGE_1D"`
	// MaxGroups bounds a series' groups. Default 500.
	MaxGroups int `yaml:"max_groups" env:"MAX_GROUPS"`
	// MaxRows bounds the rows a series reads (groups × points). Default 100000.
	MaxRows int `yaml:"max_rows" env:"MAX_ROWS"`
	// MaxLimit bounds a breakdown's limit. Default 1000.
	MaxLimit int `yaml:"max_limit" env:"MAX_LIMIT"`
	// MaxHistoryDays bounds history's days. Default 92.
	MaxHistoryDays int `yaml:"max_history_days" env:"MAX_HISTORY_DAYS"`
	// MaxQueryBytes bounds a request's query string. Default 8192.
	MaxQueryBytes int `yaml:"max_query_bytes" env:"MAX_QUERY_BYTES"`
	// MaxLiveClients bounds concurrent /api/v1/live connections. Default 200.
	MaxLiveClients int `yaml:"max_live_clients" env:"MAX_LIVE_CLIENTS"`
}

// Live tunes the server-sent events of /api/v1/live.
type Live struct {
	// Poll is how often the one shared poller reads the minute tables'
	// freshness while at least one client listens. Default 300ms, so an
	// event leaves within about poll + one query of a row's insert.
	Poll time.Duration `yaml:"poll" env:"POLL"`
	// Heartbeat is the period of the comment line that keeps idle
	// connections (and proxies) alive. Default 15s.
	Heartbeat time.Duration `yaml:"heartbeat" env:"HEARTBEAT"`
}

// CORS configures cross-origin reads.
type CORS struct {
	// AllowedOrigins, e.g. https://wall.example.com; "*" allows any
	// origin. Empty (default) disables CORS.
	AllowedOrigins []string `yaml:"allowed_origins" env:"ALLOWED_ORIGINS" envSeparator:","`
	// MaxAge is how long browsers may cache a preflight. Default 10m.
	MaxAge time.Duration `yaml:"max_age" env:"MAX_AGE"`
}

// DefaultListen is serve's default address: loopback, so that a first
// start exposes nothing.
const DefaultListen = "127.0.0.1:8090"

// DefaultConfig returns the documented defaults of the serve section.
func DefaultConfig() Config {
	d := query.DefaultOptions()
	return Config{
		Listen: DefaultListen,
		Limits: Limits{
			MaxRange1m: d.MaxRange[query.Step1m], MaxRange5m: d.MaxRange[query.Step5m],
			MaxRange1h: d.MaxRange[query.Step1h], MaxRange1d: d.MaxRange[query.Step1d],
			MaxGroups: d.MaxGroups, MaxRows: d.MaxRows, MaxLimit: d.MaxLimit, MaxHistoryDays: d.MaxHistoryDays,
			MaxQueryBytes: 8192, MaxLiveClients: 200,
		},
		Streams:         query.DefaultStreamOptions(),
		Live:            Live{Poll: 300 * time.Millisecond, Heartbeat: 15 * time.Second},
		CORS:            CORS{MaxAge: 10 * time.Minute},
		Wall:            dashboards.DefaultConfig(),
		Lookback:        d.Lookback,
		AnswerTTL:       time.Second,
		QueryTimeout:    10 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		ClickHouse:      config.DefaultClickHouse(),
		Log:             config.DefaultLog(),
		Aggregator:      aggregator.DefaultConfig(),
		Scores:          live.DefaultConfig(),
		Alert:           alertlive.DefaultConfig(),
		Steer:           steer.DefaultConfig(),
	}
}

// QueryOptions are the query library's options for c.
func (c *Config) QueryOptions() query.Options {
	return query.Options{
		MaxRange: map[query.Step]time.Duration{
			query.Step1m: c.Limits.MaxRange1m, query.Step5m: c.Limits.MaxRange5m,
			query.Step1h: c.Limits.MaxRange1h, query.Step1d: c.Limits.MaxRange1d,
		},
		MaxGroups:      c.Limits.MaxGroups,
		MaxRows:        c.Limits.MaxRows,
		MaxLimit:       c.Limits.MaxLimit,
		MaxHistoryDays: c.Limits.MaxHistoryDays,
		Lookback:       c.Lookback,
		Streams:        c.Streams,
	}
}

// Validate checks the whole configuration (shared sections included).
func (c *Config) Validate() error {
	var errs config.Errors
	c.ClickHouse.Validate("clickhouse", &errs)
	c.Log.Validate("log", &errs)
	c.ValidateSection(errs.In(Section))
	c.Scores.ValidateSection(errs.In(live.Section))
	c.Alert.ValidateSection(errs.In(alertlive.Section))
	return errs.Err()
}

// ValidateSection checks the keys of the serve section; errs prefixes them
// with "serve.".
func (c *Config) ValidateSection(errs *config.Errors) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs.Addf("listen: %q is not host:port (e.g. 127.0.0.1:8090)", c.Listen)
	}
	if c.AnswerTTL < 0 || c.AnswerTTL > time.Minute {
		errs.Addf("answer_ttl: %s is not between 0 (off) and 1m", c.AnswerTTL)
	}
	names := map[string]bool{}
	read := false
	for i := range c.Tokens {
		t := &c.Tokens[i]
		key := fmt.Sprintf("tokens[%d]", i)
		t.Validate(key, names, errs)
		for _, s := range t.Scopes {
			switch httpx.Scope(s) {
			case httpx.ScopeRead:
				read = true
			case httpx.ScopeAdmin, httpx.ScopeMetrics:
			default:
				errs.Addf("%s.scopes: %q is not a scope of serve (read, admin, metrics)", key, s)
			}
		}
	}
	if !read {
		errs.Addf("tokens: at least one token with scope read is required (serve: {tokens: [{name: wall, token_env: QOSCOPE_READ_TOKEN, scopes: [read]}]}; deploy/config/qoscope.yaml)")
	}
	for _, l := range []struct {
		key string
		v   time.Duration
	}{{"max_range_1m", c.Limits.MaxRange1m}, {"max_range_5m", c.Limits.MaxRange5m}, {"max_range_1h", c.Limits.MaxRange1h}, {"max_range_1d", c.Limits.MaxRange1d}} {
		if l.v <= 0 {
			errs.Addf("limits.%s: must be positive", l.key)
		}
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"max_groups", c.Limits.MaxGroups}, {"max_rows", c.Limits.MaxRows}, {"max_limit", c.Limits.MaxLimit},
		{"max_history_days", c.Limits.MaxHistoryDays}, {"max_query_bytes", c.Limits.MaxQueryBytes}, {"max_live_clients", c.Limits.MaxLiveClients}} {
		if l.v <= 0 {
			errs.Addf("limits.%s: must be positive", l.key)
		}
	}
	if c.Live.Poll < 50*time.Millisecond || c.Live.Poll > 5*time.Second {
		errs.Addf("live.poll: %s is outside 50ms–5s", c.Live.Poll)
	}
	if c.Live.Heartbeat < time.Second {
		errs.Addf("live.heartbeat: %s is under 1s", c.Live.Heartbeat)
	}
	for _, t := range []struct {
		key string
		v   query.Thresholds
	}{{"streams.default", c.Streams.Default}} {
		if t.v.MinFPS < 0 || t.v.MinBitrateKbps < 0 {
			errs.Addf("%s: thresholds must not be negative", t.key)
		}
	}
	for _, o := range c.CORS.AllowedOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			errs.Addf("cors.allowed_origins: %q is not \"*\" or scheme://host[:port]", o)
		}
	}
	c.Wall.Validate(errs.In("wall"))
	if c.CORS.MaxAge < 0 {
		errs.Addf("cors.max_age: must not be negative")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"lookback", c.Lookback}, {"query_timeout", c.QueryTimeout}, {"shutdown_timeout", c.ShutdownTimeout}} {
		if d.v <= 0 {
			errs.Addf("%s: must be positive", d.key)
		}
	}
}
