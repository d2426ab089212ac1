package gen

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

// Modes of the virtual clock.
const (
	ModeAuto     = "auto"     // realtime with --target, fast otherwise
	ModeRealtime = "realtime" // events stamped with wall time, one tick per second
	ModeFast     = "fast"     // simulate from Start for Duration as fast as possible
)

// DefaultStart is where fast mode's clock starts unless told otherwise: a
// fixed instant, so that the same flags give the same bytes on any day.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure one `qoscope gen` run. DefaultOptions holds the
// documented defaults; zero values of Users, Duration and Heartbeat mean
// "the scenario's".
type Options struct {
	// Scenario names an embedded scenario (gen/scenarios/NAME.yaml).
	// Default "baseline". ScenarioFile, when set, is used instead.
	Scenario     string
	ScenarioFile string
	// Seed fixes every random draw. Default 1.
	Seed uint64
	// Users overrides the scenario's concurrent users (vendor capacities
	// scale with it). In realtime mode with Rate set and Users 0, the users
	// are sized to produce about Rate events/s.
	Users int
	// Duration overrides the scenario's simulated time.
	Duration time.Duration
	// Forever runs until interrupted (realtime only).
	Forever bool
	// Mode: auto, realtime or fast. Default auto.
	Mode string
	// Start of the virtual clock in fast mode. Default DefaultStart.
	// Realtime mode always starts now.
	Start time.Time
	// Heartbeat overrides the scenario's heartbeat interval.
	Heartbeat time.Duration
	// Geo writes country/province/city/isp into client and CDN events from
	// the same IP table ingest uses; false leaves them to ingest's
	// enrichment. Default true.
	Geo bool

	// Output is one NDJSON file with every event ("-" = stdout; a .gz
	// suffix compresses it).
	Output string
	// OutputDir receives client.ndjson, cdn.ndjson and origin.ndjson
	// (.ndjson.gz with Gzip).
	OutputDir string
	Gzip      bool

	// Target is ingest's base URL (http://host:port); Token its bearer
	// token.
	Target string
	Token  string
	// Rate caps the events sent per second (0 = as fast as ingest takes
	// them).
	Rate float64
	// BatchLines is the events per request. Default 500.
	BatchLines int
	// Senders is the number of concurrent requests. Default 4.
	Senders int
	// MaxRetries bounds the retries of one batch after 429, 503, 5xx or a
	// network error; then its events count as failed. Default 8.
	MaxRetries int
	// RequestTimeout bounds one request. Default 30s.
	RequestTimeout time.Duration
	// MaxRetryAfter caps a Retry-After answer. Default 60s.
	MaxRetryAfter time.Duration
	// FlushInterval sends partial batches in realtime mode. Default 1s.
	FlushInterval time.Duration
	// DrainTimeout bounds the wait for queued batches after an interrupt.
	// Default 30s.
	DrainTimeout time.Duration

	// Progress: auto (a bar on a terminal, else log lines), bar, log or
	// none. Default auto.
	Progress string
	// ProgressInterval is the period of log-line progress. Default 10s.
	ProgressInterval time.Duration
	// SummaryJSON writes the final summary as JSON to this file ("-" =
	// stdout).
	SummaryJSON string
	Log         config.Log

	// IPTable overrides the embedded synthetic table (tests).
	IPTable IPTable
	// HTTPClient overrides the sender's client (tests).
	HTTPClient *http.Client
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		Scenario:         BaseScenario,
		Seed:             1,
		Mode:             ModeAuto,
		Geo:              true,
		BatchLines:       500,
		Senders:          4,
		MaxRetries:       8,
		RequestTimeout:   30 * time.Second,
		MaxRetryAfter:    60 * time.Second,
		FlushInterval:    time.Second,
		DrainTimeout:     30 * time.Second,
		Progress:         "auto",
		ProgressInterval: 10 * time.Second,
		Log:              config.DefaultLog(),
	}
}

// mode resolves ModeAuto.
func (o *Options) mode() string {
	if o.Mode == ModeAuto || o.Mode == "" {
		if o.Target != "" {
			return ModeRealtime
		}
		return ModeFast
	}
	return o.Mode
}

// Validate reports every problem at once, each naming its flag.
func (o *Options) Validate() error {
	var e config.Errors
	if o.Scenario == "" && o.ScenarioFile == "" {
		e.Addf("--scenario: required")
	}
	if o.Users < 0 {
		e.Addf("--users: must not be negative")
	}
	if o.Duration < 0 {
		e.Addf("--duration: must not be negative")
	}
	switch o.Mode {
	case ModeAuto, ModeRealtime, ModeFast:
	default:
		e.Addf("--mode: %q is not one of auto, realtime, fast", o.Mode)
	}
	mode := o.mode()
	if o.Forever && mode != ModeRealtime {
		e.Addf("--forever: only in realtime mode (it would never finish writing)")
	}
	if o.Forever && o.Duration > 0 {
		e.Addf("--forever: conflicts with --duration")
	}
	if !o.Start.IsZero() && mode == ModeRealtime {
		e.Addf("--start: realtime mode always starts now; use --mode fast to simulate another time")
	}
	if !o.Start.IsZero() && o.Start.UnixMilli() < 100_000_000_000 {
		e.Addf("--start: %s is before 1973 (the schema's minimum ts)", o.Start.Format(time.RFC3339))
	}
	if o.Heartbeat < 0 || (o.Heartbeat > 0 && o.Heartbeat < 100*time.Millisecond) {
		e.Addf("--heartbeat: must be at least 100ms")
	}
	if o.Output == "" && o.OutputDir == "" && o.Target == "" {
		e.Addf("--output, --output-dir or --target: at least one is required")
	}
	if o.Output == "-" && o.SummaryJSON == "-" {
		e.Addf("--summary-json: cannot also be stdout when --output is -")
	}
	if o.Gzip && o.OutputDir == "" {
		e.Addf("--gzip: only applies to --output-dir (name --output FILE.ndjson.gz to compress one file)")
	}
	if o.Target != "" {
		u, err := url.Parse(o.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			e.Addf("--target: %q is not an http(s)://host:port URL", o.Target)
		} else if u.User != nil {
			e.Addf("--target: must not carry credentials; use --token")
		}
		if o.Token == "" {
			e.Addf("--token: required with --target (or --token-file, or QOSCOPE_GEN_TOKEN)")
		}
		if strings.ContainsAny(o.Token, "\r\n") {
			e.Addf("--token: must be one line")
		}
	}
	if o.Rate < 0 {
		e.Addf("--rate: must not be negative")
	}
	if o.BatchLines <= 0 || o.BatchLines > 100_000 {
		e.Addf("--batch: must be in [1, 100000]")
	}
	if o.Senders <= 0 || o.Senders > 256 {
		e.Addf("--senders: must be in [1, 256]")
	}
	if o.MaxRetries < 0 {
		e.Addf("--max-retries: must not be negative")
	}
	if o.RequestTimeout <= 0 {
		e.Addf("--request-timeout: must be positive")
	}
	if o.MaxRetryAfter <= 0 {
		e.Addf("--max-retry-after: must be positive")
	}
	if o.FlushInterval <= 0 {
		e.Addf("--flush-interval: must be positive")
	}
	if o.DrainTimeout <= 0 {
		e.Addf("--drain-timeout: must be positive")
	}
	switch o.Progress {
	case "auto", "bar", "log", "none":
	default:
		e.Addf("--progress: %q is not one of auto, bar, log, none", o.Progress)
	}
	if o.ProgressInterval <= 0 {
		e.Addf("--progress-interval: must be positive")
	}
	var le config.Errors
	o.Log.Validate("log", &le)
	for _, m := range le.Messages() {
		// "log.level: ..." → "--log-level: ..."
		e.Addf("--%s", strings.Replace(m, "log.", "log-", 1))
	}
	if err := e.Err(); err != nil {
		return fmt.Errorf("invalid options: %w", err)
	}
	return nil
}
