package live

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Audit actions (migrations/0008_score_blacklist.sql): on and off switch a
// source's entry, refused and applied are the snapshot's verdict on it.
const (
	ActionOn      = "on"
	ActionOff     = "off"
	ActionRefused = "refused"
	ActionApplied = "applied"
)

// Change is one audit row: GET /api/v1/blacklist's "changes".
type Change struct {
	At       time.Time `json:"at"`
	Vendor   string    `json:"vendor"`
	Province string    `json:"province"`
	ISP      string    `json:"isp"`
	Source   string    `json:"source"`
	Action   string    `json:"action"`
	Reason   string    `json:"reason"`
	By       string    `json:"by"`
	Detail   string    `json:"detail"`
}

// auditKey names one source's entry in the audit.
type auditKey struct{ Vendor, Province, ISP, Source, By string }

// auditState is what the audit last said of an entry.
type auditState struct {
	present, refused bool
}

// Store is where the live blacklist's state lives besides the file: the
// alert changes (alert_history) and the audit (score_blacklist_audit,
// which also holds the operator entries). chStore is ClickHouse; tests
// use a fake.
type Store interface {
	AlertChanges(ctx context.Context) ([]AlertChange, error)
	OperatorEntries(ctx context.Context) ([]Entry, error)
	AuditState(ctx context.Context) (map[auditKey]auditState, error)
	Append(ctx context.Context, rows []Change) error
	Changes(ctx context.Context, limit int) ([]Change, error)
}

type chStore struct{ conn driver.Conn }

// NewStore is the ClickHouse store on conn's database (migrated).
func NewStore(conn driver.Conn) Store { return &chStore{conn: conn} }

func params(ctx context.Context, kv ...string) context.Context {
	p := clickhouse.Parameters{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return clickhouse.Context(ctx, clickhouse.WithParameters(p))
}

// maxAlertChanges bounds one read of alert_history's blacklist rows; the
// table holds state changes only, a few per alert.
const maxAlertChanges = 100_000

// AlertChanges reads every change of the rules with action blacklist
// (docs/ALERTS.md: FINAL, retracted = 0). Only changes are stored, so
// the whole history of those rules is small; a firing alert's first row
// may be days old.
func (s *chStore) AlertChanges(ctx context.Context) ([]AlertChange, error) {
	rows, err := s.conn.Query(params(ctx, "action", "blacklist", "limit", fmt.Sprint(maxAlertChanges)),
		`SELECT rule, fingerprint, labels, state, at FROM alert_history FINAL
WHERE retracted = 0 AND action = {action:String}
ORDER BY fingerprint, at LIMIT {limit:UInt64}`)
	if err != nil {
		return nil, fmt.Errorf("cannot query alert_history: %w", err)
	}
	defer rows.Close()
	var out []AlertChange
	for rows.Next() {
		var c AlertChange
		if err := rows.Scan(&c.Rule, &c.Fingerprint, &c.Labels, &c.State, &c.At); err != nil {
			return nil, fmt.Errorf("cannot read alert_history: %w", err)
		}
		c.At = c.At.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read alert_history: %w", err)
	}
	return out, nil
}

// OperatorEntries are the keys whose newest operator on/off row says on.
func (s *chStore) OperatorEntries(ctx context.Context) ([]Entry, error) {
	rows, err := s.conn.Query(params(ctx, "source", SourceOperator),
		`SELECT vendor, province, isp, argMax(action, (at, written_at)) AS a, argMax(reason, (at, written_at)), argMax(by, (at, written_at)), max(at)
FROM score_blacklist_audit FINAL
WHERE source = {source:String} AND action IN ('on', 'off')
GROUP BY vendor, province, isp HAVING a = 'on'
ORDER BY province, isp, vendor`)
	if err != nil {
		return nil, fmt.Errorf("cannot query score_blacklist_audit: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{Source: SourceOperator}
		var action string
		if err := rows.Scan(&e.Vendor, &e.Province, &e.ISP, &action, &e.Reason, &e.By, &e.Since); err != nil {
			return nil, fmt.Errorf("cannot read score_blacklist_audit: %w", err)
		}
		e.Since = e.Since.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read score_blacklist_audit: %w", err)
	}
	return out, nil
}

// AuditState is the audit's newest word on every entry, so that a
// restarted server writes only the changes since.
func (s *chStore) AuditState(ctx context.Context) (map[auditKey]auditState, error) {
	rows, err := s.conn.Query(ctx,
		`SELECT vendor, province, isp, source, by,
  argMaxIf(action, (at, written_at), action IN ('on', 'off')),
  argMaxIf(action, (at, written_at), action IN ('refused', 'applied'))
FROM score_blacklist_audit FINAL
GROUP BY vendor, province, isp, source, by`)
	if err != nil {
		return nil, fmt.Errorf("cannot query score_blacklist_audit: %w", err)
	}
	defer rows.Close()
	out := map[auditKey]auditState{}
	for rows.Next() {
		var k auditKey
		var sw, verdict string
		if err := rows.Scan(&k.Vendor, &k.Province, &k.ISP, &k.Source, &k.By, &sw, &verdict); err != nil {
			return nil, fmt.Errorf("cannot read score_blacklist_audit: %w", err)
		}
		out[k] = auditState{present: sw == ActionOn, refused: verdict == ActionRefused}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read score_blacklist_audit: %w", err)
	}
	return out, nil
}

// Append writes audit rows.
func (s *chStore) Append(ctx context.Context, rows []Change) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO score_blacklist_audit (at, vendor, province, isp, source, action, reason, by, detail)")
	if err != nil {
		return fmt.Errorf("cannot insert into score_blacklist_audit: %w", err)
	}
	defer b.Abort()
	for _, c := range rows {
		if err := b.Append(c.At, c.Vendor, c.Province, c.ISP, c.Source, c.Action, c.Reason, c.By, c.Detail); err != nil {
			return fmt.Errorf("cannot insert into score_blacklist_audit: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert into score_blacklist_audit: %w", err)
	}
	return nil
}

// Changes are the newest limit audit rows, newest first.
func (s *chStore) Changes(ctx context.Context, limit int) ([]Change, error) {
	rows, err := s.conn.Query(params(ctx, "limit", fmt.Sprint(limit)),
		`SELECT at, vendor, province, isp, source, action, reason, by, detail
FROM score_blacklist_audit FINAL ORDER BY at DESC, written_at DESC LIMIT {limit:UInt64}`)
	if err != nil {
		return nil, fmt.Errorf("cannot query score_blacklist_audit: %w", err)
	}
	defer rows.Close()
	out := []Change{}
	for rows.Next() {
		var c Change
		if err := rows.Scan(&c.At, &c.Vendor, &c.Province, &c.ISP, &c.Source, &c.Action, &c.Reason, &c.By, &c.Detail); err != nil {
			return nil, fmt.Errorf("cannot read score_blacklist_audit: %w", err)
		}
		c.At = c.At.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read score_blacklist_audit: %w", err)
	}
	return out, nil
}
