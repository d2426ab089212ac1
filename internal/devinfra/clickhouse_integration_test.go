package devinfra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// TestUpStartsConfiguredClickHouseAndDownStopsIt starts a second ClickHouse
// (Kafka is given as external, so only ClickHouse starts) from the shared
// cache, checks that devinfra's config took effect, that Up is idempotent and
// that Down stops it.
func TestUpStartsConfiguredClickHouseAndDownStopsIt(t *testing.T) {
	cache, err := DefaultCacheDir(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCHDB(filepath.Join(cache, "clickhouse", "chdb-"+CHDBVersion, "libchdb.so")); err != nil {
		// `go tool task test` fills the cache before tests run, unless the
		// user brought an external ClickHouse; this test never downloads.
		if os.Getenv("QOSCOPE_REQUIRE_INTEGRATION") == "1" && os.Getenv(envCHPID) != externalPIDString {
			t.Fatalf("clickhouse engine not in the cache %s although integration tests are required: %v", cache, err)
		}
		t.Skip("clickhouse engine not in the cache " + cache + " (run `go tool task test` once)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	o := Options{
		CacheDir:     cache,
		StateDir:     t.TempDir(),
		KafkaBrokers: "127.0.0.1:1", // external: not started, not touched
	}
	t.Cleanup(func() { _ = Down(context.Background(), o) })
	st, err := Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Kafka.External() || st.Kafka.Addr != "127.0.0.1:1" {
		t.Errorf("kafka = %+v, want the external address recorded", st.Kafka)
	}
	if st.ClickHouse.PID <= 0 || inspectPID(st.ClickHouse.PID, st.ClickHouse.Config) != procOurs {
		t.Fatalf("clickhouse not running: %+v", st.ClickHouse)
	}

	opts, err := clickhouse.ParseDSN(st.ClickHouse.Addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pool string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.server_settings WHERE name = 'background_pool_size'").Scan(&pool); err != nil {
		t.Fatal(err)
	}
	if pool != "16" {
		t.Errorf("background_pool_size = %s, want 16 from devinfra's config", pool)
	}
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	var logged uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.query_log WHERE query LIKE 'SELECT value FROM system.server_settings%'").Scan(&logged); err != nil {
		t.Fatalf("query_log: %v", err)
	}
	if logged == 0 {
		t.Error("query_log did not record a query")
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil || db != ClickHouseDatabase {
		t.Errorf("DSN database = %q (%v), want %q", db, err, ClickHouseDatabase)
	}

	// A crash of the server (libchdb aborts the process on some client
	// disconnects) is survived: chhost restarts it, with the tables on disk.
	up := time.Now()
	if err := conn.Exec(ctx, "CREATE TABLE crash_probe (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO crash_probe VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	// A server that dies in its first seconds failed to start and is not
	// restarted (chhost's STARTUP_SECONDS).
	time.Sleep(time.Until(up.Add(11 * time.Second)))
	kids := childPIDs(t, st.ClickHouse.PID)
	if len(kids) != 1 {
		t.Fatalf("chhost %d has children %v, want one server", st.ClickHouse.PID, kids)
	}
	if err := syscall.Kill(kids[0], syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		c2, err := clickhouse.Open(opts)
		if err == nil {
			err = c2.QueryRow(ctx, "SELECT sum(x) FROM crash_probe").Scan(&sum)
			c2.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(st.ClickHouse.Log)
			t.Fatalf("clickhouse did not come back after its server process was killed: %v\n%s", err, log)
		}
	}
	if sum != 7 {
		t.Errorf("after the restart sum(x) = %d, want the 7 inserted before", sum)
	}
	// The restarted server must log queries again (its predecessor's
	// query_log directory would block that).
	c3, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := c3.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	if err := c3.QueryRow(ctx, "SELECT count() FROM system.query_log WHERE query LIKE 'SELECT sum(x) FROM crash_probe%'").Scan(&logged); err != nil || logged == 0 {
		t.Errorf("query_log after the restart: %d rows, %v", logged, err)
	}
	if now := childPIDs(t, st.ClickHouse.PID); len(now) != 1 || now[0] == kids[0] {
		t.Errorf("server processes %v after the restart, want one new one (old %d)", now, kids[0])
	}
	kids = childPIDs(t, st.ClickHouse.PID)

	// Up again keeps the running server.
	st2, err := Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if st2.ClickHouse.PID != st.ClickHouse.PID {
		t.Errorf("second Up replaced a healthy server (pid %d -> %d)", st.ClickHouse.PID, st2.ClickHouse.PID)
	}
	sts, err := Status(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if sts[1].State != "running" || sts[1].Ready != nil || sts[0].State != "external" {
		t.Errorf("status = %+v", sts)
	}

	if err := Down(ctx, o); err != nil {
		t.Fatal(err)
	}
	if inspectPID(st.ClickHouse.PID, st.ClickHouse.Config) != procGone {
		t.Error("clickhouse still running after Down")
	}
	if err := pingClickHouse(ctx, st.ClickHouse); err == nil {
		t.Error("clickhouse still answers after Down")
	}
	for _, k := range kids {
		if syscall.Kill(k, 0) == nil {
			t.Errorf("server process %d still alive after Down", k)
		}
	}
}

// childPIDs lists pid's child processes.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}
