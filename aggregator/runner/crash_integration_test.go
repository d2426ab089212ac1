package runner_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/appconfig"
	"github.com/qoscope/qoscope/internal/testenv"
)

// envChild makes the test binary run the aggregator service instead of the
// tests: the crash test starts real processes of the same code that
// `qoscope aggregate` runs (runner.Run, configured by QOSCOPE_* variables)
// and kills them with SIGKILL.
const envChild = "QOSCOPE_TEST_AGGREGATOR_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		cfg, err := appconfig.LoadAggregate("")
		if err == nil {
			err = runner.Run(ctx, runner.Options{Config: cfg, Stderr: os.Stderr})
		}
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "aggregator:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is one aggregator process.
type child struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // Wait's result, once exited is closed
	started time.Time
}

func (f *fixture) childEnv(mode, crashAt string) []string {
	kc := f.k.Config()
	env := []string{
		envChild + "=1",
		"QOSCOPE_KAFKA_BROKERS=" + strings.Join(kc.Brokers, ","),
		"QOSCOPE_KAFKA_TOPIC_CLIENT=" + kc.Topics.Client,
		"QOSCOPE_KAFKA_TOPIC_CDN=" + kc.Topics.CDN,
		"QOSCOPE_KAFKA_TOPIC_ORIGIN=" + kc.Topics.Origin,
		"QOSCOPE_KAFKA_TOPIC_DEADLETTER=" + kc.Topics.DeadLetter,
		"QOSCOPE_CLICKHOUSE_DSN=" + f.ch.DSN,
		"QOSCOPE_AGGREGATOR_GROUP_ID=" + f.group,
		"QOSCOPE_AGGREGATOR_FLUSH_INTERVAL=700ms",
		"QOSCOPE_AGGREGATOR_LATENESS=" + e2e.TestLateness.String(),
		"QOSCOPE_AGGREGATOR_IDLE_AFTER=1s",
		"QOSCOPE_AGGREGATOR_METRICS_LISTEN=127.0.0.1:0",
		"QOSCOPE_AGGREGATOR_SHUTDOWN_TIMEOUT=20s",
		"QOSCOPE_AGGREGATOR_CONSUMER_SESSION_TIMEOUT=6s",
		"QOSCOPE_AGGREGATOR_CONSUMER_HEARTBEAT_INTERVAL=500ms",
		"QOSCOPE_AGGREGATOR_CONSUMER_REBALANCE_TIMEOUT=10s",
		"QOSCOPE_AGGREGATOR_INSERT_MODE=" + mode,
		"QOSCOPE_CLICKHOUSE_HTTP=" + f.ch.HTTP,
		"QOSCOPE_LOG_FORMAT=json",
		"QOSCOPE_LOG_LEVEL=info",
	}
	if crashAt != "" {
		env = append(env, runner.EnvCrashAt+"="+crashAt)
	}
	// The parent's QOSCOPE_* settings must not leak into the child.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QOSCOPE_") {
			env = append(env, kv)
		}
	}
	return env
}

func (f *fixture) startChild(t *testing.T, mode, crashAt string, log *os.File) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = f.childEnv(mode, crashAt)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{}), started: time.Now()}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	if !killed(c.err) {
		t.Fatalf("aggregator process ended with %v before it was killed", c.err)
	}
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// Two aggregator processes consume the events; one of them is killed with
// SIGKILL twelve times at random moments (seeded), or by the crash hook
// right after a ClickHouse insert and before the checkpoint, or after the
// checkpoint and before the offset commit, and restarted each time. Once
// everything is committed the views equal the offline mode's output: no
// event lost, none counted twice.
func TestKilledProcessesEqualOffline(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	users, d := eventCount()
	f := newFixture(t, ctx, 23, users, d, 3)
	f.produce(t, ctx, f.lines)
	f.expect(t, ctx)
	mode := runner.InsertNative
	if f.ch.HTTP != "" {
		mode = runner.InsertArrowHTTP
	} else if testenv.Required() {
		t.Fatalf("%s is required", testenv.EnvClickHouseHTTP)
	}

	logPath := filepath.Join(t.TempDir(), "aggregators.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	rng := rand.New(rand.NewPCG(2026, 11))
	slots := []*child{f.startChild(t, mode, "", logFile), f.startChild(t, mode, "", logFile)}
	t.Cleanup(func() {
		for _, c := range slots {
			_ = c.cmd.Process.Signal(syscall.SIGKILL)
		}
	})
	// Kill plan: mostly random SIGKILLs; twice the crash hook instead.
	hooks := map[int]string{3: "after-rows:2", 7: "after-checkpoint:2", 10: "after-rows:3"}
	const kills = 12
	ends := f.ends
	midStream := 0
	start := time.Now()
	for i := range kills {
		s := i % 2
		if at, ok := hooks[i]; ok {
			// Replace the process by one that kills itself at the hook.
			slots[s].kill(t)
			slots[s] = f.startChild(t, mode, at, logFile)
			select {
			case <-slots[s].exited:
				if !killed(slots[s].err) {
					t.Fatalf("crash hook %s: process ended with %v\n%s", at, slots[s].err, tail(logPath))
				}
			case <-time.After(2 * time.Minute):
				t.Fatalf("crash hook %s never fired\n%s", at, tail(logPath))
			}
		} else {
			time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
			select {
			case <-slots[s].exited:
				t.Fatalf("aggregator process %d exited by itself: %v\n%s", s, slots[s].err, tail(logPath))
			default:
			}
			slots[s].kill(t)
		}
		if com, err := e2e.CommittedOffsets(ctx, f.k.Config(), f.group, ends); err == nil && !allEqual(com, ends) {
			midStream++
		}
		slots[s] = f.startChild(t, mode, "", logFile)
	}
	t.Logf("%d kills (%d before every offset was committed) in %s", kills, midStream, time.Since(start).Round(time.Millisecond))
	if midStream < kills/2 {
		t.Errorf("only %d of %d kills hit the run before it was done: grow the input", midStream, kills)
	}

	fail := make(chan error, 2)
	for i, c := range slots {
		go func() {
			<-c.exited
			if c.err != nil {
				fail <- fmt.Errorf("process %d: %v", i, c.err)
			}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e2e.WaitCommitted(wctx, f.k.Config(), f.group, ends, fail); err != nil {
		t.Fatalf("%v\n%s", err, tail(logPath))
	}
	t.Logf("all committed %s after the first start", time.Since(start).Round(time.Millisecond))
	for _, c := range slots {
		// A process restarted a moment ago may not have installed its
		// SIGTERM handler yet (the runtime's start-up comes first): the
		// signal would kill it instead of stopping it cleanly.
		if d := 2*time.Second - time.Since(c.started); d > 0 {
			time.Sleep(d)
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, c := range slots {
		select {
		case <-time.After(30 * time.Second):
			t.Fatalf("process %d did not stop on SIGTERM\n%s", i, tail(logPath))
		case <-c.exited:
			if c.err != nil {
				t.Fatalf("process %d: clean stop: %v\n%s", i, c.err, tail(logPath))
			}
		}
	}
	f.compare(t, ctx)
	checkRollups(t, ctx, f.ch)
}

func killed(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

func allEqual(a, b map[string]map[int]int64) bool {
	for t, ps := range b {
		for p, v := range ps {
			if a[t][p] != v {
				return false
			}
		}
	}
	return true
}
