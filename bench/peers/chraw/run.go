package chraw

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/internal/chconn"
)

// Loader names.
const (
	LoaderNative = "native" // clickhouse-go batch insert of typed columns
	LoaderHTTP   = "http"   // JSONEachRow over HTTP
)

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	// DSN is a clickhouse-go DSN (clickhouse://host:9000/db); its database
	// is created if missing and holds the raw table.
	DSN string
	// HTTPURL is ClickHouse's HTTP interface (http://host:8123), required by
	// LoaderHTTP.
	HTTPURL string
	// Table is the raw events table; dropped and recreated by Run.
	// Default "raw_events".
	Table string
	// Loader is LoaderNative (default) or LoaderHTTP.
	Loader string
	// BatchRows per INSERT; default DefaultBatchRows.
	BatchRows int
	// GroupingSets per source; a nil list takes the default of docs/METRICS.md
	// (aggregator.DefaultGroupingSets), an empty non-nil list skips the
	// source.
	GroupingSets aggregator.GroupingSets
	// OriginNoDataMinutes is N of the origin no_data rows; default 5.
	OriginNoDataMinutes int
	// ServerPID, when > 0, is the local ClickHouse server's PID: steps then
	// also report the whole server process's CPU (merges included).
	ServerPID int
	// WarmQueries runs each query once, unmeasured, before the measured
	// run (warm caches, as for the other peers). Default false.
	WarmQueries bool
	// KeepTable leaves the table in place after Run (it is always
	// recreated at the start).
	KeepTable bool
}

func (o *Options) defaults() {
	if o.Table == "" {
		o.Table = "raw_events"
	}
	if o.Loader == "" {
		o.Loader = LoaderNative
	}
	if o.BatchRows <= 0 {
		o.BatchRows = DefaultBatchRows
	}
	d := aggregator.DefaultGroupingSets()
	if o.GroupingSets.Client == nil {
		o.GroupingSets.Client = d.Client
	}
	if o.GroupingSets.CDN == nil {
		o.GroupingSets.CDN = d.CDN
	}
	if o.GroupingSets.Origin == nil {
		o.GroupingSets.Origin = d.Origin
	}
	if o.OriginNoDataMinutes == 0 {
		o.OriginNoDataMinutes = 5
	}
}

func (o *Options) validate() error {
	if o.DSN == "" {
		return fmt.Errorf("chraw: DSN is required")
	}
	switch o.Loader {
	case LoaderNative:
	case LoaderHTTP:
		if o.HTTPURL == "" {
			return fmt.Errorf("chraw: the http loader needs HTTPURL")
		}
	default:
		return fmt.Errorf("chraw: loader %q is not %q or %q", o.Loader, LoaderNative, LoaderHTTP)
	}
	return CheckIdent("table", o.Table)
}

// Result is what Run measured and computed.
type Result struct {
	// Load is the insert of every event (parsing included: client-side for
	// the native loader, server-side for HTTP).
	Load measure.Step `json:"load"`
	// Queries has one step per source query; Query is their sum.
	Queries []measure.Step `json:"queries"`
	Query   measure.Step   `json:"query"`
	// Rows are the metrics in qoscope's offline row format and order.
	Rows []compare.Row `json:"-"`
}

// Run recreates the raw table, loads f with the chosen loader and computes
// the metrics by SQL, measuring both.
func Run(ctx context.Context, opts Options, f *events.File) (Result, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	db, err := chconn.Database(opts.DSN)
	if err != nil {
		return Result{}, err
	}
	if err := CheckIdent("database", db); err != nil {
		return Result{}, err
	}
	conn, err := OpenCreatingDB(ctx, opts.DSN, db)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	if err := CreateTable(ctx, conn, db, opts.Table); err != nil {
		return Result{}, err
	}
	if !opts.KeepTable {
		defer func() {
			_ = conn.Exec(context.WithoutCancel(ctx), fmt.Sprintf("DROP TABLE IF EXISTS `%s`.`%s` SYNC", db, opts.Table))
		}()
	}

	var res Result
	switch opts.Loader {
	case LoaderNative:
		var pcpu measure.ProfileCPU
		m := measure.Start("load_native", opts.ServerPID)
		err = LoadNative(pcpu.Context(ctx), conn, db, opts.Table, f, opts.BatchRows)
		res.Load = m.Done()
		if c, ok := pcpu.CPU(); ok {
			res.Load.ServerCPU, res.Load.ServerCPUFrom = c, "profile_events"
		}
	case LoaderHTTP:
		l := &HTTPLoader{URL: opts.HTTPURL}
		m := measure.Start("load_http", opts.ServerPID)
		var ids []string
		ids, err = l.Load(ctx, db, opts.Table, f, opts.BatchRows, fmt.Sprintf("chraw-%s-%d", opts.Table, time.Now().UnixNano()))
		res.Load = m.Done()
		if err == nil {
			c, ok, qerr := measure.QueryLogCPU(ctx, conn, ids)
			switch {
			case qerr != nil:
				res.Load.Note = qerr.Error()
			case ok:
				res.Load.ServerCPU, res.Load.ServerCPUFrom = c, "query_log"
			default:
				res.Load.Note = "server has no system.query_log: server cpu of http inserts unknown"
			}
		}
	}
	if err != nil {
		return res, err
	}
	res.Load.Events = int64(f.Len())

	rows, steps, err := RunQueries(ctx, conn, db, opts.Table, opts.GroupingSets, opts.OriginNoDataMinutes, opts.ServerPID, opts.WarmQueries)
	if err != nil {
		return res, err
	}
	res.Rows, res.Queries = rows, steps
	res.Query = SumSteps("query", steps)
	res.Query.Events = int64(f.Len())
	return res, nil
}

// SumSteps adds steps up (an Unknown CPU makes the sum Unknown).
func SumSteps(name string, steps []measure.Step) measure.Step {
	s := measure.Step{Name: name}
	for i, x := range steps {
		s.Wall += x.Wall
		s.Rows += x.Rows
		s.ClientCPU += x.ClientCPU
		if i == 0 {
			s.ServerCPU, s.ServerProcCPU, s.ServerCPUFrom = x.ServerCPU, x.ServerProcCPU, x.ServerCPUFrom
			s.BrokerProcCPU = x.BrokerProcCPU
			continue
		}
		s.ServerCPU = addCPU(s.ServerCPU, x.ServerCPU)
		s.ServerProcCPU = addCPU(s.ServerProcCPU, x.ServerProcCPU)
		s.BrokerProcCPU = addCPU(s.BrokerProcCPU, x.BrokerProcCPU)
	}
	return s
}

func addCPU(a, b time.Duration) time.Duration {
	if a == measure.Unknown || b == measure.Unknown {
		return measure.Unknown
	}
	return a + b
}

// OpenCreatingDB creates database db (an identifier the caller checked with
// CheckIdent) if it does not exist and opens dsn, which names it.
func OpenCreatingDB(ctx context.Context, dsn, db string) (driver.Conn, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the clickhouse dsn")
	}
	// The admin connection names no database: the DSN's may not exist yet.
	u.Path = "/"
	admin, err := chconn.Open(ctx, u.String())
	if err != nil {
		return nil, err
	}
	err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s`", db))
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot create database %s: %w", db, err)
	}
	return chconn.Open(ctx, dsn)
}

// CreateTable drops and creates the raw table.
func CreateTable(ctx context.Context, conn driver.Conn, db, table string) error {
	ddl, err := CreateTableSQL(db, table)
	if err != nil {
		return err
	}
	if err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS `%s`.`%s` SYNC", db, table)); err != nil {
		return fmt.Errorf("cannot drop %s.%s: %w", db, table, err)
	}
	if err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("cannot create %s.%s: %w", db, table, err)
	}
	return nil
}

// RunQueries computes the metrics of every source from db.table and
// returns them as offline-format rows in qoscope's output order, with one
// measured step per source query.
func RunQueries(ctx context.Context, conn driver.Conn, db, table string, gs aggregator.GroupingSets, noDataN, serverPID int, warm bool) ([]compare.Row, []measure.Step, error) {
	qs, err := Queries(db, table, gs, noDataN)
	if err != nil {
		return nil, nil, err
	}
	var all []compare.Row
	var steps []measure.Step
	for _, q := range qs {
		if warm {
			if _, err := ReadQuery(ctx, conn, q); err != nil {
				return nil, nil, err
			}
		}
		var pcpu measure.ProfileCPU
		m := measure.Start("query_"+q.Source, serverPID)
		rows, err := ReadQuery(pcpu.Context(ctx), conn, q)
		st := m.Done()
		if err != nil {
			return nil, nil, err
		}
		if c, ok := pcpu.CPU(); ok {
			st.ServerCPU, st.ServerCPUFrom = c, "profile_events"
		}
		st.Rows = int64(len(rows))
		steps = append(steps, st)
		all = append(all, rows...)
	}
	SortRows(all, gs)
	return all, steps, nil
}

// ReadQuery runs q and converts its result into offline-format rows.
func ReadQuery(ctx context.Context, conn driver.Conn, q Query) ([]compare.Row, error) {
	rs, err := conn.Query(ctx, q.SQL, q.Args...)
	if err != nil {
		return nil, fmt.Errorf("cannot run the %s query: %w", q.Source, err)
	}
	defer rs.Close()
	cts := rs.ColumnTypes()
	if want := 1 + len(q.DimCols) + len(q.Metrics); len(cts) != want {
		return nil, fmt.Errorf("%s query: %d columns, want %d", q.Source, len(cts), want)
	}
	dest := make([]any, len(cts))
	for i, ct := range cts {
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	var out []compare.Row
	dimVals := make([]string, len(q.DimCols))
	for rs.Next() {
		if err := rs.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot read the %s result: %w", q.Source, err)
		}
		wms, ok := number(dest[0])
		if !ok {
			return nil, fmt.Errorf("%s query: window_ms is %T", q.Source, dest[0])
		}
		for i := range q.DimCols {
			s, ok := dest[1+i].(*string)
			if !ok {
				return nil, fmt.Errorf("%s query: d_%s is %T", q.Source, q.DimCols[i], dest[1+i])
			}
			dimVals[i] = *s
		}
		set := setOf(q, dimVals)
		if set < 0 {
			return nil, fmt.Errorf("%s query: row with dims %v matches no grouping set", q.Source, dimVals)
		}
		row := compare.Row{WindowStart: time.UnixMilli(int64(wms)).UTC(), Source: q.Source}
		for _, d := range q.Sets[set] {
			row.Dims = append(row.Dims, compare.Dim{Name: d, Value: dimVals[slices.Index(q.DimCols, d)]})
		}
		for i, mc := range q.Metrics {
			v := dest[1+len(q.DimCols)+i]
			m := compare.Metric{Name: mc.Name}
			if mc.Bool {
				b, ok := v.(*bool)
				if !ok {
					return nil, fmt.Errorf("%s query: %s is %T", q.Source, mc.Name, v)
				}
				m = compare.Flag(mc.Name, *b)
			} else if f, ok := number(v); ok {
				m.Value = f
			} else if isNull(v) {
				m.Null = true
			} else {
				return nil, fmt.Errorf("%s query: %s is %T", q.Source, mc.Name, v)
			}
			row.Metrics = append(row.Metrics, m)
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the %s result: %w", q.Source, err)
	}
	return out, nil
}

// setOf finds the grouping set of a result row: the grouped dimensions are
// never ” (a missing value is 'unknown'), the others are ” by GROUPING SETS.
func setOf(q Query, vals []string) int {
	for s, set := range q.Sets {
		ok := true
		for i, d := range q.DimCols {
			if slices.Contains(set, d) != (vals[i] != "") {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
	}
	return -1
}

// number unwraps a scanned numeric value (possibly behind a non-nil pointer).
func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return 0, false
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

// isNull reports whether v is a pointer chain ending in nil.
func isNull(v any) bool {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return true
		}
		rv = rv.Elem()
	}
	return false
}

var sourceRank = map[string]int{"client": 0, "cdn": 1, "origin": 2, "late": 3}

// SortRows sorts rows into qoscope's offline order: window start, source
// (client, cdn, origin), grouping set in configured order, then the
// dimension values one by one.
func SortRows(rows []compare.Row, gs aggregator.GroupingSets) {
	setIdx := func(r *compare.Row) int {
		var sets [][]string
		switch r.Source {
		case "client":
			sets = gs.Client
		case "cdn":
			sets = gs.CDN
		case "origin":
			sets = gs.Origin
		}
		for i, s := range sets {
			if len(s) == len(r.Dims) {
				match := true
				for j, d := range r.Dims {
					if s[j] != d.Name {
						match = false
						break
					}
				}
				if match {
					return i
				}
			}
		}
		return len(sets)
	}
	slices.SortStableFunc(rows, func(a, b compare.Row) int {
		if c := a.WindowStart.Compare(b.WindowStart); c != 0 {
			return c
		}
		if c := cmp.Compare(sourceRank[a.Source], sourceRank[b.Source]); c != 0 {
			return c
		}
		if c := cmp.Compare(setIdx(&a), setIdx(&b)); c != 0 {
			return c
		}
		for i := range min(len(a.Dims), len(b.Dims)) {
			if c := strings.Compare(a.Dims[i].Value, b.Dims[i].Value); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(a.Dims), len(b.Dims))
	})
}
