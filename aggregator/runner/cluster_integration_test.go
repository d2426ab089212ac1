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
// both shards, equal the offline mode's rows. Every row must sit on the
// shard its key names.
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

	// Every row sits on the shard its sharding key names (Distributed's
	// rule with equal weights: shard = cityHash64(topic, kafka_partition)
	// mod the number of shards), which is what keeps all versions of a row
	// together for ReplacingMergeTree. The topic names are random per
	// test, so whether both shards get rows is up to the hash: it is
	// required whenever the keys seen point to both.
	shards := uint64(len(cl.Nodes))
	held := make([]uint64, len(cl.Nodes))
	keyShards := map[uint64]bool{}
	for i, n := range cl.Nodes {
		for _, table := range []string{"client_minute_local", "cdn_minute_local", "origin_minute_local",
			"aggregator_checkpoints_local", "client_hour_local"} {
			var rows, misplaced uint64
			var keys []uint64
			q := "SELECT count(), countIf(cityHash64(topic, kafka_partition) % ? != ?), groupUniqArray(cityHash64(topic, kafka_partition) % ?) FROM " + table
			if err := n.Conn.QueryRow(ctx, q, shards, uint64(i), shards).Scan(&rows, &misplaced, &keys); err != nil {
				t.Fatalf("node %d, %s: %v", i+1, table, err)
			}
			if misplaced != 0 {
				t.Errorf("node %d holds %d of %d rows of %s that belong to another shard", i+1, misplaced, rows, table)
			}
			held[i] += rows
			for _, k := range keys {
				keyShards[k] = true
			}
		}
	}
	for i, n := range held {
		if n == 0 && len(keyShards) > 1 {
			t.Errorf("node %d holds no row although the keys point to %d shards", i+1, len(keyShards))
		}
	}
	t.Logf("rows per node %v; the keys point to %d of %d shards", held, len(keyShards), shards)
	f.ch = node(1)
	f.compare(t, ctx)
	checkRollups(t, ctx, f.ch)
}
