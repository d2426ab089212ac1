// Package leader elects one leader among the instances of a service with
// the Kafka consumer group protocol (docs/ALERTS.md, "Live"): every
// instance joins one group on a single-partition topic, and the member the
// group assigns partition 0 leads. The coordinator, not this package,
// decides; a member that stops heartbeating (killed, partitioned away) is
// removed after the session timeout and the partition goes to another.
// Without Kafka brokers an instance is always the leader (one instance).
package leader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/kafkautil"
	"github.com/qoscope/qoscope/internal/retry"
)

// Config says how to elect.
type Config struct {
	// Brokers is the Kafka bootstrap list; empty: single-instance mode,
	// always the leader.
	Brokers []string
	// Topic is the single-partition topic whose partition 0 is the
	// leadership; created when missing.
	Topic string
	// GroupID is the consumer group of the candidates.
	GroupID string
	// SessionTimeout: how long after a leader's last heartbeat the
	// coordinator gives leadership to another member (bounded by the
	// broker's group.min.session.timeout.ms, 6s by default).
	SessionTimeout time.Duration
	// HeartbeatInterval is also how soon a leader notices it lost the
	// assignment (a failed heartbeat ends its term).
	HeartbeatInterval time.Duration
	// DialTimeout bounds connections to the brokers.
	DialTimeout time.Duration
}

// Elector runs one candidate.
type Elector struct {
	cfg    Config
	log    zerolog.Logger
	leader atomic.Bool
	// OnChange, when set before Run, is called with true when a term
	// starts and false when it ends (metrics).
	OnChange func(bool)
}

// New returns a candidate; Run takes part in the election.
func New(cfg Config, log zerolog.Logger) *Elector {
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	return &Elector{cfg: cfg, log: log.With().Str("component", "leader").Logger()}
}

// IsLeader reports whether a term is running.
func (e *Elector) IsLeader() bool { return e.leader.Load() }

// Single reports whether the elector runs without Kafka (always leader).
func (e *Elector) Single() bool { return len(e.cfg.Brokers) == 0 }

// Run takes part in the election until ctx ends. Each time this instance
// becomes leader it calls lead with a context that is cancelled when the
// term ends (assignment lost, rebalance, ctx done); lead must stop acting
// as leader, and return, as soon as that context is done. A term never
// overlaps the next one: lead has returned before this member rejoins.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	if e.Single() {
		e.log.Info().Msg("no kafka brokers configured: single-instance mode, this instance is always the leader")
		e.term(ctx, lead)
		return nil
	}
	admin := kafkautil.Client(e.cfg.Brokers, e.cfg.DialTimeout)
	for {
		// The topic carries no messages; its one partition is the token.
		err := kafkautil.EnsureTopics(ctx, admin, kafkautil.TopicSpec{Name: e.cfg.Topic, Partitions: 1})
		if err == nil {
			break
		}
		e.log.Warn().Err(err).Str("topic", e.cfg.Topic).Msg("cannot create the leadership topic; retrying")
		if !retry.Sleep(ctx, 5*time.Second) {
			return nil
		}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                e.cfg.GroupID,
		Brokers:           e.cfg.Brokers,
		Dialer:            &kafka.Dialer{Timeout: e.cfg.DialTimeout, DualStack: true},
		Topics:            []string{e.cfg.Topic},
		HeartbeatInterval: e.cfg.HeartbeatInterval,
		SessionTimeout:    e.cfg.SessionTimeout,
		RebalanceTimeout:  e.cfg.SessionTimeout,
		JoinGroupBackoff:  time.Second,
		Timeout:           e.cfg.DialTimeout,
	})
	if err != nil {
		return fmt.Errorf("cannot join leader group %s: %w", e.cfg.GroupID, err)
	}
	// Closing leaves the group, so another member takes over at once
	// instead of after the session timeout.
	go func() {
		<-ctx.Done()
		group.Close()
	}()
	e.log.Info().Str("topic", e.cfg.Topic).Str("group", e.cfg.GroupID).Msg("joining the leader election")
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			e.log.Warn().Err(err).Msg("leader election: cannot join the next generation; retrying")
			if !retry.Sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		won := slices.ContainsFunc(gen.Assignments[e.cfg.Topic], func(p kafka.PartitionAssignment) bool { return p.ID == 0 })
		e.log.Debug().Int32("generation", gen.ID).Str("member_id", gen.MemberID).Bool("leader", won).Msg("leader election: new generation")
		if won {
			gen.Start(func(gctx context.Context) { e.term(gctx, lead) })
		}
	}
}

// term runs one leadership term.
func (e *Elector) term(ctx context.Context, lead func(context.Context)) {
	e.leader.Store(true)
	if e.OnChange != nil {
		e.OnChange(true)
	}
	e.log.Info().Msg("leadership acquired")
	defer func() {
		e.leader.Store(false)
		if e.OnChange != nil {
			e.OnChange(false)
		}
		e.log.Info().Msg("leadership ended")
	}()
	lead(ctx)
}
