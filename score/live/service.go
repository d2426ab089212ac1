// Package live is the scheduler's live scores inside `qoscope serve`
// (docs/SCORES.md, "Serving the scheduler"): a loop rebuilds the score
// table every minute from ClickHouse with the effective blacklist (file ∪
// operator ∪ alert entries), swaps an immutable, pre-encoded Snapshot in
// atomically, writes the changed regions to a compacted Kafka topic and
// audits the blacklist's changes; the handlers serve the snapshot's bytes
// (GET /api/v1/scores, GET /api/v1/blacklist, POST
// /api/v1/admin/blacklist). The scoring itself is package score's.
package live

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/score"
)

// RowSource reads the score rows of minutes [from, to): (*query.Querier).ScoreInput.
type RowSource interface {
	ScoreInput(ctx context.Context, from, to time.Time) (*score.Input, error)
}

// Deps are what Scores runs on.
type Deps struct {
	Rows  RowSource
	Store Store
	// Publisher receives each snapshot's changed regions; nil makes a Kafka
	// publisher from Config when the topic is on.
	Publisher Publisher
	Logger    zerolog.Logger
	// Registry receives the loop's metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Scores is the live scores service.
type Scores struct {
	cfg       Config
	contracts *score.Contracts
	file      []Entry
	rows      RowSource
	store     Store
	pub       Publisher
	log       zerolog.Logger
	now       func() time.Time

	snap    atomic.Pointer[Snapshot]
	lastErr atomic.Pointer[failure]
	trigger chan struct{}

	mu        sync.Mutex // one rebuild at a time (loop, admin switch)
	audit     map[auditKey]auditState
	published map[string]published
	warned    []string

	mRebuild  prometheus.Histogram
	mErrors   prometheus.Counter
	mKafkaErr prometheus.Counter
}

type failure struct {
	err error
	at  time.Time
}

type published struct {
	body []byte
	at   time.Time
}

// New loads the scores file and the blacklist file of cfg (validated).
func New(cfg Config, d Deps) (*Scores, error) {
	c, err := score.LoadContracts(cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("scores.config: %w", err)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Scores{cfg: cfg, contracts: c, rows: d.Rows, store: d.Store, pub: d.Publisher,
		log: d.Logger.With().Str("component", "scores").Logger(), now: d.Now,
		trigger: make(chan struct{}, 1), published: map[string]published{}}
	if cfg.Blacklist != "" {
		bl, err := score.LoadBlacklist(cfg.Blacklist, c)
		if err != nil {
			return nil, fmt.Errorf("scores.blacklist: %w", err)
		}
		loaded := d.Now().UTC()
		for _, e := range bl {
			s.file = append(s.file, Entry{Vendor: e.Vendor, Province: e.Province, ISP: e.ISP, Source: SourceFile,
				Reason: e.Reason, By: SourceFile, Since: loaded})
		}
	}
	if s.pub == nil && cfg.kafkaOn() {
		s.pub = newKafkaPublisher(cfg)
	}
	s.mRebuild = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "qoscope", Subsystem: "scores",
		Name: "rebuild_seconds", Help: "Time of one scores snapshot rebuild (queries, build, encoding).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)})
	s.mErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "scores",
		Name: "rebuild_errors_total", Help: "Failed scores rebuilds (the last snapshot is kept)."})
	s.mKafkaErr = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "qoscope", Subsystem: "scores",
		Name: "kafka_errors_total", Help: "Failed writes of a snapshot to the scores topic (retried at the next rebuild)."})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "qoscope", Subsystem: "scores",
		Name: "snapshot_age_seconds", Help: "Age of the served scores snapshot; -1 before the first."}, func() float64 {
		if sn := s.snap.Load(); sn != nil {
			return sn.Age(s.now()).Seconds()
		}
		return -1
	})
	if d.Registry != nil {
		for _, m := range []prometheus.Collector{s.mRebuild, s.mErrors, s.mKafkaErr, age} {
			if err := d.Registry.Register(m); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Contracts are the loaded scores file.
func (s *Scores) Contracts() *score.Contracts { return s.contracts }

// Snapshot returns the current snapshot, nil before the first rebuild
// succeeded. Its Table is shared: callers must not modify it.
func (s *Scores) Snapshot() *Snapshot { return s.snap.Load() }

// Stale reports whether the snapshot is older than stale_after or the last
// rebuild failed, with the failure (nil if none).
func (s *Scores) Stale(sn *Snapshot, now time.Time) (bool, error) {
	var err error
	if f := s.lastErr.Load(); f != nil {
		err = f.err
	}
	return err != nil || sn.Age(now) > s.cfg.StaleAfter, err
}

// Run rebuilds at start, then at every interval boundary (plus a few
// seconds, for the closing minute's rows to arrive) and when an operator
// switches an entry, until ctx ends. A failed rebuild keeps the last
// snapshot and is retried after retry_interval.
func (s *Scores) Run(ctx context.Context) error {
	if s.pub != nil {
		defer s.pub.Close()
	}
	for {
		wait := s.cfg.RetryInterval
		if err := s.Rebuild(ctx); err == nil {
			now := s.now()
			wait = now.Truncate(s.cfg.Interval).Add(s.cfg.Interval + min(5*time.Second, s.cfg.Interval/10)).Sub(now)
		} else if ctx.Err() != nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.trigger:
			t.Stop()
		}
	}
}

// Rebuild reads the rows and the blacklist, builds and publishes a new
// snapshot. On error the previous snapshot stays.
func (s *Scores) Rebuild(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	err := s.rebuild(ctx)
	s.mRebuild.Observe(time.Since(start).Seconds())
	if err != nil {
		s.mErrors.Inc()
		s.lastErr.Store(&failure{err: err, at: s.now()})
		ev := s.log.Error().Err(err)
		if sn := s.snap.Load(); sn != nil {
			ev = ev.Time("serving_at", sn.At).Dur("age", sn.Age(s.now()))
		}
		ev.Msg("scores rebuild failed; the last snapshot is kept")
		return err
	}
	s.lastErr.Store(nil)
	return nil
}

func (s *Scores) rebuild(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	at := s.now().UTC().Truncate(time.Minute)
	st := &s.contracts.Settings
	// The quality's lookback, and the CDN trend: TrendMinutes minutes up
	// to a watermark as old as at − 1m − CDNMaxLag (score.Build).
	span := max(st.Lookback, st.CDNMaxLag+time.Duration(st.TrendMinutes)*time.Minute) + time.Minute
	in, err := s.rows.ScoreInput(ctx, at.Add(-span), at)
	if err != nil {
		return err
	}
	changes, err := s.store.AlertChanges(ctx)
	if err != nil {
		return err
	}
	ops, err := s.store.OperatorEntries(ctx)
	if err != nil {
		return err
	}
	if s.audit == nil {
		if s.audit, err = s.store.AuditState(ctx); err != nil {
			return err
		}
	}
	alerts, warns := alertEntries(changes, at, s.cfg.HoldTime)
	entries := slices.Concat(s.file, ops, alerts)
	slices.SortFunc(entries, entryLess)
	t := score.Build(in, s.contracts, at, merge(entries))
	judge(entries, t, s.contracts)
	sn, err := newSnapshot(t, s.now().UTC(), entries)
	if err != nil {
		return err
	}
	s.snap.Store(sn)
	s.logWarnings(append(warns, t.Warnings...))
	s.log.Debug().Time("at", at).Int("regions", len(t.Regions)).Int("blacklist", len(entries)).Msg("scores snapshot")

	// The snapshot is served; the audit and Kafka follow and are retried
	// at the next rebuild when they fail.
	rows, next := auditDiff(s.audit, entries, at)
	if err := s.store.Append(ctx, rows); err != nil {
		s.log.Error().Err(err).Int("rows", len(rows)).Msg("cannot write the blacklist audit; retried at the next rebuild")
	} else {
		s.audit = next
	}
	if s.pub != nil {
		if err := s.publish(ctx, sn); err != nil {
			s.mKafkaErr.Inc()
			s.log.Error().Err(err).Msg("cannot write the scores to kafka; retried at the next rebuild")
		}
	}
	return nil
}

// logWarnings logs the warnings that differ from the previous rebuild's.
func (s *Scores) logWarnings(ws []string) {
	for _, w := range ws {
		if !slices.Contains(s.warned, w) {
			s.log.Warn().Str("warning", w).Msg("scores")
		}
	}
	s.warned = ws
}

// publish writes the regions whose document changed (or was last written
// kafka_refresh ago) and a tombstone for each region that left the table.
func (s *Scores) publish(ctx context.Context, sn *Snapshot) error {
	now := s.now()
	var msgs []Message
	for _, key := range sortedKeys(sn.regionJSON) {
		p, ok := s.published[key]
		if ok && string(p.body) == string(sn.regionBody[key]) && now.Sub(p.at) < s.cfg.KafkaRefresh {
			continue
		}
		msgs = append(msgs, Message{Key: key, Value: sn.regionJSON[key]})
	}
	for _, key := range sortedKeys(s.published) {
		if _, ok := sn.regionJSON[key]; !ok {
			msgs = append(msgs, Message{Key: key})
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := s.pub.Publish(ctx, msgs); err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Value == nil {
			delete(s.published, m.Key)
			continue
		}
		s.published[m.Key] = published{body: sn.regionBody[m.Key], at: now}
	}
	return nil
}

// Trigger asks the loop for a rebuild now (an operator's switch).
func (s *Scores) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}
