package notify

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Notification states (the outbox's state column).
const (
	// StateEnqueued: decided and stored, not yet accepted by the receiver.
	StateEnqueued = "enqueued"
	// StateSent: the receiver accepted it (2xx).
	StateSent = "sent"
	// StateFailed: a permanent error, or retryable ones for longer than
	// give_up_after; counted in qoscope_notify_notifications_failed_total.
	StateFailed = "failed"
	// StateSkipped: the group's alerts all resolved and the receiver has
	// send_resolved: false. Kept so the group knows they were dealt with.
	StateSkipped = "skipped"
)

// Notification is one message to one receiver about one group, the unit
// of the outbox.
type Notification struct {
	// Key is the idempotency key (idempotencyKey); receivers that can drop
	// repeats get it (the webhook's Idempotency-Key header).
	Key      string
	Receiver string
	GroupKey string
	// Seq numbers the group's notifications from 1.
	Seq    uint64
	State  string
	Alerts []Alert
	// CreatedAt is when the group decided to notify; the repeat interval
	// counts from it.
	CreatedAt time.Time
	// Error is the last error of a failed notification.
	Error string
}

func (n *Notification) final() bool { return n.State != StateEnqueued }

// Store keeps what delivery must not lose: the alerts handed over, the
// notifications and their states, and the silences. ClickHouseStore is
// the production one, shared by every instance; MemStore serves tests.
// Every Put is durable when it returns.
type Store interface {
	// PutAlerts stores the newest version of each alert; version grows
	// with every submit.
	PutAlerts(ctx context.Context, alerts []Alert, version uint64) error
	// Alerts returns the newest version of every alert that is firing or
	// whose newest version was written at or after resolvedSince.
	Alerts(ctx context.Context, resolvedSince time.Time) ([]Alert, error)
	// PutNotifications stores a state of each notification: enqueued, or
	// a final state, which replaces enqueued.
	PutNotifications(ctx context.Context, ns []Notification) error
	// Notifications returns every notification created at or after since,
	// in its newest state.
	Notifications(ctx context.Context, since time.Time) ([]Notification, error)
	// PutSilence stores a silence (new, or a newer version of one).
	PutSilence(ctx context.Context, s Silence) error
	// Silences returns every silence in its newest version.
	Silences(ctx context.Context) ([]Silence, error)
}

// MemStore is a Store in memory, for tests: what it holds dies with it.
type MemStore struct {
	mu            sync.Mutex
	alerts        map[string]memAlert
	notifications map[string]Notification
	silences      map[string]Silence
	// FailPut, when set, is returned by every Put (a failing database).
	FailPut error
}

type memAlert struct {
	a       Alert
	version uint64
	written time.Time
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{alerts: map[string]memAlert{}, notifications: map[string]Notification{}, silences: map[string]Silence{}}
}

func (m *MemStore) PutAlerts(_ context.Context, alerts []Alert, version uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.FailPut != nil {
		return m.FailPut
	}
	for _, a := range alerts {
		if old, ok := m.alerts[a.Fingerprint]; ok && old.version > version {
			continue
		}
		m.alerts[a.Fingerprint] = memAlert{a: cloneAlert(a), version: version, written: time.Unix(0, int64(version))}
	}
	return nil
}

func (m *MemStore) Alerts(_ context.Context, resolvedSince time.Time) ([]Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alert
	for _, a := range m.alerts {
		if a.a.Status == StatusFiring || !a.written.Before(resolvedSince) {
			out = append(out, cloneAlert(a.a))
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return compareStrings(a.Fingerprint, b.Fingerprint) })
	return out, nil
}

func (m *MemStore) PutNotifications(_ context.Context, ns []Notification) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.FailPut != nil {
		return m.FailPut
	}
	for _, n := range ns {
		if old, ok := m.notifications[n.Key]; ok && old.final() {
			continue // a final state replaces enqueued, never the reverse
		}
		n.Alerts = slices.Clone(n.Alerts)
		m.notifications[n.Key] = n
	}
	return nil
}

func (m *MemStore) Notifications(_ context.Context, since time.Time) ([]Notification, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Notification
	for _, n := range m.notifications {
		if !n.CreatedAt.Before(since) {
			n.Alerts = slices.Clone(n.Alerts)
			out = append(out, n)
		}
	}
	sortNotifications(out)
	return out, nil
}

func (m *MemStore) PutSilence(_ context.Context, s Silence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.FailPut != nil {
		return m.FailPut
	}
	if old, ok := m.silences[s.ID]; ok && old.UpdatedAt.After(s.UpdatedAt) {
		return nil
	}
	m.silences[s.ID] = s
	return nil
}

func (m *MemStore) Silences(context.Context) ([]Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Silence, 0, len(m.silences))
	for _, s := range m.silences {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Silence) int { return compareStrings(a.ID, b.ID) })
	return out, nil
}

// sortNotifications orders by receiver, group and seq: the send order.
func sortNotifications(ns []Notification) {
	slices.SortFunc(ns, func(a, b Notification) int {
		if c := compareStrings(a.Receiver, b.Receiver); c != 0 {
			return c
		}
		if c := compareStrings(a.GroupKey, b.GroupKey); c != 0 {
			return c
		}
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return compareStrings(a.Key, b.Key)
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cloneAlert(a Alert) Alert {
	a.Labels = cloneMap(a.Labels)
	a.Annotations = cloneMap(a.Annotations)
	if a.Value != nil {
		v := *a.Value
		a.Value = &v
	}
	return a
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
