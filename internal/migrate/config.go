package migrate

import (
	"regexp"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/qoscope/qoscope/internal/config"
)

// Config is the configuration of `qoscope migrate`: a YAML file (optional),
// then QOSCOPE_* environment overrides (QOSCOPE_CLICKHOUSE_DSN,
// QOSCOPE_CLICKHOUSE_CLUSTER, QOSCOPE_LOG_LEVEL, ...), then command-line flags.
type Config struct {
	// ClickHouse names the server and database to migrate. The database in
	// the DSN path is created when absent. Cluster, when set, selects the
	// cluster variant of every migration (docs/CLUSTER.md).
	ClickHouse config.ClickHouse `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	// Log configures the diagnostic log (stderr); results go to stdout.
	Log config.Log `yaml:"log" envPrefix:"LOG_"`
	// Migrate holds the migrator's own settings.
	Migrate Settings `yaml:"migrate" envPrefix:"MIGRATE_"`
}

// How a cluster's DDL reaches its nodes (Settings.ClusterDDL).
const (
	// ClusterDDLOnCluster runs every statement once, ON CLUSTER, through
	// the servers' distributed DDL queue (needs Keeper/ZooKeeper and
	// <distributed_ddl>). The migrator's history is replicated to every node.
	ClusterDDLOnCluster = "on_cluster"
	// ClusterDDLEachNode connects to every node of the cluster in turn
	// (from the seed node's system.clusters) and runs the migrations there
	// without ON CLUSTER; each node keeps its own history. For servers
	// without a distributed DDL queue.
	ClusterDDLEachNode = "each_node"
)

// Settings configures the migrator itself.
type Settings struct {
	// ClusterDDL is on_cluster (the default) or each_node; only meaningful
	// with clickhouse.cluster.
	ClusterDDL string `yaml:"cluster_ddl" env:"CLUSTER_DDL"`
	// Replicated makes a cluster's tables Replicated*MergeTree (the
	// default, true). false keeps plain *MergeTree tables under the
	// Distributed ones: a sharded cluster whose shards have one replica
	// each, without Keeper for the data. The migrator's own history
	// follows ClusterDDL either way.
	Replicated bool `yaml:"replicated" env:"REPLICATED"`
}

// DefaultConfig returns the documented defaults: database qoscope on
// 127.0.0.1:9000, no cluster (when one is set: DDL on_cluster, replicated
// tables), info-level logs.
func DefaultConfig() Config {
	return Config{ClickHouse: config.DefaultClickHouse(), Log: config.DefaultLog(), Migrate: Settings{ClusterDDL: ClusterDDLOnCluster, Replicated: true}}
}

// Validate reports every invalid key at once.
func (c *Config) Validate() error {
	var errs config.Errors
	c.ClickHouse.Validate("clickhouse", &errs)
	c.Log.Validate("log", &errs)
	if errs.Len() == 0 {
		// Only now is the DSN known to parse as a URL, so the driver's parse
		// errors cannot echo a password-bearing string.
		opts, err := clickhouse.ParseDSN(c.ClickHouse.DSN)
		switch {
		case err != nil:
			errs.Addf("clickhouse.dsn: %v", err)
		case validIdentifier(opts.Auth.Database) != nil:
			errs.Addf("clickhouse.dsn: database %q: %v", opts.Auth.Database, validIdentifier(opts.Auth.Database))
		}
	}
	if c.ClickHouse.Cluster != "" {
		if err := validIdentifier(c.ClickHouse.Cluster); err != nil {
			errs.Addf("clickhouse.cluster: %q: %v", c.ClickHouse.Cluster, err)
		}
	}
	switch c.Migrate.ClusterDDL {
	case ClusterDDLOnCluster:
	case ClusterDDLEachNode:
		if c.ClickHouse.Cluster == "" {
			errs.Addf("migrate.cluster_ddl: %s needs clickhouse.cluster", ClusterDDLEachNode)
		}
	default:
		errs.Addf("migrate.cluster_ddl: %q: want %s or %s", c.Migrate.ClusterDDL, ClusterDDLOnCluster, ClusterDDLEachNode)
	}
	return errs.Err()
}

// identRE is what the migrator accepts as a database, cluster or table name.
// Names are interpolated into DDL (ClickHouse cannot bind identifiers), so
// anything that would need quoting is refused rather than quoted.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const maxIdentLen = 128

func validIdentifier(s string) error {
	switch {
	case s == "":
		return errEmptyIdent
	case len(s) > maxIdentLen:
		return errLongIdent
	case !identRE.MatchString(s):
		return errBadIdent
	}
	return nil
}
