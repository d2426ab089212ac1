package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/migrate"
)

// Instance is one in-process runner.
type Instance struct {
	Registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
}

// Start runs a runner until Stop.
func Start(ctx context.Context, cfg runner.Config, deps runner.Deps) (*Instance, error) {
	reg := prometheus.NewRegistry()
	deps.Registry = reg
	r, err := runner.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	in := &Instance{Registry: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		in.err = r.Run(ctx)
		close(in.done)
	}()
	return in, nil
}

// Stop stops the runner cleanly and returns Run's result.
func (in *Instance) Stop() error {
	in.cancel()
	<-in.done
	return in.err
}

// Done is closed when Run returned; Err then holds its result.
func (in *Instance) Done() <-chan struct{} { return in.done }

// Err waits for Run to return and returns its result.
func (in *Instance) Err() error {
	<-in.done
	return in.err
}

// Metric returns the sum of a counter or gauge family of the instance.
func (in *Instance) Metric(name string) float64 {
	mfs, err := in.Registry.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// WaitCommitted returns once the group committed every partition's end
// offset: all messages consumed and every window closed and written (the
// committed offset is the oldest open window's first event otherwise).
func WaitCommitted(ctx context.Context, k config.Kafka, group string, ends map[string]map[int]int64, fail <-chan error) error {
	for {
		com, err := CommittedOffsets(ctx, k, group, ends)
		if err == nil {
			done := true
			for t, ps := range ends {
				for p, end := range ps {
					if com[t][p] != end {
						done = false
					}
				}
			}
			if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for commits: %w (committed %v, ends %v)", ctx.Err(), com, ends)
		case err := <-fail:
			return fmt.Errorf("a runner stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Migrate applies the migrations to the DSN's database.
func Migrate(ctx context.Context, dsn string) error {
	return migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: dsn}, io.Discard)
}

// MigrateCluster applies the cluster variant of the migrations to every
// node of cluster, one node at a time (each_node DDL), starting from the
// node of dsn; replicated selects Replicated*MergeTree local tables.
func MigrateCluster(ctx context.Context, dsn, cluster string, replicated bool) error {
	return migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: dsn, Cluster: cluster,
		ClusterDDL: migrate.ClusterDDLEachNode, Unreplicated: !replicated}, io.Discard)
}

// GenSpec selects generated events.
type GenSpec struct {
	Seed     uint64
	Users    int
	Start    time.Time
	Duration time.Duration
	Scenario string // default baseline
	// LateEvery, when > 0, moves every LateEvery-th event to the end of
	// the stream (same ts): delivered minutes late, so that events whose
	// window closed meanwhile are counted as late.
	LateEvery int
}

// Generate runs `qoscope gen` (fast mode) and returns the events as NDJSON
// lines in emission order (late ones moved, see GenSpec.LateEvery).
func Generate(ctx context.Context, g GenSpec, dir string) ([][]byte, error) {
	o := gen.DefaultOptions()
	o.Seed, o.Users, o.Duration, o.Start = g.Seed, g.Users, g.Duration, g.Start
	if g.Scenario != "" {
		o.Scenario = g.Scenario
	}
	o.Output = dir + "/events.ndjson"
	o.Progress = "none"
	if err := gen.Run(ctx, o, io.Discard, io.Discard); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(o.Output)
	if err != nil {
		return nil, err
	}
	os.Remove(o.Output)
	var lines [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			lines = append(lines, b[:i:i])
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	if g.LateEvery > 0 {
		var keep, late [][]byte
		for i, l := range lines {
			if i%g.LateEvery == g.LateEvery-1 {
				late = append(late, l)
			} else {
				keep = append(keep, l)
			}
		}
		lines = append(keep, late...)
	}
	return lines, nil
}

// TestConfig returns a runner configuration for short runs: small
// session timeout and heartbeat (fast rebalances), a 1 s idle rule, flushes
// every second.
// TestLateness is the allowed lateness of every source in TestConfig.
const TestLateness = 2 * time.Minute

func TestConfig(k config.Kafka, ch config.ClickHouse, httpURL, group string) runner.Config {
	c := runner.DefaultConfig()
	c.Kafka, c.ClickHouse = k, ch
	c.GroupID = group
	// Two minutes for every source, not the production defaults: the
	// generated runs span about 11 minutes of event time, and their late
	// events (delivered last) must be late, and windows must close while
	// the run goes on (the freshness measurement).
	c.Aggregator.Lateness = aggregator.AllLateness(TestLateness)
	c.FlushInterval = time.Second
	c.IdleAfter = time.Second
	c.MetricsListen = ""
	c.ShutdownTimeout = 20 * time.Second
	c.Consumer.SessionTimeout = 6 * time.Second
	c.Consumer.HeartbeatInterval = 500 * time.Millisecond
	c.Consumer.RebalanceTimeout = 10 * time.Second
	c.ClickHouse.HTTP = httpURL
	if httpURL == "" {
		c.Insert.Mode = runner.InsertNative
	}
	c.Log = config.Log{Level: "info", Format: "json"}
	return c
}

// NopLogger discards.
func NopLogger() zerolog.Logger { return zerolog.Nop() }

// WaitCheckpointed returns once the group's checkpoint of every partition
// includes every message up to its end offset (next = end), whether or not
// its windows closed (for runs without the idle rule).
func WaitCheckpointed(ctx context.Context, conn driver.Conn, group string, ends map[string]map[int]int64, fail <-chan error) error {
	for {
		rows, err := conn.Query(ctx, "SELECT topic, kafka_partition, argMax(next, version) FROM aggregator_checkpoints WHERE group_id = ? GROUP BY topic, kafka_partition", group)
		got := map[string]map[int]int64{}
		if err == nil {
			for rows.Next() {
				var t string
				var p uint32
				var next int64
				if rows.Scan(&t, &p, &next) == nil {
					if got[t] == nil {
						got[t] = map[int]int64{}
					}
					got[t][int(p)] = next
				}
			}
			rows.Close()
			done := true
			for t, ps := range ends {
				for p, end := range ps {
					if end > 0 && got[t][p] != end {
						done = false
					}
				}
			}
			if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for checkpoints: %w (have %v, ends %v)", ctx.Err(), got, ends)
		case err := <-fail:
			return fmt.Errorf("a runner stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
