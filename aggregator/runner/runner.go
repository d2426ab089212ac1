// Package runner is the streaming half of the aggregator: a Kafka consumer
// group over the client, CDN and origin topics, one aggregator.Partition
// per assigned topic-partition, and a flusher that writes the rows to
// ClickHouse as Arrow records, then a checkpoint, then commits the Kafka
// offsets. See ../README.md, "Runner", for the protocol and why replays
// after a crash or a rebalance neither lose nor double count.
//
// Embedding (all-in-one):
//
//	r, err := runner.New(cfg, runner.Deps{Logger: log, Registry: reg})
//	...
//	err = r.Run(ctx) // returns after ctx ends: last flush, commit, group left
package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/kafkautil"
	"github.com/qoscope/qoscope/schemas/route"
)

// Deps are the runner's collaborators.
type Deps struct {
	// Logger receives the runner's log (component fields are added).
	Logger zerolog.Logger
	// Registry receives the metrics; nil: a private registry.
	Registry prometheus.Registerer
	// Observer, when set, is told about every window whose final rows
	// ClickHouse acknowledged (benchmarks measure freshness with it).
	Observer Observer
	// CrashHook, when set, is called at the named points of every flush:
	// "after-deadletters", "after-rows", "after-checkpoint", "after-commit"
	// (crash tests; see CrashHookFromEnv).
	CrashHook func(point string)
	// HTTPClient posts arrow_http inserts; nil: a default client.
	HTTPClient *http.Client
	// Flushed, when set, is called after every flush whose rows and
	// checkpoints ClickHouse acknowledged, from the flushing goroutine: a
	// reader in the same process (all-in-one's alert evaluator) can look
	// at the new watermarks at once instead of at its next poll. It must
	// not block.
	Flushed func()
}

// Observer sees final rows become durable.
type Observer interface {
	// FinalWritten: the final rows of window windowStart (Unix ms) of
	// partition id were acknowledged at ackedAt; the partition's watermark
	// passed the window's end at closedAt (the first window closed since
	// the previous flush, so closedAt is never later than the truth).
	FinalWritten(id aggregator.PartitionID, windowStart int64, closedAt, ackedAt time.Time)
}

// Runner consumes the event topics and maintains the minute tables.
type Runner struct {
	cfg  Config
	plan *aggregator.Plan
	log  zerolog.Logger
	m    *metrics
	deps Deps
	hash string

	ch     driver.Conn
	db     string
	ins    Inserter
	dl     *kafka.Writer
	kc     *kafka.Client
	dialer *kafka.Dialer
	mem    memory.Allocator

	// gate pauses consumption while ClickHouse writes fail, so that closed
	// windows do not pile up in memory: workers hold it shared per chunk,
	// a failing flush holds it exclusively until it succeeds.
	gate sync.RWMutex

	// running is true between connecting and the end of Run (Ready).
	running atomic.Bool
}

// Ready answers the health server's /readyz: ready while Run consumes,
// not before it connected to ClickHouse and Kafka, not after it stopped,
// and not while ClickHouse writes fail (consumption is paused then).
func (r *Runner) Ready(context.Context) error {
	if !r.running.Load() {
		return errors.New("not consuming: connecting to clickhouse and kafka, or stopped")
	}
	if !r.gate.TryRLock() {
		return errors.New("clickhouse writes are failing; consumption is paused until they succeed")
	}
	r.gate.RUnlock()
	return nil
}

// New validates cfg and registers the metrics; Run connects.
func New(cfg Config, deps Deps) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	plan, err := aggregator.NewPlan(cfg.Aggregator)
	if err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	return &Runner{
		cfg:  cfg,
		plan: plan,
		log:  deps.Logger.With().Str("component", "aggregator").Str("group", cfg.GroupID).Logger(),
		m:    m,
		deps: deps,
		hash: planHash(plan.Config()),
		mem:  memory.NewGoAllocator(),
	}, nil
}

func (r *Runner) connect(ctx context.Context) error {
	c, err := openClickHouse(ctx, &r.cfg, r.deps.HTTPClient, r.cfg.Rollups)
	if err != nil {
		return err
	}
	r.ch, r.db, r.ins = c.conn, c.db, c.ins

	k := r.cfg.Kafka
	r.kc = kafkautil.Client(k.Brokers, k.DialTimeout)
	if err := r.checkTopics(ctx); err != nil {
		return err
	}
	r.dialer = &kafka.Dialer{ClientID: k.ClientID, Timeout: k.DialTimeout, DualStack: true}
	r.dl = &kafka.Writer{
		Addr:                   kafka.TCP(k.Brokers...),
		Balancer:               &kafka.Murmur2Balancer{},
		RequiredAcks:           kafka.RequireAll,
		MaxAttempts:            3,
		BatchTimeout:           time.Millisecond,
		AllowAutoTopicCreation: false,
		Transport:              &kafka.Transport{ClientID: k.ClientID, DialTimeout: k.DialTimeout},
	}
	r.log.Info().Str("clickhouse", r.cfg.ClickHouse.Redacted()).Str("insert_mode", r.ins.Mode()).
		Strs("brokers", k.Brokers).Strs("topics", r.topics()).Msg("aggregator connected")
	return nil
}

func (r *Runner) topics() []string {
	var ts []string
	for _, s := range route.Sources {
		ts = append(ts, route.Topic(r.cfg.Kafka.Topics, s))
	}
	return ts
}

// checkTopics fails fast when a topic is missing: the consumer group would
// otherwise wait silently and dead letters would retry forever.
func (r *Runner) checkTopics(ctx context.Context) error {
	want := append(r.topics(), r.cfg.Kafka.Topics.DeadLetter)
	md, err := r.kc.Metadata(ctx, &kafka.MetadataRequest{Topics: want})
	if err != nil {
		return fmt.Errorf("cannot reach kafka at %v: %w", r.cfg.Kafka.Brokers, err)
	}
	found := map[string]bool{}
	for _, t := range md.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			found[t.Name] = true
		}
	}
	for _, t := range want {
		if !found[t] {
			return fmt.Errorf("kafka topic %s does not exist (kafka.topics; ingest creates them)", t)
		}
	}
	return nil
}

func (r *Runner) close() {
	if r.dl != nil {
		if err := r.dl.Close(); err != nil {
			r.log.Warn().Err(err).Msg("cannot close dead-letter writer")
		}
		if tr, ok := r.dl.Transport.(*kafka.Transport); ok {
			tr.CloseIdleConnections()
		}
	}
	if r.kc != nil {
		if tr, ok := r.kc.Transport.(*kafka.Transport); ok {
			tr.CloseIdleConnections()
		}
	}
	if r.ch != nil {
		r.ch.Close()
	}
}

// Run consumes until ctx ends, then flushes, commits and leaves the group
// and returns nil; it returns an error when a write fails permanently
// (after leaving the group; nothing of the failed flush is committed).
func (r *Runner) Run(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		r.close()
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	defer r.close()
	start := int64(kafka.FirstOffset)
	if r.cfg.StartOffset == "last" {
		start = kafka.LastOffset
	}
	klog := &readerLogger{log: r.log, every: 10 * time.Second}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                r.cfg.GroupID,
		Brokers:           r.cfg.Kafka.Brokers,
		Dialer:            r.dialer,
		Topics:            r.topics(),
		HeartbeatInterval: r.cfg.Consumer.HeartbeatInterval,
		SessionTimeout:    r.cfg.Consumer.SessionTimeout,
		RebalanceTimeout:  r.cfg.Consumer.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		StartOffset:       start,
		ErrorLogger:       klog,
		Timeout:           r.cfg.Kafka.DialTimeout,
	})
	if err != nil {
		return fmt.Errorf("cannot create consumer group: %w", err)
	}
	r.running.Store(true)
	defer r.running.Store(false)
	// Leaving the group is started from inside the last generation (see
	// generation): closing only after it ended would first join a new
	// generation, making the other members rebalance twice.
	closed := make(chan struct{})
	var closeOnce sync.Once
	closeGroup := func() {
		closeOnce.Do(func() {
			go func() {
				_ = cg.Close()
				close(closed)
			}()
		})
	}
	waitClosed := func() {
		closeGroup()
		select {
		case <-closed:
		case <-time.After(r.cfg.ShutdownTimeout):
			r.log.Warn().Msg("consumer group did not close in time; its session will expire on the broker")
		}
	}

	joinFailures := 0
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				waitClosed()
				r.log.Info().Msg("aggregator stopped")
				return nil
			}
			// The group retries joining by itself (with backoff).
			joinFailures++
			if joinFailures == 1 || joinFailures%30 == 0 {
				r.log.Warn().Err(err).Int("failures", joinFailures).Msg("cannot join the consumer group; retrying")
			}
			continue
		}
		joinFailures = 0
		err = r.runGeneration(ctx, gen, closeGroup)
		if err != nil {
			waitClosed()
			return err
		}
		if ctx.Err() != nil {
			waitClosed()
			r.log.Info().Msg("aggregator stopped")
			return nil
		}
	}
}

// runGeneration processes one generation's assignment until the group
// rebalances, ctx ends, or a write fails permanently.
func (r *Runner) runGeneration(ctx context.Context, gen *kafka.Generation, closeGroup func()) error {
	errc := make(chan error, 1)
	gen.Start(func(gctx context.Context) {
		err := r.generation(ctx, gctx, gen)
		if err != nil || ctx.Err() != nil {
			// Close the group while this generation is still running, and
			// wait until the group ends it: the group then leaves instead
			// of joining a next generation first.
			closeGroup()
			<-gctx.Done()
		}
		errc <- err
	})
	return <-errc
}
