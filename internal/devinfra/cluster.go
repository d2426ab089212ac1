package devinfra

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// ClusterName is the <remote_servers> entry that lists the cluster nodes
// started for Options.ClusterNodes: one shard per node, one replica each.
const ClusterName = "qoscope_cluster"

// MaxClusterNodes bounds Options.ClusterNodes: each node is a ClickHouse
// server of about 250 MB, all on the same small machine.
const MaxClusterNodes = 4

// clusterNodeName is the name, and the state-dir subdirectory, of node i
// (0-based) of the cluster.
func clusterNodeName(i int) string { return "clickhouse-node" + strconv.Itoa(i+1) }

// upCluster starts ZooKeeper and then o.ClusterNodes ClickHouse servers that
// use it and name each other in <remote_servers>. record is Up's state
// update.
func upCluster(ctx context.Context, o *Options, record func(func(*State)) error) error {
	var (
		zkInst *JarInstall
		chInst *ClickHouseInstall
	)
	ig, ictx := errgroup.WithContext(ctx)
	ig.Go(func() (err error) {
		zkInst, err = InstallZooKeeper(ictx, *o)
		return err
	})
	ig.Go(func() (err error) {
		chInst, err = InstallClickHouse(ictx, *o)
		return err
	})
	if err := ig.Wait(); err != nil {
		return err
	}

	// ZooKeeper first: its address goes into every node's config, and a
	// retry on another port would make those configs wrong. It is ready
	// about a second after its start, while Kafka, started in parallel by
	// Up, needs several.
	var zk Server
	err := retryOnPortRace(o, "zookeeper", func() error {
		return startZooKeeper(ctx, o, zkInst, filepath.Join(o.StateDir, "zookeeper"), func(srv Server) error {
			zk = srv
			return record(func(s *State) { s.ZooKeeper = srv })
		})
	})
	if err != nil {
		return err
	}

	n := o.ClusterNodes
	// A node that loses a race for its port takes the whole cluster with
	// it: the other nodes' configs name the ports that were chosen.
	return retryOnPortRace(o, "clickhouse cluster", func() error {
		ports, err := freePorts(3 * n)
		if err != nil {
			return err
		}
		tcp, http, interserver := ports[:n], ports[n:2*n], ports[2*n:]
		g, gctx := errgroup.WithContext(ctx)
		for i := range n {
			node := chNode{
				name:        clusterNodeName(i),
				dir:         filepath.Join(o.StateDir, clusterNodeName(i)),
				tcpPort:     tcp[i],
				httpPort:    http[i],
				extraConfig: clusterConfig(zk.Addr, i, tcp, interserver[i]),
			}
			g.Go(func() error {
				return startClickHouse(gctx, o, chInst, node, func(srv Server) error {
					return record(func(s *State) {
						if len(s.ClusterNodes) != n {
							s.ClusterNodes = make([]Server, n)
						}
						s.ClusterNodes[i] = srv
					})
				})
			})
		}
		return g.Wait()
	})
}

// clusterConfig is the config of node i (0-based) of a cluster whose nodes
// listen on tcpPorts: ZooKeeper for the Replicated*MergeTree tables, the
// macros that make their ZooKeeper paths ({shard}) and replica names
// ({replica}) unique, and the cluster for Distributed tables. Two parts only
// make the config what a real server's would be, as clickhouse-local
// ignores them today: <distributed_ddl> (it refuses ON CLUSTER DDL anyway)
// and the interserver address, which a replica must publish to become
// active (clickhouse-local never reads it, so replicated tables stay
// read-only; a libchdb that reads it needs no config change, and with one
// replica per shard no other server ever connects to that port).
func clusterConfig(zkAddr string, i int, tcpPorts []int, interserverPort int) string {
	zkHost, zkPort, _ := net.SplitHostPort(zkAddr)
	var b strings.Builder
	fmt.Fprintf(&b, `  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>%d</interserver_http_port>
  <zookeeper><node><host>%s</host><port>%s</port></node></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <macros><shard>s%d</shard><replica>r1</replica></macros>
  <remote_servers><%s>
`, interserverPort, xmlEscape(zkHost), xmlEscape(zkPort), i+1, ClusterName)
	for _, p := range tcpPorts {
		fmt.Fprintf(&b, "    <shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>\n", p)
	}
	fmt.Fprintf(&b, "  </%s></remote_servers>\n", ClusterName)
	return b.String()
}
