// Package harness is qoscope's benchmark harness (`go tool task
// bench`): in one run on one machine it records the environment, runs the
// Go micro-benchmarks beside their in-run peers, generates one
// deterministic event file, aggregates it with qoscope's offline mode and
// with every peer of bench/peers, checks that each peer's rows agree with
// qoscope's before comparing speed, measures the streaming aggregator end
// to end, and writes bench/results/<date>.json and bench/REPORT.md.
//
// Nothing here asserts a time: the numbers are reported, with ratios
// against peers measured in the same run.
package harness

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Sizes of the event file (Options.Size).
const (
	SizeDefault = "default" // ≈1M events: the size the issues' goals speak of
	SizeSmall   = "small"   // ≈100k events and one run per micro-benchmark: a quick check
)

// Steps of a run, in the order they run (Options.Steps/Skip).
const (
	StepMicro       = "micro"        // go test -bench with in-run peers
	StepOffline     = "offline"      // qoscope aggregate on the file (the reference rows)
	StepCHRawNative = "chraw-native" // raw events + SQL in ClickHouse, native batch insert
	StepCHRawHTTP   = "chraw-http"   // the same, JSONEachRow over HTTP
	StepCHKafka     = "chkafka"      // ClickHouse's Kafka engine + MV + SQL
	StepKStreams    = "kstreams"     // Kafka Streams job
	StepEndToEnd    = "e2e"          // Kafka → qoscope's aggregator → ClickHouse
	StepQuery       = "query"        // the wall's queries over 7 days of rows vs raw events
	StepSteer       = "steer"        // qoscope steer under wrk vs a static-JSON net/http server
	StepAlerts      = "alerts"       // minute end → webhook at a receiver, direct and through Alertmanager
	StepScores      = "scores"       // GET /api/v1/scores of the live service at 1,000 requests/s vs the same bytes from net/http
)

// AllSteps lists every step in run order.
var AllSteps = []string{StepMicro, StepOffline, StepCHRawNative, StepCHRawHTTP, StepCHKafka, StepEndToEnd, StepKStreams, StepQuery, StepSteer, StepAlerts, StepScores}

// Options configure Run. DefaultOptions holds the documented defaults;
// Size fills the zero values of the size-dependent fields.
type Options struct {
	// Size: SizeDefault or SizeSmall. It sets Users, Duration and Count
	// when those are zero.
	Size string
	// Seed, Scenario, Users and Duration select the generated events
	// (gen.Options). Defaults: 1, baseline; 5,000 users × 11 minutes
	// (≈1M events: eleven windows for the end-to-end freshness) or
	// 1,000 × 6 minutes (≈107k) for SizeSmall. Fewer users over a longer
	// span make the Kafka Streams peer drop records as late (its stream
	// time runs ahead across tasks when a minute of events fits in a
	// few fetches; 500 × 11 minutes did), so the small size keeps about
	// 18k events per simulated minute.
	Seed     uint64
	Scenario string
	Users    int
	Duration time.Duration
	// Start of the simulated clock. Default (zero): RecentStart of the run's
	// time, because the minute tables' TTL (30 days) would drop the
	// end-to-end step's rows of an older file; a different start only
	// shifts every ts (gen's tested property), so the events are otherwise
	// the same on every run.
	Start time.Time

	// Steps to run (default AllSteps); Skip removes some.
	Steps []string
	Skip  []string

	// Count is go test -count for the micro-benchmarks (default 3; 1 for
	// SizeSmall); BenchTime is -benchtime (default 1s).
	Count     int
	BenchTime string
	// Partitions of the topics the Kafka steps create. Default 3.
	Partitions int
	// KStreamsPartitions of the Kafka Streams peer's topics. Default 1:
	// replaying a backlog from several partitions, its stream time runs
	// ahead across tasks and it drops on-time records as late (seen with
	// 3 partitions on ≈100k-event files), which would make its numbers
	// those of other results; it runs one stream thread either way. When
	// equal to Partitions, chkafka and kstreams share one set of topics.
	KStreamsPartitions int

	// Servers, as `qoscope infra up` records them (the bench task passes
	// its state file's variables): Kafka brokers, ClickHouse native DSN and
	// HTTP URL, and the PIDs of both servers (0: not local, their process
	// CPU is not measured) and the broker's log (for its version).
	KafkaBrokers   []string
	ClickHouseDSN  string
	ClickHouseHTTP string
	ClickHousePID  int
	KafkaPID       int
	KafkaLog       string

	// RepoDir is the module root (where go test runs). Default: found from
	// the working directory.
	RepoDir string
	// ResultsDir receives <date>.json; ReportPath is the Markdown report.
	// Defaults: <RepoDir>/bench/results and <RepoDir>/bench/REPORT.md.
	ResultsDir string
	ReportPath string
	// WorkDir holds the event file and the rows; default a temporary
	// directory, removed at the end unless KeepWork.
	WorkDir  string
	KeepWork bool
	// E2EPace, when > 0, adds a paced end-to-end run (e2e.MeasureOptions
	// Pace): the events are produced while the runner consumes, event time
	// running E2EPace times faster than the wall clock, for the freshness
	// of a live stream (a backlog closes every window at once). Default
	// 20: a window closes every 3 s, 11 minutes of events take 33 s.
	E2EPace float64
	// CHKafkaPacedBlockRows is kafka_max_block_size of the chkafka peer's
	// paced (freshness) run. Default 0: the backlog run's
	// (chraw.DefaultBatchRows), so that both runs measure the same peer.
	// The peer's freshness depends on it (bench/README.md, "Freshness").
	CHKafkaPacedBlockRows int
	// KStreamsTimeout bounds the Kafka Streams job. Default 15m.
	KStreamsTimeout time.Duration
	// WallUsers are gen's users of the query benchmark's hour (default
	// 4,000: every key of every grouping set is present in each minute,
	// ≈1,300 client rows a minute); WallHours the hours of data (default
	// 168: 7 days); WallClients the concurrent clients (default 20);
	// WallDuration how long they ask (default 30s; the raw peer's clients
	// finish at least one round each, however long it takes);
	// WallMergeWait bounds the wait for ClickHouse's merges after the load
	// (default 3m).
	WallUsers     int
	WallHours     int
	WallClients   int
	WallDuration  time.Duration
	WallMergeWait time.Duration
	// WallTarget is whom the wall's load asks: "serve" (default: `qoscope
	// serve` started by the step in its own process on the benchmark's
	// database), "library" (the query library in this process) or the base
	// URL of a running `qoscope serve` reading the benchmark's database
	// (qoscope_bench_wall), with WallToken, a token of the read scope.
	WallTarget string
	WallToken  string
	// SteerConnections are the wrk connection counts of the steering step
	// (default 4, 16 and 64), SteerDuration each run's length (default 10s),
	// SteerWrkThreads wrk's threads (default 1), SteerProcs the servers'
	// GOMAXPROCS (default: the cores; wrk shares them).
	SteerConnections []int
	SteerDuration    time.Duration
	SteerWrkThreads  int
	SteerProcs       int
	// AlertsDuration is the live traffic the alerts step measures, whole
	// minutes (default 6m: ≥ 50 notifications a path); AlertsUsers its
	// simulated viewers (default 2,000, the demo's).
	AlertsDuration time.Duration
	AlertsUsers    int
	// Command is the command line, recorded in the results.
	Command string
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Log receives progress lines; default io.Discard.
	Log io.Writer
}

// DefaultOptions returns the documented defaults (SizeDefault).
func DefaultOptions() Options {
	return Options{
		Size:               SizeDefault,
		Seed:               1,
		Scenario:           "baseline",
		BenchTime:          "1s",
		Partitions:         3,
		KStreamsPartitions: 1,
		E2EPace:            20,
		KStreamsTimeout:    15 * time.Minute,
		WallUsers:          4000,
		WallHours:          7 * 24,
		WallClients:        20,
		WallDuration:       30 * time.Second,
		WallMergeWait:      3 * time.Minute,
		WallTarget:         "serve",
		SteerConnections:   []int{4, 16, 64},
		SteerDuration:      10 * time.Second,
		SteerWrkThreads:    1,
		AlertsDuration:     6 * time.Minute,
		AlertsUsers:        2000,
	}
}

// sizeDefaults fills the size-dependent zero values.
func (o *Options) sizeDefaults() {
	users, duration, count := 5000, 11*time.Minute, 3
	if o.Size == SizeSmall {
		users, duration, count = 1000, 6*time.Minute, 1
	}
	if o.Users == 0 {
		o.Users = users
	}
	if o.Duration == 0 {
		o.Duration = duration
	}
	if o.Count == 0 {
		o.Count = count
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if len(o.Steps) == 0 {
		o.Steps = slices.Clone(AllSteps)
	}
	d := DefaultOptions()
	if o.WallUsers == 0 {
		o.WallUsers = d.WallUsers
	}
	if o.WallHours == 0 {
		o.WallHours = d.WallHours
	}
	if o.WallClients == 0 {
		o.WallClients = d.WallClients
	}
	if o.WallDuration == 0 {
		o.WallDuration = d.WallDuration
	}
	if o.WallMergeWait == 0 {
		o.WallMergeWait = d.WallMergeWait
	}
	if o.WallTarget == "" {
		o.WallTarget = d.WallTarget
	}
	if len(o.SteerConnections) == 0 {
		o.SteerConnections = d.SteerConnections
	}
	if o.SteerDuration == 0 {
		o.SteerDuration = d.SteerDuration
	}
	if o.SteerWrkThreads == 0 {
		o.SteerWrkThreads = d.SteerWrkThreads
	}
	if o.SteerProcs == 0 {
		o.SteerProcs = defaultSteerProcs()
	}
	if o.AlertsDuration == 0 {
		o.AlertsDuration = d.AlertsDuration
	}
	if o.AlertsUsers == 0 {
		o.AlertsUsers = d.AlertsUsers
	}
}

// Validate reports every problem at once, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Size != SizeDefault && o.Size != SizeSmall {
		add("--size: %q is not %s or %s", o.Size, SizeDefault, SizeSmall)
	}
	if o.Users < 0 {
		add("--users: must not be negative")
	}
	if o.Duration < 0 {
		add("--duration: must not be negative")
	}
	if o.Count < 0 {
		add("--count: must not be negative")
	}
	if o.Partitions < 1 {
		add("--partitions: must be at least 1")
	}
	if o.KStreamsPartitions < 1 {
		add("--kstreams-partitions: must be at least 1")
	}
	if o.BenchTime == "" {
		add("--benchtime: required")
	}
	for _, s := range append(slices.Clone(o.Steps), o.Skip...) {
		if !slices.Contains(AllSteps, s) {
			add("--steps/--skip: %q is not one of %s", s, strings.Join(AllSteps, ", "))
		}
	}
	needKafka := o.runs(StepMicro) || o.runs(StepCHKafka) || o.runs(StepKStreams) || o.runs(StepEndToEnd)
	needCH := o.runs(StepMicro) || o.runs(StepCHRawNative) || o.runs(StepCHRawHTTP) || o.runs(StepCHKafka) || o.runs(StepEndToEnd) || o.runs(StepQuery) || o.runs(StepAlerts) || o.runs(StepScores)
	if needKafka && len(o.KafkaBrokers) == 0 {
		add("--kafka-brokers (env QOSCOPE_KAFKA_BROKERS): required by the steps micro, chkafka, kstreams, e2e")
	}
	if needCH && o.ClickHouseDSN == "" {
		add("--clickhouse-dsn (env QOSCOPE_CLICKHOUSE_DSN): required by the steps micro, chraw-*, chkafka, e2e, query, alerts, scores")
	}
	if o.runs(StepCHRawHTTP) && o.ClickHouseHTTP == "" {
		add("--clickhouse-http (env QOSCOPE_CLICKHOUSE_HTTP): required by the step chraw-http")
	}
	if o.E2EPace < 0 {
		add("--e2e-pace: must not be negative")
	}
	if o.CHKafkaPacedBlockRows < 0 {
		add("--chkafka-paced-block-rows: must not be negative")
	}
	if o.runs(StepQuery) {
		if o.WallUsers < 1 {
			add("--query-users: must be at least 1")
		}
		if o.WallHours < 1 || o.WallHours > 29*24 {
			add("--query-hours: must be between 1 and %d (the minute tables keep 30 days)", 29*24)
		}
		if o.WallClients < 1 {
			add("--query-clients: must be at least 1")
		}
		if o.WallDuration <= 0 {
			add("--query-duration: must be positive")
		}
		if o.WallTarget != "serve" && o.WallTarget != "library" && !strings.HasPrefix(o.WallTarget, "http://") && !strings.HasPrefix(o.WallTarget, "https://") {
			add("--query-target: %q is not serve, library or an http(s) URL of qoscope serve", o.WallTarget)
		}
	}
	if o.runs(StepSteer) {
		for _, c := range o.SteerConnections {
			if c < o.SteerWrkThreads {
				add("--steer-connections: %d is fewer than --steer-wrk-threads %d (wrk needs one per thread)", c, o.SteerWrkThreads)
			}
		}
		if o.SteerDuration < time.Second {
			add("--steer-duration: must be at least 1s")
		}
		if o.SteerProcs < 0 {
			add("--steer-procs: must not be negative")
		}
	}
	if o.runs(StepAlerts) {
		if o.AlertsDuration < 2*time.Minute || o.AlertsDuration%time.Minute != 0 {
			add("--alerts-duration: %s must be whole minutes, at least 2m", o.AlertsDuration)
		}
		if o.AlertsUsers < 1 {
			add("--alerts-users: must be at least 1")
		}
	}
	if o.KStreamsTimeout <= 0 {
		add("--kstreams-timeout: must be positive")
	}
	return errors.Join(errs...)
}

// runs reports whether step is selected.
func (o *Options) runs(step string) bool {
	return slices.Contains(o.Steps, step) && !slices.Contains(o.Skip, step)
}
