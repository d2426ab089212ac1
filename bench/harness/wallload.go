package harness

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/bench/peers/chraw"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/query"
)

// wallScenario is gen's world for the query benchmark: the keys of a
// 100k-concurrent-user event (34 provinces × 4 ISPs × 5 vendors, 50 rooms).
//
//go:embed wall_scenario.yaml
var wallScenario []byte

// wallDatabase holds qoscope's tables of the query benchmark; the raw
// events of the peer go to peerDatabase.
const (
	wallDatabase = "qoscope_bench_wall"
	wallRawTable = "raw_wall"
)

// The sources' minute tables and their rollups (migrations 0001, 0004).
var wallSources = []string{"client", "cdn", "origin"}

// WallData is how the query benchmark's data was made.
type WallData struct {
	// Method says how: one generated hour backfilled, then replicated.
	Method   string    `json:"method"`
	Scenario string    `json:"scenario"`
	Seed     uint64    `json:"seed"`
	Users    int       `json:"users"`
	Hours    int       `json:"hours"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Hour is the generated (and backfilled) hour: the newest one; the
	// others are its copies, each shifted by whole hours.
	Hour          time.Time `json:"generated_hour"`
	Events        int       `json:"events"`
	FileBytes     int64     `json:"file_bytes"`
	GenSec        float64   `json:"gen_s"`
	BackfillSec   float64   `json:"backfill_s"`
	ReplicateSec  float64   `json:"replicate_s"`
	MergeWaitSec  float64   `json:"merge_wait_s"`
	MergesPending int       `json:"merges_pending_after_wait"`
	RawLoadSec    float64   `json:"raw_load_s"`
	// Rows and Parts per table (active parts, after the merge wait).
	Rows  map[string]uint64 `json:"rows"`
	Parts map[string]uint64 `json:"parts"`
	// ClientRowsPerMinute is client_minute's rows of the generated hour / 60.
	ClientRowsPerMinute float64 `json:"client_rows_per_minute"`
	CDNRowsPerMinute    float64 `json:"cdn_rows_per_minute"`
	OriginRowsPerMinute float64 `json:"origin_rows_per_minute"`
}

// wallEnv is the loaded data: qoscope's database and the peer's raw table.
type wallEnv struct {
	dsn     string // qoscope's database
	conn    driver.Conn
	rawConn driver.Conn
	data    *WallData
}

func (e *wallEnv) close() {
	if e.conn != nil {
		e.conn.Close()
	}
	if e.rawConn != nil {
		e.rawConn.Close()
	}
}

// loadWallData makes the query benchmark's data: gen writes one hour
// (the newest: the current clock hour, so that the wall's "newest minute"
// is never behind the clock; whole hours keep the copies' hour rollups
// exact), `qoscope aggregate --output clickhouse`'s code
// (runner.Backfill) writes its minute rows and hour/day rollups into a
// fresh, migrated database, and ClickHouse copies the minute and hour rows
// of that hour to each of the Hours−1 hours before it (INSERT ... SELECT
// window_start − INTERVAL k HOUR); the day rollups are then recomputed
// from the hour rows as the runner computes them. The same hour's raw
// events go to the peer's MergeTree (chraw's table and native loader).
func loadWallData(ctx context.Context, o *Options, work string, logf func(string, ...any)) (*wallEnv, error) {
	end := o.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	hour := end.Add(-time.Hour)
	d := &WallData{Scenario: "wall-bench (bench/harness/wall_scenario.yaml)", Seed: o.Seed, Users: o.WallUsers, Hours: o.WallHours,
		From: end.Add(-time.Duration(o.WallHours) * time.Hour), To: end, Hour: hour,
		Method: fmt.Sprintf("gen writes one hour (%s users), runner.Backfill (`qoscope aggregate --input F --output clickhouse`) writes its minute rows and rollups, "+
			"ClickHouse copies that hour's minute and hour rows to the %d hours before it (INSERT ... SELECT window_start - INTERVAL k HOUR), "+
			"and the day rollups are recomputed from the hour rows", num(float64(o.WallUsers)), o.WallHours-1)}
	dsn, err := withDatabase(o.ClickHouseDSN, wallDatabase)
	if err != nil {
		return nil, err
	}
	if err := dropDatabase(ctx, o.ClickHouseDSN, wallDatabase); err != nil {
		return nil, err
	}
	if err := e2e.Migrate(ctx, dsn); err != nil {
		return nil, fmt.Errorf("cannot migrate %s: %w", wallDatabase, err)
	}
	env := &wallEnv{dsn: dsn, data: d}
	if env.conn, err = chconn.Open(ctx, dsn); err != nil {
		return nil, err
	}
	fail := func(err error) (*wallEnv, error) { env.close(); return nil, err }

	// One hour of events.
	scen := filepath.Join(work, "wall_scenario.yaml")
	if err := os.WriteFile(scen, wallScenario, 0o644); err != nil {
		return fail(fmt.Errorf("cannot write %s: %w", scen, err))
	}
	g := gen.DefaultOptions()
	g.Scenario, g.ScenarioFile, g.Seed, g.Users, g.Duration = "", scen, o.Seed, o.WallUsers, time.Hour
	g.Mode, g.Start, g.Progress = gen.ModeFast, hour, "none"
	g.Output = filepath.Join(work, "wall.ndjson")
	t0 := time.Now()
	if err := gen.Run(ctx, g, io.Discard, io.Discard); err != nil {
		return fail(fmt.Errorf("cannot generate the wall's hour: %w", err))
	}
	d.GenSec = time.Since(t0).Seconds()
	if fi, err := os.Stat(g.Output); err == nil {
		d.FileBytes = fi.Size()
	}
	logf("  generated %s (%.0f MB) in %.1f s", hour.Format(time.RFC3339), float64(d.FileBytes)/1e6, d.GenSec)

	// Backfill it, as `qoscope aggregate --input F --output clickhouse` does.
	cfg := runner.DefaultConfig()
	cfg.ClickHouse = config.ClickHouse{DSN: dsn, HTTP: o.ClickHouseHTTP}
	t0 = time.Now()
	rep, err := runner.Backfill(ctx, runner.BackfillOptions{Config: &cfg, HTTPClient: &http.Client{Timeout: 5 * time.Minute},
		Offline: aggregator.OfflineOptions{Inputs: []string{g.Output}}})
	if err != nil {
		return fail(fmt.Errorf("cannot backfill the wall's hour: %w", err))
	}
	d.BackfillSec = time.Since(t0).Seconds()
	d.Events = int(rep.Stats.Events)
	logf("  backfilled %d events into %d minute rows in %.1f s", d.Events, rep.Rows, d.BackfillSec)

	// Copy the hour to the hours before it, then the days.
	t0 = time.Now()
	if err := replicateHours(ctx, env.conn, wallDatabase, hour, o.WallHours); err != nil {
		return fail(err)
	}
	d.ReplicateSec = time.Since(t0).Seconds()
	logf("  replicated to %d hours in %.1f s", o.WallHours, d.ReplicateSec)
	t0 = time.Now()
	d.MergesPending, err = waitMerges(ctx, env.conn, wallDatabase, o.WallMergeWait)
	if err != nil {
		return fail(err)
	}
	d.MergeWaitSec = time.Since(t0).Seconds()
	if d.Rows, d.Parts, err = tableSizes(ctx, env.conn, wallDatabase); err != nil {
		return fail(err)
	}
	perMinute := func(src string) (float64, error) {
		var n uint64
		err := env.conn.QueryRow(ctx, "SELECT count() FROM `"+wallDatabase+"`.`"+src+"_minute` WHERE window_start >= ? AND window_start < ?", hour, end).Scan(&n)
		return float64(n) / 60, err
	}
	for src, dst := range map[string]*float64{"client": &d.ClientRowsPerMinute, "cdn": &d.CDNRowsPerMinute, "origin": &d.OriginRowsPerMinute} {
		if *dst, err = perMinute(src); err != nil {
			return fail(fmt.Errorf("cannot count %s rows: %w", src, err))
		}
	}
	logf("  %s client rows (%.0f a minute), merges settled in %.1f s (%d pending)", num(float64(d.Rows["client_minute"])), d.ClientRowsPerMinute, d.MergeWaitSec, d.MergesPending)

	// The peer's raw events of the same hour.
	peerDSN, err := withDatabase(o.ClickHouseDSN, peerDatabase)
	if err != nil {
		return fail(err)
	}
	if env.rawConn, err = chraw.OpenCreatingDB(ctx, peerDSN, peerDatabase); err != nil {
		return fail(err)
	}
	if err := chraw.CreateTable(ctx, env.rawConn, peerDatabase, wallRawTable); err != nil {
		return fail(err)
	}
	t0 = time.Now()
	f, err := events.Read(g.Output)
	if err != nil {
		return fail(err)
	}
	if err := chraw.LoadNative(ctx, env.rawConn, peerDatabase, wallRawTable, f, chraw.DefaultBatchRows); err != nil {
		return fail(fmt.Errorf("cannot load the raw events: %w", err))
	}
	d.RawLoadSec = time.Since(t0).Seconds()
	logf("  raw events loaded into %s.%s in %.1f s", peerDatabase, wallRawTable, d.RawLoadSec)
	if !o.KeepWork {
		_ = os.Remove(g.Output)
	}
	return env, nil
}

// columns lists db.table's insertable columns (not MATERIALIZED or
// ALIAS) with their types, in table order.
func columns(ctx context.Context, conn driver.Conn, db, table string) ([]chraw.Column, error) {
	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ? AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position", db, table)
	if err != nil {
		return nil, fmt.Errorf("cannot read the columns of %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	var out []chraw.Column
	for rows.Next() {
		var c chraw.Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, fmt.Errorf("cannot read the columns of %s.%s: %w", db, table, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s.%s has no columns (not migrated?)", db, table)
	}
	return out, rows.Err()
}

// shiftSQL copies the rows of db.table in [hour, hour+1h) to each of the
// hours−1 hours before it.
func shiftSQL(db, table string, cols []chraw.Column, hour time.Time, hours int) string {
	names := make([]string, len(cols))
	exprs := make([]string, len(cols))
	for i, c := range cols {
		names[i] = "`" + c.Name + "`"
		exprs[i] = names[i]
		if c.Name == "window_start" {
			exprs[i] = "window_start - toIntervalHour(k)"
		}
	}
	ts := fmt.Sprint(hour.Unix())
	return fmt.Sprintf("INSERT INTO `%s`.`%s` (%s) SELECT %s FROM `%s`.`%s` ARRAY JOIN range(1, %d) AS k WHERE window_start >= toDateTime(%s, 'UTC') AND window_start < toDateTime(%s, 'UTC') + INTERVAL 1 HOUR",
		db, table, strings.Join(names, ", "), strings.Join(exprs, ", "), db, table, hours, ts, ts)
}

// daySQL recomputes db.<src>_day from the hour rows, as the runner's
// rollup does (aggregator/runner/store.go rollupColumns): minimums by min
// (over hours whose minimum already skips minutes without samples),
// histograms by sumMap, everything else summed.
func daySQL(db, src string, cols []chraw.Column) string {
	key := map[string]string{"window_start": "toStartOfDay(window_start) AS day", "grouping": "grouping", "dims": "any(dims)",
		"topic": "topic", "kafka_partition": "kafka_partition", "version": "max(version)"}
	var names, exprs []string
	for _, c := range cols {
		if c.Name == "written_at" {
			continue
		}
		e, ok := key[c.Name]
		switch {
		case ok:
		case strings.HasPrefix(c.Type, "Map("):
			e = "sumMap(`" + c.Name + "`)"
		case strings.HasSuffix(c.Name, "_min"):
			e = "min(`" + c.Name + "`)"
		default:
			e = "sum(`" + c.Name + "`)"
		}
		names = append(names, "`"+c.Name+"`")
		exprs = append(exprs, e)
	}
	return fmt.Sprintf("INSERT INTO `%s`.`%s_day` (%s) SELECT %s FROM `%s`.`%s_hour` FINAL GROUP BY day, grouping, dims_key, topic, kafka_partition",
		db, src, strings.Join(names, ", "), strings.Join(exprs, ", "), db, src)
}

// replicateHours copies the generated hour's minute and hour rows to the
// hours before it and recomputes the day rollups.
func replicateHours(ctx context.Context, conn driver.Conn, db string, hour time.Time, hours int) error {
	if hours < 2 {
		return nil
	}
	// One statement per table writes tens of millions of rows: no
	// client-side timeout beyond ctx.
	for _, src := range wallSources {
		for _, t := range []string{src + "_minute", src + "_hour"} {
			cols, err := columns(ctx, conn, db, t)
			if err != nil {
				return err
			}
			if err := conn.Exec(ctx, shiftSQL(db, t, cols, hour, hours)); err != nil {
				return fmt.Errorf("cannot replicate %s: %w", t, err)
			}
		}
		cols, err := columns(ctx, conn, db, src+"_day")
		if err != nil {
			return err
		}
		if err := conn.Exec(ctx, "TRUNCATE TABLE `"+db+"`.`"+src+"_day`"); err != nil {
			return fmt.Errorf("cannot truncate %s_day: %w", src, err)
		}
		if err := conn.Exec(ctx, daySQL(db, src, cols)); err != nil {
			return fmt.Errorf("cannot recompute %s_day: %w", src, err)
		}
	}
	return nil
}

// waitMerges waits up to max for db's background merges to finish (a
// production table would long have merged 7 days of parts) and returns
// how many were still running.
func waitMerges(ctx context.Context, conn driver.Conn, db string, max time.Duration) (int, error) {
	deadline := time.Now().Add(max)
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = ?", db).Scan(&n); err != nil {
			return 0, fmt.Errorf("cannot read system.merges: %w", err)
		}
		if n == 0 || time.Now().After(deadline) {
			return int(n), nil
		}
		select {
		case <-ctx.Done():
			return int(n), ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// tableSizes returns the rows and active parts of each table of db.
func tableSizes(ctx context.Context, conn driver.Conn, db string) (map[string]uint64, map[string]uint64, error) {
	rows, err := conn.Query(ctx, "SELECT table, sum(rows), count() FROM system.parts WHERE database = ? AND active GROUP BY table ORDER BY table", db)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read system.parts: %w", err)
	}
	defer rows.Close()
	r, p := map[string]uint64{}, map[string]uint64{}
	for rows.Next() {
		var t string
		var n, parts uint64
		if err := rows.Scan(&t, &n, &parts); err != nil {
			return nil, nil, fmt.Errorf("cannot read system.parts: %w", err)
		}
		r[t], p[t] = n, parts
	}
	return r, p, rows.Err()
}

// WallRun is one kind of client under load.
type WallRun struct {
	// Kind: library (query.Querier in this process), http (qoscope serve)
	// or raw (the peer's SQL over raw events).
	Kind    string           `json:"kind"`
	Target  string           `json:"target,omitempty"`
	Clients int              `json:"clients"`
	Rounds  int              `json:"rounds"`
	QPS     float64          `json:"queries_per_s"`
	Load    Step             `json:"load"` // CPU of this process and ClickHouse over the run
	Queries []WallQueryStats `json:"queries"`
	Note    string           `json:"note,omitempty"`
	Error   string           `json:"error,omitempty"`
}

// WallResult is the query benchmark.
type WallResult struct {
	Data       *WallData `json:"data,omitempty"`
	DurationS  float64   `json:"duration_s"`
	GoalP99Ms  float64   `json:"goal_p99_ms"`
	Qoscope    *WallRun  `json:"qoscope,omitempty"`
	Raw        *WallRun  `json:"raw,omitempty"`
	Agreement  []string  `json:"agreement,omitempty"`
	Notes      []string  `json:"notes,omitempty"`
	Error      string    `json:"error,omitempty"`
	SeriesFrom time.Time `json:"series_from"`
	SeriesTo   time.Time `json:"series_to"`
}

// wallGoalMs is the query benchmark's goal (bench/README.md): every wall query's p99 ≤ 50 ms on this
// 2-core machine at 20 concurrent clients.
const wallGoalMs = 50

// taggedWall marks each question's ClickHouse statements with log_comment
// tag+question, so that system.query_log gives the server's cost per
// question (statements reached over HTTP are not marked).
type taggedWall struct {
	c   WallClient
	tag string
}

func (t taggedWall) Ask(ctx context.Context, q string) (int, error) {
	return t.c.Ask(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_comment": t.tag + q})), q)
}

// logCost is one question's ClickHouse statements in system.query_log.
type logCost struct {
	statements, cpuUS, readRows, analysisUS uint64
}

// queryLog reads the cost of each question's statements tagged with tag
// (taggedWall) from system.query_log.
func queryLog(ctx context.Context, conn driver.Conn, tag string) (map[string]logCost, error) {
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return nil, fmt.Errorf("cannot flush the query log: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT log_comment, count(), sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']), sum(read_rows),
		sum(ProfileEvents['QueryAnalysisMicroseconds'])
		FROM system.query_log WHERE event_date >= yesterday() AND type = 'QueryFinish' AND startsWith(log_comment, ?) GROUP BY log_comment`, tag)
	if err != nil {
		return nil, fmt.Errorf("cannot read the query log: %w", err)
	}
	defer rows.Close()
	out := map[string]logCost{}
	for rows.Next() {
		var c string
		var x logCost
		if err := rows.Scan(&c, &x.statements, &x.cpuUS, &x.readRows, &x.analysisUS); err != nil {
			return nil, fmt.Errorf("cannot read the query log: %w", err)
		}
		out[strings.TrimPrefix(c, tag)] = x
	}
	return out, rows.Err()
}

// serverCost fills each question's ClickHouse statements, CPU and rows
// read per answer under load (tag), and the analysis time per answer of
// the one-client run (tag1): analysis is timed on the wall clock, which
// under load mostly measures the wait for a core.
func serverCost(ctx context.Context, conn driver.Conn, tag, tag1 string, stats []WallQueryStats) error {
	load, err := queryLog(ctx, conn, tag)
	if err != nil {
		return err
	}
	one, err := queryLog(ctx, conn, tag1)
	if err != nil {
		return err
	}
	for i := range stats {
		s := &stats[i]
		if x, ok := load[s.Query]; ok && s.N+s.Errors > 0 {
			answers := float64(s.N + s.Errors)
			s.Statements, s.ServerCPUMs, s.ReadRows = float64(x.statements)/answers, float64(x.cpuUS)/1000/answers, float64(x.readRows)/answers
		}
		if x, ok := one[s.Query]; ok && s.N1 > 0 {
			s.AnalysisMs1 = float64(x.analysisUS) / 1000 / float64(s.N1)
			s.ServerCPUMs1 = float64(x.cpuUS) / 1000 / float64(s.N1)
		}
	}
	return nil
}

// measureLoad warms c (each question once, untimed), asks each question
// alone for a few seconds (one client: the latency without queueing), and
// then runs the load.
func measureLoad(ctx context.Context, o *Options, kind, target string, c WallClient, conn driver.Conn, spec WallSpec, lo LoadOptions) *WallRun {
	w := &WallRun{Kind: kind, Target: target, Clients: lo.Clients}
	for _, q := range lo.Queries {
		n, err := c.Ask(ctx, q)
		if err != nil {
			w.Error = fmt.Sprintf("warm-up: %v", err)
			return w
		}
		if n == 0 {
			w.Error = fmt.Sprintf("warm-up: the %s answer is empty (no data for it)", q)
			return w
		}
	}
	tag := fmt.Sprintf("qoscope-bench-wall-%s-%d-", kind, time.Now().UnixNano())
	tag1 := tag + "one-"
	one := runLoad(ctx, taggedWall{c: c, tag: tag1}, LoadOptions{Clients: 1, Duration: o.WallDuration / 6, MinRounds: 3, Queries: lo.Queries})
	m := measure.Start("wall_"+kind, o.ClickHousePID)
	run := runLoad(ctx, taggedWall{c: c, tag: tag}, lo)
	st := m.Done()
	w.Load = stepOf(st)
	w.Rounds = run.Rounds
	w.Queries = run.stats(spec, lo.Queries)
	for i, s := range one.stats(spec, lo.Queries) {
		w.Queries[i].P50Ms1, w.Queries[i].N1 = s.P50Ms, s.N
	}
	n := 0
	for _, s := range w.Queries {
		n += s.N
		if s.Errors > 0 && w.Error == "" {
			w.Error = fmt.Sprintf("%s: %d errors, the first: %s", s.Query, s.Errors, s.FirstError)
		}
	}
	if run.Wall > 0 {
		w.QPS = float64(n) / run.Wall.Seconds()
	}
	if conn != nil {
		if err := serverCost(ctx, conn, tag, tag1, w.Queries); err != nil {
			w.Note = err.Error()
		}
	}
	return w
}

// runWall loads the data and measures qoscope's answers, then the peer's.
func runWall(ctx context.Context, o *Options, work string, logf func(string, ...any)) *WallResult {
	res := &WallResult{DurationS: o.WallDuration.Seconds(), GoalP99Ms: wallGoalMs}
	env, err := loadWallData(ctx, o, work, logf)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer env.close()
	if !o.KeepWork {
		defer func() {
			c := context.WithoutCancel(ctx)
			_ = env.rawConn.Exec(c, "DROP TABLE IF EXISTS `"+peerDatabase+"`.`"+wallRawTable+"` SYNC")
			_ = dropDatabase(c, o.ClickHouseDSN, wallDatabase)
		}()
	}
	res.Data = env.data
	spec := DefaultWallSpec(env.data.To)
	res.SeriesFrom, res.SeriesTo = spec.SeriesFrom, spec.SeriesTo
	lo := LoadOptions{Clients: o.WallClients, Duration: o.WallDuration, MinRounds: 1, Queries: WallQueries}

	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		res.Error = err.Error()
		return res
	}
	lib := &libraryWall{q: query.NewQuerier(env.conn, query.NewCatalog(plan), query.Options{}), spec: spec}
	sql, err := rawWallSQL(peerDatabase, wallRawTable, query.DefaultOptions().OnMicRoles, query.DefaultOptions().OffMicRoles, spec.BreakdownLimit)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	raw := &rawWall{conn: env.rawConn, sql: sql, from: env.data.Hour, end: env.data.To}

	// Agreement before speed.
	if res.Agreement, err = wallAgreement(ctx, lib.q, raw, spec); err != nil {
		res.Notes = append(res.Notes, "agreement not checked: "+err.Error())
	}
	for _, a := range res.Agreement {
		logf("  agreement: %s", a)
	}

	// qoscope: `qoscope serve` in its own process (default), the query
	// library in this process, or a serve the caller runs.
	var c WallClient = lib
	kind, target := "library", ""
	if o.WallTarget == "serve" {
		dsn, err := withDatabase(o.ClickHouseDSN, wallDatabase)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		srv, err := startWallServe(ctx, work, dsn, logf)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer srv.stop()
		kind, target = "http", "qoscope serve (own process)"
		c = &httpWall{base: srv.url, token: srv.token, spec: spec,
			client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.WallClients}}}
	} else if o.WallTarget != "" && o.WallTarget != "library" {
		kind, target = "http", o.WallTarget
		c = &httpWall{base: o.WallTarget, token: o.WallToken, spec: spec,
			client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.WallClients}}}
	}
	logf("  qoscope (%s) under %d clients for %s", kind, o.WallClients, o.WallDuration)
	res.Qoscope = measureLoad(ctx, o, kind, target, c, env.conn, spec, lo)
	logWallRun(logf, res.Qoscope)

	// The peer: the same questions from the hour's raw events.
	logf("  raw events (peer) under %d clients for %s, at least one round each", o.WallClients, o.WallDuration)
	res.Raw = measureLoad(ctx, o, "raw", peerDatabase+"."+wallRawTable, raw, env.rawConn, spec, lo)
	logWallRun(logf, res.Raw)
	return res
}

func logWallRun(logf func(string, ...any), w *WallRun) {
	for _, s := range w.Queries {
		logf("    %-10s n=%-5d p50 %s ms  p99 %s ms  (%d items); one client p50 %s ms; ClickHouse per answer: %s",
			s.Query, s.N, num(s.P50Ms), num(s.P99Ms), s.Items, num(s.P50Ms1), wallCost(s))
	}
	if w.Error != "" {
		logf("    error: %s", firstLine(w.Error))
	}
}
