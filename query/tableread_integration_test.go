package query

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
)

// Every metric ReadFrom sends to a table gives, over the table's rows, what
// it gives over the view's rows made of them: per minute (hour, day) and
// key, as MinuteRows, Breakdown and Series read, and merged over every key
// of a grouping set, as History's segments and a series of a total merge.
// The rows are random, several partitions per key and several versions per
// partition (so FINAL matters), in every grouping set, source and period.
// The views themselves are checked against hand-computed numbers by the
// other tests of this package.
func TestTableReadsMatchViews(t *testing.T) {
	f := newFixture(t, time.Now(), Options{})
	checkTableReads(t, f, f)
}

// On a cluster (docs/CLUSTER.md) the tables are Distributed ones over each
// shard's local table; FINAL applies per shard, which holds every version
// of a partial row (the sharding key is its topic and Kafka partition).
// The rows are written through the first node and read on the second.
func TestTableReadsMatchViewsOnCluster(t *testing.T) {
	cl := testenv.ClickHouseCluster(t)
	if len(cl.Nodes) < 2 {
		t.Fatalf("the cluster has %d nodes; the test needs two shards", len(cl.Nodes))
	}
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: cl.Nodes[0].DSN, Cluster: cl.Name,
		ClusterDDL: migrate.ClusterDDLEachNode, Unreplicated: true}, io.Discard); err != nil {
		t.Fatal(err)
	}
	node := func(i int) *fixture {
		return &fixture{env: &testenv.ClickHouseEnv{Conn: cl.Nodes[i].Conn, Database: cl.Database, DSN: cl.Nodes[i].DSN},
			q: NewQuerier(cl.Nodes[i].Conn, defaultCatalog(t), Options{}), ctx: clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
				// Inserts reach the shards before INSERT returns.
				"distributed_foreground_insert": 1,
			}))}
	}
	checkTableReads(t, node(0), node(1))
}

// checkTableReads fills every table through w with random rows and
// compares, on r, each metric read from the table with the view's.
func checkTableReads(t *testing.T, w, f *fixture) {
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	step := map[Period]time.Duration{PeriodMinute: time.Minute, PeriodHour: time.Hour, PeriodDay: 24 * time.Hour}
	for _, si := range f.q.Catalog().Sources() {
		for _, p := range periods {
			table := si.Tables[p]
			w.fillRandom(t, table, si.GroupingSets, base, step[p])
			var ms []*Metric
			for i := range si.Metrics {
				m := &si.Metrics[i]
				if m.Has(p) && m.Kind != KindGauge {
					ms = append(ms, m)
				}
			}
			src, _ := si.ReadFrom(p, ms...)
			if src == si.Views[p] {
				t.Fatalf("%s: ReadFrom chose the view for %d metrics that are not gauges", table, len(ms))
			}
			secs := int64(step[p] / time.Second)
			for _, shape := range []struct{ name, key string }{{"per key", "dims_key"}, {"all keys merged", "''"}} {
				read := func(from string) [][]*float64 {
					s := newStmt()
					if needsHist(ms...) {
						s.w(histFunctions)
					}
					s.w("SELECT toString(window_start), grouping, ", shape.key, " AS k")
					for _, m := range ms {
						s.w(", ", aggExpr(m, p, secs))
					}
					s.w("\nFROM ", from, "\nGROUP BY window_start, grouping, k\nORDER BY window_start, grouping, k")
					rows, err := f.env.Conn.Query(withParams(f.ctx, s), s.String())
					if err != nil {
						t.Fatalf("%s from %s: %v", shape.name, from, err)
					}
					defer rows.Close()
					var out [][]*float64
					for rows.Next() {
						var w, g, k string
						vals := make([]*float64, len(ms))
						dest := []any{&w, &g, &k}
						for i := range vals {
							dest = append(dest, &vals[i])
						}
						if err := rows.Scan(dest...); err != nil {
							t.Fatal(err)
						}
						// The key columns as a first pseudo-value, compared too.
						key := float64(len(w + g + k))
						out = append(out, append([]*float64{&key}, vals...))
					}
					if err := rows.Err(); err != nil {
						t.Fatal(err)
					}
					return out
				}
				fromView, fromTable := read(si.Views[p]), read(src)
				if len(fromView) == 0 || len(fromView) != len(fromTable) {
					t.Fatalf("%s %s: %d groups from the view, %d from the table", table, shape.name, len(fromView), len(fromTable))
				}
				bad := 0
				for r := range fromView {
					for c := range fromView[r] {
						v, w := fromView[r][c], fromTable[r][c]
						same := v == nil && w == nil || v != nil && w != nil && math.Abs(*v-*w) <= 1e-9*math.Max(1, math.Abs(*v))
						if !same && bad < 5 {
							name := "key"
							if c > 0 {
								name = ms[c-1].Name
							}
							t.Errorf("%s %s group %d %s: view %v, table %v", table, shape.name, r, name, fmtp(v), fmtp(w))
							bad++
						}
					}
				}
			}
		}
	}
}

// fillRandom inserts random partial rows into table: for each grouping set
// 3 × 40 rows over 4 periods starting at base, keys from 3 values per
// dimension, 3 Kafka partitions and 3 versions of each, so that many keys
// have several partitions and several versions. Every other column gets a
// random value of its type: counts, sums, histograms (with the zero
// bucket), the final flag.
func (f *fixture) fillRandom(t *testing.T, table string, sets []GroupingSet, base time.Time, step time.Duration) {
	t.Helper()
	rows, err := f.env.Conn.Query(f.ctx, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ? AND default_kind = '' ORDER BY position", table)
	if err != nil {
		t.Fatal(err)
	}
	var names, exprs []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		var e string
		switch {
		case name == "window_start":
			e = fmt.Sprintf("toDateTime(%d + (rand(1) %% 4) * %d, 'UTC')", base.Unix(), int64(step/time.Second))
		case name == "grouping", name == "dims":
			continue // per grouping set below
		case name == "topic":
			e = "'t'"
		case name == "kafka_partition":
			e = "rand(2) % 3"
		case name == "version":
			e = "n" // unique: FINAL keeps the newest, never a tie
		case name == "final":
			e = "rand(3) % 2"
		case strings.HasPrefix(typ, "Map(Int32"):
			e = "map(toInt32(-2147483648), rand(4) % 3, toInt32(rand(5) % 40), 1 + rand(6) % 5, toInt32(40 + rand(7) % 40), rand(8) % 4)"
		case strings.HasPrefix(typ, "Float"):
			e = fmt.Sprintf("(rand(%d) %% 10000) / 7", 10+len(names))
		case strings.HasPrefix(typ, "UInt") || strings.HasPrefix(typ, "Int"):
			e = fmt.Sprintf("rand(%d) %% 50", 10+len(names))
		default:
			t.Fatalf("%s.%s: no random value for type %s", table, name, typ)
		}
		names, exprs = append(names, name), append(exprs, e)
	}
	rows.Close()
	// Merges stopped and three inserts per set: each insert is collapsed
	// by version on its own (optimize_on_insert), so the older versions
	// that FINAL must drop live in the other parts.
	if err := f.env.Conn.Exec(f.ctx, "SYSTEM STOP MERGES "+table); err != nil {
		// A Distributed table has no merges: its shards' local tables do,
		// and there the older versions may be merged away before the
		// reads (the comparison then holds trivially for those keys).
		t.Logf("%s: %v", table, err)
	}
	for i, gs := range sets {
		dims := "map()"
		if len(gs.Dims) > 0 {
			var kv []string
			for j, d := range gs.Dims {
				kv = append(kv, fmt.Sprintf("'%s', 'v' || toString(rand(%d) %% 3)", d, 100+j))
			}
			dims = "map(" + strings.Join(kv, ", ") + ")"
		}
		for part := range 3 {
			// Versions grow with each insert and stay unique table-wide.
			sql := fmt.Sprintf("INSERT INTO %s (grouping, dims, %s) SELECT '%s', %s, %s FROM (SELECT number + %d AS n FROM numbers(40))",
				table, strings.Join(names, ", "), gs.Name, dims, strings.Join(exprs, ", "), (part*len(sets)+i)*1000)
			f.exec(t, sql)
		}
	}
}
