package live

import (
	"context"
	"time"

	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query"
)

// Sink is delivery's entry point (notify.Dispatcher): Submit returns once
// the alerts are durably in its outbox, so the evaluator may then record
// that they were handed over.
type Sink interface {
	Submit(ctx context.Context, alerts []notify.Alert) error
}

// Progress is how far one source's aggregated minutes are: every minute
// ending at or before Complete has all its partitions' events but late
// ones; every minute ending at or before Final is closed on every
// partition (its rows are final).
type Progress struct {
	Complete, Final time.Time
}

// Watermarks reads the aggregators' progress per source.
type Watermarks interface {
	// Progress returns the progress of each of sources that has a
	// checkpoint; a source without one is absent.
	Progress(ctx context.Context, sources []string) (map[string]Progress, error)
}

// RowSource reads minute rows.
type RowSource interface {
	// Rows returns the rows of one grouping set of source in [from, to),
	// with the metrics (catalogue names), restricted to the groups whose
	// dimensions have the values of filter; final is true when every row
	// is final.
	Rows(ctx context.Context, source string, set query.GroupingSet, metrics []string, from, to time.Time, filter alert.Labels) (rows []alert.Row, final bool, err error)
}

// Store keeps the evaluator's state and the alert history.
type Store interface {
	// LoadState returns the newest saved state, nil when there is none.
	LoadState(ctx context.Context) (*State, error)
	SaveState(ctx context.Context, st *State) error
	WriteHistory(ctx context.Context, rows []HistoryRow) error
}

// StateVersion is the version of the State format.
const StateVersion = 1

// State is everything the live evaluator persists (table alert_state,
// like Prometheus's ALERTS_FOR_STATE): after a restart, or on the other
// instance taking over, it neither fires a firing alert again nor forgets
// a pending `for`, re-evaluates the minutes not yet final against the
// decisions already applied, and hands delivery the alerts it had not yet
// handed over.
type State struct {
	Version int `json:"version"`
	// Seq counts the evaluation steps; the version of the history rows and
	// of this state's row.
	Seq uint64 `json:"seq"`
	// Saves counts the saves: the version of the state's row.
	Saves uint64 `json:"saves"`
	// Final is the alert state after the last minute evaluated final.
	Final alert.State `json:"final"`
	// Minutes are the minutes after Final evaluated complete but not yet
	// final, in order.
	Minutes []Minute `json:"minutes"`
	// Info is what the API and the notifications show of each pending or
	// firing alert, by fingerprint.
	Info map[string]Info `json:"info"`
	// Notified are the alerts last handed to delivery as firing, by
	// fingerprint: an alert missing from the next evaluation is sent
	// resolved.
	Notified map[string]notify.Alert `json:"notified"`
	// Outbox holds the alerts of the last step not yet accepted by the
	// Sink (a crash between the two saves hands them over again, the same
	// alerts, which delivery's idempotency keys recognise).
	Outbox []notify.Alert `json:"outbox"`
}

// Minute is one minute evaluated while complete and not yet final.
type Minute struct {
	At time.Time `json:"at"`
	// RowsHash identifies the rows it was evaluated with: when the minute
	// is final and its rows have another hash, it is evaluated again.
	RowsHash uint64 `json:"rows_hash"`
	// Changes are the decisions applied for the minute.
	Changes []alert.Change `json:"changes"`
	// After is the alert state after the minute.
	After alert.State `json:"after"`
}

// Info is what is shown of one active alert.
type Info struct {
	Severity    string            `json:"severity"`
	Action      string            `json:"action"`
	Value       *float64          `json:"value"`
	Users       *int64            `json:"users"`
	Annotations map[string]string `json:"annotations"`
	// Diagnosis is computed when the alert fires (rate metrics only).
	Diagnosis []Cause `json:"diagnosis"`
	// DiagnosisText is the diagnosis as on-call reads it, one cause a line.
	DiagnosisText string `json:"diagnosis_text,omitempty"`
}

// Cause is one cause of a diagnosis, as the API shows it.
type Cause struct {
	Labels   map[string]string `json:"labels"`
	Value    float64           `json:"value"`
	Baseline float64           `json:"baseline"`
	Share    float64           `json:"share"`
	Text     string            `json:"text"`
}

// current is the alert state after the last minute evaluated.
func (s *State) current() alert.State {
	if n := len(s.Minutes); n > 0 {
		return s.Minutes[n-1].After
	}
	return s.Final
}

// HistoryRow is one row of alert_history (migrations/0006_alert_history.sql).
type HistoryRow struct {
	alert.Change
	Action      string
	Annotations map[string]string
	Diagnosis   string // JSON of the causes, "" when none
	Version     uint64
	Retracted   bool
}
