// Package migrate applies qoscope's versioned ClickHouse DDL (package
// migrations) with goose: `qoscope migrate up|down|status|version|force`.
//
// What it adds to goose, and why:
//   - Dirty-state guard. ClickHouse DDL is not transactional, so a migration
//     that fails halfway leaves part of its changes. Each step is logged as
//     "started" in qoscope_migration_log before its first statement and
//     "done" after goose recorded it; while the latest entry is "started" or
//     "failed", every command but status/version/force refuses with an error
//     naming the version, the file and the way out (`migrate force N`).
//   - Checks before anything runs: file names, annotations (NO TRANSACTION,
//     one Up, one non-empty Down), goose's statement split of every file in
//     both directions, and a server-side syntax check (EXPLAIN AST) of every
//     statement. Errors name the file.
//   - Templates for the cluster variant: with clickhouse.cluster set, DDL runs
//     ON CLUSTER with Replicated* tables under Distributed ones (docs/CLUSTER.md).
//   - The target database is created when absent.
//
// Run `migrate` from one place at a time (a deploy job): ClickHouse offers no
// lock that goose could take.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/migrations"
)

// Commands accepted in Options.Command.
const (
	CmdUp      = "up"      // apply pending migrations (up to To, if set)
	CmdDown    = "down"    // roll back the latest migration, or down to To
	CmdStatus  = "status"  // list every migration and whether it is applied
	CmdVersion = "version" // print the current version
	CmdForce   = "force"   // record Version as current and clear a dirty state
)

// Options are the inputs of Run; cmd/qoscope fills them from flags.
type Options struct {
	// Command is one of CmdUp, CmdDown, CmdStatus, CmdVersion, CmdForce.
	Command string
	// To bounds up (apply versions <= To) and down (roll back versions > To;
	// 0 = everything). nil: up applies all, down rolls back one migration.
	To *int64
	// Version is the version `force` records as current (0 = none applied).
	Version int64
	// ConfigFile is an optional YAML file with Config's keys; "" = defaults + env.
	ConfigFile string
	// Config, when non-nil, replaces ConfigFile and the environment: the
	// command reads qoscope's configuration file (internal/appconfig), of
	// which Config's sections are a part. The flags still apply on top.
	Config *Config
	// DSN, when set, overrides clickhouse.dsn from the file and environment.
	DSN string
	// Cluster and ClusterDDL, when set, override clickhouse.cluster and
	// migrate.cluster_ddl; Unreplicated sets migrate.replicated to false.
	Cluster, ClusterDDL string
	Unreplicated        bool
	// Migrations is the set of migration files; nil = the embedded migrations.FS.
	Migrations fs.FS
	// LogOutput receives the diagnostic log; nil = discarded.
	LogOutput io.Writer
}

// Run executes one migrate command and writes its human-readable result to stdout.
func Run(ctx context.Context, opts Options, stdout io.Writer) error {
	switch opts.Command {
	case CmdUp, CmdDown, CmdStatus, CmdVersion, CmdForce:
	default:
		return fmt.Errorf("unknown migrate command %q (want up, down, status, version or force)", opts.Command)
	}
	if opts.To != nil && *opts.To < 0 {
		return fmt.Errorf("--to %d: must be >= 0", *opts.To)
	}
	if opts.Command == CmdForce && opts.Version < 0 {
		return fmt.Errorf("force %d: version must be >= 0", opts.Version)
	}
	cfg, err := loadConfig(opts)
	if err != nil {
		return err
	}
	logOut := opts.LogOutput
	if logOut == nil {
		logOut = io.Discard
	}
	log := logging.New(logOut, cfg.Log).With().Str("component", "migrate").Logger()
	if cfg.ClickHouse.Cluster != "" && cfg.Migrate.ClusterDDL == ClusterDDLEachNode {
		return runEachNode(ctx, cfg, opts, log, stdout)
	}
	return runOne(ctx, cfg, opts, log, stdout)
}

// runOne runs the command against the server of cfg's DSN.
func runOne(ctx context.Context, cfg Config, opts Options, log zerolog.Logger, stdout io.Writer) error {
	m, err := open(ctx, cfg, opts, log)
	if err != nil {
		return err
	}
	defer m.close()
	switch opts.Command {
	case CmdUp:
		return m.up(ctx, opts.To, stdout)
	case CmdDown:
		return m.down(ctx, opts.To, stdout)
	case CmdStatus:
		return m.status(ctx, stdout)
	case CmdVersion:
		return m.version(ctx, stdout)
	default:
		return m.force(ctx, opts.Version, stdout)
	}
}

// loadConfig applies defaults, the file, the environment, then the --dsn flag,
// and validates the result.
func loadConfig(opts Options) (Config, error) {
	cfg := DefaultConfig()
	if opts.Config != nil {
		cfg = *opts.Config
	} else if opts.ConfigFile != "" {
		b, err := os.ReadFile(opts.ConfigFile)
		if err != nil {
			return cfg, fmt.Errorf("cannot read config file: %w", err)
		}
		if err := config.DecodeYAML(b, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", opts.ConfigFile, err)
		}
	}
	if opts.Config == nil {
		if err := config.ApplyEnv(&cfg); err != nil {
			return cfg, err
		}
	}
	if opts.DSN != "" {
		cfg.ClickHouse.DSN = opts.DSN
	}
	if opts.Cluster != "" {
		cfg.ClickHouse.Cluster = opts.Cluster
	}
	if opts.ClusterDDL != "" {
		cfg.Migrate.ClusterDDL = opts.ClusterDDL
	}
	if opts.Unreplicated {
		cfg.Migrate.Replicated = false
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

type migrator struct {
	log      zerolog.Logger
	database string
	// onCluster is the cluster whose distributed DDL queue runs the
	// migrator's own DDL ("" on a single node and with each_node DDL).
	onCluster string
	dsn       string // redacted, for messages
	db        *sql.DB
	sources   []source
	rendered  fs.FS
	provider  *goose.Provider
	store     *versionStore
	runs      *runLog
}

// open checks the migration files, connects, creates the database if the
// command needs it, and prepares goose and the run log.
func open(ctx context.Context, cfg Config, opts Options, log zerolog.Logger) (*migrator, error) {
	chOpts, err := clickhouse.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		return nil, fmt.Errorf("clickhouse.dsn: %w", err)
	}
	m := &migrator{
		log:      log.With().Str("database", chOpts.Auth.Database).Logger(),
		database: chOpts.Auth.Database,
		dsn:      cfg.ClickHouse.Redacted(),
	}
	eachNode := cfg.Migrate.ClusterDDL == ClusterDDLEachNode
	if !eachNode {
		m.onCluster = cfg.ClickHouse.Cluster
	}
	src := opts.Migrations
	if src == nil {
		src = migrations.FS
	}
	m.rendered, m.sources, err = loadSources(ctx, src, templateData{database: m.database, cluster: cfg.ClickHouse.Cluster,
		eachNode: eachNode, unreplicated: !cfg.Migrate.Replicated})
	if err != nil {
		return nil, err
	}

	exists, err := m.ensureDatabase(ctx, chOpts, opts.Command == CmdUp || opts.Command == CmdForce)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("database %s does not exist on %s: nothing is applied (run `qoscope migrate up` to create it)", m.database, m.dsn)
	}
	m.db = clickhouse.OpenDB(chOpts)
	if err := m.init(ctx); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

func (m *migrator) init(ctx context.Context) error {
	var err error
	if m.store, err = newVersionStore(m.onCluster); err != nil {
		return err
	}
	m.provider, err = goose.NewProvider(goose.DialectCustom, m.db, m.rendered,
		goose.WithStore(m.store),
		goose.WithDisableGlobalRegistry(true),
		goose.WithIsolateDDL(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return fmt.Errorf("cannot set up goose: %w", err)
	}
	host, _ := os.Hostname()
	m.runs = &runLog{db: m.db, cluster: m.onCluster, runID: uuid.NewString(), host: host}
	return m.runs.ensure(ctx)
}

func (m *migrator) close() {
	if m.db != nil {
		_ = m.db.Close()
	}
}

// ensureDatabase reports whether the target database exists, creating it
// first when create is set. It uses a connection without a default database,
// because the server refuses a session whose database does not exist.
func (m *migrator) ensureDatabase(ctx context.Context, chOpts *clickhouse.Options, create bool) (bool, error) {
	boot := *chOpts
	boot.Auth.Database = ""
	db := clickhouse.OpenDB(&boot)
	defer db.Close()
	exists := func() (bool, error) {
		var n uint64
		if err := db.QueryRowContext(ctx, "SELECT count() FROM system.databases WHERE name = ?", m.database).Scan(&n); err != nil {
			return false, fmt.Errorf("cannot reach ClickHouse at %s: %w", m.dsn, err)
		}
		return n > 0, nil
	}
	ok, err := exists()
	if err != nil || ok || !create {
		return ok, err
	}
	// Only when absent: a user allowed to migrate an existing database need
	// not hold CREATE DATABASE.
	stmt := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(m.database)
	if m.onCluster != "" {
		stmt += " ON CLUSTER " + quoteIdent(m.onCluster)
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return false, fmt.Errorf("cannot create database %s on %s: %w", m.database, m.dsn, err)
	}
	m.log.Info().Msg("database created")
	return exists()
}

// checkSyntax asks the server to parse every statement (EXPLAIN AST runs the
// parser only), so a typo in any file stops the run before the first
// statement instead of leaving a half-applied migration. Only syntax errors
// count: other failures of EXPLAIN are left to the real run.
func (m *migrator) checkSyntax(ctx context.Context) error {
	for _, s := range m.sources {
		for _, sec := range []struct {
			name  string
			stmts []string
		}{{"Up", s.Up}, {"Down", s.Down}} {
			for i, stmt := range sec.stmts {
				rows, err := m.db.QueryContext(ctx, "EXPLAIN AST "+stmt)
				if err == nil {
					err = rows.Close()
				}
				if err != nil && isSyntaxError(err) {
					return fmt.Errorf("migration %s: %s statement %d: %w", s.Path, sec.name, i+1, err)
				}
				if err != nil {
					m.log.Debug().Err(err).Str("file", s.Path).Msg("syntax pre-check inconclusive")
				}
			}
		}
	}
	return nil
}

func isSyntaxError(err error) bool {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code == 62 // SYNTAX_ERROR
	}
	return strings.Contains(err.Error(), "SYNTAX_ERROR")
}

// dirty returns a *DirtyError when the latest logged step did not finish.
func (m *migrator) dirty(ctx context.Context) error {
	e, err := m.runs.latest(ctx)
	if err != nil || e == nil {
		return err
	}
	if e.State != stateStarted && e.State != stateFailed {
		return nil
	}
	return &DirtyError{
		Database: m.database, Version: e.Version, File: e.File, Direction: e.Direction,
		State: e.State, Cause: e.Error, At: e.At, Previous: m.previous(e.Version),
	}
}

// previous is the highest known version below v, or 0.
func (m *migrator) previous(v int64) int64 {
	var p int64
	for _, s := range m.sources {
		if s.Version < v {
			p = s.Version
		}
	}
	return p
}

func (m *migrator) file(v int64) (string, bool) {
	for _, s := range m.sources {
		if s.Version == v {
			return s.Path, true
		}
	}
	return "", false
}

// step runs one goose step (apply the next pending, or roll back the latest)
// between a "started" and a "done" log entry.
func (m *migrator) step(ctx context.Context, version int64, dir string, run func(context.Context) (*goose.MigrationResult, error), stdout io.Writer) error {
	file, _ := m.file(version)
	if err := m.runs.write(ctx, version, file, dir, stateStarted, ""); err != nil {
		return err
	}
	start := time.Now()
	res, err := run(ctx)
	// The outcome must be logged even when ctx was cancelled mid-step.
	bg := context.WithoutCancel(ctx)
	if err != nil {
		var pe *goose.PartialError
		if !errors.As(err, &pe) {
			// goose stopped before running a statement (e.g. it disagrees
			// about which migration is next): nothing changed.
			if lerr := m.runs.write(bg, version, file, dir, stateAborted, err.Error()); lerr != nil {
				m.log.Error().Err(lerr).Msg("cannot record aborted migration step")
			}
			return fmt.Errorf("migration %d (%s) %s: %w", version, file, dir, err)
		}
		if lerr := m.runs.write(bg, version, file, dir, stateFailed, pe.Err.Error()); lerr != nil {
			m.log.Error().Err(lerr).Msg("cannot record failed migration step; the database stays marked dirty as started")
		}
		m.log.Error().Err(pe.Err).Int64("version", version).Str("file", file).Str("direction", dir).Msg("migration failed")
		derr := &DirtyError{Database: m.database, Version: version, File: file, Direction: dir,
			State: stateFailed, Cause: pe.Err.Error(), At: time.Now(), Previous: m.previous(version)}
		return derr
	}
	if res == nil || res.Source == nil || res.Source.Version != version {
		got := int64(-1)
		if res != nil && res.Source != nil {
			got = res.Source.Version
		}
		_ = m.runs.write(bg, version, file, dir, stateFailed, fmt.Sprintf("goose ran version %d", got))
		return fmt.Errorf("migration %d (%s) %s: goose ran version %d instead; the database is marked dirty, check `qoscope migrate status`", version, file, dir, got)
	}
	if err := m.runs.write(bg, version, file, dir, stateDone, ""); err != nil {
		return err
	}
	took := time.Since(start)
	m.log.Info().Int64("version", version).Str("file", file).Str("direction", dir).Dur("took", took).Msg("migration step done")
	verb := "applied"
	if dir == dirDown {
		verb = "rolled back"
	}
	fmt.Fprintf(stdout, "%s %s (version %d) in %s\n", verb, file, version, took.Round(time.Millisecond))
	return nil
}

func (m *migrator) up(ctx context.Context, to *int64, stdout io.Writer) error {
	if err := m.dirty(ctx); err != nil {
		return err
	}
	if err := m.checkSyntax(ctx); err != nil {
		return err
	}
	applied := 0
	for {
		next, ok, err := m.nextPending(ctx)
		if err != nil {
			return err
		}
		if !ok || (to != nil && next > *to) {
			break
		}
		if err := m.step(ctx, next, dirUp, m.provider.UpByOne, stdout); err != nil {
			return err
		}
		applied++
	}
	cur, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the current version: %w", err)
	}
	if applied == 0 {
		fmt.Fprintf(stdout, "database %s is up to date at version %d\n", m.database, cur)
	} else {
		fmt.Fprintf(stdout, "database %s is at version %d\n", m.database, cur)
	}
	return nil
}

// nextPending is the lowest version that goose reports as pending.
func (m *migrator) nextPending(ctx context.Context) (int64, bool, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("cannot read migration status: %w", err)
	}
	for _, s := range st {
		if s.State == goose.StatePending {
			return s.Source.Version, true, nil
		}
	}
	return 0, false, nil
}

func (m *migrator) down(ctx context.Context, to *int64, stdout io.Writer) error {
	if err := m.dirty(ctx); err != nil {
		return err
	}
	if err := m.checkSyntax(ctx); err != nil {
		return err
	}
	rolled := 0
	for {
		cur, err := m.provider.GetDBVersion(ctx)
		if err != nil {
			return fmt.Errorf("cannot read the current version: %w", err)
		}
		if cur == 0 || (to == nil && rolled == 1) || (to != nil && cur <= *to) {
			break
		}
		if _, ok := m.file(cur); !ok {
			return fmt.Errorf("version %d is applied but no migration file has it (is this binary older than the database?); cannot roll it back", cur)
		}
		if err := m.step(ctx, cur, dirDown, m.provider.Down, stdout); err != nil {
			return err
		}
		rolled++
	}
	cur, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the current version: %w", err)
	}
	if rolled == 0 {
		fmt.Fprintf(stdout, "nothing to roll back: database %s is at version %d\n", m.database, cur)
	} else {
		fmt.Fprintf(stdout, "database %s is at version %d\n", m.database, cur)
	}
	return nil
}

func (m *migrator) status(ctx context.Context, stdout io.Writer) error {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return fmt.Errorf("cannot read migration status: %w", err)
	}
	fmt.Fprintf(stdout, "database %s on %s\n", m.database, m.dsn)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT (UTC)\tFILE")
	for _, s := range st {
		at := "-"
		if s.State == goose.StateApplied {
			at = s.AppliedAt.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, at, s.Source.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	derr := m.dirty(ctx)
	var d *DirtyError
	switch {
	case errors.As(derr, &d):
		fmt.Fprintf(stdout, "dirty: yes: %v\n", derr)
	case derr != nil:
		return derr
	default:
		fmt.Fprintln(stdout, "dirty: no")
	}
	return nil
}

func (m *migrator) version(ctx context.Context, stdout io.Writer) error {
	cur, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the current version: %w", err)
	}
	derr := m.dirty(ctx)
	var d *DirtyError
	switch {
	case errors.As(derr, &d):
		fmt.Fprintf(stdout, "%d (dirty: migration %d %s %s did not finish)\n", cur, d.Version, d.File, d.Direction)
	case derr != nil:
		return derr
	default:
		fmt.Fprintln(stdout, cur)
	}
	return nil
}

// force makes the recorded versions exactly "every known version <= v" and
// clears a dirty state. It changes no schema: the operator has made the
// database match version v by hand (or will re-run the idempotent step).
func (m *migrator) force(ctx context.Context, v int64, stdout io.Writer) error {
	if _, ok := m.file(v); v != 0 && !ok {
		known := make([]string, 0, len(m.sources))
		for _, s := range m.sources {
			known = append(known, strconv.FormatInt(s.Version, 10))
		}
		return fmt.Errorf("force %d: no migration has that version (known: 0, %s)", v, strings.Join(known, ", "))
	}
	// Status creates goose's version table (with its version-0 row) if needed.
	if _, err := m.provider.Status(ctx); err != nil {
		return fmt.Errorf("cannot read migration status: %w", err)
	}
	list, err := m.store.ListMigrations(ctx, m.db)
	if err != nil {
		return fmt.Errorf("cannot list applied migrations: %w", err)
	}
	applied := map[int64]bool{}
	for _, r := range list {
		if r.IsApplied {
			applied[r.Version] = true
		}
	}
	for ver := range applied {
		if ver > v {
			if err := m.store.Delete(ctx, m.db, ver); err != nil {
				return fmt.Errorf("force %d: cannot unrecord version %d: %w", v, ver, err)
			}
			fmt.Fprintf(stdout, "recorded version %d as not applied\n", ver)
		}
	}
	for _, s := range m.sources {
		if s.Version <= v && !applied[s.Version] {
			if err := m.store.Insert(ctx, m.db, database.InsertRequest{Version: s.Version}); err != nil {
				return fmt.Errorf("force %d: cannot record version %d: %w", v, s.Version, err)
			}
			fmt.Fprintf(stdout, "recorded %s (version %d) as applied\n", s.Path, s.Version)
		}
	}
	file, _ := m.file(v)
	if err := m.runs.write(ctx, v, file, "", stateForced, ""); err != nil {
		return err
	}
	m.log.Warn().Int64("version", v).Msg("migration version forced")
	fmt.Fprintf(stdout, "database %s forced to version %d; not dirty\n", m.database, v)
	return nil
}
