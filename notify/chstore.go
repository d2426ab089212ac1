package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseStore is the Store of migrations/0007_notify_outbox.sql: every
// instance of qoscope serve sharing the database shares the outbox and the
// silences.
type ClickHouseStore struct {
	conn driver.Conn
}

// NewClickHouseStore uses conn, whose database holds the notify_* tables.
func NewClickHouseStore(conn driver.Conn) *ClickHouseStore { return &ClickHouseStore{conn: conn} }

// Notification versions: a final state replaces enqueued, whichever
// instance writes it and whatever its clock.
const (
	versionEnqueued = 1
	versionFinal    = 2
)

func (s *ClickHouseStore) PutAlerts(ctx context.Context, alerts []Alert, version uint64) error {
	if len(alerts) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO notify_alerts (fingerprint, status, alert, version)")
	if err != nil {
		return fmt.Errorf("cannot insert into notify_alerts: %w", err)
	}
	defer b.Abort()
	for _, a := range alerts {
		j, err := json.Marshal(a)
		if err != nil {
			return permanent(fmt.Errorf("cannot encode alert %s: %w", a.Fingerprint, err))
		}
		if err := b.Append(a.Fingerprint, a.Status, string(j), version); err != nil {
			return fmt.Errorf("cannot insert into notify_alerts: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert into notify_alerts: %w", err)
	}
	return nil
}

func (s *ClickHouseStore) Alerts(ctx context.Context, resolvedSince time.Time) ([]Alert, error) {
	rows, err := s.conn.Query(ctx, "SELECT alert FROM notify_alerts FINAL WHERE status = 'firing' OR written_at >= ? ORDER BY fingerprint", resolvedSince)
	if err != nil {
		return nil, fmt.Errorf("cannot read notify_alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("cannot read notify_alerts: %w", err)
		}
		var a Alert
		if err := json.Unmarshal([]byte(j), &a); err != nil {
			return nil, fmt.Errorf("notify_alerts: bad alert: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read notify_alerts: %w", err)
	}
	return out, nil
}

func (s *ClickHouseStore) PutNotifications(ctx context.Context, ns []Notification) error {
	if len(ns) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO notify_notifications (key, receiver, group_key, seq, state, alerts, created_at, error, version)")
	if err != nil {
		return fmt.Errorf("cannot insert into notify_notifications: %w", err)
	}
	defer b.Abort()
	for _, n := range ns {
		j, err := json.Marshal(n.Alerts)
		if err != nil {
			return permanent(fmt.Errorf("cannot encode notification %s: %w", n.Key, err))
		}
		v := uint64(versionEnqueued)
		if n.final() {
			v = versionFinal
		}
		if err := b.Append(n.Key, n.Receiver, n.GroupKey, n.Seq, n.State, string(j), n.CreatedAt, n.Error, v); err != nil {
			return fmt.Errorf("cannot insert into notify_notifications: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert into notify_notifications: %w", err)
	}
	return nil
}

func (s *ClickHouseStore) Notifications(ctx context.Context, since time.Time) ([]Notification, error) {
	rows, err := s.conn.Query(ctx, `SELECT key, receiver, group_key, seq, state, alerts, created_at, error
FROM notify_notifications FINAL WHERE created_at >= ? ORDER BY receiver, group_key, seq, key`, since)
	if err != nil {
		return nil, fmt.Errorf("cannot read notify_notifications: %w", err)
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		var n Notification
		var j string
		if err := rows.Scan(&n.Key, &n.Receiver, &n.GroupKey, &n.Seq, &n.State, &j, &n.CreatedAt, &n.Error); err != nil {
			return nil, fmt.Errorf("cannot read notify_notifications: %w", err)
		}
		if err := json.Unmarshal([]byte(j), &n.Alerts); err != nil {
			return nil, fmt.Errorf("notify_notifications: notification %s: bad alerts: %w", n.Key, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read notify_notifications: %w", err)
	}
	return out, nil
}

func (s *ClickHouseStore) PutSilence(ctx context.Context, sl Silence) error {
	j, err := json.Marshal(sl.Matchers)
	if err != nil {
		return permanent(fmt.Errorf("cannot encode silence %s: %w", sl.ID, err))
	}
	err = s.conn.Exec(ctx, `INSERT INTO notify_silences (id, matchers, starts_at, ends_at, created_by, comment, version) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		sl.ID, string(j), sl.StartsAt, sl.EndsAt, sl.CreatedBy, sl.Comment, uint64(sl.UpdatedAt.UnixNano()))
	if err != nil {
		return fmt.Errorf("cannot insert into notify_silences: %w", err)
	}
	return nil
}

func (s *ClickHouseStore) Silences(ctx context.Context) ([]Silence, error) {
	rows, err := s.conn.Query(ctx, `SELECT id, matchers, starts_at, ends_at, created_by, comment, version FROM notify_silences FINAL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("cannot read notify_silences: %w", err)
	}
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		var sl Silence
		var j string
		var v uint64
		if err := rows.Scan(&sl.ID, &j, &sl.StartsAt, &sl.EndsAt, &sl.CreatedBy, &sl.Comment, &v); err != nil {
			return nil, fmt.Errorf("cannot read notify_silences: %w", err)
		}
		if err := json.Unmarshal([]byte(j), &sl.Matchers); err != nil {
			return nil, fmt.Errorf("notify_silences: silence %s: bad matchers: %w", sl.ID, err)
		}
		sl.UpdatedAt = time.Unix(0, int64(v)).UTC()
		sl.StartsAt, sl.EndsAt = sl.StartsAt.UTC(), sl.EndsAt.UTC()
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read notify_silences: %w", err)
	}
	return out, nil
}
