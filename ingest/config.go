package ingest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/httpx"
)

// Config is the `qoscope ingest` configuration: the `ingest:` section of the
// configuration file (internal/appconfig, deploy/config/qoscope.yaml) plus
// the shared kafka and log sections, which the loader copies in. Its
// environment overrides are QOSCOPE_INGEST_<KEY>. DefaultConfig holds the
// documented defaults; Validate names the offending key of every problem.
type Config struct {
	// Listen is the HTTP listen address. Default ":8080". Env QOSCOPE_INGEST_LISTEN.
	Listen string `yaml:"listen" env:"INGEST_LISTEN"`

	// Kafka and Log are the file's shared top-level sections (kafka:,
	// log:), not keys of the ingest section.
	Kafka config.Kafka `yaml:"-" env:"-"`
	Log   config.Log   `yaml:"-" env:"-"`

	// Producer tunes the Kafka writer and topic creation.
	Producer ProducerConfig `yaml:"producer" envPrefix:"INGEST_PRODUCER_"`

	// Tokens are the bearer tokens allowed to write; at least one is required.
	Tokens []TokenConfig `yaml:"tokens"`

	Limits    Limits    `yaml:"limits" envPrefix:"INGEST_LIMITS_"`
	RateLimit RateLimit `yaml:"rate_limit" envPrefix:"INGEST_RATE_LIMIT_"`
	CORS      CORS      `yaml:"cors" envPrefix:"INGEST_CORS_"`

	// MaxFutureSkew rejects events whose ts, after clock correction (Sent-At
	// or sent_at, docs/INGEST.md), is further than this ahead of the receive
	// time (clock-broken devices would otherwise open windows in the
	// future). Old events are always accepted: lateness is the aggregator's
	// business. It must stay below the aggregator's allowed lateness for
	// client events (all-in-one checks both at start-up): an accepted
	// event stamped this far ahead must not make on-time events late.
	// Default 5m.
	MaxFutureSkew time.Duration `yaml:"max_future_skew" env:"INGEST_MAX_FUTURE_SKEW"`

	// IPDB is the path of an IP table built by `qoscope ipdb build`; empty
	// uses the small synthetic table embedded for tests and the demo.
	IPDB string `yaml:"ipdb" env:"INGEST_IPDB"`

	// MetricsPublic serves /metrics without a token. Default false: /metrics
	// needs a bearer token whose sources include "metrics" (Prometheus:
	// authorization.credentials in the scrape config).
	MetricsPublic bool `yaml:"metrics_public" env:"INGEST_METRICS_PUBLIC"`

	// TrustForwardedFor makes CMCD events take the client IP from the first
	// X-Forwarded-For entry instead of the TCP peer. Enable only behind a proxy
	// that overwrites the header. Default false.
	TrustForwardedFor bool `yaml:"trust_forwarded_for" env:"INGEST_TRUST_FORWARDED_FOR"`

	// HTTP server timeouts. Defaults: read_header 10s, read 60s, write 60s,
	// idle 120s; shutdown (drain of in-flight requests and the writer) 30s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" env:"INGEST_READ_HEADER_TIMEOUT"`
	ReadTimeout       time.Duration `yaml:"read_timeout" env:"INGEST_READ_TIMEOUT"`
	WriteTimeout      time.Duration `yaml:"write_timeout" env:"INGEST_WRITE_TIMEOUT"`
	IdleTimeout       time.Duration `yaml:"idle_timeout" env:"INGEST_IDLE_TIMEOUT"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout" env:"INGEST_SHUTDOWN_TIMEOUT"`

	// ReadyCacheTTL is how long a /readyz Kafka metadata check is reused, so a
	// load balancer polling every instance cannot flood the brokers. Default 2s.
	ReadyCacheTTL time.Duration `yaml:"ready_cache_ttl" env:"INGEST_READY_CACHE_TTL"`

	// CMCD tunes /v1/cmcd (cmcdconfig.go).
	CMCD CMCDConfig `yaml:"cmcd" envPrefix:"INGEST_CMCD_"`
}

// ProducerConfig tunes the shared kafka.Writer. Every HTTP request writes
// through the same Writer, so concurrent requests share per-partition batches:
// a batch is sent when it holds BatchSize messages or BatchBytes bytes, or
// BatchTimeout after its first message.
type ProducerConfig struct {
	// Compression: none, gzip, snappy, lz4, zstd. Default lz4 (cheapest CPU).
	Compression string `yaml:"compression" env:"COMPRESSION"`
	// BatchSize is the maximum number of messages per partition batch. Default 5000.
	BatchSize int `yaml:"batch_size" env:"BATCH_SIZE"`
	// BatchBytes is the maximum uncompressed batch size; it must stay below the
	// broker's message.max.bytes (1 MiB by default). Default 1000000.
	BatchBytes int64 `yaml:"batch_bytes" env:"BATCH_BYTES"`
	// BatchTimeout bounds how long a partial batch waits for more messages;
	// since every request waits for its acks, it adds directly to latency.
	// Default 5ms.
	BatchTimeout time.Duration `yaml:"batch_timeout" env:"BATCH_TIMEOUT"`
	// MaxAttempts is how many times the writer tries a batch. Default 3.
	MaxAttempts int `yaml:"max_attempts" env:"MAX_ATTEMPTS"`
	// ProduceTimeout bounds one request's wait for all its acks; past it the
	// request gets 503. Default 10s.
	ProduceTimeout time.Duration `yaml:"produce_timeout" env:"PRODUCE_TIMEOUT"`
	// RetryAfter is the Retry-After sent with 503 responses. Default 5s.
	RetryAfter time.Duration `yaml:"retry_after" env:"RETRY_AFTER"`
	// CreateTopics creates missing topics at startup. Default true.
	CreateTopics bool `yaml:"create_topics" env:"CREATE_TOPICS"`
	// Partitions of each created topic. Default 6.
	Partitions int `yaml:"partitions" env:"PARTITIONS"`
	// ReplicationFactor of each created topic. Default 1 (dev); use 3 in production.
	ReplicationFactor int `yaml:"replication_factor" env:"REPLICATION_FACTOR"`
	// MinInSyncReplicas is the min.insync.replicas of each created topic:
	// how many replicas must hold a record before its acks=all produce
	// succeeds, i.e. before a request gets 2xx. Default 0, derived: 2 when
	// replication_factor >= 3 (an acknowledged event survives the loss of
	// its leader), else 1. When set, 1 <= value <= replication_factor.
	MinInSyncReplicas int `yaml:"min_insync_replicas" env:"MIN_INSYNC_REPLICAS"`
}

// EffectiveMinInSyncReplicas is MinInSyncReplicas, or the value derived
// from ReplicationFactor when it is 0. With the broker default of 1,
// acks=all is satisfied by the leader alone, so a 2xx could be lost with
// that one broker; 2 of 3 keeps accepting writes with one broker down.
func (p ProducerConfig) EffectiveMinInSyncReplicas() int {
	switch {
	case p.MinInSyncReplicas > 0:
		return p.MinInSyncReplicas
	case p.ReplicationFactor >= 3:
		return 2
	default:
		return 1
	}
}

// TokenConfig is one bearer token. Exactly one of Token, TokenFile and
// TokenEnv gives the secret; the secret itself is never logged, only Name.
// What it may do is the union of Sources and Scopes (docs/INGEST.md,
// "Security"); at least one of them is required.
type TokenConfig struct {
	Name      string `yaml:"name"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// Sources this token may write: client, cdn, origin, cmcd; "metrics"
	// lets it read /metrics. Each is the scope ingest:<source> (metrics:
	// metrics); kept so existing configurations work unchanged.
	Sources []string `yaml:"sources"`
	// Scopes are httpx scopes: ingest:client, ingest:cdn, ingest:origin,
	// ingest:cmcd, metrics (read and admin are for the read side).
	Scopes []string `yaml:"scopes"`
	// RateLimit, when set, replaces the global rate_limit for this token.
	RateLimit *RateLimit `yaml:"rate_limit"`
}

// MinTokenLength rejects guessable secrets.
const MinTokenLength = httpx.MinTokenLength

// Limits bound what one request may cost.
type Limits struct {
	// MaxBodyBytes bounds the body both as sent and after decompression, so a
	// small gzip/zstd bomb cannot expand past it. Default 8 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes" env:"MAX_BODY_BYTES"`
	// MaxLineBytes bounds one NDJSON line or JSON array element. Default 64 KiB.
	MaxLineBytes int `yaml:"max_line_bytes" env:"MAX_LINE_BYTES"`
	// MaxLines bounds the events per request. Default 10000.
	MaxLines int `yaml:"max_lines" env:"MAX_LINES"`
	// MaxErrors bounds the per-line errors listed in a response; the rest are
	// counted in "truncated". Default 100.
	MaxErrors int `yaml:"max_errors" env:"MAX_ERRORS"`
	// DeadLetterMaxRaw bounds the raw line copied into a dead-letter record.
	// Default 8 KiB.
	DeadLetterMaxRaw int `yaml:"deadletter_max_raw" env:"DEADLETTER_MAX_RAW"`
}

// RateLimit is a per-token token bucket; zero rates disable that limit.
type RateLimit struct {
	// RequestsPerSecond and RequestBurst limit requests. Default 0 (off).
	RequestsPerSecond float64 `yaml:"requests_per_second" env:"REQUESTS_PER_SECOND"`
	RequestBurst      int     `yaml:"request_burst" env:"REQUEST_BURST"`
	// EventsPerSecond and EventBurst limit decoded lines (valid or not).
	// EventBurst must be at least limits.max_lines so that any allowed
	// request can eventually pass. Default 0 (off).
	EventsPerSecond float64 `yaml:"events_per_second" env:"EVENTS_PER_SECOND"`
	EventBurst      int     `yaml:"event_burst" env:"EVENT_BURST"`
}

// CORS lets browser SDKs post client events and CMCD.
type CORS struct {
	// AllowedOrigins, e.g. https://player.example.com; "*" allows any origin.
	// Empty (default) disables CORS.
	AllowedOrigins []string `yaml:"allowed_origins" env:"ALLOWED_ORIGINS" envSeparator:","`
	// MaxAge is how long browsers may cache a preflight. Default 10m.
	MaxAge time.Duration `yaml:"max_age" env:"MAX_AGE"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Listen: ":8080",
		Kafka:  config.DefaultKafka(),
		Log:    config.DefaultLog(),
		Producer: ProducerConfig{
			Compression:       "lz4",
			BatchSize:         5000,
			BatchBytes:        1_000_000,
			BatchTimeout:      5 * time.Millisecond,
			MaxAttempts:       3,
			ProduceTimeout:    10 * time.Second,
			RetryAfter:        5 * time.Second,
			CreateTopics:      true,
			Partitions:        6,
			ReplicationFactor: 1,
		},
		Limits: Limits{
			MaxBodyBytes:     8 << 20,
			MaxLineBytes:     64 << 10,
			MaxLines:         10000,
			MaxErrors:        100,
			DeadLetterMaxRaw: 8 << 10,
		},
		CORS:              CORS{MaxAge: 10 * time.Minute},
		MaxFutureSkew:     5 * time.Minute,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ShutdownTimeout:   30 * time.Second,
		ReadyCacheTTL:     2 * time.Second,
		CMCD:              DefaultCMCDConfig(),
	}
}

// Sources a token may be bound to (sourceScopes maps them onto scopes).
var tokenSources = []string{"client", "cdn", "origin", "cmcd", "metrics"}

// Validate reports every problem at once, each prefixed by its key path in
// the configuration file (kafka.brokers, ingest.listen, ...).
func (c *Config) Validate() error {
	var errs config.Errors
	c.Kafka.Validate("kafka", &errs)
	c.Log.Validate("log", &errs)
	c.ValidateSection(errs.In(Section))
	return errs.Err()
}

// Section is the key of ingest's section in the configuration file.
const Section = "ingest"

// ValidateSection checks the keys of the ingest section only; errs names
// them relative to the section (see config.Errors.In).
func (c *Config) ValidateSection(errs *config.Errors) {
	if c.Listen == "" {
		errs.Addf("listen: required (host:port)")
	}

	p := &c.Producer
	switch p.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		errs.Addf("producer.compression: %q is not one of none, gzip, snappy, lz4, zstd", p.Compression)
	}
	if p.BatchSize <= 0 {
		errs.Addf("producer.batch_size: must be positive")
	}
	if p.BatchBytes <= 0 {
		errs.Addf("producer.batch_bytes: must be positive")
	}
	if p.BatchTimeout <= 0 {
		errs.Addf("producer.batch_timeout: must be positive")
	}
	if p.MaxAttempts <= 0 {
		errs.Addf("producer.max_attempts: must be positive")
	}
	if p.ProduceTimeout <= 0 {
		errs.Addf("producer.produce_timeout: must be positive")
	}
	if p.RetryAfter < time.Second {
		errs.Addf("producer.retry_after: must be at least 1s (Retry-After has whole seconds)")
	}
	if p.Partitions <= 0 {
		errs.Addf("producer.partitions: must be positive")
	}
	if p.ReplicationFactor <= 0 {
		errs.Addf("producer.replication_factor: must be positive")
	}
	if p.MinInSyncReplicas < 0 || (p.MinInSyncReplicas > 0 && p.ReplicationFactor > 0 && p.MinInSyncReplicas > p.ReplicationFactor) {
		// Above the replication factor no produce with acks=all could ever
		// succeed: every request would get 503.
		errs.Addf("producer.min_insync_replicas: %d is not between 1 and producer.replication_factor (%d); 0 derives it (2 when replication_factor >= 3, else 1)",
			p.MinInSyncReplicas, p.ReplicationFactor)
	}

	l := &c.Limits
	if l.MaxBodyBytes <= 0 {
		errs.Addf("limits.max_body_bytes: must be positive")
	}
	if l.MaxLineBytes <= 0 {
		errs.Addf("limits.max_line_bytes: must be positive")
	} else if int64(l.MaxLineBytes) > p.BatchBytes/2 {
		// A message larger than the writer's batch would fail every attempt.
		errs.Addf("limits.max_line_bytes: %d must be at most half of producer.batch_bytes (%d)", l.MaxLineBytes, p.BatchBytes)
	}
	if l.MaxLines <= 0 {
		errs.Addf("limits.max_lines: must be positive")
	}
	if l.MaxErrors < 0 {
		errs.Addf("limits.max_errors: must not be negative")
	}
	if l.DeadLetterMaxRaw <= 0 {
		errs.Addf("limits.deadletter_max_raw: must be positive")
	} else if int64(l.DeadLetterMaxRaw) > p.BatchBytes/2 {
		errs.Addf("limits.deadletter_max_raw: %d must be at most half of producer.batch_bytes (%d)", l.DeadLetterMaxRaw, p.BatchBytes)
	}
	c.RateLimit.validate("rate_limit", l.MaxLines, errs)

	for _, o := range c.CORS.AllowedOrigins {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs.Addf("cors.allowed_origins: %q is not \"*\" or scheme://host[:port]", o)
		}
	}
	if c.CORS.MaxAge < 0 {
		errs.Addf("cors.max_age: must not be negative")
	}
	if c.MaxFutureSkew < 0 {
		errs.Addf("max_future_skew: %s is negative; it bounds how far ahead of the receive time an event's (clock-corrected) ts may be", c.MaxFutureSkew)
	}
	for key, d := range map[string]time.Duration{
		"read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout,
		"write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout,
		"shutdown_timeout": c.ShutdownTimeout, "ready_cache_ttl": c.ReadyCacheTTL,
	} {
		if d <= 0 {
			errs.Addf("%s: must be positive", key)
		}
	}
	if c.WriteTimeout > 0 && c.WriteTimeout <= p.ProduceTimeout {
		errs.Addf("write_timeout: %s must exceed producer.produce_timeout (%s) so a 503 can still be written", c.WriteTimeout, p.ProduceTimeout)
	}

	c.CMCD.validate("cmcd", errs)

	if len(c.Tokens) == 0 {
		errs.Addf("%s", NoTokensHelp)
	}
	names := map[string]bool{}
	for i := range c.Tokens {
		c.Tokens[i].validate(fmt.Sprintf("tokens[%d]", i), l.MaxLines, names, errs)
	}
}

// NoTokensHelp is the error for a configuration without tokens: it says
// where they go, since a new user's first start has none.
const NoTokensHelp = `tokens: at least one token is required (ingest never runs unauthenticated); ` +
	`add to the config file: "ingest: {tokens: [{name: sdk, token_env: QOSCOPE_TOKEN_SDK, sources: [client, cdn, origin, cmcd]}]}" ` +
	`and export QOSCOPE_TOKEN_SDK (16+ characters); token (inline) and token_file work too (docs/INGEST.md, "Configuration")`

func (r *RateLimit) validate(key string, maxLines int, errs *config.Errors) {
	if r.RequestsPerSecond < 0 {
		errs.Addf("%s.requests_per_second: must not be negative", key)
	}
	if r.RequestsPerSecond > 0 && r.RequestBurst < 1 {
		errs.Addf("%s.request_burst: must be at least 1 when requests_per_second is set", key)
	}
	if r.EventsPerSecond < 0 {
		errs.Addf("%s.events_per_second: must not be negative", key)
	}
	if r.EventsPerSecond > 0 && r.EventBurst < maxLines {
		errs.Addf("%s.event_burst: %d must be at least limits.max_lines (%d) when events_per_second is set", key, r.EventBurst, maxLines)
	}
}

func (t *TokenConfig) validate(key string, maxLines int, names map[string]bool, errs *config.Errors) {
	sh := httpx.TokenConfig{Name: t.Name, Token: t.Token, TokenFile: t.TokenFile, TokenEnv: t.TokenEnv, Scopes: t.Scopes}
	sh.Validate(key, names, errs)
	if len(t.Sources) == 0 && len(t.Scopes) == 0 {
		errs.Addf("%s.sources: at least one of %s is required (or scopes: %s)", key, strings.Join(tokenSources, ", "), httpx.ScopeNames())
	}
	for _, s := range t.Sources {
		if !slices.Contains(tokenSources, s) {
			errs.Addf("%s.sources: %q is not one of %s", key, s, strings.Join(tokenSources, ", "))
		}
	}
	if t.RateLimit != nil {
		t.RateLimit.validate(key+".rate_limit", maxLines, errs)
	}
}
