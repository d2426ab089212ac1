package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/qoscope/qoscope/internal/appconfig"
	"github.com/qoscope/qoscope/internal/migrate"
)

const migrateUsage = `usage: qoscope migrate <command> [flags]

commands:
  up              apply pending migrations (all, or up to --to N)
  down            roll back the latest migration (or every one above --to N; --to 0 = all)
  status          list migrations, whether each is applied, and whether the database is dirty
  version         print the current version
  force VERSION   record VERSION as current and clear a dirty state (changes no schema)

The database is clickhouse.dsn (env QOSCOPE_CLICKHOUSE_DSN), created by up when absent;
clickhouse.cluster (env QOSCOPE_CLICKHOUSE_CLUSTER) selects the cluster variant, run
ON CLUSTER or, with migrate.cluster_ddl each_node, on every node in turn (docs/CLUSTER.md).

flags:
`

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var (
		opts migrate.Options
		to   int64
	)
	configFile := fs.String("config", "", configFlagUsage+"; migrate reads clickhouse, log and migrate")
	fs.StringVar(&opts.DSN, "dsn", "", "ClickHouse DSN, overrides clickhouse.dsn, e.g. clickhouse://127.0.0.1:9000/qoscope")
	fs.StringVar(&opts.Cluster, "cluster", "", "cluster name (a <remote_servers> entry), overrides clickhouse.cluster")
	fs.StringVar(&opts.ClusterDDL, "cluster-ddl", "", "on_cluster or each_node, overrides migrate.cluster_ddl")
	fs.BoolVar(&opts.Unreplicated, "unreplicated", false, "cluster tables are plain *MergeTree, one replica per shard (sets migrate.replicated false)")
	fs.Int64Var(&to, "to", 0, "up: apply versions <= N; down: roll back versions > N")
	fs.Usage = func() {
		fmt.Fprint(stderr, migrateUsage)
		fs.PrintDefaults()
	}
	// Flags may come before, between or after the positional arguments
	// ("migrate --dsn X force 3", "migrate force 3 --dsn X"): the flag package
	// stops at the first positional, so collect it and parse on.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if *configFile != "" {
		cfg, err := appconfig.LoadMigrate(*configFile)
		if err != nil {
			return err
		}
		opts.Config = &cfg
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("migrate: missing command: %w", errUsage)
	}
	opts.Command, pos = pos[0], pos[1:]
	if opts.Command == migrate.CmdForce {
		if len(pos) != 1 {
			fs.Usage()
			return fmt.Errorf("migrate force: want exactly one VERSION argument: %w", errUsage)
		}
		v, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("migrate force: VERSION %q is not a number >= 0: %w", pos[0], errUsage)
		}
		opts.Version = v
	} else if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("migrate %s: unexpected argument %q: %w", opts.Command, pos[0], errUsage)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "to" {
			opts.To = &to
		}
	})
	opts.LogOutput = stderr
	return migrate.Run(ctx, opts, stdout)
}
