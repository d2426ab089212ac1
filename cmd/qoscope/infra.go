package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/devinfra"
	"github.com/qoscope/qoscope/internal/logging"
)

const infraUsage = `usage: qoscope infra up|down|env|status [flags]

  up      install (cached) and start Kafka and ClickHouse on free loopback
          ports, wait until they answer, record them in <state-dir>/env and
          print that file; servers already running from this state dir are kept
  down    stop the recorded servers (SIGTERM, then SIGKILL) and delete their data
  env     print the recorded variables (QOSCOPE_KAFKA_BROKERS,
          QOSCOPE_CLICKHOUSE_DSN, ...) as export lines for eval "$(...)"
  status  show the recorded servers and whether they answer

With --clickhouse-cluster N, up also starts ZooKeeper and N more ClickHouse
servers forming the cluster qoscope_cluster (N shards, 1 replica each), for
tests of Distributed tables (Replicated*MergeTree tables stay read-only on
these clickhouse-local servers); the env file then has
QOSCOPE_INFRA_CLUSTER_NAME, QOSCOPE_INFRA_CLUSTER_DSNS and
QOSCOPE_INFRA_CLUSTER_HTTP. Up with another N replaces the recorded servers.

With --kafka-brokers N (at most 3), up starts N Kafka brokers instead of one,
each a KRaft broker+controller and all of them voters of one quorum, in
kafka-broker1..N of the state dir; QOSCOPE_KAFKA_BROKERS lists them all and
QOSCOPE_INFRA_KAFKA_BROKER<i>_* record each one (node.id i), so that tests
can kill and restart one (internal/testenv.KafkaCluster). Topics are then
replicated to all N by default. Up with another N replaces the recorded
servers.

Servers named by QOSCOPE_KAFKA_BROKERS / QOSCOPE_CLICKHOUSE_DSN (and
QOSCOPE_CLICKHOUSE_HTTP) in the environment are recorded instead of started.
Downloads are cached in ${QOSCOPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qoscope}.

flags:
`

// runInfra parses `qoscope infra` flags into devinfra.Options and runs the action.
func runInfra(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("infra", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, infraUsage)
		fs.PrintDefaults()
	}
	defCache, cacheErr := devinfra.DefaultCacheDir(os.Getenv)
	defState, stateErr := devinfra.DefaultStateDir(os.Getenv)
	var opts devinfra.Options
	fs.StringVar(&opts.StateDir, "state-dir", defState, "directory for the state file, configs, data and logs of the servers (env QOSCOPE_STATE_DIR)")
	fs.StringVar(&opts.CacheDir, "cache-dir", defCache, "directory for downloaded servers (env QOSCOPE_CACHE_DIR)")
	fs.BoolVar(&opts.NoKafka, "no-kafka", false, "up: start no Kafka (the demo embeds its own broker)")
	fs.IntVar(&opts.KafkaBrokerCount, "kafka-brokers", 1, fmt.Sprintf("up: start this many Kafka brokers forming one KRaft cluster (1 to %d)", devinfra.MaxKafkaBrokers))
	fs.IntVar(&opts.ClusterNodes, "clickhouse-cluster", 0, fmt.Sprintf("up: also start ZooKeeper and this many ClickHouse nodes forming the cluster %s (0 = none, at most %d)", devinfra.ClusterName, devinfra.MaxClusterNodes))
	fs.StringVar(&opts.KafkaVersion, "kafka-version", devinfra.DefaultKafkaVersion, "org.apache.kafka:kafka_2.13 version to run")
	fs.DurationVar(&opts.ReadyTimeout, "ready-timeout", 0, "how long to wait for a started server to answer (default 90s)")
	fs.DurationVar(&opts.StopTimeout, "stop-timeout", 0, "how long down waits after SIGTERM before SIGKILL (default 30s)")
	export := fs.Bool("export", true, "env: prefix each line with 'export ' (plain KEY=value with -export=false)")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")

	// Accept the action before or after the flags.
	var action string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if action == "" && fs.NArg() > 0 {
		action = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("infra: unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if opts.CacheDir == "" && cacheErr != nil {
		return cacheErr
	}
	if opts.StateDir == "" && stateErr != nil {
		return stateErr
	}
	opts.KafkaBrokers = os.Getenv(devinfra.EnvKafkaBrokers)
	opts.ClickHouseDSN = os.Getenv(devinfra.EnvClickHouseDSN)
	if opts.ClickHouseDSN != "" {
		opts.ClickHouseHTTP = os.Getenv(devinfra.EnvClickHouseHTTP)
	}
	logCfg := config.DefaultLog()
	logCfg.Level = *logLevel
	opts.Log = logging.New(stderr, logCfg).With().Str("component", "devinfra").Logger()

	switch action {
	case "up":
		st, err := devinfra.Up(ctx, opts)
		if err != nil {
			return err
		}
		return st.WriteEnv(stdout, *export)
	case "down":
		return devinfra.Down(ctx, opts)
	case "env":
		if err := opts.Validate(); err != nil {
			return err
		}
		st, err := devinfra.ReadState(opts.StateDir)
		if err != nil {
			return fmt.Errorf("%s: %w", opts.StateDir, err)
		}
		return st.WriteEnv(stdout, *export)
	case "status":
		return printInfraStatus(ctx, opts, stdout)
	case "":
		fs.Usage()
		return fmt.Errorf("infra: missing action: %w", errUsage)
	default:
		fs.Usage()
		return fmt.Errorf("infra: unknown action %q: %w", action, errUsage)
	}
}

func printInfraStatus(ctx context.Context, opts devinfra.Options, stdout io.Writer) error {
	sts, err := devinfra.Status(ctx, opts)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSTATE\tPID\tADDRESS\tANSWERS\tLOG")
	var notReady []string
	for _, s := range sts {
		answers := "-"
		if s.State != "not recorded" {
			answers = "yes"
			if s.Ready != nil {
				answers = "no: " + s.Ready.Error()
				notReady = append(notReady, s.Name)
			}
		}
		addr := s.Addr
		if s.HTTP != "" {
			addr += " " + s.HTTP
		}
		pid := "-"
		if s.PID != 0 {
			pid = fmt.Sprint(s.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, pid, addr, answers, s.Log)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notReady) > 0 {
		return errors.New("infra: not answering: " + strings.Join(notReady, ", "))
	}
	return nil
}
