package ingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

func TestDefaultConfigNeedsOnlyATokens(t *testing.T) {
	cfg := DefaultConfig()
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "tokens: at least one token is required") {
		t.Fatalf("defaults without tokens: %v", err)
	}
	cfg = testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults with tokens: %v", err)
	}
}

func TestValidateNamesKeys(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Tokens[0].Token = "short" }, "tokens[0].token: shorter than 16 characters"},
		{func(c *Config) { c.Tokens[1].TokenFile = "/x" }, "tokens[1]: exactly one of token, token_file, token_env is required"},
		{func(c *Config) { c.Tokens[2].Sources = []string{"origin", "logs"} }, `tokens[2].sources: "logs" is not one of client, cdn, origin, cmcd`},
		{func(c *Config) { c.Tokens[3].Name = "sdk" }, `tokens[3].name: "sdk" is used twice`},
		{func(c *Config) { c.Tokens[0].Sources = nil }, "tokens[0].sources: at least one of"},
		{func(c *Config) { c.Producer.Compression = "brotli" }, `producer.compression: "brotli" is not one of`},
		{func(c *Config) { c.Limits.MaxBodyBytes = 0 }, "limits.max_body_bytes: must be positive"},
		{func(c *Config) { c.Limits.MaxLineBytes = 900_000 }, "limits.max_line_bytes: 900000 must be at most half of producer.batch_bytes"},
		{func(c *Config) { c.RateLimit = RateLimit{EventsPerSecond: 100, EventBurst: 10} }, "rate_limit.event_burst: 10 must be at least limits.max_lines (10000)"},
		{func(c *Config) { c.Tokens[0].RateLimit = &RateLimit{RequestsPerSecond: 5} }, "tokens[0].rate_limit.request_burst: must be at least 1"},
		{func(c *Config) { c.CORS.AllowedOrigins = []string{"player.example.com"} }, `cors.allowed_origins: "player.example.com" is not`},
		{func(c *Config) { c.MaxFutureSkew = -time.Second }, "max_future_skew: -1s is negative; it bounds how far ahead of the receive time an event's (clock-corrected) ts may be"},
		{func(c *Config) { c.WriteTimeout = 5 * time.Second }, "write_timeout: 5s must exceed producer.produce_timeout (10s)"},
		{func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers: at least one broker is required"},
		{func(c *Config) { c.Producer.RetryAfter = 0 }, "producer.retry_after: must be at least 1s"},
	} {
		cfg := testConfig()
		tc.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v", tc.want, err)
		}
	}
}

func TestLoadYAMLAndEnv(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "cdn.token")
	if err := os.WriteFile(secretFile, []byte(tokCDN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ingest.yaml")
	yaml := `
listen: 127.0.0.1:9999
limits:
  max_lines: 500
max_future_skew: 2m
tokens:
  - {name: sdk, token: ` + tokSDK + `, sources: [client, cmcd], rate_limit: {requests_per_second: 10, request_burst: 20}}
  - {name: cdn, token_file: ` + secretFile + `, sources: [cdn]}
  - {name: origin, token_env: QOSCOPE_TEST_ORIGIN_TOKEN, sources: [origin]}
cors:
  allowed_origins: ["https://a.example.com"]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The section alone: kafka and log are the file's shared sections
	// (internal/appconfig tests them), not keys of ingest's.
	t.Setenv("QOSCOPE_INGEST_LIMITS_MAX_LINES", "700")
	t.Setenv("QOSCOPE_TEST_ORIGIN_TOKEN", tokOrigin)
	cfg := DefaultConfig()
	if err := config.Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.Limits.MaxLines != 700 ||
		cfg.MaxFutureSkew != 2*time.Minute || cfg.Tokens[0].RateLimit.RequestBurst != 20 || len(cfg.CORS.AllowedOrigins) != 1 {
		t.Fatalf("loaded %+v", cfg)
	}
	s, err := NewServer(cfg, Deps{Producer: &fakeProducer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		secret, name string
	}{{tokSDK, "sdk"}, {tokCDN, "cdn"}, {tokOrigin, "origin"}} {
		req := httptest.NewRequest(http.MethodPost, "/v1/events/client", nil)
		req.Header.Set("Authorization", "Bearer "+tc.secret)
		tok := s.auth.Store().Authenticate(req)
		if tok == nil || tok.Name != tc.name {
			t.Errorf("secret of %s resolves to %v", tc.name, tok)
		}
	}

	// An unknown key is an error naming it.
	if err := os.WriteFile(path, []byte("listen: :1\nlimts: {max_lines: 5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	if err := config.Load(path, &cfg); err == nil || !strings.Contains(err.Error(), "limts") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestTokenResolutionErrors(t *testing.T) {
	cfg := testConfig()
	cfg.Tokens[1] = TokenConfig{Name: "cdn", TokenEnv: "QOSCOPE_TEST_UNSET_TOKEN", Sources: []string{"cdn"}}
	_, err := NewServer(cfg, Deps{Producer: &fakeProducer{}, Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "tokens[1].token_env: environment variable QOSCOPE_TEST_UNSET_TOKEN is empty or unset") {
		t.Fatalf("unset env: %v", err)
	}
	cfg = testConfig()
	cfg.Tokens[1] = TokenConfig{Name: "cdn", Token: tokSDK, Sources: []string{"cdn"}}
	_, err = NewServer(cfg, Deps{Producer: &fakeProducer{}})
	if err == nil || !strings.Contains(err.Error(), `token "cdn" has the same secret as "sdk"`) || strings.Contains(err.Error(), tokSDK) {
		t.Fatalf("duplicate secret: %v", err)
	}
}

func TestMinInSyncReplicas(t *testing.T) {
	for _, tc := range []struct {
		rf, set, want int
	}{
		{1, 0, 1}, // dev: one broker
		{2, 0, 1}, // two copies: requiring both would stop writes when either broker is down
		{3, 0, 2}, // the production case: a 2xx survives the loss of its leader
		{5, 0, 2},
		{3, 1, 1}, // explicit values win
		{3, 3, 3},
		{2, 2, 2},
	} {
		p := ProducerConfig{ReplicationFactor: tc.rf, MinInSyncReplicas: tc.set}
		if got := p.EffectiveMinInSyncReplicas(); got != tc.want {
			t.Errorf("replication_factor %d, min_insync_replicas %d: effective %d, want %d", tc.rf, tc.set, got, tc.want)
		}
		cfg := testConfig()
		cfg.Producer.ReplicationFactor, cfg.Producer.MinInSyncReplicas = tc.rf, tc.set
		if err := cfg.Validate(); err != nil {
			t.Errorf("replication_factor %d, min_insync_replicas %d: %v", tc.rf, tc.set, err)
		}
	}
	for _, tc := range []struct{ rf, set int }{{3, 4}, {1, 2}, {3, -1}} {
		cfg := testConfig()
		cfg.Producer.ReplicationFactor, cfg.Producer.MinInSyncReplicas = tc.rf, tc.set
		err := cfg.Validate()
		want := fmt.Sprintf("producer.min_insync_replicas: %d is not between 1 and producer.replication_factor (%d)", tc.set, tc.rf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("replication_factor %d, min_insync_replicas %d: err %v, want one containing %q", tc.rf, tc.set, err, want)
		}
	}

	// The key and its environment override load like the other producer keys.
	path := filepath.Join(t.TempDir(), "ingest.yaml")
	if err := os.WriteFile(path, []byte("producer: {replication_factor: 3, min_insync_replicas: 3}\ntokens: [{name: sdk, token: "+tokSDK+", sources: [client]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := config.Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.MinInSyncReplicas != 3 {
		t.Errorf("min_insync_replicas from YAML = %d, want 3", cfg.Producer.MinInSyncReplicas)
	}
	t.Setenv("QOSCOPE_INGEST_PRODUCER_MIN_INSYNC_REPLICAS", "2")
	cfg = DefaultConfig()
	if err := config.Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Producer.MinInSyncReplicas != 2 {
		t.Errorf("min_insync_replicas with QOSCOPE_INGEST_PRODUCER_MIN_INSYNC_REPLICAS=2 = %d, want 2", cfg.Producer.MinInSyncReplicas)
	}
	t.Setenv("QOSCOPE_INGEST_PRODUCER_MIN_INSYNC_REPLICAS", "4")
	cfg = DefaultConfig()
	if err := config.Load(path, &cfg); err == nil || !strings.Contains(err.Error(), "producer.min_insync_replicas: 4") {
		t.Errorf("min_insync_replicas 4 with replication_factor 3: %v", err)
	}
}
