// Package testenv gives integration tests isolated resources on the shared
// real servers: a fresh set of Kafka topics and a fresh ClickHouse database
// per test, removed when the test ends.
//
// The servers are found through QOSCOPE_KAFKA_BROKERS and
// QOSCOPE_CLICKHOUSE_DSN, which `go tool task test` sets after starting them
// once for the whole run (see internal/devinfra), and which a user may point
// at a real cluster. Without them a test is skipped, with the reason, unless
// QOSCOPE_REQUIRE_INTEGRATION=1 (set by the Taskfile and so by CI), in which
// case it fails: CI must never silently skip the integration suite.
//
// ClickHouseCluster does the same on every node of a ClickHouse cluster,
// found through QOSCOPE_INFRA_CLUSTER_NAME, _DSNS and _HTTP (written by
// `qoscope infra up --clickhouse-cluster N`, which `go tool task test` runs).
//
// KafkaCluster gives a test the brokers of a Kafka of several brokers
// started by `qoscope infra up --kafka-brokers N` (`go tool task
// test:kafka-cluster`), each of which it can kill and restart. It is
// skipped with the reason unless QOSCOPE_REQUIRE_INTEGRATION=1 and
// QOSCOPE_REQUIRE_KAFKA_CLUSTER=1 are both set, since the ordinary test run
// has a single broker.
//
// The variable names come from internal/devinfra, which writes them; this
// package imports it, so devinfra's own tests that use this package are in
// the external package devinfra_test.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Environment variables read by this package.
const (
	EnvKafkaBrokers       = "QOSCOPE_KAFKA_BROKERS"
	EnvClickHouseDSN      = "QOSCOPE_CLICKHOUSE_DSN"
	EnvClickHouseHTTP     = "QOSCOPE_CLICKHOUSE_HTTP"
	EnvRequireIntegration = "QOSCOPE_REQUIRE_INTEGRATION"
)

// Required reports whether integration tests must run (QOSCOPE_REQUIRE_INTEGRATION=1).
func Required() bool { return os.Getenv(EnvRequireIntegration) == "1" }

// need returns the value of env or skips (or, when integration tests are
// required, fails) the test.
func need(t testing.TB, env, what string) string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(env)); v != "" {
		return v
	}
	msg := "no " + what + ": run via `go tool task test` or set " + env
	if Required() {
		t.Fatalf("%s (%s=1 forbids skipping integration tests)", msg, EnvRequireIntegration)
	}
	t.Skip(msg)
	return ""
}

// uniqueName builds prefix+sep+<test name>+sep+<random hex> from [a-z0-9]
// and sep only, short enough for Kafka topic and ClickHouse database names,
// and unique across tests, runs and parallel packages on one server.
func uniqueName(t testing.TB, prefix string, sep byte) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte(sep)
	lastSep := true
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= len(prefix)+1+40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			lastSep = false
		} else if !lastSep {
			b.WriteByte(sep)
			lastSep = true
		}
	}
	if !lastSep {
		b.WriteByte(sep)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("cannot make a unique name: %v", err)
	}
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}
