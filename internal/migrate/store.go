package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pressly/goose/v3/database"
)

const (
	// versionTable is goose's default, so goose's own CLI can read it too.
	versionTable = "goose_db_version"
	// runLogTable records every start, end and force of a migration step.
	// The latest row says whether the database is dirty.
	runLogTable = "qoscope_migration_log"

	dirUp   = "up"
	dirDown = "down"

	stateStarted = "started" // written before the first statement; dirty until followed
	stateFailed  = "failed"  // a statement failed: dirty
	stateDone    = "done"    // finished and recorded by goose
	stateAborted = "aborted" // goose refused before running any statement: clean
	stateForced  = "forced"  // an operator ran `migrate force`: clean
)

// metaEngine is the engine of the migrator's own tables. On a cluster every
// node must see the same history wherever `migrate` connects, so the tables
// are replicated across all shards (one Keeper path, replica name unique per
// shard and replica) instead of per shard.
func metaEngine(cluster string) string {
	if cluster == "" {
		return "MergeTree"
	}
	return "ReplicatedMergeTree('/clickhouse/tables/{uuid}/qoscope_meta', '{shard}-{replica}')"
}

// versionStore is goose's ClickHouse store with a cluster-aware version table
// and a cheap existence check (goose otherwise probes by querying version 0
// and treating the failure as "absent").
type versionStore struct {
	database.Store
	cluster string
}

func newVersionStore(cluster string) (*versionStore, error) {
	base, err := database.NewStore(database.DialectClickHouse, versionTable)
	if err != nil {
		return nil, err
	}
	return &versionStore{Store: base, cluster: cluster}, nil
}

func (s *versionStore) CreateVersionTable(ctx context.Context, db database.DBTxConn) error {
	if s.cluster == "" {
		return s.Store.CreateVersionTable(ctx, db)
	}
	_, err := db.ExecContext(ctx, versionTableDDL(s.cluster))
	return err
}

// versionTableDDL is the cluster form of goose's version table (same columns
// as goose's ClickHouse dialect).
func versionTableDDL(cluster string) string {
	return "CREATE TABLE IF NOT EXISTS " + versionTable + " ON CLUSTER " + quoteIdent(cluster) + ` (
		version_id Int64,
		is_applied UInt8,
		date Date DEFAULT now(),
		tstamp DateTime DEFAULT now()
	) ENGINE = ` + metaEngine(cluster) + ` ORDER BY (version_id)`
}

func (s *versionStore) TableExists(ctx context.Context, db database.DBTxConn) (bool, error) {
	var n uint64
	err := db.QueryRowContext(ctx,
		"SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", versionTable).Scan(&n)
	return n > 0, err
}

// runLog is the dirty-state guard goose lacks: a step is "started" before its
// first statement and "done" after goose recorded it, so a crash or a failed
// statement in between leaves the database marked dirty.
type runLog struct {
	db      *sql.DB
	cluster string
	runID   string
	host    string
}

type logEntry struct {
	Seq       uint64
	Version   int64
	File      string
	Direction string
	State     string
	Error     string
	At        time.Time
}

func runLogDDL(cluster string) string {
	onCluster := ""
	if cluster != "" {
		onCluster = " ON CLUSTER " + quoteIdent(cluster)
	}
	return "CREATE TABLE IF NOT EXISTS " + runLogTable + onCluster + ` (
		seq UInt64,
		run_id String,
		host String,
		version Int64,
		file String,
		direction LowCardinality(String),
		state LowCardinality(String),
		error String,
		at DateTime64(3, 'UTC') DEFAULT now64(3)
	) ENGINE = ` + metaEngine(cluster) + ` ORDER BY seq
	COMMENT 'qoscope migrate: every start, end and force of a migration step; the latest row tells whether the schema is dirty'`
}

func (l *runLog) ensure(ctx context.Context) error {
	if _, err := l.db.ExecContext(ctx, runLogDDL(l.cluster)); err != nil {
		return fmt.Errorf("cannot create %s: %w", runLogTable, err)
	}
	return nil
}

// latest returns the most recent entry, or nil when the log is empty.
func (l *runLog) latest(ctx context.Context) (*logEntry, error) {
	var e logEntry
	err := l.db.QueryRowContext(ctx, "SELECT seq, version, file, direction, state, error, at FROM "+runLogTable+
		" ORDER BY seq DESC LIMIT 1").Scan(&e.Seq, &e.Version, &e.File, &e.Direction, &e.State, &e.Error, &e.At)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", runLogTable, err)
	}
	return &e, nil
}

// write appends an entry. seq is the previous maximum + 1: `migrate` is meant
// to run from one place at a time (a deploy job), and a sequence read from
// the table does not depend on clocks agreeing between hosts.
func (l *runLog) write(ctx context.Context, version int64, file, direction, state, errText string) error {
	prev, err := l.latest(ctx)
	if err != nil {
		return err
	}
	seq := uint64(1)
	if prev != nil {
		seq = prev.Seq + 1
	}
	_, err = l.db.ExecContext(ctx, "INSERT INTO "+runLogTable+
		" (seq, run_id, host, version, file, direction, state, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		seq, l.runID, l.host, version, file, direction, state, errText)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", runLogTable, err)
	}
	return nil
}
