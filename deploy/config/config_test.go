// Package config_test keeps the example configuration of deploy/config
// loadable: qoscope.yaml is decoded strictly and validated by every
// command's own loader, so a key renamed in code fails here instead of in
// an operator's first start.
package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/appconfig"
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

const example = "qoscope.yaml"

func TestExampleIngest(t *testing.T) {
	clearEnv(t)
	cfg, err := appconfig.LoadIngest(example)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tokens) != 4 || cfg.Tokens[0].TokenEnv != "QOSCOPE_TOKEN_WEB" || cfg.Producer.Partitions != 24 ||
		cfg.Kafka.Brokers[2] != "kafka-3:9092" || cfg.Log.Format != "json" {
		t.Fatalf("example not decoded as written: %d tokens, %d partitions, brokers %v, log %+v",
			len(cfg.Tokens), cfg.Producer.Partitions, cfg.Kafka.Brokers, cfg.Log)
	}
}

func TestExampleAggregate(t *testing.T) {
	clearEnv(t)
	cfg, err := appconfig.LoadAggregate(example)
	if err != nil {
		t.Fatal(err)
	}
	// origin's grouping sets are in the file, client's are the default list.
	if cfg.ClickHouse.DSN != "clickhouse://qoscope@clickhouse-1:9000/qoscope" || cfg.Aggregator.Lateness.CDN != 30*time.Minute ||
		len(cfg.Aggregator.GroupingSets.Origin) != 1 || len(cfg.Aggregator.GroupingSets.Client) != 12 || cfg.Kafka.Topics.CDN != "qoscope.cdn" {
		t.Fatalf("example not decoded as written: %+v", cfg)
	}
}

func TestExampleAllInOneAndMigrate(t *testing.T) {
	clearEnv(t)
	cfg, err := appconfig.LoadAllInOne(example, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Embedded() || !cfg.Migrate || cfg.Demo.Users != 2000 || len(cfg.Tokens) != 4 {
		t.Fatalf("example not decoded as written: embedded %v, %+v", cfg.Embedded(), cfg.Section)
	}
	m, err := appconfig.LoadMigrate(example)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil || m.Migrate.ClusterDDL != "on_cluster" {
		t.Fatalf("migrate sections: %+v, %v", m, err)
	}
}

func TestExampleServe(t *testing.T) {
	clearEnv(t)
	cfg, err := appconfig.LoadServe(example)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8090" || len(cfg.Tokens) != 2 || cfg.Tokens[0].TokenEnv != "QOSCOPE_TOKEN_WALL" ||
		cfg.Streams.PerQuality["1080p"].MinBitrateKbps != 2500 || cfg.Live.Poll != 300*time.Millisecond ||
		len(cfg.Aggregator.GroupingSets.Origin) != 1 || cfg.ClickHouse.DSN != "clickhouse://qoscope@clickhouse-1:9000/qoscope" {
		t.Fatalf("example not decoded as written: %+v", cfg)
	}
}

func TestExampleSteer(t *testing.T) {
	clearEnv(t)
	cfg, err := appconfig.LoadSteer(example)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8095" || cfg.TTL != 5*time.Minute || cfg.Pathways["cdn-a"] != "cdn-a" ||
		cfg.Scores.TokenEnv != "QOSCOPE_TOKEN_STEER" || cfg.Scores.Interval != 15*time.Second || cfg.RateLimit.Burst != 20 {
		t.Fatalf("example not decoded as written: %+v", cfg)
	}
}
