package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/qoscope/qoscope/migrations"
)

const okFile = `-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "t"}} {{.OnCluster}} (a UInt8) ENGINE = {{.Engine "MergeTree"}} ORDER BY a;
-- +goose Down
DROP TABLE IF EXISTS {{.Table "t"}} {{.OnCluster}} SYNC;
`

func mapFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, text := range files {
		m[name] = &fstest.MapFile{Data: []byte(text)}
	}
	return m
}

func TestEmbeddedMigrationsSingleNode(t *testing.T) {
	_, srcs, err := loadSources(context.Background(), migrations.FS, templateData{database: "qoscope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) < 2 || srcs[0].Version != 1 || srcs[1].Version != 2 {
		t.Fatalf("want versions 1, 2, ... in order, got %+v", srcs)
	}
	// 0001 creates the four tables and drops them in reverse order.
	wantUp := []string{"client_minute", "cdn_minute", "origin_minute", "late_events"}
	if len(srcs[0].Up) != len(wantUp) {
		t.Fatalf("0001 up: want %d statements, got %d:\n%s", len(wantUp), len(srcs[0].Up), strings.Join(srcs[0].Up, "\n---\n"))
	}
	for i, name := range wantUp {
		prefix := "CREATE TABLE IF NOT EXISTS " + name + " "
		if !strings.HasPrefix(srcs[0].Up[i], prefix) {
			t.Errorf("0001 up statement %d: want prefix %q, got %.80q", i+1, prefix, srcs[0].Up[i])
		}
		if !strings.Contains(srcs[0].Up[i], "ENGINE = ReplacingMergeTree(version)") {
			t.Errorf("0001 up statement %d: want ENGINE = ReplacingMergeTree(version)", i+1)
		}
	}
	if len(srcs[0].Down) != 4 || !strings.HasPrefix(srcs[0].Down[0], "DROP TABLE IF EXISTS late_events ") {
		t.Errorf("0001 down: want 4 DROPs starting with late_events, got %q", srcs[0].Down)
	}
	if len(srcs[1].Up) != 4 || len(srcs[1].Down) != 4 {
		t.Errorf("0002: want 4 views up and 4 drops down, got %d and %d", len(srcs[1].Up), len(srcs[1].Down))
	}
	for _, s := range srcs {
		for _, stmt := range append(append([]string{}, s.Up...), s.Down...) {
			for _, bad := range []string{"ON CLUSTER", "Replicated", "_local", "Distributed", "{{"} {
				if strings.Contains(stmt, bad) {
					t.Errorf("%s: single-node statement contains %q:\n%s", s.Path, bad, stmt)
				}
			}
		}
	}
}

func TestEmbeddedMigrationsCluster(t *testing.T) {
	_, srcs, err := loadSources(context.Background(), migrations.FS, templateData{database: "qoscope", cluster: "main"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		t.Logf("-- %s, Up (cluster main, database qoscope):\n%s", s.Path, strings.Join(s.Up, "\n\n"))
		t.Logf("-- %s, Down:\n%s", s.Path, strings.Join(s.Down, "\n"))
	}
	up := srcs[0].Up
	if len(up) != 8 {
		t.Fatalf("0001 cluster up: want 4 local + 4 distributed tables, got %d statements", len(up))
	}
	for i, name := range []string{"client_minute", "cdn_minute", "origin_minute", "late_events"} {
		local := up[i]
		if !strings.HasPrefix(local, "CREATE TABLE IF NOT EXISTS "+name+"_local ON CLUSTER `main`") {
			t.Errorf("local table %d: got %.80q", i, local)
		}
		if !strings.Contains(local, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', version)") {
			t.Errorf("local table %s: replicated engine missing", name)
		}
		dist := up[4+i]
		want := "CREATE TABLE IF NOT EXISTS " + name + " ON CLUSTER `main` AS " + name + "_local\nENGINE = Distributed('main', 'qoscope', '" + name + "_local', cityHash64(topic, kafka_partition))"
		if dist != want+";" {
			t.Errorf("distributed table %s:\n got %q\nwant %q", name, dist, want+";")
		}
	}
	if len(srcs[0].Down) != 8 {
		t.Errorf("0001 cluster down: want 8 drops, got %d", len(srcs[0].Down))
	}
	for _, s := range srcs {
		for _, stmt := range append(append([]string{}, s.Up...), s.Down...) {
			if !strings.Contains(stmt, "ON CLUSTER `main`") {
				t.Errorf("%s: cluster statement without ON CLUSTER:\n%s", s.Path, stmt)
			}
		}
	}
}

// With each_node DDL the cluster variant keeps its tables (local,
// replicated, Distributed) but loses ON CLUSTER, and the Keeper path names
// database and table, since each node's CREATE gives its own UUID.
func TestEmbeddedMigrationsEachNode(t *testing.T) {
	_, srcs, err := loadSources(context.Background(), migrations.FS, templateData{database: "qoscope", cluster: "main", eachNode: true})
	if err != nil {
		t.Fatal(err)
	}
	up := srcs[0].Up
	if len(up) != 8 {
		t.Fatalf("0001 each-node up: want 4 local + 4 distributed tables, got %d statements", len(up))
	}
	if !strings.HasPrefix(up[0], "CREATE TABLE IF NOT EXISTS client_minute_local ") {
		t.Errorf("local table: got %.80q", up[0])
	}
	if !strings.Contains(up[0], "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/{table}/{shard}', '{replica}', version)") {
		t.Errorf("local table: each-node replicated engine missing:\n%s", up[0])
	}
	want := "CREATE TABLE IF NOT EXISTS client_minute  AS client_minute_local\nENGINE = Distributed('main', 'qoscope', 'client_minute_local', cityHash64(topic, kafka_partition));"
	if up[4] != want {
		t.Errorf("distributed table:\n got %q\nwant %q", up[4], want)
	}
	for _, s := range srcs {
		for _, stmt := range append(append([]string{}, s.Up...), s.Down...) {
			if strings.Contains(stmt, "ON CLUSTER") || strings.Contains(stmt, "{uuid}") {
				t.Errorf("%s: each-node statement with ON CLUSTER or {uuid}:\n%s", s.Path, stmt)
			}
		}
	}
}

// migrate.replicated false: a sharded cluster with one replica per shard
// keeps plain engines under the Distributed tables.
func TestEmbeddedMigrationsUnreplicated(t *testing.T) {
	_, srcs, err := loadSources(context.Background(), migrations.FS, templateData{database: "qoscope", cluster: "main", eachNode: true, unreplicated: true})
	if err != nil {
		t.Fatal(err)
	}
	up := srcs[0].Up
	if len(up) != 8 || !strings.Contains(up[0], "ENGINE = ReplacingMergeTree(version)") || !strings.Contains(up[4], "ENGINE = Distributed('main', 'qoscope', 'client_minute_local'") {
		t.Errorf("0001 unreplicated: %d statements, first:\n%s\nfifth:\n%s", len(up), up[0], up[min(4, len(up)-1)])
	}
	for _, s := range srcs {
		for _, stmt := range s.Up {
			if strings.Contains(stmt, "Replicated") {
				t.Errorf("%s: unreplicated statement with a replicated engine:\n%s", s.Path, stmt)
			}
		}
	}
}

func TestBrokenMigrationFiles(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		file  string // the file the error must name
		want  string // and a fragment of the reason
	}{
		{"bad file name", map[string]string{"0001_ok.sql": okFile, "0002-Bad.sql": okFile}, "0002-Bad.sql", "file name must be"},
		{"version zero", map[string]string{"0000_zero.sql": okFile}, "0000_zero.sql", "version must be"},
		{"duplicate version", map[string]string{"0001_a.sql": okFile, "1_b.sql": okFile}, "", "version 1 is also used by"},
		{"missing down", map[string]string{"0001_ok.sql": okFile, "0002_nodown.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;\n"}, "0002_nodown.sql", "missing '-- +goose Down'"},
		{"missing up", map[string]string{"0003_noup.sql": "-- +goose NO TRANSACTION\n-- +goose Down\nSELECT 1;\n"}, "0003_noup.sql", "found 0 '-- +goose Up'"},
		{"down before up", map[string]string{"0003_order.sql": "-- +goose NO TRANSACTION\n-- +goose Down\nSELECT 1;\n-- +goose Up\nSELECT 1;\n"}, "0003_order.sql", "line 4: '-- +goose Up' must come before"},
		{"transaction", map[string]string{"0001_tx.sql": "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"}, "0001_tx.sql", "NO TRANSACTION"},
		{"envsub", map[string]string{"0001_env.sql": "-- +goose NO TRANSACTION\n-- +goose ENVSUB ON\n-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"}, "0001_env.sql", "line 2: ENVSUB is not allowed"},
		{"unknown annotation", map[string]string{"0001_ann.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;\n-- +goose Downn\nSELECT 1;\n"}, "0001_ann.sql", "line 4: unknown goose annotation"},
		{"empty down", map[string]string{"0001_empty.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;\n-- +goose Down\n-- nothing to undo\n"}, "0001_empty.sql", "Down section has no statement"},
		{"unterminated statement block", map[string]string{"0001_block.sql": "-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"}, "0001_block.sql", "failed to parse 0001_block.sql"},
		{"missing semicolon", map[string]string{"0001_semi.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1\n-- +goose Down\nSELECT 1;\n"}, "0001_semi.sql", "missing semicolon"},
		{"template syntax", map[string]string{"0001_tmpl.sql": strings.Replace(okFile, `{{.OnCluster}}`, `{{.OnCluster}`, 1)}, "0001_tmpl.sql", "cannot parse template"},
		{"unknown template field", map[string]string{"0001_field.sql": strings.Replace(okFile, `{{.OnCluster}}`, `{{.Shard}}`, 1)}, "0001_field.sql", "Shard"},
		{"engine not MergeTree", map[string]string{"0001_engine.sql": strings.Replace(okFile, `{{.Engine "MergeTree"}}`, `{{.Engine "Log"}}`, 1)}, "0001_engine.sql", `Engine "Log": not a MergeTree-family engine`},
		{"engine argument not an identifier", map[string]string{"0001_arg.sql": strings.Replace(okFile, `{{.Engine "MergeTree"}}`, `{{.Engine "ReplacingMergeTree" "v); DROP TABLE x"}}`, 1)}, "0001_arg.sql", "must match"},
		{"table not an identifier", map[string]string{"0001_table.sql": strings.Replace(okFile, `{{.Table "t"}} {{.OnCluster}} (a`, `{{.Table "t-1"}} (a`, 1)}, "0001_table.sql", `Table "t-1"`},
		{"distributed on a single node", map[string]string{"0001_dist.sql": strings.Replace(okFile, "ORDER BY a;", "ORDER BY a;\nCREATE TABLE d AS t ENGINE = {{.Distributed \"t\" \"a\"}};", 1)}, "0001_dist.sql", "only meaningful on a cluster"},
		{"no migrations", map[string]string{"README.md": "hello"}, "", "no migration files"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := loadSources(context.Background(), mapFS(c.files), templateData{database: "db"})
			if err == nil {
				t.Fatal("want an error, got none")
			}
			if c.file != "" && !strings.Contains(err.Error(), "migration "+c.file+":") {
				t.Errorf("error does not name %s: %v", c.file, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error does not say %q: %v", c.want, err)
			}
		})
	}
}

func TestLoadSourcesIgnoresOtherFilesAndSorts(t *testing.T) {
	fsys := mapFS(map[string]string{"0010_b.sql": okFile, "0002_a.sql": okFile, "notes.txt": "x", "embed.go": "package x"})
	rendered, srcs, err := loadSources(context.Background(), fsys, templateData{database: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Version != 2 || srcs[1].Version != 10 {
		t.Fatalf("want versions [2 10], got %+v", srcs)
	}
	// goose would also pick up *.go files as Go migrations: only SQL may reach it.
	if _, err := rendered.Open("embed.go"); err == nil {
		t.Error("rendered fs holds embed.go")
	}
	got := srcs[0].Up[0]
	if got != "CREATE TABLE IF NOT EXISTS t  (a UInt8) ENGINE = MergeTree() ORDER BY a;" {
		t.Errorf("rendered statement: %q", got)
	}
}

func TestTemplateEngineAndTable(t *testing.T) {
	single := templateData{database: "db"}
	cluster := templateData{database: "db", cluster: "c1"}
	for _, c := range []struct {
		d    templateData
		fn   func(templateData) (string, error)
		want string
	}{
		{single, func(d templateData) (string, error) { return d.Engine("ReplacingMergeTree", "version") }, "ReplacingMergeTree(version)"},
		{cluster, func(d templateData) (string, error) { return d.Engine("ReplacingMergeTree", "version") },
			"ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', version)"},
		{cluster, func(d templateData) (string, error) { return d.Engine("MergeTree") }, "ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')"},
		{single, func(d templateData) (string, error) { return d.Table("x") }, "x"},
		{cluster, func(d templateData) (string, error) { return d.Table("x") }, "x_local"},
		{single, func(d templateData) (string, error) { return d.OnCluster(), nil }, ""},
		{cluster, func(d templateData) (string, error) { return d.OnCluster(), nil }, "ON CLUSTER `c1`"},
		{cluster, func(d templateData) (string, error) { return d.Database(), nil }, "`db`"},
	} {
		got, err := c.fn(c.d)
		if err != nil || got != c.want {
			t.Errorf("got %q, %v; want %q", got, err, c.want)
		}
	}
}

func TestValidIdentifier(t *testing.T) {
	for _, ok := range []string{"qoscope", "_x", "Q1_2", "a" + strings.Repeat("b", 127)} {
		if err := validIdentifier(ok); err != nil {
			t.Errorf("%q: unexpected error %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1db", "my-db", "db`; DROP", "a b", "db.x", "ü", "a" + strings.Repeat("b", 128), "x\n"} {
		if err := validIdentifier(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"database not an identifier", func(c *Config) { c.ClickHouse.DSN = "clickhouse://127.0.0.1:9000/my-db" }, []string{`clickhouse.dsn: database "my-db"`}},
		{"no database", func(c *Config) { c.ClickHouse.DSN = "clickhouse://127.0.0.1:9000" }, []string{"clickhouse.dsn: must name a database"}},
		{"cluster not an identifier", func(c *Config) { c.ClickHouse.Cluster = "x y" }, []string{`clickhouse.cluster: "x y"`}},
		{"all at once", func(c *Config) { c.ClickHouse.Cluster = "1c"; c.Log.Level = "loud" }, []string{"clickhouse.cluster", "log.level"}},
		{"unknown cluster ddl", func(c *Config) { c.ClickHouse.Cluster = "c"; c.Migrate.ClusterDDL = "per_node" }, []string{`migrate.cluster_ddl: "per_node": want on_cluster or each_node`}},
		{"each_node without cluster", func(c *Config) { c.Migrate.ClusterDDL = ClusterDDLEachNode }, []string{"migrate.cluster_ddl: each_node needs clickhouse.cluster"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mod(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "migrate.yaml")
	if err := os.WriteFile(file, []byte("clickhouse:\n  dsn: clickhouse://file:9000/from_file\n  cluster: file_cluster\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QOSCOPE_CLICKHOUSE_CLUSTER", "env_cluster")
	t.Setenv("QOSCOPE_CLICKHOUSE_DSN", "clickhouse://env:9000/from_env")
	cfg, err := loadConfig(Options{ConfigFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClickHouse.Cluster != "env_cluster" || cfg.ClickHouse.DSN != "clickhouse://env:9000/from_env" || cfg.Log.Level != "debug" {
		t.Errorf("env must override the file: %+v", cfg)
	}
	cfg, err = loadConfig(Options{ConfigFile: file, DSN: "clickhouse://flag:9000/from_flag"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClickHouse.DSN != "clickhouse://flag:9000/from_flag" {
		t.Errorf("--dsn must override env and file: %q", cfg.ClickHouse.DSN)
	}
	t.Setenv("QOSCOPE_MIGRATE_CLUSTER_DDL", "on_cluster")
	cfg, err = loadConfig(Options{ConfigFile: file, Cluster: "flag_cluster", ClusterDDL: "each_node"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClickHouse.Cluster != "flag_cluster" || cfg.Migrate.ClusterDDL != ClusterDDLEachNode {
		t.Errorf("--cluster and --cluster-ddl must override env and file: %+v", cfg)
	}
	t.Setenv("QOSCOPE_MIGRATE_CLUSTER_DDL", "each_node")
	if cfg, err = loadConfig(Options{ConfigFile: file}); err != nil || cfg.Migrate.ClusterDDL != ClusterDDLEachNode {
		t.Errorf("QOSCOPE_MIGRATE_CLUSTER_DDL: %+v, %v", cfg.Migrate, err)
	}

	if err := os.WriteFile(file, []byte("clickhouse:\n  dsnn: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(Options{ConfigFile: file}); err == nil || !strings.Contains(err.Error(), "dsnn") {
		t.Errorf("unknown key must be an error naming it, got %v", err)
	}
}

func TestRunRejectsBadOptionsBeforeConnecting(t *testing.T) {
	// Port 1 on loopback: a connection attempt would fail with a different error.
	dsn := "clickhouse://127.0.0.1:1/db"
	neg := int64(-1)
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Command: "sideways", DSN: dsn}, `unknown migrate command "sideways"`},
		{Options{Command: CmdUp, DSN: dsn, To: &neg}, "--to -1: must be >= 0"},
		{Options{Command: CmdForce, DSN: dsn, Version: -2}, "force -2"},
		{Options{Command: CmdUp, DSN: "clickhouse://127.0.0.1:1/bad-name"}, `database "bad-name"`},
		{Options{Command: CmdUp, DSN: dsn, Migrations: mapFS(map[string]string{"0001_x.sql": "-- +goose Up\nSELECT 1;\n"})}, "migration 0001_x.sql:"},
	} {
		err := Run(context.Background(), c.opts, os.Stdout)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: want error containing %q, got %v", c.opts, c.want, err)
		}
	}
}

func TestDirtyErrorTellsHowToRecover(t *testing.T) {
	up := &DirtyError{Database: "q", Version: 3, File: "0003_x.sql", Direction: dirUp, State: stateFailed,
		Cause: "code: 60, table missing", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Previous: 2}
	msg := up.Error()
	for _, want := range []string{"database q is dirty", "migration 3 (0003_x.sql) up failed at 2026-01-02T03:04:05Z", "code: 60, table missing",
		"`qoscope migrate force 2` then `qoscope migrate up`", "`qoscope migrate force 3`"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if !errors.Is(up, ErrDirty) {
		t.Error("DirtyError must wrap ErrDirty")
	}
	down := &DirtyError{Database: "q", Version: 3, File: "0003_x.sql", Direction: dirDown, State: stateStarted, Previous: 2}
	msg = down.Error()
	for _, want := range []string{"down started at", "never finished", "`qoscope migrate force 3` then `qoscope migrate down`", "`qoscope migrate force 2`"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// The view SQL and the aggregator must agree on the bucket function; this
// pins the constants the SQL comment documents.
func TestHistogramDocConstants(t *testing.T) {
	b, err := migrations.FS.ReadFile("0001_minute_tables.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gamma = (1 + alpha) / (1 - alpha) = 1.01 / 0.99", "index(v) = ceil(ln(v) / ln(gamma))", "index(0) = -2147483648", "value(i) = 2 * gamma^i / (gamma + 1)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("0001 no longer documents %q", want)
		}
	}
	v, err := migrations.FS.ReadFile("0002_minute_views.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(regexp.MustCompile(`1\.01 / 0\.99 AS gamma`).FindAll(v, -1)); n != 2 {
		t.Errorf("want gamma defined in the client and cdn views, found %d", n)
	}
}
