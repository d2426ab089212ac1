// Package chkafka is the benchmark peer "ClickHouse's own Kafka table
// engine + a materialized view": a Kafka engine table reads the client, CDN
// and origin topics (the canonical JSON that ingest writes) as JSONEachRow,
// a materialized view inserts every message into the same raw events table
// as the chraw peer, and chraw's SQL computes the same metrics.
package chkafka

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/chraw"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/internal/chconn"
)

// Options configures Run. Zero values take the documented defaults.
type Options struct {
	// DSN is a clickhouse-go DSN whose database (created if missing) holds
	// the tables.
	DSN string
	// Brokers is the bootstrap list as the ClickHouse server reaches it
	// (kafka_broker_list).
	Brokers []string
	// Topics are the source topics. When Produce is true they are created
	// (Partitions each) and filled with the events before consuming, and
	// deleted afterwards.
	Topics     events.Topics
	Partitions int  // default 3
	Produce    bool // default false: the topics already hold the events
	// Prefix names the tables (<prefix>_raw, _queue, _mv) and the consumer
	// group. Default "chkafka".
	Prefix string
	// Consumers is kafka_num_consumers (at most the server's cores);
	// default 1.
	Consumers int
	// MaxBlockRows is kafka_max_block_size, the rows per insert into the
	// raw table; default chraw.DefaultBatchRows like the other loaders.
	MaxBlockRows int
	// FlushInterval is kafka_flush_interval_ms: a block is also flushed
	// after this long. Default 1s (the server's default 7.5 s would
	// dominate the tail of a short run).
	FlushInterval time.Duration
	// LowCardinalityQueue keeps the raw table's LowCardinality types in the
	// Kafka engine table too (slower, see queueType); default false.
	LowCardinalityQueue bool
	// Timeout bounds the wait for all events; default 10m.
	Timeout time.Duration
	// GroupingSets, OriginNoDataMinutes, ServerPID, WarmQueries, KeepTables
	// are as in chraw.Options.
	GroupingSets        aggregator.GroupingSets
	OriginNoDataMinutes int
	ServerPID           int
	// BrokerPID, when > 0, is the local Kafka broker's PID: the consume
	// step then also reports the broker's CPU.
	BrokerPID   int
	WarmQueries bool
	KeepTables  bool
}

// identRE bounds the prefix so that <prefix>_queue stays a short identifier.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,40}$`)

// topicRE: Kafka's legal topic characters, and no quote can reach SQL.
var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// hostPortRE: what a broker address may look like (host:port).
var hostPortRE = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$`)

func (o *Options) defaults() {
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.Prefix == "" {
		o.Prefix = "chkafka"
	}
	if o.Consumers <= 0 {
		o.Consumers = 1
	}
	if o.MaxBlockRows <= 0 {
		o.MaxBlockRows = chraw.DefaultBatchRows
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.OriginNoDataMinutes == 0 {
		o.OriginNoDataMinutes = 5
	}
	d := aggregator.DefaultGroupingSets()
	if o.GroupingSets.Client == nil {
		o.GroupingSets.Client = d.Client
	}
	if o.GroupingSets.CDN == nil {
		o.GroupingSets.CDN = d.CDN
	}
	if o.GroupingSets.Origin == nil {
		o.GroupingSets.Origin = d.Origin
	}
}

func (o *Options) validate() error {
	if o.DSN == "" {
		return fmt.Errorf("chkafka: DSN is required")
	}
	if len(o.Brokers) == 0 {
		return fmt.Errorf("chkafka: Brokers is required")
	}
	for _, b := range o.Brokers {
		if !hostPortRE.MatchString(b) {
			return fmt.Errorf("chkafka: broker %q is not host:port", b)
		}
	}
	for _, t := range []string{o.Topics.Client, o.Topics.CDN, o.Topics.Origin} {
		if !topicRE.MatchString(t) {
			return fmt.Errorf("chkafka: topic %q is not a valid topic name", t)
		}
	}
	if !identRE.MatchString(o.Prefix) {
		return fmt.Errorf("chkafka: prefix %q is not a plain identifier", o.Prefix)
	}
	return nil
}

// Result is what Run measured and computed.
type Result struct {
	// Produce is the time to write the events into the topics (when
	// Options.Produce); not part of the peer's cost.
	Produce measure.Step `json:"produce"`
	// Consume runs from the creation of the materialized view (which starts
	// the consumers) until the raw table holds every event. Its server
	// process CPU is the engine's real cost (consumers, parsing, inserts,
	// merges): no query accounts for it.
	Consume measure.Step   `json:"consume"`
	Queries []measure.Step `json:"queries"`
	Query   measure.Step   `json:"query"`
	Rows    []compare.Row  `json:"-"`
}

// queueType is the type of a column in the Kafka engine table. By default
// LowCardinality is left to the raw table (the view converts on insert): the
// engine parses every message into its own small chunk, and squashing many
// chunks of LowCardinality columns costs far more than plain strings.
func queueType(t string, lowCard bool) string {
	if !lowCard && strings.HasPrefix(t, "LowCardinality(") {
		return strings.TrimSuffix(strings.TrimPrefix(t, "LowCardinality("), ")")
	}
	return t
}

// KafkaTableSQL is the DDL of the Kafka engine table: the raw table's
// columns (the types JSONEachRow parses into) and the consumer settings.
func KafkaTableSQL(db string, o Options, group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE `%s`.`%s_queue` (\n", db, o.Prefix)
	for i, c := range chraw.Columns {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "    `%s` %s", c.Name, queueType(c.Type, o.LowCardinalityQueue))
	}
	fmt.Fprintf(&b, "\n) ENGINE = Kafka SETTINGS\n"+
		"    kafka_broker_list = '%s',\n"+
		"    kafka_topic_list = '%s,%s,%s',\n"+
		"    kafka_group_name = '%s',\n"+
		"    kafka_format = 'JSONEachRow',\n"+
		"    kafka_num_consumers = %d,\n"+
		"    kafka_max_block_size = %d,\n"+
		"    kafka_flush_interval_ms = %d,\n"+
		// A message this schema cannot parse must stop the peer, not
		// vanish: qoscope never drops silently either.
		"    kafka_skip_broken_messages = 0,\n"+
		"    input_format_skip_unknown_fields = 1,\n"+
		"    date_time_input_format = 'basic'",
		strings.Join(o.Brokers, ","), o.Topics.Client, o.Topics.CDN, o.Topics.Origin, group,
		o.Consumers, o.MaxBlockRows, o.FlushInterval.Milliseconds())
	return b.String()
}

// Run creates the raw table, the Kafka engine table and the materialized
// view, waits until every event of f is in the raw table, and computes the
// metrics with chraw's SQL.
func Run(ctx context.Context, opts Options, f *events.File) (Result, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	db, err := chconn.Database(opts.DSN)
	if err != nil {
		return Result{}, err
	}
	if err := chraw.CheckIdent("database", db); err != nil {
		return Result{}, err
	}
	conn, err := chraw.OpenCreatingDB(ctx, opts.DSN, db)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()

	var res Result
	topics := []string{opts.Topics.Client, opts.Topics.CDN, opts.Topics.Origin}
	if opts.Produce {
		if err := events.EnsureTopics(ctx, opts.Brokers, opts.Partitions, topics...); err != nil {
			return res, err
		}
		defer func() { _ = events.DeleteTopics(context.WithoutCancel(ctx), opts.Brokers, topics...) }()
		m := measure.Start("produce", 0)
		st, err := events.Produce(ctx, opts.Brokers, opts.Topics, f)
		res.Produce = m.Done()
		res.Produce.Events = int64(st.Records)
		if err != nil {
			return res, err
		}
	}

	tb := &tables{conn: conn, db: db, opts: opts}
	defer tb.drop(ctx)
	if err := tb.create(ctx); err != nil {
		return res, err
	}

	m := measure.StartWithBroker("consume", opts.ServerPID, opts.BrokerPID)
	if err := tb.startView(ctx); err != nil {
		return res, err
	}
	raw := tb.raw()
	n, err := waitRows(ctx, conn, db, raw, uint64(f.Len()), opts.Timeout)
	res.Consume = m.Done()
	res.Consume.Events = int64(n)
	// The only client is this poller, which is not part of the peer.
	res.Consume.ClientCPU = 0
	if err != nil {
		return res, err
	}
	// Stop consuming before measuring queries (same conditions as chraw).
	tb.stopView(ctx)

	rows, steps, err := chraw.RunQueries(ctx, conn, db, raw, opts.GroupingSets, opts.OriginNoDataMinutes, opts.ServerPID, opts.WarmQueries)
	if err != nil {
		return res, err
	}
	res.Rows, res.Queries = rows, steps
	res.Query = chraw.SumSteps("query", steps)
	res.Query.Events = int64(f.Len())
	return res, nil
}

// tables are the peer's raw table, Kafka engine table and materialized
// view in db.
type tables struct {
	conn driver.Conn
	db   string
	opts Options
}

func (t *tables) raw() string { return t.opts.Prefix + "_raw" }

// create drops and creates the raw table and the Kafka engine table with a
// fresh consumer group (so that it starts from the earliest offsets).
func (t *tables) create(ctx context.Context) error {
	t.drop(ctx)
	if err := chraw.CreateTable(ctx, t.conn, t.db, t.raw()); err != nil {
		return err
	}
	group := fmt.Sprintf("%s-%d", t.opts.Prefix, time.Now().UnixNano())
	if err := t.conn.Exec(ctx, KafkaTableSQL(t.db, t.opts, group)); err != nil {
		return fmt.Errorf("cannot create the kafka engine table: %w", err)
	}
	return nil
}

// startView creates the materialized view, which starts the consumers.
func (t *tables) startView(ctx context.Context) error {
	mv := fmt.Sprintf("CREATE MATERIALIZED VIEW `%[1]s`.`%[2]s_mv` TO `%[1]s`.`%[3]s` AS SELECT * FROM `%[1]s`.`%[2]s_queue`", t.db, t.opts.Prefix, t.raw())
	if err := t.conn.Exec(ctx, mv); err != nil {
		return fmt.Errorf("cannot create the materialized view: %w", err)
	}
	return nil
}

// stopView drops the view: the consumers stop.
func (t *tables) stopView(ctx context.Context) {
	_ = t.conn.Exec(context.WithoutCancel(ctx), fmt.Sprintf("DROP VIEW IF EXISTS `%s`.`%s_mv` SYNC", t.db, t.opts.Prefix))
}

func (t *tables) drop(ctx context.Context) {
	c := context.WithoutCancel(ctx)
	// The view first: dropping it stops the consumers.
	t.stopView(c)
	_ = t.conn.Exec(c, fmt.Sprintf("DROP TABLE IF EXISTS `%s`.`%s_queue` SYNC", t.db, t.opts.Prefix))
	if !t.opts.KeepTables {
		_ = t.conn.Exec(c, fmt.Sprintf("DROP TABLE IF EXISTS `%s`.`%s` SYNC", t.db, t.raw()))
	}
}

// waitRows polls the raw table until it holds want rows. It fails when more
// arrive (a duplicate) or the timeout passes, and reports the last
// exception of the Kafka engine (system.kafka_consumers) if it stalls.
func waitRows(ctx context.Context, conn driver.Conn, db, table string, want uint64, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	q := fmt.Sprintf("SELECT count() FROM `%s`.`%s`", db, table)
	var n uint64
	for {
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			return n, fmt.Errorf("cannot count %s.%s: %w", db, table, err)
		}
		switch {
		case n == want:
			return n, nil
		case n > want:
			return n, fmt.Errorf("%s.%s has %d rows, more than the %d events", db, table, n, want)
		case time.Now().After(deadline):
			return n, fmt.Errorf("%s.%s has %d of %d rows after %s%s", db, table, n, want, timeout, consumerErrors(ctx, conn, db))
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// consumerErrors returns the Kafka engine's recorded exceptions, if any.
func consumerErrors(ctx context.Context, conn driver.Conn, db string) string {
	rows, err := conn.Query(ctx, "SELECT table, toString(exceptions.text) FROM system.kafka_consumers WHERE database = ?", db)
	if err != nil {
		return "; system.kafka_consumers: " + err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var t, ex string
		if rows.Scan(&t, &ex) == nil && ex != "[]" {
			fmt.Fprintf(&b, "; %s: %s", t, ex)
		}
	}
	return b.String()
}
