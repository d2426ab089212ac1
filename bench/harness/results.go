package harness

import (
	"time"

	"github.com/qoscope/qoscope/bench/peers/chkafka"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/measure"
)

// SchemaVersion of the results file; bump on incompatible changes.
const SchemaVersion = 1

// Results is everything one run measured: bench/results/<date>.json.
type Results struct {
	Schema      int            `json:"schema"`
	Date        string         `json:"date"` // YYYY-MM-DD, UTC
	StartedAt   time.Time      `json:"started_at"`
	FinishedAt  time.Time      `json:"finished_at"`
	WallSec     float64        `json:"wall_s"`
	Command     string         `json:"command"`
	Options     OptionsUsed    `json:"options"`
	Environment Environment    `json:"environment"`
	Dataset     *Dataset       `json:"dataset,omitempty"`
	GoTests     []GoTestRun    `json:"go_test_runs,omitempty"`
	Micro       []*BenchResult `json:"micro,omitempty"`
	// Offline is qoscope's offline aggregation of the file: the reference
	// rows, and the in-process cost of parse + aggregate + write.
	Offline  *OfflineResult `json:"offline,omitempty"`
	Peers    []*PeerResult  `json:"peers,omitempty"`
	EndToEnd *E2EResult     `json:"end_to_end,omitempty"`
	// PeerTopicsProduce wrote the file into the topics chkafka and
	// kstreams read (not part of any peer's cost).
	PeerTopicsProduce []Step `json:"peer_topics_produce,omitempty"`
	// Wall is the query benchmark: the wall's questions over 7 days of
	// rows, qoscope vs the raw events of one hour.
	Wall *WallResult `json:"wall,omitempty"`
	// Steer is the steering load test (qoscope steer under wrk).
	Steer *SteerResult `json:"steer,omitempty"`
	// Alerts is the alert notification latency (minute end → webhook).
	Alerts *AlertsResult `json:"alerts,omitempty"`
	// Scores is GET /api/v1/scores of the live service, open loop.
	Scores *ScoresResult `json:"scores,omitempty"`
	Ratios []Ratio       `json:"ratios,omitempty"`
	Goals  []Goal        `json:"goals,omitempty"`
	// NotRun lists what was selected but could not run (or was skipped),
	// and why.
	NotRun []NotRun `json:"not_run,omitempty"`
}

// OptionsUsed is the resolved options worth recording.
type OptionsUsed struct {
	Size       string   `json:"size"`
	Steps      []string `json:"steps"`
	Count      int      `json:"count"`
	BenchTime  string   `json:"benchtime"`
	Partitions int      `json:"partitions"`
	// KStreamsPartitions of the Kafka Streams peer's topics.
	KStreamsPartitions int `json:"kstreams_partitions"`
	// WallClients of the query step.
	WallClients int `json:"query_clients,omitempty"`
}

// Step is a measure.Step with the derived numbers spelled out.
type Step struct {
	measure.Step
	WallSec              float64 `json:"wall_s"`
	TotalCPUSec          float64 `json:"total_cpu_s"`
	EventsPerSec         float64 `json:"events_per_s,omitempty"`
	CPUSecondsPerMillion float64 `json:"cpu_s_per_million_events,omitempty"`
}

func stepOf(s measure.Step) Step {
	return Step{Step: s, WallSec: s.Wall.Seconds(), TotalCPUSec: s.TotalCPU().Seconds(),
		EventsPerSec: s.EventsPerSecond(), CPUSecondsPerMillion: s.CPUSecondsPerMillion()}
}

// OfflineResult is `qoscope aggregate` on the event file.
type OfflineResult struct {
	Step       Step  `json:"step"`
	Rows       int   `json:"rows"`
	LateRows   int   `json:"late_rows"` // rows of source "late": 0 on gen files
	OutputSize int64 `json:"output_bytes"`
	rows       []compare.Row
	path       string // the rows file
}

// PeerResult is one peer on the event file.
type PeerResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Steps in the order they ran (load, queries, consume, process...).
	Steps []Step `json:"steps"`
	// Cost is the step(s) whose CPU and wall compare with qoscope's
	// aggregation: load + queries for chraw, consume + queries for chkafka,
	// process for kstreams.
	Cost Step `json:"cost"`
	// Query is the SQL peers' metric queries alone (all sources, warm).
	Query *Step `json:"query,omitempty"`
	// Agreement with qoscope's offline rows; nil when the peer failed
	// before producing rows.
	Agreement *Agreement `json:"agreement,omitempty"`
	// Flagged: the peer disagrees with qoscope (or could not be checked),
	// so its speed is reported but not comparable.
	Flagged bool     `json:"flagged"`
	Notes   []string `json:"notes,omitempty"`
	Error   string   `json:"error,omitempty"`
	// Extra holds peer-specific records (the Kafka Streams job's counters,
	// the build step).
	Extra map[string]any `json:"extra,omitempty"`
	// Paced is the peer's freshness on the end-to-end step's paced stream
	// (chkafka only; nil when not run).
	Paced *PeerPaced `json:"paced,omitempty"`
}

// PeerPaced is a peer's freshness on a paced stream like qoscope's
// (E2EPaced): the same file through the same producer
// (e2e.ProducePaced) at the same pace, into fresh topics, while the peer
// consumes. Window W closes when the producer sends the first client event
// with ts ≥ end of W + lateness (qoscope's lateness: where its watermark
// closes W); it is visible when the raw table holds every client event of
// W (polled) plus the duration of the peer's client metrics SQL over W;
// freshness = visible − close, clamped at 0.
type PeerPaced struct {
	Pace        float64 `json:"pace"`
	LatenessSec float64 `json:"lateness_s"`
	// The Kafka engine's kafka_max_block_size and kafka_flush_interval_ms:
	// its freshness depends on them (see bench/README.md).
	BlockRows        int     `json:"kafka_max_block_size"`
	FlushIntervalSec float64 `json:"kafka_flush_interval_s"`
	OfferedRate      float64 `json:"offered_events_per_s"`
	ProduceSec       float64 `json:"produce_s"`
	Windows          int     `json:"freshness_windows"`
	OpenWindows      int     `json:"open_windows"`
	FreshnessP50Sec  float64 `json:"freshness_p50_s"`
	FreshnessP99Sec  float64 `json:"freshness_p99_s"`
	FreshnessMaxSec  float64 `json:"freshness_max_s"`
	// Visible − close before the clamp (negative: the window's numbers
	// were computed before qoscope's watermark could close it).
	SignedP50Sec float64 `json:"visible_minus_close_p50_s"`
	SignedP99Sec float64 `json:"visible_minus_close_p99_s"`
	// Visible − the send of the window's last client event.
	AfterLastP50Sec float64 `json:"last_event_to_visible_p50_s"`
	AfterLastP99Sec float64 `json:"last_event_to_visible_p99_s"`
	// The window queries' own durations (part of freshness).
	QueryP50Sec float64 `json:"window_query_p50_s"`
	QueryP99Sec float64 `json:"window_query_p99_s"`
	QueryMaxSec float64 `json:"window_query_max_s"`
	Polls       int     `json:"polls"`
	// Run: ClickHouse and broker process CPU from the first send to the
	// last window query, the count polls' ClickHouse CPU (PollCPUSec, from
	// system.query_log) subtracted.
	Run        Step                  `json:"run"`
	PollCPUSec float64               `json:"poll_cpu_s"`
	PerWindow  []chkafka.WindowTimes `json:"per_window,omitempty"`
	Summary    string                `json:"summary"`
	Error      string                `json:"error,omitempty"`
}

// Agreement is compare.Compare's report in numbers.
type Agreement struct {
	OK          bool `json:"ok"`
	WantRows    int  `json:"want_rows"`
	GotRows     int  `json:"got_rows"`
	MatchedRows int  `json:"matched_rows"`
	Metrics     int  `json:"metrics_compared"`
	Diffs       int  `json:"differences"`
	// MaxRelErr per tolerance kind (exact, relative, quantile).
	MaxRelErr map[string]float64 `json:"max_rel_err"`
	// FirstDiffs are the first differences, rendered.
	FirstDiffs []string `json:"first_differences,omitempty"`
	// Ignored sources (late: peers without lateness).
	Ignored []string `json:"ignored_sources,omitempty"`
}

func agreementOf(rep compare.Report, ignored []string) *Agreement {
	a := &Agreement{OK: rep.OK(), WantRows: rep.WantRows, GotRows: rep.GotRows, MatchedRows: rep.MatchedRows,
		Metrics: rep.Metrics, Diffs: len(rep.Diffs), MaxRelErr: map[string]float64{}, Ignored: ignored}
	for k, v := range rep.MaxRelErr {
		a.MaxRelErr[k.String()] = v
	}
	for i, d := range rep.Diffs {
		if i == 20 {
			break
		}
		a.FirstDiffs = append(a.FirstDiffs, d.String())
	}
	return a
}

// E2EResult is Kafka → qoscope's aggregator → ClickHouse on the file: a
// backlog run (the fields below: sustained rate, CPU, agreement) and a
// paced run (Paced: freshness of a live stream).
type E2EResult struct {
	Events          int     `json:"events"`
	InsertMode      string  `json:"insert_mode"`
	Instances       int     `json:"instances"`
	Partitions      int     `json:"partitions"`
	ProduceSec      float64 `json:"produce_s"`
	ConsumeSec      float64 `json:"consume_s"`
	EventsPerSecond float64 `json:"events_per_s"`
	Windows         int     `json:"freshness_windows"`
	FreshnessP50Sec float64 `json:"freshness_p50_s"`
	FreshnessP99Sec float64 `json:"freshness_p99_s"`
	FreshnessMaxSec float64 `json:"freshness_max_s"`
	AckP50Sec       float64 `json:"ack_p50_s"`
	AckP99Sec       float64 `json:"ack_p99_s"`
	// Consume is the consume phase's CPU: the harness process (the
	// runner), the ClickHouse and Kafka processes, sampled (see e2e.go).
	Consume Step `json:"consume"`
	// Agreement of the ClickHouse views with qoscope's offline rows.
	Agreement *Agreement `json:"agreement,omitempty"`
	Summary   string     `json:"summary"`
	Notes     []string   `json:"notes,omitempty"`
	Error     string     `json:"error,omitempty"`
	// Paced is the same events produced while the runner consumes, event
	// time running Pace times faster than the wall clock; nil when not run.
	Paced *E2EPaced `json:"paced,omitempty"`
}

// E2EPaced is a paced end-to-end run: a steady stream instead of a
// backlog, where a window closes every 60/Pace seconds, so freshness is
// that of live traffic.
type E2EPaced struct {
	Pace            float64 `json:"pace"`
	LatenessSec     float64 `json:"lateness_s"`
	OfferedRate     float64 `json:"offered_events_per_s"`
	ProduceSec      float64 `json:"produce_s"`
	ConsumeSec      float64 `json:"consume_s"`
	EventsPerSecond float64 `json:"events_per_s"`
	Windows         int     `json:"freshness_windows"`
	FreshnessP50Sec float64 `json:"freshness_p50_s"`
	FreshnessP99Sec float64 `json:"freshness_p99_s"`
	FreshnessMaxSec float64 `json:"freshness_max_s"`
	AckP50Sec       float64 `json:"ack_p50_s"`
	AckP99Sec       float64 `json:"ack_p99_s"`
	Summary         string  `json:"summary"`
	Error           string  `json:"error,omitempty"`
}

// Ratio is qoscope against a peer (or one mode against another), both
// measured in this run.
type Ratio struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Qoscope float64 `json:"qoscope"`
	Peer    float64 `json:"peer"`
	PeerIs  string  `json:"peer_is"`
	// Factor is how many times better qoscope is (> 1) or worse (< 1):
	// peer/qoscope for costs, qoscope/peer for rates.
	Factor float64 `json:"factor"`
	// Flagged: the peer's rows disagreed with qoscope's (or were not
	// checked): the ratio compares different work.
	Flagged bool   `json:"flagged,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Goal is a number an issue sets a goal for.
type Goal struct {
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"`
	Source   string  `json:"source"`
}

// NotRun is something selected that did not run or did not finish.
type NotRun struct {
	What string `json:"what"`
	Why  string `json:"why"`
}
