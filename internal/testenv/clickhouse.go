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

	"github.com/qoscope/qoscope/internal/chconn"
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
	db := uniqueName(t, "t", '_')
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn, conn := openTestDatabase(t, ctx, base, db, EnvClickHouseDSN, "clickhouse")
	return &ClickHouseEnv{
		Conn:     conn,
		Database: db,
		DSN:      dsn,
		HTTP:     strings.TrimRight(os.Getenv(EnvClickHouseHTTP), "/"),
		Managed:  isPID(os.Getenv(envClickHousePID)),
	}
}

// openTestDatabase creates db on the server of the DSN base, registers its
// drop in t.Cleanup, and returns the DSN naming db and a connection to it
// (closed at cleanup, before the drop). source names where base came from
// and server the server, for messages, which never show a DSN: it may
// carry a password.
func openTestDatabase(t testing.TB, ctx context.Context, base, db, source, server string) (string, driver.Conn) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || base == "" {
		t.Fatalf("testenv: %s is not a URL", source)
	}
	u.Path = "/" + db
	dsn := u.String()

	// The admin connection names no database: the one in the DSN need not
	// exist on a user's server.
	adminOpts, err := clickhouse.ParseDSN(base)
	if err != nil {
		t.Fatalf("testenv: cannot parse %s: %v", source, err)
	}
	adminOpts.Auth.Database = ""
	admin, err := clickhouse.Open(adminOpts)
	if err != nil {
		t.Fatalf("testenv: cannot open %s: %v", server, err)
	}
	// db is built from [a-z0-9_] only, so quoting it is enough. A managed
	// server may be restarting (internal/devinfra: libchdb aborts on some
	// client disconnects and chhost starts it again within seconds): wait
	// for it rather than fail a test that had nothing to do with it.
	if err := chconn.Retry(ctx, func() error { return admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+db+"`") }); err != nil {
		admin.Close()
		t.Fatalf("testenv: cannot create database %s on %s: %v", db, server, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := chconn.Retry(ctx, func() error { return admin.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"` SYNC") }); err != nil {
			t.Errorf("testenv: cannot drop database %s on %s: %v", db, server, err)
		}
	})

	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("testenv: cannot parse the test dsn of %s: %v", server, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("testenv: cannot open %s: %v", server, err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(func() { conn.Close() })
	if err := chconn.Retry(ctx, func() error { return conn.Ping(ctx) }); err != nil {
		t.Fatalf("testenv: cannot reach %s: %v", server, err)
	}
	return dsn, conn
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
