package migrate

import (
	"errors"
	"fmt"
	"strings"
)

// templateData is what a migration file sees as "." when it is rendered.
// Only the migrator's own, validated identifiers (database, cluster) come
// from configuration; every name a file passes in is validated too, so no
// rendered statement can carry anything but identifiers and fixed SQL.
type templateData struct {
	database string // validated identifier
	cluster  string // validated identifier, "" = single node
	// eachNode: the cluster's DDL is run on every node in turn instead of
	// once ON CLUSTER (clickhouse.cluster_ddl: each_node).
	eachNode bool
	// unreplicated: a cluster's tables are plain *MergeTree (one replica
	// per shard; migrate.replicated: false).
	unreplicated bool
}

// Cluster is the cluster name, "" on a single node; for {{if .Cluster}}.
func (d templateData) Cluster() string { return d.cluster }

// Database is the quoted target database.
func (d templateData) Database() string { return quoteIdent(d.database) }

// OnCluster renders the ON CLUSTER clause of a DDL statement, "" on a single node.
func (d templateData) OnCluster() string {
	if d.cluster == "" || d.eachNode {
		return ""
	}
	return "ON CLUSTER " + quoteIdent(d.cluster)
}

// Table names the table that stores rows: name on a single node, name_local
// (the per-shard replicated table under the Distributed table "name") on a cluster.
func (d templateData) Table(name string) (string, error) {
	if err := validIdentifier(name); err != nil {
		return "", fmt.Errorf("Table %q: %w", name, err)
	}
	if d.cluster == "" {
		return name, nil
	}
	return name + "_local", nil
}

var mergeTreeFamilies = map[string]bool{
	"MergeTree": true, "ReplacingMergeTree": true, "SummingMergeTree": true,
	"AggregatingMergeTree": true, "CollapsingMergeTree": true,
	"VersionedCollapsingMergeTree": true, "CoalescingMergeTree": true,
}

// replicatedPath puts each table under its own UUID (stable across replicas
// because ON CLUSTER DDL assigns one UUID cluster-wide), so DROP ... SYNC then
// CREATE of the same name never collides with a leftover Keeper path.
const replicatedPath = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'"

// replicatedPathEachNode is the Keeper path when each node runs its own
// CREATE: the nodes give the table different UUIDs, so the replicas of a
// shard find each other by database and table name instead.
const replicatedPathEachNode = "'/clickhouse/tables/{database}/{table}/{shard}', '{replica}'"

// Engine renders a MergeTree-family engine: Family(args) on a single node,
// ReplicatedFamily('/clickhouse/tables/{uuid}/{shard}', '{replica}', args) on
// a cluster (with each_node DDL the path is by {database}/{table} instead;
// unreplicated clusters keep Family(args)). args must be column names.
func (d templateData) Engine(family string, args ...string) (string, error) {
	if !mergeTreeFamilies[family] {
		return "", fmt.Errorf("Engine %q: not a MergeTree-family engine", family)
	}
	for _, a := range args {
		if err := validIdentifier(a); err != nil {
			return "", fmt.Errorf("Engine %s argument %q: %w", family, a, err)
		}
	}
	if d.cluster == "" || d.unreplicated {
		return family + "(" + strings.Join(args, ", ") + ")", nil
	}
	path := replicatedPath
	if d.eachNode {
		path = replicatedPathEachNode
	}
	return "Replicated" + family + "(" + strings.Join(append([]string{path}, args...), ", ") + ")", nil
}

// Distributed renders the engine of the cluster-wide table over local, sharded
// by cityHash64(keys...). Rows that must replace each other have to land on the
// same shard, so keys must be a subset of local's sorting key (qoscope uses
// topic, kafka_partition: one Kafka partition's rows live on one shard).
func (d templateData) Distributed(local string, keys ...string) (string, error) {
	if d.cluster == "" {
		return "", errors.New("Distributed is only meaningful on a cluster; wrap the statement in {{if .Cluster}}")
	}
	if err := validIdentifier(local); err != nil {
		return "", fmt.Errorf("Distributed table %q: %w", local, err)
	}
	if len(keys) == 0 {
		return "", errors.New("Distributed: at least one sharding key column is required")
	}
	for _, k := range keys {
		if err := validIdentifier(k); err != nil {
			return "", fmt.Errorf("Distributed sharding key %q: %w", k, err)
		}
	}
	return fmt.Sprintf("Distributed('%s', '%s', '%s', cityHash64(%s))", d.cluster, d.database, local, strings.Join(keys, ", ")), nil
}

// quoteIdent back-quotes an identifier already checked by validIdentifier.
func quoteIdent(s string) string { return "`" + s + "`" }

// PeriodData is what a view template sees as "." when a migration invokes
// it for one period, e.g. {{template "client_metrics" .Period "hour"}}: the
// hour and day views (and the minute ones) are then one text in one file
// instead of a copy per period (migrations/0005_metric_views.sql).
type PeriodData struct {
	// Name is minute, hour or day: the tables are <source>_<Name> and the
	// views <source>_<Name>_metrics.
	Name string
	// Seconds is the length of the period (60, 3600, 86400), for means over
	// time such as bandwidth.
	Seconds int
	// OnCluster is the ON CLUSTER clause, as templateData.OnCluster.
	OnCluster string
}

// Minute is true for the one-minute period: its tables carry the final flag
// and distinct users; the rollups carry user-minutes instead.
func (p PeriodData) Minute() bool { return p.Name == "minute" }

// Period returns the data a view template is rendered with for one period.
func (d templateData) Period(name string) (PeriodData, error) {
	secs := map[string]int{"minute": 60, "hour": 3600, "day": 86400}[name]
	if secs == 0 {
		return PeriodData{}, fmt.Errorf("Period %q: want minute, hour or day", name)
	}
	return PeriodData{Name: name, Seconds: secs, OnCluster: d.OnCluster()}, nil
}
