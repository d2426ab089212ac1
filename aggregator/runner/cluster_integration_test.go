package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/testenv"
)

// The same pipeline on a two-shard ClickHouse cluster (docs/CLUSTER.md):
// the schema is migrated node by node (each_node DDL: local tables, one
// replica per shard, under Distributed ones), one runner writes through the first
// node's Distributed tables, and the second node's views, which gather
// both shards, equal the offline mode's rows. Both shards must hold rows,
// or the test would not have exercised the sharding.
func TestClusterEqualsOffline(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cl := testenv.ClickHouseCluster(t)
	if len(cl.Nodes) < 2 {
		t.Fatalf("the cluster has %d nodes; the test needs two shards", len(cl.Nodes))
	}
	node := func(i int) *testenv.ClickHouseEnv {
		n := cl.Nodes[i]
		return &testenv.ClickHouseEnv{Conn: n.Conn, Database: cl.Database, DSN: n.DSN, HTTP: n.HTTP}
	}
	// Unreplicated: the test servers (libchdb, i.e. clickhouse-local) have
	// no interserver port, so their replicated tables stay read-only.
	if err := e2e.MigrateCluster(ctx, cl.Nodes[0].DSN, cl.Name, false); err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, ctx, node(0), 31, 300, 6*time.Minute, 4)
	f.produce(t, ctx, f.lines)
	f.expect(t, ctx)

	cfg := f.config(t, "")
	cfg.ClickHouse.Cluster = cl.Name
	fail := make(chan error, 1)
	in := startInstance(t, ctx, cfg, fail)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e2e.WaitCommitted(wctx, f.k.Config(), f.group, f.ends, fail); err != nil {
		t.Fatal(err)
	}
	if err := in.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	for i, n := range cl.Nodes {
		for _, table := range []string{"client_minute_local", "aggregator_checkpoints_local", "client_hour_local"} {
			var rows uint64
			if err := n.Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&rows); err != nil {
				t.Fatalf("node %d: %v", i+1, err)
			}
			if rows == 0 {
				t.Errorf("node %d holds no row of %s: the rows were not spread over the shards", i+1, table)
			}
		}
	}
	f.ch = node(1)
	f.compare(t, ctx)
	checkRollups(t, ctx, f.ch)
}
