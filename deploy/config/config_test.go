// Package config_test keeps the example configuration files of deploy/config
// loadable: each is decoded strictly by its service's own loader, so a key
// renamed in code fails here instead of in an operator's first start.
package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/config"
)

func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, config.EnvPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestIngestExample(t *testing.T) {
	clearEnv(t)
	cfg := ingest.DefaultConfig()
	if err := config.Load("ingest.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tokens) != 4 || cfg.Producer.Partitions != 24 || cfg.Kafka.Brokers[2] != "kafka-3:9092" {
		t.Fatalf("example not decoded as written: %d tokens, %d partitions, brokers %v",
			len(cfg.Tokens), cfg.Producer.Partitions, cfg.Kafka.Brokers)
	}
}
