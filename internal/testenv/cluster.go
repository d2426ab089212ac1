package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/devinfra"
)

// Variables that describe a ClickHouse cluster, written by `qoscope infra up
// --clickhouse-cluster N`. They are not QOSCOPE_CLICKHOUSE_*: those are
// config overrides that every test reads.
const (
	// EnvClusterName is the cluster's name in the nodes' <remote_servers>.
	EnvClusterName = devinfra.EnvClusterName
	// EnvClusterDSNs lists one native DSN per node, comma-separated, in the
	// cluster's shard order.
	EnvClusterDSNs = devinfra.EnvClusterDSNs
	// EnvClusterHTTP lists the nodes' HTTP URLs in the same order. Optional.
	EnvClusterHTTP = devinfra.EnvClusterHTTP
)

// ClickHouseClusterEnv is one test's database on every node of the shared
// ClickHouse cluster. On the cluster of `qoscope infra up` (clickhouse-local
// servers) Distributed tables work, but Replicated*MergeTree tables stay
// read-only and ON CLUSTER DDL is refused: see internal/devinfra.
type ClickHouseClusterEnv struct {
	// Name is the cluster, as Distributed tables and system.clusters name it.
	Name string
	// Database was created on every node for this test and is dropped from
	// every node at cleanup.
	Database string
	// Nodes are in the order of EnvClusterDSNs, i.e. of the cluster's shards
	// for a cluster started by `qoscope infra up`.
	Nodes []ClusterNode
}

// ClusterNode is one node of a ClickHouseClusterEnv.
type ClusterNode struct {
	// DSN is the node's DSN with its database replaced by the test's.
	DSN string
	// HTTP is the node's http://host:port, or "" if EnvClusterHTTP is unset.
	HTTP string
	// Conn is a native-protocol connection to the node whose default
	// database is the test's; closed at cleanup.
	Conn driver.Conn
}

// ClickHouseCluster creates a fresh database on every node of the shared
// cluster and returns connections to it. The databases are dropped in
// t.Cleanup (with SYNC, which also removes the ZooKeeper metadata of their
// replicated tables). It skips (or fails, see package doc) when no cluster
// is configured.
func ClickHouseCluster(t testing.TB) *ClickHouseClusterEnv {
	t.Helper()
	dsns := strings.Split(need(t, EnvClusterDSNs, "ClickHouse cluster"), ",")
	name := strings.TrimSpace(os.Getenv(EnvClusterName))
	if name == "" {
		t.Fatalf("testenv: %s is set but %s is not", EnvClusterDSNs, EnvClusterName)
	}
	var https []string
	if v := strings.TrimSpace(os.Getenv(EnvClusterHTTP)); v != "" {
		https = strings.Split(v, ",")
		if len(https) != len(dsns) {
			t.Fatalf("testenv: %s has %d entries, %s %d", EnvClusterHTTP, len(https), EnvClusterDSNs, len(dsns))
		}
	}
	env := &ClickHouseClusterEnv{Name: name, Database: uniqueName(t, "t", '_')}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, base := range dsns {
		node := ClusterNode{}
		if https != nil {
			node.HTTP = strings.TrimRight(strings.TrimSpace(https[i]), "/")
		}
		node.DSN, node.Conn = openTestDatabase(t, ctx, strings.TrimSpace(base), env.Database,
			fmt.Sprintf("entry %d of %s", i+1, EnvClusterDSNs), fmt.Sprintf("cluster node %d", i+1))
		env.Nodes = append(env.Nodes, node)
	}
	return env
}

// Config returns config.ClickHouse for node i (0-based) of the cluster: its
// DSN and HTTP, pointing at this test's database, and Cluster set to Name.
func (c *ClickHouseClusterEnv) Config(i int) config.ClickHouse {
	return config.ClickHouse{DSN: c.Nodes[i].DSN, HTTP: c.Nodes[i].HTTP, Cluster: c.Name}
}
