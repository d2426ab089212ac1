package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/migrations"
)

func run(t *testing.T, ctx context.Context, opts migrate.Options) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := migrate.Run(ctx, opts, &out)
	return out.String(), err
}

func mustRun(t *testing.T, ctx context.Context, opts migrate.Options) string {
	t.Helper()
	out, err := run(t, ctx, opts)
	if err != nil {
		t.Fatalf("migrate %s: %v\noutput:\n%s", opts.Command, err, out)
	}
	return out
}

func i64(v int64) *int64 { return &v }

type tableInfo struct{ Engine, SortingKey, PartitionKey, EngineFull string }

func tables(t *testing.T, ctx context.Context, env *testenv.ClickHouseEnv) map[string]tableInfo {
	t.Helper()
	rows, err := env.Conn.Query(ctx, "SELECT name, engine, sorting_key, partition_key, engine_full FROM system.tables WHERE database = ?", env.Database)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]tableInfo{}
	for rows.Next() {
		var name string
		var ti tableInfo
		if err := rows.Scan(&name, &ti.Engine, &ti.SortingKey, &ti.PartitionKey, &ti.EngineFull); err != nil {
			t.Fatal(err)
		}
		out[name] = ti
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIntegrationUpDownUp(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	// Start from no database at all: up must create it.
	if err := env.Conn.Exec(ctx, "DROP DATABASE `"+env.Database+"` SYNC"); err != nil {
		t.Fatal(err)
	}
	opts := migrate.Options{DSN: env.DSN}

	opts.Command = migrate.CmdStatus
	if _, err := run(t, ctx, opts); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("status on a missing database: want a 'does not exist' error, got %v", err)
	}

	// Later migrations add tables; these checks follow the newest file.
	latest, latestFile := latestMigration(t)
	opts.Command = migrate.CmdUp
	out := mustRun(t, ctx, opts)
	for _, want := range []string{"applied 0001_minute_tables.sql (version 1)", "applied 0002_minute_views.sql (version 2)", fmt.Sprintf("is at version %d", latest)} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}

	got := tables(t, ctx, env)
	wantAll := len(got)
	for _, name := range []string{"client_minute", "cdn_minute", "origin_minute"} {
		ti, ok := got[name]
		if !ok {
			t.Errorf("table %s missing", name)
			continue
		}
		if ti.Engine != "ReplacingMergeTree" || ti.SortingKey != "grouping, window_start, dims_key, topic, kafka_partition" ||
			ti.PartitionKey != "toYYYYMMDD(window_start)" || !strings.Contains(ti.EngineFull, "TTL window_start + toIntervalDay(30)") ||
			!strings.Contains(ti.EngineFull, "ReplacingMergeTree(version)") {
			t.Errorf("table %s: %+v", name, ti)
		}
	}
	if ti := got["late_events"]; ti.Engine != "ReplacingMergeTree" || ti.SortingKey != "source, window_start, topic, kafka_partition" {
		t.Errorf("late_events: %+v", ti)
	}
	for _, v := range []string{"client_minute_metrics", "cdn_minute_metrics", "origin_minute_metrics", "late_events_metrics"} {
		if got[v].Engine != "View" {
			t.Errorf("view %s: %+v", v, got[v])
		}
	}

	opts.Command = migrate.CmdStatus
	out = mustRun(t, ctx, opts)
	for _, re := range []string{`(?m)^1\s+applied\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+0001_minute_tables\.sql$`,
		`(?m)^2\s+applied\s+.*0002_minute_views\.sql$`, `(?m)^dirty: no$`} {
		if !regexpMatch(re, out) {
			t.Errorf("status output does not match %s:\n%s", re, out)
		}
	}

	// up again is a no-op: nothing applied, nothing recorded twice.
	opts.Command = migrate.CmdUp
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, fmt.Sprintf("up to date at version %d", latest)) || strings.Contains(out, "applied ") {
		t.Errorf("second up: %s", out)
	}
	var n uint64
	if err := env.Conn.QueryRow(ctx, "SELECT count() FROM goose_db_version WHERE version_id > 0").Scan(&n); err != nil || n != uint64(latest) {
		t.Errorf("goose_db_version rows after two ups: %d, %v", n, err)
	}

	opts.Command = migrate.CmdVersion
	if out = mustRun(t, ctx, opts); out != fmt.Sprintf("%d\n", latest) {
		t.Errorf("version: %q", out)
	}

	// down without --to rolls back one migration.
	opts.Command = migrate.CmdDown
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "rolled back "+latestFile) || !strings.Contains(out, fmt.Sprintf("at version %d", latest-1)) {
		t.Errorf("down: %s", out)
	}
	// down --to 1 rolls back the rest above version 1.
	opts.To = i64(1)
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "rolled back 0002_minute_views.sql") || !strings.Contains(out, "at version 1") {
		t.Errorf("down --to 1: %s", out)
	}
	opts.To = nil
	got = tables(t, ctx, env)
	if _, ok := got["client_minute_metrics"]; ok {
		t.Error("view survived down")
	}
	if _, ok := got["client_minute"]; !ok {
		t.Error("down by one step dropped version 1's table")
	}

	// down --to 0: everything but the migrator's bookkeeping is gone.
	opts.To = i64(0)
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "rolled back 0001_minute_tables.sql") || !strings.Contains(out, "at version 0") {
		t.Errorf("down --to 0: %s", out)
	}
	got = tables(t, ctx, env)
	if len(got) != 2 || got["goose_db_version"].Engine == "" || got["qoscope_migration_log"].Engine == "" {
		t.Errorf("after down --to 0, want only goose_db_version and qoscope_migration_log, got %v", keys(got))
	}
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "nothing to roll back") {
		t.Errorf("down at 0: %s", out)
	}

	// up --to 1, then up.
	opts.Command, opts.To = migrate.CmdUp, i64(1)
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "applied 0001_minute_tables.sql") || strings.Contains(out, "0002") {
		t.Errorf("up --to 1: %s", out)
	}
	opts.To = nil
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "applied 0002_minute_views.sql") {
		t.Errorf("up after up --to 1: %s", out)
	}
	if got := tables(t, ctx, env); len(got) != wantAll {
		t.Errorf("after up again: want %d tables/views as after the first up, got %v", wantAll, keys(got))
	}
}

func keys(m map[string]tableInfo) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

const goodFile = `-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = {{.Engine "MergeTree"}} ORDER BY x;
-- +goose Down
DROP TABLE IF EXISTS a SYNC;
`

func TestIntegrationBrokenSQLStopsBeforeAnyChange(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte(goodFile)},
		"0002_typo.sql": {Data: []byte("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE b (x UInt8) ENGIN = MergeTree ORDER BY x;\n" +
			"-- +goose Down\nDROP TABLE IF EXISTS b SYNC;\n")},
	}
	_, err := run(t, ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN, Migrations: fsys})
	if err == nil || !strings.Contains(err.Error(), "migration 0002_typo.sql: Up statement 1:") || !strings.Contains(err.Error(), "Syntax error") {
		t.Fatalf("want a syntax error naming 0002_typo.sql, got %v", err)
	}
	// The check ran before anything: 0001 was not applied either.
	if _, ok := tables(t, ctx, env)["a"]; ok {
		t.Error("0001 was applied although 0002 has a syntax error")
	}
}

func TestIntegrationDirtyState(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	// 0002 fails at its second statement (valid syntax, missing table): b
	// exists afterwards, the version is not recorded.
	broken := fstest.MapFS{
		"0001_a.sql": {Data: []byte(goodFile)},
		"0002_half.sql": {Data: []byte("-- +goose NO TRANSACTION\n-- +goose Up\n" +
			"CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x;\n" +
			"ALTER TABLE no_such_table ADD COLUMN y UInt8;\n" +
			"-- +goose Down\nDROP TABLE IF EXISTS b SYNC;\n")},
	}
	opts := migrate.Options{Command: migrate.CmdUp, DSN: env.DSN, Migrations: broken}
	out, err := run(t, ctx, opts)
	var d *migrate.DirtyError
	if !errors.As(err, &d) || d.Version != 2 || d.File != "0002_half.sql" || d.Direction != "up" {
		t.Fatalf("want a DirtyError for 0002_half.sql up, got %v", err)
	}
	if !strings.Contains(err.Error(), "migration 2 (0002_half.sql) up failed") || !strings.Contains(err.Error(), "no_such_table") ||
		!strings.Contains(err.Error(), "qoscope migrate force 1") {
		t.Errorf("error does not explain itself: %v", err)
	}
	if !strings.Contains(out, "applied 0001_a.sql") {
		t.Errorf("0001 should have been applied before 0002 failed: %s", out)
	}

	// Every mutating command now refuses, naming the file; status says dirty.
	for _, cmd := range []string{migrate.CmdUp, migrate.CmdDown} {
		opts.Command = cmd
		_, err := run(t, ctx, opts)
		if !errors.Is(err, migrate.ErrDirty) || !strings.Contains(err.Error(), "0002_half.sql") {
			t.Errorf("%s on a dirty database: want a refusal naming 0002_half.sql, got %v", cmd, err)
		}
	}
	opts.Command = migrate.CmdStatus
	if out := mustRun(t, ctx, opts); !regexpMatch(`(?m)^dirty: yes: .*0002_half\.sql`, out) || !regexpMatch(`(?m)^2\s+pending`, out) {
		t.Errorf("status on a dirty database:\n%s", out)
	}
	opts.Command = migrate.CmdVersion
	if out := mustRun(t, ctx, opts); out != "1 (dirty: migration 2 0002_half.sql up did not finish)\n" {
		t.Errorf("version on a dirty database: %q", out)
	}

	// Recovery as the message says: fix the file, force the previous version,
	// re-run (the statements are idempotent, so b's existence is fine).
	fixed := fstest.MapFS{
		"0001_a.sql": broken["0001_a.sql"],
		"0002_half.sql": {Data: []byte("-- +goose NO TRANSACTION\n-- +goose Up\n" +
			"CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x;\n" +
			"ALTER TABLE b ADD COLUMN IF NOT EXISTS y UInt8;\n" +
			"-- +goose Down\nDROP TABLE IF EXISTS b SYNC;\n")},
	}
	opts = migrate.Options{Command: migrate.CmdForce, Version: 1, DSN: env.DSN, Migrations: fixed}
	if out := mustRun(t, ctx, opts); !strings.Contains(out, "forced to version 1; not dirty") {
		t.Errorf("force: %s", out)
	}
	opts.Command = migrate.CmdUp
	if out := mustRun(t, ctx, opts); !strings.Contains(out, "applied 0002_half.sql") {
		t.Errorf("up after force: %s", out)
	}

	// A process that died mid-step leaves only "started": also refused.
	if err := env.Conn.Exec(ctx, "INSERT INTO qoscope_migration_log (seq, version, file, direction, state) "+
		"SELECT max(seq) + 1, 3, '0003_next.sql', 'up', 'started' FROM qoscope_migration_log"); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, ctx, opts)
	if !errors.As(err, &d) || d.Version != 3 || !strings.Contains(err.Error(), "never finished") {
		t.Errorf("want a refusal for the interrupted step 3, got %v", err)
	}

	// force with no such version is refused; force 2 clears the marker.
	opts.Command, opts.Version = migrate.CmdForce, 7
	if _, err := run(t, ctx, opts); err == nil || !strings.Contains(err.Error(), "no migration has that version") {
		t.Errorf("force 7: %v", err)
	}
	opts.Version = 2
	mustRun(t, ctx, opts)
	opts.Command = migrate.CmdUp
	if out := mustRun(t, ctx, opts); !strings.Contains(out, "up to date at version 2") {
		t.Errorf("up after force 2: %s", out)
	}
	// force 0 unrecords everything (and changes no schema).
	opts.Command, opts.Version = migrate.CmdForce, 0
	out = mustRun(t, ctx, opts)
	if !strings.Contains(out, "recorded version 2 as not applied") || !strings.Contains(out, "recorded version 1 as not applied") {
		t.Errorf("force 0: %s", out)
	}
	if _, ok := tables(t, ctx, env)["b"]; !ok {
		t.Error("force must not change the schema")
	}
}

// gamma and index follow the bucket function documented in 0001_minute_tables.sql,
// written here independently of any aggregator code.
const gamma = 1.01 / 0.99

func bucket(v float64) int32 {
	if v == 0 {
		return math.MinInt32
	}
	return int32(math.Ceil(math.Log(v) / math.Log(gamma)))
}

type clientRow struct {
	partition     uint32
	version       uint64
	final         uint8
	users, stut   uint64
	firstFrames   uint64
	firstFrameSum uint64
	ffHist        map[int32]uint64
}

func insertClient(t *testing.T, ctx context.Context, env *testenv.ClickHouseEnv, window time.Time, rows ...clientRow) {
	t.Helper()
	b, err := env.Conn.PrepareBatch(ctx, "INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, "+
		"users, stutter_users, first_frames, first_frame_ms_sum, first_frame_ms_hist)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := b.Append(window, "province,isp", map[string]string{"province": "guangdong", "isp": "telecom"}, "qoscope.client",
			r.partition, r.version, r.final, r.users, r.stut, r.firstFrames, r.firstFrameSum, r.ffHist); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

type clientMetrics struct {
	DimsKey       string
	PartialRows   uint64
	Final         uint8
	Users         uint64
	StutterUsers  uint64
	StutterRateUV *float64
	ZeroStutter   *float64
	PullConnect   *float64
	FirstFrameAvg *float64
	P50, P90, P99 *float64
	PullP50       *float64
}

func readClient(t *testing.T, ctx context.Context, env *testenv.ClickHouseEnv, window time.Time) clientMetrics {
	t.Helper()
	var m clientMetrics
	err := env.Conn.QueryRow(ctx, "SELECT dims_key, partial_rows, final, users, stutter_users, stutter_rate_uv, zero_stutter_rate, pull_connect_rate, "+
		"first_frame_ms_avg, first_frame_ms_p50, first_frame_ms_p90, first_frame_ms_p99, pull_connect_ms_p50 "+
		"FROM client_minute_metrics WHERE grouping = 'province,isp' AND window_start = ?", window).Scan(
		&m.DimsKey, &m.PartialRows, &m.Final, &m.Users, &m.StutterUsers, &m.StutterRateUV, &m.ZeroStutter, &m.PullConnect,
		&m.FirstFrameAvg, &m.P50, &m.P90, &m.P99, &m.PullP50)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func near(got *float64, want, relErr float64) bool {
	return got != nil && math.Abs(*got-want) <= relErr*math.Abs(want)
}

// TestIntegrationReplayReplaces proves the crash-replay property of the schema
// and the view arithmetic, against values computed by hand.
func TestIntegrationReplayReplaces(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	mustRun(t, ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN})
	w := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

	// Partition 0: 10 users, 3 stutter; first frames 100, 100, 100, 1000 ms.
	// Partition 1: 5 users, 0 stutter; first frames 0, 100 ms.
	p0 := clientRow{partition: 0, version: 100, users: 10, stut: 3, firstFrames: 4, firstFrameSum: 1300,
		ffHist: map[int32]uint64{bucket(100): 3, bucket(1000): 1}}
	p1 := clientRow{partition: 1, version: 50, final: 1, users: 5, stut: 0, firstFrames: 2, firstFrameSum: 100,
		ffHist: map[int32]uint64{bucket(0): 1, bucket(100): 1}}
	insertClient(t, ctx, env, w, p0, p1)

	check := func(stage string, users, stut uint64, ffSum float64, ffN uint64) {
		t.Helper()
		m := readClient(t, ctx, env, w)
		if m.DimsKey != `["guangdong","telecom"]` || m.PartialRows != 2 {
			t.Errorf("%s: dims_key %q, partial_rows %d", stage, m.DimsKey, m.PartialRows)
		}
		if m.Users != users || m.StutterUsers != stut {
			t.Errorf("%s: users %d stutter_users %d, want %d %d", stage, m.Users, m.StutterUsers, users, stut)
		}
		if !near(m.StutterRateUV, float64(stut)/float64(users), 1e-12) || !near(m.ZeroStutter, float64(users-stut)/float64(users), 1e-12) {
			t.Errorf("%s: stutter_rate_uv %v zero_stutter_rate %v", stage, deref(m.StutterRateUV), deref(m.ZeroStutter))
		}
		if m.PullConnect != nil || m.PullP50 != nil {
			t.Errorf("%s: rates and quantiles over no plays must be NULL, got %v %v", stage, deref(m.PullConnect), deref(m.PullP50))
		}
		if !near(m.FirstFrameAvg, ffSum/float64(ffN), 1e-12) {
			t.Errorf("%s: first_frame_ms_avg %v, want %v", stage, deref(m.FirstFrameAvg), ffSum/float64(ffN))
		}
	}
	// 15 users, 3 stutter -> 0.2 and 0.8; first frames (1300+100)/6.
	check("first insert", 15, 3, 1400, 6)
	// Sorted first frames: 0, 100, 100, 100, 100, 1000 (n = 6). Ranks:
	// p50 ceil(3) = 3 -> 100; p90 ceil(5.4) = 6 -> 1000; p99 ceil(5.94) = 6 -> 1000.
	m := readClient(t, ctx, env, w)
	if !near(m.P50, 100, 0.01) || !near(m.P90, 1000, 0.01) || !near(m.P99, 1000, 0.01) {
		t.Errorf("quantiles p50 %v p90 %v p99 %v, want 100, 1000, 1000 within 1%%", deref(m.P50), deref(m.P90), deref(m.P99))
	}
	if m.Final != 0 {
		t.Errorf("final: one of two rows is provisional, got %d", m.Final)
	}

	// Crash replay: the same rows again, same versions -> counted once.
	insertClient(t, ctx, env, w, p0, p1)
	check("replayed", 15, 3, 1400, 6)

	// A later version of partition 0 (more offsets): replaces, never adds.
	p0.version, p0.final, p0.users, p0.stut, p0.firstFrames, p0.firstFrameSum = 180, 1, 12, 4, 5, 1500
	p0.ffHist = map[int32]uint64{bucket(100): 3, bucket(1000): 1, bucket(200): 1}
	insertClient(t, ctx, env, w, p0)
	check("newer version", 17, 4, 1600, 7)
	if m := readClient(t, ctx, env, w); m.Final != 1 {
		t.Errorf("final after both rows final: %d", m.Final)
	}
	// A stale replay (lower version) after the newer one changes nothing.
	stale := p0
	stale.version, stale.users = 120, 99
	insertClient(t, ctx, env, w, stale)
	check("stale replay", 17, 4, 1600, 7)

	// Origin: minimums combine with min(); a no_data row is left out of them.
	if err := env.Conn.Exec(ctx, "INSERT INTO origin_minute (window_start, grouping, dims, topic, kafka_partition, version, final, "+
		"samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum, no_data) VALUES "+
		"(?, 'stream_id,line', map('stream_id','s1','line','primary'), 'qoscope.origin', 2, 7, 1, 2, 50, 20, 3000, 1000, 80, 0), "+
		"(?, 'stream_id,line', map('stream_id','s2','line','primary'), 'qoscope.origin', 2, 7, 1, 0, 0, 0, 0, 0, 0, 1)", w, w); err != nil {
		t.Fatal(err)
	}
	rows, err := env.Conn.Query(ctx, "SELECT dims['stream_id'], samples, no_data, fps_avg, fps_min, bitrate_kbps_min, rtt_ms_avg "+
		"FROM origin_minute_metrics WHERE window_start = ? ORDER BY dims_key", w)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type orow struct {
		stream                     string
		samples                    uint64
		noData                     uint8
		fpsAvg, fpsMin, brMin, rtt *float64
	}
	var got []orow
	for rows.Next() {
		var r orow
		if err := rows.Scan(&r.stream, &r.samples, &r.noData, &r.fpsAvg, &r.fpsMin, &r.brMin, &r.rtt); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 2 {
		t.Fatalf("origin rows: %d", len(got))
	}
	if s1 := got[0]; s1.stream != "s1" || s1.samples != 2 || s1.noData != 0 || !near(s1.fpsAvg, 25, 1e-12) || !near(s1.fpsMin, 20, 0) || !near(s1.brMin, 1000, 0) || !near(s1.rtt, 40, 1e-12) {
		t.Errorf("s1: %+v", s1)
	}
	if s2 := got[1]; s2.stream != "s2" || s2.noData != 1 || s2.fpsAvg != nil || s2.fpsMin != nil || s2.brMin != nil {
		t.Errorf("s2 (no data) must have NULL means and minimums: %+v", s2)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// A DSN over HTTP works the same way (clickhouse-go's database/sql driver).
func TestIntegrationHTTPDSN(t *testing.T) {
	env := testenv.ClickHouse(t)
	if env.HTTP == "" {
		t.Skip("QOSCOPE_CLICKHOUSE_HTTP is not set: no HTTP endpoint to test")
	}
	ctx := context.Background()
	dsn := env.HTTP + "/" + env.Database
	out := mustRun(t, ctx, migrate.Options{Command: migrate.CmdUp, DSN: dsn})
	latest, _ := latestMigration(t)
	if !strings.Contains(out, fmt.Sprintf("is at version %d", latest)) {
		t.Errorf("up over HTTP: %s", out)
	}
	// Every view a migration file creates exists. A name built by a
	// template (0005) re-creates a view an earlier file names
	// (TestViewTemplateMatchesHandWritten), so only literal names count.
	names := map[string]bool{}
	viewRE := regexp.MustCompile(`CREATE OR REPLACE VIEW (\S+) `)
	for _, f := range must(fs.Glob(migrations.FS, "*.sql")) {
		b, err := migrations.FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range viewRE.FindAllStringSubmatch(string(b), -1) {
			if !strings.Contains(m[1], "{{") {
				names[m[1]] = true
			}
		}
	}
	wantViews := len(names)
	db := clickhouse.OpenDB(mustParse(t, env.DSN))
	defer db.Close()
	var n uint64
	if err := db.QueryRowContext(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND engine = 'View'").Scan(&n); err != nil || n != uint64(wantViews) {
		t.Errorf("views after up over HTTP: %d, %v", n, err)
	}
}

func mustParse(t *testing.T, dsn string) *clickhouse.Options {
	t.Helper()
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// latestMigration returns the newest migration's version and file name.
func latestMigration(t *testing.T) (int64, string) {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	slices.Sort(files)
	last := files[len(files)-1]
	v, err := strconv.ParseInt(last[:4], 10, 64)
	if err != nil {
		t.Fatalf("migration %s: %v", last, err)
	}
	return v, last
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
