package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/chconn"
)

// This file holds the runner's other ClickHouse statements: checkpoints
// (migration 0003) and rollups (0004). Every statement is built from the
// package's own table and column names; values are bound (?) or are
// integers the runner computed.

// storedCheckpoint is the newest checkpoint of one partition.
type storedCheckpoint struct {
	cp       aggregator.Checkpoint
	version  uint64
	planHash string
}

// planHash fingerprints the windowing configuration a checkpoint was made with.
func planHash(c aggregator.Config) string {
	b, _ := json.Marshal(struct {
		L aggregator.Lateness
		H time.Duration
		N int
		G aggregator.GroupingSets
	}{c.Lateness, c.LateHorizon, c.OriginNoDataMinutes, c.GroupingSets})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// loadCheckpoints reads the newest checkpoint of every partition of group.
func loadCheckpoints(ctx context.Context, conn driver.Conn, db, group string) (map[aggregator.PartitionID]storedCheckpoint, error) {
	q := "SELECT topic, kafka_partition, argMax(state, version), max(version), argMax(plan_hash, version) FROM " +
		quoteIdent(db) + "." + quoteIdent(tableCheckpoints) + " WHERE group_id = ? GROUP BY topic, kafka_partition"
	rows, err := conn.Query(ctx, q, group)
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoints: %w", err)
	}
	defer rows.Close()
	out := map[aggregator.PartitionID]storedCheckpoint{}
	for rows.Next() {
		var (
			topic, state, hash string
			part               uint32
			version            uint64
		)
		if err := rows.Scan(&topic, &part, &state, &version, &hash); err != nil {
			return nil, fmt.Errorf("cannot read checkpoints: %w", err)
		}
		var sc storedCheckpoint
		if err := json.Unmarshal([]byte(state), &sc.cp); err != nil {
			return nil, permanent(fmt.Errorf("checkpoint of %s/%d is not valid JSON: %w", topic, part, err))
		}
		sc.version, sc.planHash = version, hash
		out[aggregator.PartitionID{Topic: topic, Partition: int32(part)}] = sc
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read checkpoints: %w", err)
	}
	return out, nil
}

// checkpointRow is one row of aggregator_checkpoints.
type checkpointRow struct {
	id      aggregator.PartitionID
	version uint64
	cp      aggregator.Checkpoint
	state   []byte
}

// nextCheckpointVersion orders a partition's checkpoints: (next << 24) |
// sequence. A checkpoint with the same next (an idle partition advanced by
// the wall clock) takes the previous version + 1.
func nextCheckpointVersion(prev uint64, next int64) uint64 {
	v := uint64(next) << 24
	if v <= prev {
		v = prev + 1
	}
	return v
}

func writeCheckpoints(ctx context.Context, conn driver.Conn, db, group, hash string, cps []checkpointRow) error {
	if len(cps) == 0 {
		return nil
	}
	q := "INSERT INTO " + quoteIdent(db) + "." + quoteIdent(tableCheckpoints) +
		" (group_id, topic, kafka_partition, version, resume, next, plan_hash, state)"
	b, err := conn.PrepareBatch(ctx, q, driver.WithReleaseConnection())
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tableCheckpoints, err)
	}
	n := len(cps)
	groups, topics, hashes, states := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	parts, versions := make([]uint32, n), make([]uint64, n)
	resumes, nexts := make([]int64, n), make([]int64, n)
	for i, c := range cps {
		groups[i], topics[i], hashes[i], states[i] = group, c.id.Topic, hash, string(c.state)
		parts[i], versions[i] = uint32(c.id.Partition), c.version
		resumes[i], nexts[i] = c.cp.Resume, c.cp.Next
	}
	for i, col := range []any{groups, topics, parts, versions, resumes, nexts, hashes, states} {
		if err := b.Column(i).Append(col); err != nil {
			_ = b.Abort()
			return permanent(fmt.Errorf("cannot insert into %s: %w", tableCheckpoints, err))
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tableCheckpoints, err)
	}
	return nil
}

// clickHouse is an open connection to the aggregate tables.
type clickHouse struct {
	conn driver.Conn
	db   string
	ins  Inserter
	// cluster is clickhouse.cluster: the tables are Distributed ones over
	// <name>_local tables (docs/CLUSTER.md).
	cluster string
}

// openClickHouse connects as cfg's clickhouse and insert sections say,
// checks that the tables exist (rollup tables too when rollups) and builds
// the configured inserter. The runner and the backfill share it.
func openClickHouse(ctx context.Context, cfg *Config, client *http.Client, rollups bool) (*clickHouse, error) {
	user, password, db, err := dsnAuth(cfg.ClickHouse.DSN)
	if err != nil {
		return nil, err
	}
	if !identRe.MatchString(db) {
		return nil, fmt.Errorf("clickhouse.dsn: database name %q: only letters, digits and _ are supported", db)
	}
	// In arrow_http mode every statement (checkpoints, rollups) goes over
	// the HTTP interface too: one protocol and one port to reach.
	dsn := cfg.ClickHouse.DSN
	var base string
	if cfg.Insert.Mode == InsertArrowHTTP {
		if base, err = cfg.httpURL(); err != nil {
			return nil, err
		}
		dsn = httpDSN(base, user, password, db)
	}
	var settings url.Values
	if cfg.ClickHouse.Cluster != "" {
		// The tables are Distributed ones (docs/CLUSTER.md). By default an
		// insert into one returns once the rows are queued on the node that
		// took it, and offsets are committed after the insert returns: wait
		// until the shards have them instead.
		settings = url.Values{"distributed_foreground_insert": {"1"}}
		if dsn, err = withSettings(dsn, settings); err != nil {
			return nil, err
		}
	}
	// Not cancelled mid-request (see flusher.retry); bounded instead.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Insert.Timeout)
	defer cancel()
	conn, err := chconn.Open(cctx, dsn)
	if err != nil {
		return nil, err
	}
	c := &clickHouse{conn: conn, db: db, cluster: cfg.ClickHouse.Cluster}
	if err := checkTables(cctx, conn, db, rollups); err != nil {
		conn.Close()
		return nil, err
	}
	switch cfg.Insert.Mode {
	case InsertNative:
		c.ins, err = NewNativeInserter(conn, db)
	case InsertArrowHTTP:
		var h *ArrowHTTPInserter
		if h, err = NewArrowHTTPInserter(client, base, db, user, password); err == nil {
			h.Settings = settings
			c.ins = h
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// requiredTables must exist before the runner starts (qoscope migrate up).
var requiredTables = []string{tableClient, tableCDN, tableOrigin, tableLate, tableCheckpoints}

var rollupTables = []string{"client_hour", "client_day", "cdn_hour", "cdn_day", "origin_hour", "origin_day"}

func checkTables(ctx context.Context, conn driver.Conn, db string, rollups bool) error {
	want := append([]string(nil), requiredTables...)
	if rollups {
		want = append(want, rollupTables...)
	}
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ?", db)
	if err != nil {
		return fmt.Errorf("cannot list tables of %s: %w", db, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("cannot list tables of %s: %w", db, err)
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot list tables of %s: %w", db, err)
	}
	var missing []string
	for _, t := range want {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("clickhouse database %s lacks tables %s: run `qoscope migrate up` first", db, strings.Join(missing, ", "))
	}
	return nil
}

// Rollups. The hour rows of a partition are recomputed from the final
// minute rows of that hour, the day rows from the hour rows (see
// migrations/0004_rollups.sql for why not a materialized view).

// userMinuteCols renames the distinct-user columns: summed over minutes
// they count user-minutes, not users.
var userMinuteCols = map[string]string{
	"users":               "user_minutes",
	"stutter_users":       "stutter_user_minutes",
	"stutter_users_video": "stutter_user_minutes_video",
	"stutter_users_audio": "stutter_user_minutes_audio",
}

// rollupColumns returns the target columns of a rollup of spec's table
// and their aggregate expressions over the source (minute or hour) rows.
func rollupColumns(spec *tableSpec, fromMinutes bool) (cols, exprs []string) {
	add := func(c, e string) {
		cols = append(cols, c)
		exprs = append(exprs, e)
	}
	if fromMinutes {
		add("minutes", "toUInt32(count())")
	} else {
		add("minutes", "toUInt32(sum(minutes))")
	}
	if spec.source.String() == "origin" {
		if fromMinutes {
			add("data_minutes", "toUInt32(countIf(samples > 0))")
			add("no_data_minutes", "toUInt32(countIf(no_data = 1))")
		} else {
			add("data_minutes", "toUInt32(sum(data_minutes))")
			add("no_data_minutes", "toUInt32(sum(no_data_minutes))")
		}
	}
	for _, f := range spec.fields {
		switch {
		case f.kind == kindHist:
			add(f.name+"_sum", "sum("+f.name+"_sum)")
			add(f.name+"_hist", "sumMap("+f.name+"_hist)")
		case f.kind == kindBool: // origin no_data: counted above
		case strings.HasSuffix(f.name, "_min"):
			add(f.name, "if(countIf(samples > 0) = 0, inf, minIf("+f.name+", samples > 0))")
		default:
			src := f.name
			dst := src
			if r, ok := userMinuteCols[src]; ok {
				dst = r
				if !fromMinutes {
					src = r
				}
			}
			add(dst, "sum("+src+")")
		}
	}
	return cols, exprs
}

// rollupSQL builds the INSERT ... SELECT of one period for one topic and
// a set of its partitions; the one bound parameter is the topic.
func rollupSQL(db string, spec *tableSpec, period string, start int64, parts []int32) string {
	src, dst, startOf, span := spec.name, "", "", ""
	base := strings.TrimSuffix(spec.name, "_minute")
	fromMinutes := period == "hour"
	switch period {
	case "hour":
		dst, startOf, span = base+"_hour", "toStartOfHour", "INTERVAL 1 HOUR"
	case "day":
		src, dst, startOf, span = base+"_hour", base+"_day", "toStartOfDay", "INTERVAL 1 DAY"
	}
	cols, exprs := rollupColumns(spec, fromMinutes)
	var b strings.Builder
	b.WriteString("INSERT INTO " + quoteIdent(db) + "." + quoteIdent(dst) +
		" (window_start, grouping, dims, topic, kafka_partition, version, " + strings.Join(cols, ", ") + ")\n")
	b.WriteString("SELECT " + startOf + "(window_start) AS period, grouping, any(dims), topic, kafka_partition, max(version), " +
		strings.Join(exprs, ", ") + "\n")
	b.WriteString("FROM " + quoteIdent(db) + "." + quoteIdent(src) + " FINAL\n")
	ts := strconv.FormatInt(start, 10)
	b.WriteString("WHERE window_start >= toDateTime(" + ts + ", 'UTC') AND window_start < toDateTime(" + ts + ", 'UTC') + " + span)
	if fromMinutes {
		b.WriteString(" AND final = 1")
	}
	b.WriteString(" AND topic = ? AND kafka_partition IN (")
	for i, p := range parts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	b.WriteString(")\nGROUP BY period, grouping, dims_key, topic, kafka_partition")
	return b.String()
}
