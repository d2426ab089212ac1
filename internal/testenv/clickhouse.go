package testenv

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/internal/config"
)

// ClickHouseEnv is one test's database on the shared ClickHouse.
type ClickHouseEnv struct {
	// Conn is a native-protocol connection whose default database is
	// Database; closed at cleanup.
	Conn driver.Conn
	// Database was created for this test and is dropped at cleanup.
	Database string
	// DSN is QOSCOPE_CLICKHOUSE_DSN with its database replaced by Database,
	// for code under test that opens its own connections.
	DSN string
	// HTTP is QOSCOPE_CLICKHOUSE_HTTP (http://host:port), or "" if unset.
	HTTP string
	// Managed is true when the server was started by `qoscope infra up`
	// (QOSCOPE_INFRA_CLICKHOUSE_PID holds a PID, not "external"), so that its
	// devinfra configuration (e.g. system.query_log) can be relied on.
	Managed bool
}

// ClickHouse creates a fresh database on the shared server and returns a
// connection to it. The database is dropped in t.Cleanup. It skips (or
// fails, see package doc) when no ClickHouse is configured.
func ClickHouse(t testing.TB) *ClickHouseEnv {
	t.Helper()
	base := need(t, EnvClickHouseDSN, "ClickHouse")
	u, err := url.Parse(base)
	if err != nil {
		// The DSN may carry a password: do not print it.
		t.Fatalf("testenv: %s is not a URL", EnvClickHouseDSN)
	}
	db := uniqueName(t, "t", '_')
	u.Path = "/" + db
	env := &ClickHouseEnv{
		Database: db,
		DSN:      u.String(),
		HTTP:     strings.TrimRight(os.Getenv(EnvClickHouseHTTP), "/"),
		Managed:  isPID(os.Getenv(envClickHousePID)),
	}

	// The admin connection names no database: the one in the DSN need not
	// exist on a user's server.
	adminOpts, err := clickhouse.ParseDSN(base)
	if err != nil {
		t.Fatalf("testenv: cannot parse %s: %v", EnvClickHouseDSN, err)
	}
	adminOpts.Auth.Database = ""
	admin, err := clickhouse.Open(adminOpts)
	if err != nil {
		t.Fatalf("testenv: cannot open clickhouse: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// db is built from [a-z0-9_] only, so quoting it is enough.
	if err := admin.Exec(ctx, "CREATE DATABASE `"+db+"`"); err != nil {
		admin.Close()
		t.Fatalf("testenv: cannot create database %s: %v", db, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"` SYNC"); err != nil {
			t.Errorf("testenv: cannot drop database %s: %v", db, err)
		}
	})

	opts, err := clickhouse.ParseDSN(env.DSN)
	if err != nil {
		t.Fatalf("testenv: cannot parse the test dsn: %v", err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("testenv: cannot open clickhouse: %v", err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(func() { conn.Close() })
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("testenv: cannot reach clickhouse: %v", err)
	}
	env.Conn = conn
	return env
}

// Config returns config.ClickHouse pointing at this test's database.
func (c *ClickHouseEnv) Config() config.ClickHouse {
	return config.ClickHouse{DSN: c.DSN, HTTP: c.HTTP}
}

// envClickHousePID is written to the state file by devinfra.
const envClickHousePID = "QOSCOPE_INFRA_CLICKHOUSE_PID"

func isPID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0
}
