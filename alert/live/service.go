package live

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/internal/leader"
	"github.com/qoscope/qoscope/internal/retry"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query"
)

// Service is the alerting part of `qoscope serve`: the evaluator (when
// alert.rules is set and alert.enabled), its leader election and rules
// reload, and GET /api/v1/alerts (always).
type Service struct {
	cfg Config
	// disp delivers notifications (alert.notify has receivers): every
	// instance serves its silences; the leader runs its send loop.
	disp    *notify.Dispatcher
	store   *CHStore
	ev      *Evaluator // nil: not evaluating here
	elector *leader.Elector
	m       *Metrics
	log     zerolog.Logger
	cat     *query.Catalog
	// rulesHash is the content hash of the rules file last read;
	// unreadable that the last read failed (logged once).
	rulesHash  [32]byte
	unreadable bool
	// written wakes the evaluation loop before its interval (WakeOn).
	written <-chan struct{}
}

// WakeOn makes the evaluation loop look at the watermarks whenever c
// receives, besides every evaluation.interval: all-in-one passes its
// aggregator's flushes, so a minute is evaluated as soon as its rows and
// checkpoints are written rather than up to an interval later. Call it
// before Run.
func (s *Service) WakeOn(c <-chan struct{}) { s.written = c }

// NewService builds the alerting of serve on conn and q. sink receives the
// notifications; nil logs them (delivery not wired). A rules file that
// does not load is an error here (there are no last good rules yet).
func NewService(cfg Config, conn driver.Conn, q *query.Querier, sink Sink, reg prometheus.Registerer, log zerolog.Logger) (*Service, error) {
	s := &Service{cfg: cfg, store: NewCHStore(conn, cfg.Leader.GroupID), log: log.With().Str("component", "alert").Logger(), cat: q.Catalog()}
	if len(cfg.Notify.Receivers) > 0 {
		nc := cfg.Notify
		if nc.ExternalURL == "" {
			// One address of the wall: alert.external_url.
			nc.ExternalURL = cfg.ExternalURL
		}
		d, err := notify.New(nc, notify.Deps{Store: notify.NewClickHouseStore(conn), Logger: log, Registry: reg})
		if err != nil {
			return nil, fmt.Errorf("alert.notify: %w", err)
		}
		s.disp = d
		if sink == nil {
			sink = d
		}
	}
	if !cfg.Active() {
		return s, nil
	}
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.m = m
	b, err := os.ReadFile(cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("alert.rules: cannot read rules: %w", err)
	}
	rs, err := alert.ParseRules(cfg.Rules, b, s.cat)
	if err != nil {
		return nil, fmt.Errorf("alert.rules: %w", err)
	}
	s.rulesHash = sha256.Sum256(b)
	if sink == nil {
		s.log.Warn().Msg("no notification delivery configured: notifications are only logged")
		sink = LogSink{Log: s.log}
	}
	s.ev = NewEvaluator(cfg, rs, Deps{
		Watermarks: NewCHWatermarks(conn, cfg.AggregatorGroup, cfg.Topics),
		Rows:       QuerierRows{Q: q},
		Store:      s.store,
		Sink:       sink,
		Logger:     log,
		Metrics:    m,
	})
	s.elector = leader.New(leader.Config{Brokers: cfg.Brokers, Topic: cfg.Leader.Topic, GroupID: cfg.Leader.GroupID,
		SessionTimeout: cfg.Leader.SessionTimeout, HeartbeatInterval: cfg.Leader.HeartbeatInterval, DialTimeout: cfg.KafkaDialTimeout}, log)
	s.elector.OnChange = m.setLeader
	s.log.Info().Str("rules", cfg.Rules).Int("count", len(rs.Rules)).Msg("alert rules loaded")
	return s, nil
}

// Evaluator is the live evaluator, nil when this instance does not evaluate.
func (s *Service) Evaluator() *Evaluator { return s.ev }

// IsLeader reports whether this instance evaluates and sends now.
func (s *Service) IsLeader() bool { return s.elector != nil && s.elector.IsLeader() }

// Run takes part in the leader election and, while leading, evaluates
// every alert.evaluation.interval; it reloads the rules file when it
// changes. It returns when ctx ends (at once when not evaluating).
func (s *Service) Run(ctx context.Context) error {
	if s.ev == nil {
		return nil
	}
	go s.watchRules(ctx)
	return s.elector.Run(ctx, s.lead)
}

// Dispatcher is the notification delivery, nil without alert.notify
// receivers.
func (s *Service) Dispatcher() *notify.Dispatcher { return s.disp }

// lead is one leadership term: load the saved state, then evaluate (and
// deliver) until the term ends. Delivery's send loop runs only in a term,
// and the term waits for it to stop: two instances never send at once.
func (s *Service) lead(ctx context.Context) {
	if s.disp != nil {
		done := make(chan struct{})
		dctx, cancel := context.WithCancel(ctx)
		go func() {
			defer close(done)
			for {
				err := s.disp.Run(dctx)
				if dctx.Err() != nil {
					return
				}
				s.log.Error().Err(err).Msg("notification delivery stopped; restarting it")
				if !retry.Sleep(dctx, s.cfg.Evaluation.Timeout) {
					return
				}
			}
		}()
		defer func() { cancel(); <-done }()
	}
	interval := s.cfg.Evaluation.Interval
	for {
		bctx, cancel := context.WithTimeout(ctx, s.cfg.Evaluation.Timeout)
		err := s.ev.Begin(bctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.m.tickError()
		s.log.Error().Err(err).Msg("cannot start evaluating; retrying")
		if !retry.Sleep(ctx, interval) {
			return
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		tctx, cancel := context.WithTimeout(ctx, s.cfg.Evaluation.Timeout)
		_, err := s.ev.Tick(tctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.m.tickError()
			s.log.Error().Err(err).Msg("alert evaluation failed; retrying at the next interval")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.written: // nil (serve alone): never
		}
	}
}

// watchRules polls the rules file's content hash (a small file; a
// ConfigMap's symlink swap or an editor's rename keeps neither inode nor
// modification time meaningful) and reloads it when it changed.
func (s *Service) watchRules(ctx context.Context) {
	t := time.NewTicker(s.cfg.Evaluation.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.ReloadRules()
		}
	}
}

// ReloadRules reads the rules file and, when its content changed and is
// valid, uses it from the next minute evaluated. A bad file keeps the last
// good rules; the error names the file, the rule and the key. It reports
// whether new rules were taken.
func (s *Service) ReloadRules() bool {
	b, err := os.ReadFile(s.cfg.Rules)
	if err != nil {
		if !s.unreadable {
			s.m.reload(false)
			s.log.Error().Err(err).Str("rules", s.cfg.Rules).Msg("cannot read the rules file; keeping the last good rules")
		}
		s.unreadable = true
		return false
	}
	s.unreadable = false
	h := sha256.Sum256(b)
	if h == s.rulesHash {
		return false
	}
	s.rulesHash = h
	rs, err := alert.ParseRules(s.cfg.Rules, b, s.cat)
	if err != nil {
		s.m.reload(false)
		s.log.Error().Err(err).Str("rules", s.cfg.Rules).Msg("rules file not reloaded; keeping the last good rules")
		return false
	}
	s.ev.SetRules(rs)
	s.m.reload(true)
	s.log.Info().Str("rules", s.cfg.Rules).Int("count", len(rs.Rules)).Msg("alert rules reloaded")
	return true
}

// LogSink logs the notifications: the Sink when no delivery is configured.
type LogSink struct{ Log zerolog.Logger }

// Submit logs each alert.
func (l LogSink) Submit(_ context.Context, alerts []notify.Alert) error {
	for _, a := range alerts {
		l.Log.Info().Str("rule", a.Rule).Str("fingerprint", a.Fingerprint).Str("status", a.Status).
			Interface("labels", a.Labels).Interface("annotations", a.Annotations).Time("evaluated_at", a.EvaluatedAt).
			Msg("alert notification (no delivery configured)")
	}
	return nil
}
