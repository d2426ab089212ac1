package migrate

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/rs/zerolog"
)

// node is one server of the cluster, as the seed node's system.clusters
// lists it.
type node struct {
	Shard, Replica uint32
	Host           string
	Port           uint16
}

func (n node) addr() string { return net.JoinHostPort(n.Host, strconv.Itoa(int(n.Port))) }

// runEachNode runs the command on every node of the cluster in turn, in
// shard and replica order, each node with its own history (each_node DDL).
// A failure stops at that node: the nodes before it are done, and running
// the same command again continues where it stopped, since a node that is
// up to date has nothing pending.
func runEachNode(ctx context.Context, cfg Config, opts Options, log zerolog.Logger, stdout io.Writer) error {
	nodes, err := clusterNodes(ctx, cfg)
	if err != nil {
		return err
	}
	for i, n := range nodes {
		ncfg := cfg
		ncfg.ClickHouse.DSN, err = nodeDSN(cfg.ClickHouse.DSN, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %s (shard %d, replica %d):\n", n.addr(), n.Shard, n.Replica)
		nlog := log.With().Str("node", n.addr()).Logger()
		if err := runOne(ctx, ncfg, opts, nlog, stdout); err != nil {
			return fmt.Errorf("cluster %s, node %s (%d of %d): %w", cfg.ClickHouse.Cluster, n.addr(), i+1, len(nodes), err)
		}
	}
	return nil
}

// clusterNodes asks the seed server (the DSN's) which nodes form the
// cluster. The connection names no database: it may not exist yet.
func clusterNodes(ctx context.Context, cfg Config) ([]node, error) {
	chOpts, err := clickhouse.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		return nil, fmt.Errorf("clickhouse.dsn: %w", err)
	}
	chOpts.Auth.Database = ""
	db := clickhouse.OpenDB(chOpts)
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT shard_num, replica_num, host_name, port FROM system.clusters
		WHERE cluster = ? ORDER BY shard_num, replica_num`, cfg.ClickHouse.Cluster)
	if err != nil {
		return nil, fmt.Errorf("cannot list the nodes of cluster %s on %s: %w", cfg.ClickHouse.Cluster, cfg.ClickHouse.Redacted(), err)
	}
	defer rows.Close()
	var nodes []node
	for rows.Next() {
		var n node
		if err := rows.Scan(&n.Shard, &n.Replica, &n.Host, &n.Port); err != nil {
			return nil, fmt.Errorf("cannot read system.clusters: %w", err)
		}
		nodes = append(nodes, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read system.clusters: %w", err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("cluster %s is not in system.clusters of %s (a <remote_servers> entry of the server config)", cfg.ClickHouse.Cluster, cfg.ClickHouse.Redacted())
	}
	return nodes, nil
}

// nodeDSN is the seed DSN with the node's host and port: same user,
// password, database and options.
func nodeDSN(seed string, n node) (string, error) {
	u, err := url.Parse(seed)
	if err != nil {
		// Validate parsed it already; never echo the DSN (it may hold a password).
		return "", fmt.Errorf("clickhouse.dsn: not a URL")
	}
	u.Host = n.addr()
	return u.String(), nil
}
