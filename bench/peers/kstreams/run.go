// Package kstreams drives the benchmark peer "a Kafka Streams job computing
// the same one-minute metrics from the same topics on the real broker": it
// builds the Java job in this directory with Maven, produces the events
// into fresh topics, runs the job until it has processed them all, and
// reads the rows the job wrote (qoscope's offline row format).
//
// The Java job (src/main/java/.../QosTopology.java): parse, fan out one
// record per grouping key, repartition, tumbling one-minute event-time
// windows with grace = qoscope's lateness (2 min), exact user sets,
// counts, sums and qoscope's log histogram per (window, key) in a
// changelogged window store; rows are read from the store at the end.
package kstreams

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/measure"
)

// JarName is what `mvn package` builds in target/.
const JarName = "qoscope-kstreams-peer.jar"

// ProjectDir is the directory of this package's Maven project (the source
// tree the binary was built from).
func ProjectDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// BuildOptions configures Build.
type BuildOptions struct {
	// Dir is the Maven project; default ProjectDir().
	Dir string
	// Offline passes -o: after one online build the local repository
	// (~/.m2) has every artifact and the build needs no network.
	Offline bool
	// Test also runs the unit tests (mvn package without -DskipTests).
	Test   bool
	Stderr io.Writer
}

// Build runs `mvn -q -B package` and returns the jar's path.
func Build(ctx context.Context, o BuildOptions) (string, measure.Step, error) {
	if o.Dir == "" {
		o.Dir = ProjectDir()
	}
	args := []string{"-q", "-B", "-Dstyle.color=never"}
	if o.Offline {
		args = append(args, "-o")
	}
	if !o.Test {
		args = append(args, "-DskipTests")
	}
	args = append(args, "package")
	cmd := exec.CommandContext(ctx, "mvn", args...)
	cmd.Dir = o.Dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	m := measure.Start("build", 0)
	err := cmd.Run()
	st := m.Done()
	if cmd.ProcessState != nil {
		st.ClientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return "", st, fmt.Errorf("cannot build the kafka streams job (mvn %s in %s): %w\n%s", strings.Join(args, " "), o.Dir, err, tail(out.String(), 4000))
	}
	if o.Stderr != nil {
		io.WriteString(o.Stderr, out.String())
	}
	return filepath.Join(o.Dir, "target", JarName), st, nil
}

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	// Jar is the built job; default: Build with BuildOptions{}.
	Jar string
	// Brokers is the bootstrap list.
	Brokers []string
	// Topics are the source topics. With Produce they are created
	// (Partitions each, default 3), filled with the events first and
	// deleted at the end.
	Topics     events.Topics
	Produce    bool
	Partitions int
	// AppID is the Kafka Streams application.id (consumer group, prefix of
	// its internal topics, deleted at the end); default unique per run.
	AppID string
	// Threads is num.stream.threads; default 1.
	Threads int
	// Store: "rocksdb" (default, Kafka Streams' default persistent store)
	// or "memory".
	Store string
	// Guarantee: processing.guarantee, "at_least_once" (default) or
	// "exactly_once_v2".
	Guarantee string
	// OutputTopic, when set, also receives every aggregate update as row
	// JSON (emit and keep the last per key); it must exist.
	OutputTopic string
	// GroupingSets per source (nil: docs/METRICS.md's defaults), Lateness (default
	// 2m, the window grace), OriginNoDataMinutes (default 5).
	GroupingSets        aggregator.GroupingSets
	Lateness            time.Duration
	OriginNoDataMinutes int
	// JavaOpts precede -jar; default -Xmx2g.
	JavaOpts []string
	// Timeout bounds the whole run; IdleTimeout is how long the job waits
	// without progress before giving up. Defaults 15m and 30s.
	Timeout, IdleTimeout time.Duration
	// BrokerPID, when > 0, is the local Kafka broker's PID: the process step
	// then also reports the broker's CPU (repartition and changelog topics).
	BrokerPID int
	// WorkDir holds the state directory and the rows file; default a
	// temporary directory, removed at the end.
	WorkDir string
	// Stderr receives the job's log (warnings and errors); default discard.
	Stderr io.Writer
}

func (o *Options) defaults() {
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.AppID == "" {
		o.AppID = fmt.Sprintf("qoscope-kstreams-peer-%d", time.Now().UnixNano())
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.Store == "" {
		o.Store = "rocksdb"
	}
	if o.Guarantee == "" {
		o.Guarantee = "at_least_once"
	}
	if o.Lateness <= 0 {
		o.Lateness = 2 * time.Minute
	}
	if o.OriginNoDataMinutes <= 0 {
		o.OriginNoDataMinutes = 5
	}
	if o.JavaOpts == nil {
		o.JavaOpts = []string{"-Xmx2g"}
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	d := aggregator.DefaultGroupingSets()
	if o.GroupingSets.Client == nil {
		o.GroupingSets.Client = d.Client
	}
	if o.GroupingSets.CDN == nil {
		o.GroupingSets.CDN = d.CDN
	}
	if o.GroupingSets.Origin == nil {
		o.GroupingSets.Origin = d.Origin
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
}

// JobStats is what the job reports when it has processed every event.
type JobStats struct {
	Complete   bool   `json:"complete"`
	Consumed   int64  `json:"consumed"`
	Bad        int64  `json:"bad"`
	Aggregated int64  `json:"aggregated"` // per-key records added to windows
	Dropped    int64  `json:"dropped"`    // per-key records dropped as late
	WallNS     int64  `json:"wall_ns"`    // streams.start() → done
	FirstNS    int64  `json:"wall_from_first_ns"`
	CPUNS      int64  `json:"cpu_ns"` // JVM process CPU over WallNS
	Error      string `json:"error"`
}

// Result is what Run measured and computed.
type Result struct {
	Build   measure.Step `json:"build"`
	Produce measure.Step `json:"produce"`
	// Process runs from streams.start() until every event is aggregated:
	// wall, and the JVM's CPU over it from /proc/<pid>/stat (ClientCPU).
	// Group join and task assignment are included (they are part of
	// consuming a backlog); Job.FirstNS starts at the first event instead.
	Process measure.Step `json:"process"`
	// JVM is the whole child process: wall and rusage CPU (startup, the
	// final dump of rows and shutdown included).
	JVM  measure.Step  `json:"jvm"`
	Job  JobStats      `json:"job"`
	Rows []compare.Row `json:"-"`
}

// Run produces (optionally) the events, runs the job until it has
// processed all of them, and reads its rows.
func Run(ctx context.Context, opts Options, f *events.File) (res Result, err error) {
	opts.defaults()
	if len(opts.Brokers) == 0 {
		return res, errors.New("kstreams: Brokers is required")
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if opts.Jar == "" {
		opts.Jar, res.Build, err = Build(ctx, BuildOptions{Stderr: opts.Stderr})
		if err != nil {
			return res, err
		}
	}
	topics := []string{opts.Topics.Client, opts.Topics.CDN, opts.Topics.Origin}
	if opts.Produce {
		if err := events.EnsureTopics(ctx, opts.Brokers, opts.Partitions, topics...); err != nil {
			return res, err
		}
		defer func() { _ = events.DeleteTopics(context.WithoutCancel(ctx), opts.Brokers, topics...) }()
		m := measure.Start("produce", 0)
		st, err := events.Produce(ctx, opts.Brokers, opts.Topics, f)
		res.Produce = m.Done()
		res.Produce.Events = int64(st.Records)
		if err != nil {
			return res, err
		}
	}
	defer func() { _ = deleteInternalTopics(context.WithoutCancel(ctx), opts.Brokers, opts.AppID) }()

	work := opts.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "kstreams-peer-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(work)
	}
	rowsFile := filepath.Join(work, "rows.ndjson")
	setsJSON, err := json.Marshal(map[string][][]string{
		"client": nonNil(opts.GroupingSets.Client), "cdn": nonNil(opts.GroupingSets.CDN), "origin": nonNil(opts.GroupingSets.Origin)})
	if err != nil {
		return res, err
	}
	args := append(append([]string{}, opts.JavaOpts...), "-jar", opts.Jar,
		"--bootstrap", strings.Join(opts.Brokers, ","),
		"--client-topic", opts.Topics.Client, "--cdn-topic", opts.Topics.CDN, "--origin-topic", opts.Topics.Origin,
		"--app-id", opts.AppID, "--state-dir", filepath.Join(work, "state"),
		"--expect", strconv.Itoa(f.Len()), "--output", rowsFile,
		"--grouping-sets", string(setsJSON),
		"--lateness-ms", strconv.FormatInt(opts.Lateness.Milliseconds(), 10),
		"--no-data-minutes", strconv.Itoa(opts.OriginNoDataMinutes),
		"--threads", strconv.Itoa(opts.Threads), "--store", opts.Store, "--guarantee", opts.Guarantee,
		"--idle-timeout-s", strconv.Itoa(int(opts.IdleTimeout.Seconds())))
	if opts.OutputTopic != "" {
		args = append(args, "--output-topic", opts.OutputTopic)
	}
	cmd := exec.CommandContext(ctx, "java", args...)
	cmd.Stderr = opts.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	jvmStart := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("cannot start java: %w", err)
	}
	pid := cmd.Process.Pid
	var startWall time.Time
	var startCPU, startBroker time.Duration
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
			JobStats
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Event {
		case "started":
			startWall = time.Now()
			startCPU, _ = measure.ProcCPU(pid)
			if opts.BrokerPID > 0 {
				startBroker, _ = measure.ProcCPU(opts.BrokerPID)
			}
		case "done":
			res.Process = measure.Step{Name: "kstreams_process", Events: ev.Consumed, Wall: time.Since(startWall),
				ServerCPU: measure.Unknown, ServerProcCPU: measure.Unknown, BrokerProcCPU: measure.Unknown}
			if opts.BrokerPID > 0 {
				if c, err := measure.ProcCPU(opts.BrokerPID); err == nil {
					res.Process.BrokerProcCPU = c - startBroker
				}
			}
			if c, err := measure.ProcCPU(pid); err == nil {
				res.Process.ClientCPU = c - startCPU
			} else {
				res.Process.ClientCPU = time.Duration(ev.CPUNS)
				res.Process.Note = "cpu from the JVM: " + err.Error()
			}
			res.Job = ev.JobStats
		}
	}
	werr := cmd.Wait()
	res.JVM = measure.Step{Name: "kstreams_jvm", Events: int64(f.Len()), Wall: time.Since(jvmStart),
		ServerCPU: measure.Unknown, ServerProcCPU: measure.Unknown, BrokerProcCPU: measure.Unknown}
	if cmd.ProcessState != nil {
		res.JVM.ClientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	switch {
	case res.Job.Error != "":
		return res, fmt.Errorf("kafka streams job failed: %s", res.Job.Error)
	case !res.Job.Complete:
		return res, fmt.Errorf("kafka streams job stopped before processing every event: consumed %d of %d, bad %d, aggregated %d, dropped %d (exit: %v)",
			res.Job.Consumed, f.Len(), res.Job.Bad, res.Job.Aggregated, res.Job.Dropped, werr)
	case werr != nil:
		return res, fmt.Errorf("kafka streams job: %w", werr)
	}
	if res.Job.Dropped > 0 {
		res.Process.Note = fmt.Sprintf("%d per-key records dropped as later than the grace period", res.Job.Dropped)
	}
	res.Rows, err = compare.ReadFile(rowsFile)
	return res, err
}

func nonNil(s [][]string) [][]string {
	out := make([][]string, len(s))
	for i, x := range s {
		out[i] = append([]string{}, x...)
	}
	return out
}

// deleteInternalTopics deletes the repartition and changelog topics of an
// application (named <application.id>-…).
func deleteInternalTopics(ctx context.Context, brokers []string, appID string) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return err
	}
	var names []string
	for _, t := range md.Topics {
		if strings.HasPrefix(t.Name, appID+"-") {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return events.DeleteTopics(ctx, brokers, names...)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
