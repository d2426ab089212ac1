package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/retry"
	"github.com/qoscope/qoscope/schemas"
)

// Backfill (`qoscope aggregate --input FILE... --output clickhouse`) writes
// the offline mode's rows into the tables the streaming runner writes. See
// ../README.md, "Backfill into ClickHouse", for the row identity, the
// versions and what --replace does.

// BackfillTopicPrefix starts the topic column of every backfill row:
// "backfill:client", "backfill:cdn", "backfill:origin". A Kafka topic name
// cannot contain ':' (only [a-zA-Z0-9._-]), so backfill rows never share a
// key with, replace or get replaced by rows of the streaming runner.
const BackfillTopicPrefix = "backfill:"

// BackfillTopic is the topic column of source's backfill rows; their
// kafka_partition is always 0 (the offline rows are summed over the
// input's partitions before they are written).
func BackfillTopic(src schemas.Source) string { return BackfillTopicPrefix + src.String() }

// backfillSources are the sources in output order (client, cdn, origin).
var backfillSources = []schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin}

// BackfillOptions are the inputs of Backfill.
type BackfillOptions struct {
	// Offline selects and reads the input exactly as the offline mode does
	// (Inputs, Lateness, PartitionPerFile, SkipBad, LogOutput, Log). Its
	// Output and ConfigFile are not used: the windowing keys come from the
	// service configuration below.
	Offline aggregator.OfflineOptions
	// Config is the service configuration of `qoscope aggregate`
	// (clickhouse, insert, rollups and the windowing keys), as
	// internal/appconfig's LoadBackfill reads it. Required.
	Config *Config
	// Replace allows writing minutes for which rows of the streaming
	// aggregator exist: those rows are deleted once the backfill's rows are
	// written, and their rollups recomputed. Without it such minutes make
	// Backfill fail before writing anything (*OwnedMinutesError).
	Replace bool
	// HTTPClient posts arrow_http inserts; nil: a default client.
	HTTPClient *http.Client
}

// BackfillReport says what Backfill wrote.
type BackfillReport struct {
	// Version is the ReplacingMergeTree version of every row written.
	Version uint64
	// Rows and LateRows are the minute rows and late_events rows written.
	Rows, LateRows int
	// Minutes counts the minutes written per source.
	Minutes map[schemas.Source]int
	// Replaced counts, per source, the minutes whose streaming rows were
	// deleted (Replace).
	Replaced map[schemas.Source]int
	// Stale counts, per table, the earlier backfill rows of the same
	// minutes whose key the input no longer has (deleted).
	Stale map[string]uint64
	// Stats are the offline run's counts.
	Stats aggregator.OfflineStats
}

// OwnedMinutesError is the refusal to write minutes that the streaming
// aggregator owns.
type OwnedMinutesError struct {
	// Minutes are the owned minutes (Unix seconds, ascending) per source.
	Minutes map[schemas.Source][]int64
	// Topics are the Kafka topics whose rows were found, per source.
	Topics map[schemas.Source][]string
}

func (e *OwnedMinutesError) Error() string {
	var b strings.Builder
	b.WriteString("refusing to backfill minutes that the streaming aggregator owns (rows of Kafka topics exist for them): ")
	for i, src := range sourcesOf(e.Minutes) {
		if i > 0 {
			b.WriteString("; ")
		}
		ms := e.Minutes[src]
		unit := "minutes"
		if len(ms) == 1 {
			unit = "minute"
		}
		fmt.Fprintf(&b, "%s %s (%d %s, topics %s)", src, describeMinutes(ms), len(ms), unit, strings.Join(e.Topics[src], ", "))
	}
	b.WriteString("; nothing was written; re-run with --replace to replace the streaming rows of those minutes with the backfill's")
	return b.String()
}

// describeMinutes names runs of consecutive minutes, the first few of them.
func describeMinutes(ms []int64) string {
	const shown = 5
	ss := spansOf(ms, 60)
	parts := make([]string, 0, min(len(ss), shown)+1)
	for i, s := range ss {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more runs", len(ss)-shown))
			break
		}
		first := time.Unix(s.from, 0).UTC().Format(time.RFC3339)
		if s.to-s.from == 60 {
			parts = append(parts, first)
		} else {
			parts = append(parts, first+".."+time.Unix(s.to-60, 0).UTC().Format(time.RFC3339))
		}
	}
	return strings.Join(parts, ", ")
}

// ErrNoClickHouse is returned when neither the config file nor the
// environment names a ClickHouse: a backfill must never write to a
// database by default.
var ErrNoClickHouse = errors.New("--output clickhouse needs ClickHouse settings: set clickhouse.dsn " +
	"(clickhouse://host:9000/DATABASE) in the --config file or QOSCOPE_CLICKHOUSE_DSN, and for insert.mode arrow_http " +
	"(the default) clickhouse.http or QOSCOPE_CLICKHOUSE_HTTP if the HTTP interface is not on the DSN's host at port 8123")

// Backfill aggregates the input files as the offline mode does (all
// inputs one stream per source, or one partition per file; every window
// final at the end of the input, late events counted, origin no_data rows)
// and writes the rows, late counters and hour/day rollups to ClickHouse
// with the runner's inserter. Running it again on the same input leaves
// the same rows.
func Backfill(ctx context.Context, opts BackfillOptions) (*BackfillReport, error) {
	var cfg Config
	if opts.Config != nil {
		cfg = *opts.Config
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("invalid config: %w", err)
		}
	} else {
		// The configuration is loaded by the caller (internal/appconfig:
		// LoadBackfill), which knows the file layout.
		return nil, ErrNoClickHouse
	}
	log := aggregator.OfflineLogger(&opts.Offline).With().Str("output", "clickhouse").Logger()

	ch, err := openClickHouse(ctx, &cfg, opts.HTTPClient, cfg.Rollups)
	if err != nil {
		return nil, err
	}
	defer ch.conn.Close()

	off := opts.Offline
	off.Config = &cfg.Aggregator
	res, err := aggregator.AggregateOffline(ctx, off)
	if err != nil {
		return nil, err
	}
	aggregator.LogOfflineStats(log, res.Stats)

	b := &backfill{cfg: &cfg, ch: ch, log: log, replace: opts.Replace}
	rep, err := b.run(ctx, res)
	if err != nil {
		return nil, err
	}
	ev := log.Info().Uint64("version", rep.Version).Int("rows", rep.Rows).Int("late_rows", rep.LateRows)
	for _, src := range backfillSources {
		if n := rep.Minutes[src]; n > 0 {
			ev = ev.Int(src.String()+"_minutes", n)
		}
		if n := rep.Replaced[src]; n > 0 {
			ev = ev.Int(src.String()+"_minutes_replaced", n)
		}
	}
	ev.Msg("backfilled into clickhouse")
	return rep, nil
}

type backfill struct {
	cfg     *Config
	ch      *clickHouse
	log     zerolog.Logger
	replace bool
}

// srcWork is what a backfill touches of one source.
type srcWork struct {
	src     schemas.Source
	spec    *tableSpec
	topic   string
	minutes []int64 // Unix s, ascending: windows of its rows and late rows
	hours   []int64 // hours of its minute rows
	// owned are the minutes with streaming rows (minute or late table);
	// parts their streaming topics' partitions per hour, for the rollups.
	owned       []int64
	ownedTopics []string
	parts       map[string]map[int64][]int32 // topic -> hour -> partitions
	staleRows   uint64                       // earlier backfill rows without a key in this input
	staleLate   uint64
}

func (b *backfill) run(ctx context.Context, res *aggregator.OfflineResult) (*BackfillReport, error) {
	works := map[schemas.Source]*srcWork{}
	work := func(src schemas.Source) *srcWork {
		w := works[src]
		if w == nil {
			w = &srcWork{src: src, spec: specFor(src), topic: BackfillTopic(src), parts: map[string]map[int64][]int32{}}
			works[src] = w
		}
		return w
	}
	for i := range res.Rows {
		r := &res.Rows[i]
		w := work(r.Source)
		w.minutes = append(w.minutes, r.WindowStart/1000)
		w.hours = append(w.hours, r.WindowStart/1000/3600*3600)
	}
	for i := range res.Late {
		w := work(res.Late[i].Source)
		w.minutes = append(w.minutes, res.Late[i].WindowStart/1000)
	}
	var list []*srcWork
	for _, src := range backfillSources {
		if w := works[src]; w != nil {
			w.minutes = sortedUnique(w.minutes)
			w.hours = sortedUnique(w.hours)
			list = append(list, w)
		}
	}
	rep := &BackfillReport{Rows: len(res.Rows), LateRows: len(res.Late), Stats: res.Stats,
		Minutes: map[schemas.Source]int{}, Replaced: map[schemas.Source]int{}, Stale: map[string]uint64{}}
	if len(list) == 0 {
		b.log.Warn().Msg("the input holds no events: nothing to write")
		return rep, nil
	}

	// Ownership first: a refusal writes nothing.
	owned := &OwnedMinutesError{Minutes: map[schemas.Source][]int64{}, Topics: map[schemas.Source][]string{}}
	for _, w := range list {
		if err := b.findOwned(ctx, w); err != nil {
			return nil, err
		}
		if len(w.owned) > 0 {
			owned.Minutes[w.src], owned.Topics[w.src] = w.owned, w.ownedTopics
		}
		rep.Minutes[w.src] = len(w.minutes)
	}
	if len(owned.Minutes) > 0 && !b.replace {
		return nil, owned
	}

	version, err := b.version(ctx, list)
	if err != nil {
		return nil, err
	}
	rep.Version = version
	for i := range res.Rows {
		r := &res.Rows[i]
		r.Partition = aggregator.PartitionID{Topic: BackfillTopic(r.Source)}
		r.Version, r.Final = version, true
	}
	for i := range res.Late {
		l := &res.Late[i]
		l.Partition = aggregator.PartitionID{Topic: BackfillTopic(l.Source)}
		l.Version = version
	}

	// Rows first: nothing is deleted before its replacement is acknowledged.
	recs := BuildRecords(memory.NewGoAllocator(), res.Rows, res.Late, b.cfg.Insert.MaxRows)
	defer func() {
		for _, tr := range recs {
			tr.Record.Release()
		}
	}()
	for _, tr := range recs {
		if err := b.do(ctx, tr.Table(), func(ctx context.Context) error { return b.ch.ins.Insert(ctx, tr) }); err != nil {
			return nil, err
		}
	}

	for _, w := range list {
		if err := b.cleanup(ctx, w, version); err != nil {
			return nil, err
		}
		if w.staleRows > 0 {
			rep.Stale[w.spec.name] = w.staleRows
		}
		if w.staleLate > 0 {
			rep.Stale[tableLate] += w.staleLate
		}
		if b.replace {
			rep.Replaced[w.src] = len(w.owned)
		}
		if b.cfg.Rollups && len(w.hours) > 0 {
			if err := b.rollups(ctx, w); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

// streamingSQL selects rows not written by a backfill.
const streamingSQL = "NOT startsWith(topic, '" + BackfillTopicPrefix + "')"

func (b *backfill) table(name string) string { return quoteIdent(b.ch.db) + "." + quoteIdent(name) }

// findOwned reads which of w's minutes hold streaming rows, in its minute
// table or in late_events.
func (b *backfill) findOwned(ctx context.Context, w *srcWork) error {
	in := spanSQL("window_start", spansOf(w.minutes, 60))
	q := "SELECT toUnixTimestamp(window_start), topic, kafka_partition FROM " + b.table(w.spec.name) +
		" WHERE " + in + " AND " + streamingSQL + " GROUP BY window_start, topic, kafka_partition" +
		" UNION ALL SELECT toUnixTimestamp(window_start), topic, toUInt32(4294967295) FROM " + b.table(tableLate) +
		" WHERE source = ? AND " + in + " AND " + streamingSQL + " GROUP BY window_start, topic"
	return b.do(ctx, "find streaming minutes", func(ctx context.Context) error {
		rows, err := b.ch.conn.Query(ctx, q, w.src.String())
		if err != nil {
			return err
		}
		defer rows.Close()
		var minutes []int64
		var topics []string
		w.parts = map[string]map[int64][]int32{}
		for rows.Next() {
			var (
				ws    uint32
				topic string
				part  uint32
			)
			if err := rows.Scan(&ws, &topic, &part); err != nil {
				return err
			}
			minutes = append(minutes, int64(ws))
			if !slices.Contains(topics, topic) {
				topics = append(topics, topic)
			}
			if part == 4294967295 { // late_events: no rollup
				continue
			}
			h := int64(ws) / 3600 * 3600
			if w.parts[topic] == nil {
				w.parts[topic] = map[int64][]int32{}
			}
			if !slices.Contains(w.parts[topic][h], int32(part)) {
				w.parts[topic][h] = append(w.parts[topic][h], int32(part))
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		slices.Sort(topics)
		w.owned, w.ownedTopics = sortedUnique(minutes), topics
		return nil
	})
}

// version is the version of this run's rows: above every backfill row
// already stored for these minutes, so a re-run replaces the previous
// run's rows (also when the file changed: ReplacingMergeTree keeps the
// highest version, equal versions the last inserted), and at least the
// wall clock's milliseconds so that runs on disjoint minutes are ordered
// too. Final rows carry an odd version, as in the runner.
func (b *backfill) version(ctx context.Context, list []*srcWork) (uint64, error) {
	v := uint64(time.Now().UnixMilli())<<1 | 1
	for _, w := range list {
		in := spanSQL("window_start", spansOf(w.minutes, 60))
		for _, t := range []string{w.spec.name, tableLate} {
			q := "SELECT max(version) FROM " + b.table(t) + " WHERE topic = ? AND " + in
			var got uint64
			err := b.do(ctx, "read versions", func(ctx context.Context) error {
				return b.ch.conn.QueryRow(ctx, q, w.topic).Scan(&got)
			})
			if err != nil {
				return 0, err
			}
			if got >= v {
				v = (got + 2) | 1
			}
		}
	}
	return v, nil
}

// cleanup deletes, once this run's rows are stored, (a) earlier backfill
// rows of these minutes whose key this input no longer has (the run's own
// rows replaced every other key), and (b) with --replace, the streaming
// rows of the owned minutes. One lightweight DELETE per table and run at
// most, and none when there is nothing to delete (a plain re-run).
func (b *backfill) cleanup(ctx context.Context, w *srcWork, version uint64) error {
	in := spanSQL("window_start", spansOf(w.minutes, 60))
	staleWhere := in + " AND topic = ? AND version < " + strconv.FormatUint(version, 10)
	count := func(table, extra string, args ...any) (uint64, error) {
		var n uint64
		q := "SELECT count() FROM " + b.table(table) + " FINAL WHERE " + staleWhere + extra
		err := b.do(ctx, "find stale rows", func(ctx context.Context) error {
			return b.ch.conn.QueryRow(ctx, q, args...).Scan(&n)
		})
		return n, err
	}
	var err error
	if w.staleRows, err = count(w.spec.name, "", w.topic); err != nil {
		return err
	}
	if w.staleLate, err = count(tableLate, "", w.topic); err != nil {
		return err
	}
	var ownedWhere string
	if b.replace && len(w.owned) > 0 {
		ownedWhere = spanSQL("window_start", spansOf(w.owned, 60)) + " AND " + streamingSQL
	}
	del := func(table string, stale uint64, ownedExtra string, ownedArgs ...any) error {
		var conds []string
		var args []any
		if stale > 0 {
			conds, args = append(conds, "("+staleWhere+")"), append(args, w.topic)
		}
		if ownedWhere != "" {
			conds, args = append(conds, "("+ownedWhere+ownedExtra+")"), append(args, ownedArgs...)
		}
		if len(conds) == 0 {
			return nil
		}
		target, err := b.deleteTarget(table)
		if err != nil {
			return err
		}
		q := "DELETE FROM " + target + " WHERE " + strings.Join(conds, " OR ")
		return b.do(ctx, "delete from "+table, func(ctx context.Context) error { return b.ch.conn.Exec(ctx, q, args...) })
	}
	if err := del(w.spec.name, w.staleRows, ""); err != nil {
		return err
	}
	return del(tableLate, w.staleLate, " AND source = ?", w.src.String())
}

// deleteTarget is the table a DELETE names: on a cluster the Distributed
// table cannot be deleted from, its shards' local tables can.
func (b *backfill) deleteTarget(table string) (string, error) {
	if b.ch.cluster == "" {
		return b.table(table), nil
	}
	if !identRe.MatchString(b.ch.cluster) {
		return "", fmt.Errorf("clickhouse.cluster %q: only letters, digits and _ are supported for backfill deletes", b.ch.cluster)
	}
	return b.table(table+"_local") + " ON CLUSTER " + quoteIdent(b.ch.cluster), nil
}

// rollups recomputes the hour and day rows of the hours w wrote, with the
// runner's statements: the backfill topic's (partition 0), and, when rows
// were deleted, those of every topic that lost rows, whose rollup rows of
// those hours and days older than the recomputation are then deleted (a
// key whose minutes are all gone gets no new row to replace its old one).
func (b *backfill) rollups(ctx context.Context, w *srcWork) error {
	type job struct {
		topic string
		parts []int32
	}
	deleted := w.staleRows > 0 || (b.replace && len(w.owned) > 0)
	for _, period := range []string{"hour", "day"} {
		step := int64(3600)
		if period == "day" {
			step = 86400
		}
		starts := map[int64][]job{}
		for _, h := range w.hours {
			p := h / step * step
			if !slices.ContainsFunc(starts[p], func(j job) bool { return j.topic == w.topic }) {
				starts[p] = append(starts[p], job{w.topic, []int32{0}})
			}
		}
		var topics []string
		if deleted {
			topics = append(topics, w.topic)
		}
		if b.replace {
			for topic, hours := range w.parts {
				topics = append(topics, topic)
				for h, parts := range hours {
					p := h / step * step
					i := slices.IndexFunc(starts[p], func(j job) bool { return j.topic == topic })
					if i < 0 {
						starts[p] = append(starts[p], job{topic: topic})
						i = len(starts[p]) - 1
					}
					for _, part := range parts {
						if !slices.Contains(starts[p][i].parts, part) {
							starts[p][i].parts = append(starts[p][i].parts, part)
						}
					}
				}
			}
		}
		// Every period recomputed is recomputed for the backfill topic too:
		// the stale-row delete below covers the backfill topic's rows of
		// all these periods.
		for p := range starts {
			if !slices.ContainsFunc(starts[p], func(j job) bool { return j.topic == w.topic }) {
				starts[p] = append(starts[p], job{w.topic, []int32{0}})
			}
		}
		var since int64
		if deleted {
			err := b.do(ctx, "read server time", func(ctx context.Context) error {
				return b.ch.conn.QueryRow(ctx, "SELECT toUnixTimestamp64Milli(now64(3))").Scan(&since)
			})
			if err != nil {
				return err
			}
		}
		periods := make([]int64, 0, len(starts))
		for p := range starts {
			periods = append(periods, p)
		}
		slices.Sort(periods)
		for _, p := range periods {
			for _, j := range starts[p] {
				slices.Sort(j.parts)
				sql := rollupSQL(b.ch.db, w.spec, period, p, j.parts)
				if err := b.do(ctx, "rollup "+period, func(ctx context.Context) error { return b.ch.conn.Exec(ctx, sql, j.topic) }); err != nil {
					return err
				}
			}
		}
		if !deleted {
			continue
		}
		slices.Sort(topics)
		target, err := b.deleteTarget(strings.TrimSuffix(w.spec.name, "_minute") + "_" + period)
		if err != nil {
			return err
		}
		q := "DELETE FROM " + target + " WHERE " + spanSQL("window_start", spansOf(periods, step)) +
			" AND has(?, topic) AND written_at < fromUnixTimestamp64Milli(toInt64(" + strconv.FormatInt(since, 10) + "), 'UTC')"
		if err := b.do(ctx, "delete stale "+period+" rollups", func(ctx context.Context) error { return b.ch.conn.Exec(ctx, q, topics) }); err != nil {
			return err
		}
	}
	return nil
}

// backfillAttempts bounds the tries of one statement; a failed backfill
// is re-run as a whole (it is idempotent).
const backfillAttempts = 5

// do runs op, retrying retryable failures with the insert backoff. A
// request in flight is bounded by insert.timeout, never cancelled (see
// flusher.retry).
func (b *backfill) do(ctx context.Context, stage string, op func(context.Context) error) error {
	backoff := retry.Backoff{Min: b.cfg.Insert.RetryMin, Max: b.cfg.Insert.RetryMax}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Insert.Timeout)
		err := op(octx)
		cancel()
		if err == nil {
			return nil
		}
		if Classify(err) != Retry || attempt == backfillAttempts {
			return fmt.Errorf("cannot %s: %w", stage, err)
		}
		b.log.Warn().Err(err).Str("stage", stage).Int("attempt", attempt).Msg("clickhouse statement failed; retrying")
		if !retry.Sleep(ctx, backoff.Base(attempt)) {
			return errors.Join(ctx.Err(), err)
		}
	}
}

// span is [from, to) in Unix seconds.
type span struct{ from, to int64 }

// spansOf merges sorted, distinct period starts of length step into runs.
func spansOf(starts []int64, step int64) []span {
	var out []span
	for _, s := range starts {
		if n := len(out); n > 0 && out[n-1].to == s {
			out[n-1].to = s + step
			continue
		}
		out = append(out, span{s, s + step})
	}
	return out
}

// spanSQL is a condition on col (a DateTime) for the spans; integers only.
func spanSQL(col string, ss []span) string {
	if len(ss) == 0 {
		return "0"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = col + " >= toDateTime(" + strconv.FormatInt(s.from, 10) + ", 'UTC') AND " +
			col + " < toDateTime(" + strconv.FormatInt(s.to, 10) + ", 'UTC')"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

func sortedUnique(v []int64) []int64 {
	slices.Sort(v)
	return slices.Compact(v)
}

func sourcesOf(m map[schemas.Source][]int64) []schemas.Source {
	var out []schemas.Source
	for _, s := range backfillSources {
		if _, ok := m[s]; ok {
			out = append(out, s)
		}
	}
	return out
}
