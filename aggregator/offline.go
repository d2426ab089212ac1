package aggregator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/internal/ndjsonfile"
	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// OfflineOptions configures RunOffline (`qoscope aggregate`).
type OfflineOptions struct {
	// Inputs are NDJSON files of client, CDN and origin events (any mix,
	// told apart by "type"), plain or gzip (detected by content); "-" is
	// stdin. Required.
	Inputs []string
	// Stdin is what the input "-" reads. Default os.Stdin; all-in-one's
	// demo history pipes the generator into it.
	Stdin io.Reader
	// Output is the file to write, "-" (the default) for stdout.
	Output string
	// ConfigFile is an optional YAML file with the Config keys at its top
	// level (the library's own format; `qoscope aggregate --input` reads the
	// aggregator section of the configuration file and passes Config).
	ConfigFile string
	// Config, when set, is the windowing configuration and ConfigFile is
	// not read (the backfill takes it from the service config).
	Config *Config
	// Lateness, when set, overrides the configured allowed lateness.
	Lateness *Lateness
	// PartitionPerFile treats every input file as its own partition (with
	// its own watermark), like one Kafka partition per file, and sums the
	// partitions' rows as the queries do; distinct users are then exact only
	// if no user appears in two files. Default false: all inputs, in the
	// given order, are one stream per source.
	PartitionPerFile bool
	// SkipBad skips lines that fail to parse, logging the first ones and
	// counting all; default false: stop at the first bad line.
	SkipBad bool
	// LogOutput receives the log (bad lines, summary). Default: discard.
	LogOutput io.Writer
	// Log configures the log format and level. Default: info, auto.
	Log config.Log
}

func (o *OfflineOptions) validate() error {
	var errs config.Errors
	if len(o.Inputs) == 0 {
		errs.Addf("input: at least one input file is required")
	}
	stdin := 0
	for _, in := range o.Inputs {
		if in == "" {
			errs.Addf("input: empty file name")
		}
		if in == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		errs.Addf("input: stdin (-) given more than once")
	}
	if o.Lateness != nil {
		o.Lateness.validate("lateness", &errs)
	}
	o.Log.Validate("log", &errs)
	return errs.Err()
}

// maxLine bounds one input line; ingest accepts much less per event.
const maxLine = 16 << 20

// maxLoggedBad is how many bad lines are logged one by one in SkipBad mode.
const maxLoggedBad = 10

// OfflineStats summarises an offline run.
type OfflineStats struct {
	Lines, Events, BadLines uint64
	Stats                   Stats
	Rows, LateRows          int
}

// OfflineResult is what AggregateOffline computed: every window of the
// input, closed.
type OfflineResult struct {
	// Rows are the final rows summed over partitions (MergePartitions: zero
	// PartitionID), in output order (CompareRows).
	Rows []Row
	// Late are the late counters summed over partitions (zero PartitionID,
	// zero Version), by window, then source.
	Late  []LateRow
	Stats OfflineStats
}

// RunOffline reads the inputs, aggregates them with the same Partition code
// the Kafka runner uses, closes every window at the end of the input and
// writes one NDJSON row per (window, source, grouping key) to out (or
// opts.Output), sorted as CompareRows says, followed in each window by the
// late rows ({"source":"late","dims":{"source":S},"metrics":{"late_events":N}}).
func RunOffline(ctx context.Context, opts OfflineOptions, stdout io.Writer) error {
	if opts.Output == "" {
		opts.Output = "-"
	}
	res, log, err := aggregateOffline(ctx, &opts)
	if err != nil {
		return err
	}
	w := stdout
	var f *os.File
	if opts.Output != "-" {
		f, err = os.Create(opts.Output)
		if err != nil {
			return fmt.Errorf("cannot create output: %w", err)
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	err = writeRows(bw, res.Rows, res.Late)
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(opts.Output)
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write output: %w", err)
	}
	LogOfflineStats(log, res.Stats)
	return nil
}

// AggregateOffline is RunOffline without the output: the rows and late
// counters it would print (opts.Output is ignored). The backfill into
// ClickHouse (runner.Backfill) writes these, so both outputs of
// `qoscope aggregate --input` hold the same numbers.
func AggregateOffline(ctx context.Context, opts OfflineOptions) (*OfflineResult, error) {
	res, _, err := aggregateOffline(ctx, &opts)
	return res, err
}

// LogOfflineStats writes the summary line of an offline run.
func LogOfflineStats(log zerolog.Logger, st OfflineStats) {
	log.Info().Uint64("lines", st.Lines).Uint64("events", st.Events).Uint64("bad_lines", st.BadLines).
		Uint64("applied", st.Stats.Applied).Uint64("late", st.Stats.Late).Uint64("too_late", st.Stats.TooLate).
		Uint64("rejected", st.Stats.Rejected).Uint64("duplicate", st.Stats.Duplicate).Int("rows", st.Rows).Int("late_rows", st.LateRows).
		Msg("aggregated")
}

// OfflineLogger is the logger of an offline run: opts.LogOutput (default
// discard) in opts.Log's format and level.
func OfflineLogger(opts *OfflineOptions) zerolog.Logger {
	logOut := opts.LogOutput
	if logOut == nil {
		logOut = io.Discard
	}
	l := opts.Log
	if l.Level == "" {
		l = config.DefaultLog()
	}
	return logging.New(logOut, l).With().Str("component", "aggregate").Logger()
}

func aggregateOffline(ctx context.Context, opts *OfflineOptions) (*OfflineResult, zerolog.Logger, error) {
	if opts.Log.Level == "" {
		opts.Log = config.DefaultLog()
	}
	if err := opts.validate(); err != nil {
		return nil, zerolog.Nop(), fmt.Errorf("invalid options: %w", err)
	}
	log := OfflineLogger(opts)

	var cfg Config
	if opts.Config != nil {
		cfg = *opts.Config
	} else {
		var err error
		if cfg, err = LoadConfig(opts.ConfigFile); err != nil {
			return nil, log, err
		}
	}
	if opts.Lateness != nil {
		cfg.Lateness = *opts.Lateness
	}
	// Offline, memory is not the constraint and every late event must
	// show up in the output: keep every late counter.
	cfg.LateHorizon = time.Duration(math.MaxInt64)
	plan, err := NewPlan(cfg)
	if err != nil {
		return nil, log, fmt.Errorf("invalid config: %w", err)
	}

	o := &offline{plan: plan, opts: opts, log: log, parts: map[PartitionID]*Partition{},
		next: map[*Partition]int64{}, batches: map[*Partition]*batch{}, late: map[lateOut]uint64{}, maxTS: math.MinInt64}
	for i, in := range opts.Inputs {
		if err := o.readFile(ctx, i, in); err != nil {
			return nil, log, err
		}
	}
	res := &OfflineResult{Rows: o.finish(), Late: o.lateRows()}
	sortLate(res.Late)
	res.Stats = o.stats
	res.Stats.Rows = len(res.Rows)
	res.Stats.LateRows = len(res.Late)
	return res, log, nil
}

type lateOut struct {
	start int64
	src   schemas.Source
	part  PartitionID
}

type offline struct {
	plan    *Plan
	opts    *OfflineOptions
	log     zerolog.Logger
	parts   map[PartitionID]*Partition
	order   []*Partition
	next    map[*Partition]int64 // next offset per partition
	batches map[*Partition]*batch
	rows    []Row
	late    map[lateOut]uint64 // cumulative count per partition, latest wins
	maxTS   int64              // newest event time of all inputs
	stats   OfflineStats
}

func (o *offline) partition(file int, src schemas.Source) *Partition {
	id := PartitionID{Topic: src.String()}
	if o.opts.PartitionPerFile {
		id.Partition = int32(file)
	}
	p := o.parts[id]
	if p == nil {
		p = NewPartition(o.plan, id, src)
		o.parts[id] = p
		o.order = append(o.order, p)
		o.batches[p] = &batch{}
	}
	return p
}

func (o *offline) readFile(ctx context.Context, idx int, name string) error {
	stdin := o.opts.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	br, closeIn, err := ndjsonfile.Open(name, stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine)
	var e schemas.Event
	var lineNo uint64
	for sc.Scan() {
		lineNo++
		o.stats.Lines++
		if lineNo&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines (a trailing newline) are not events
		}
		if err := schemas.ParseLine(line, &e); err != nil {
			o.stats.BadLines++
			if !o.opts.SkipBad {
				return fmt.Errorf("%s:%d: %w", name, lineNo, err)
			}
			if o.stats.BadLines <= maxLoggedBad {
				ev := o.log.Warn().Str("file", name).Uint64("line", lineNo)
				var fe *schemas.FieldError
				if errors.As(err, &fe) {
					ev = ev.Str("field", fe.Field).Str("reason", fe.Reason)
				} else {
					ev = ev.Err(err)
				}
				ev.Msg("skipped bad line")
				if o.stats.BadLines == maxLoggedBad {
					o.log.Warn().Msg("further bad lines are counted, not logged")
				}
			}
			continue
		}
		o.stats.Events++
		o.maxTS = max(o.maxTS, e.TS)
		p := o.partition(idx, e.Type.Source())
		off := o.next[p]
		o.next[p] = off + 1
		b := o.batches[p]
		b.offsets = append(b.offsets, off)
		b.events = append(b.events, e)
		b.events[len(b.events)-1].Extra = nil // e reuses its capacity
		if len(b.events) == offlineBatch {
			o.flush(p)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, lineNo+1, err)
	}
	for _, p := range o.order {
		o.flush(p)
	}
	return nil
}

// offlineBatch is how many events of a partition are applied together
// (Partition.AddBatch; the Kafka runner's default chunk).
const offlineBatch = 512

// batch holds a partition's events not applied yet.
type batch struct {
	offsets []int64
	events  []schemas.Event
	res     []Result
}

// flush applies p's pending events and drains the windows they closed.
// Draining after a batch rather than after each event gives the same rows:
// a closed window takes no more events.
func (o *offline) flush(p *Partition) {
	b := o.batches[p]
	if len(b.events) == 0 {
		return
	}
	b.res = slices.Grow(b.res[:0], len(b.events))[:len(b.events)]
	p.AddBatch(b.offsets, b.events, b.res)
	clear(b.events) // do not keep the events' strings alive
	b.offsets, b.events = b.offsets[:0], b.events[:0]
	if p.Pending() {
		o.drain(p)
	}
}

func (o *offline) drain(p *Partition) {
	b := p.Drain()
	o.rows = append(o.rows, b.Final...)
	for _, l := range b.Late {
		o.late[lateOut{l.WindowStart, l.Source, l.Partition}] = l.Count
	}
}

// finish closes every window and returns the rows, summed over partitions.
// The end of the input is the newest event time of all inputs for every
// partition: a partition whose events stopped earlier (a silent origin) still
// gets its windows, and no_data rows, up to there.
func (o *offline) finish() []Row {
	for _, p := range o.order {
		p.Advance(o.maxTS)
	}
	for _, p := range o.order {
		p.CloseAll()
		o.drain(p)
		s := p.Stats()
		o.stats.Stats.Applied += s.Applied
		o.stats.Stats.Late += s.Late
		o.stats.Stats.TooLate += s.TooLate
		o.stats.Stats.Replayed += s.Replayed
		o.stats.Stats.Rejected += s.Rejected
		o.stats.Stats.Duplicate += s.Duplicate
	}
	return MergePartitions(o.rows)
}

// lateRows sums the late counters over partitions.
func (o *offline) lateRows() []LateRow {
	sum := map[lateOut]uint64{}
	for k, n := range o.late {
		k.part = PartitionID{}
		sum[k] += n
	}
	out := make([]LateRow, 0, len(sum))
	for k, n := range sum {
		out = append(out, LateRow{WindowStart: k.start, Source: k.src, Count: n})
	}
	return out
}

// writeRows renders rows and late rows as NDJSON in output order: per
// window, the client, cdn and origin rows, then the late rows by source.
func writeRows(w *bufio.Writer, rows []Row, late []LateRow) error {
	sortLate(late)
	var buf []byte
	var ms []Metric
	li := 0
	flushLate := func(before int64) error {
		for ; li < len(late) && late[li].WindowStart < before; li++ {
			l := &late[li]
			buf = appendHead(buf[:0], l.WindowStart, "late")
			buf = append(buf, `,"dims":{"source":`...)
			buf = strconv.AppendQuote(buf, l.Source.String())
			buf = append(buf, `},"metrics":{"late_events":`...)
			buf = strconv.AppendUint(buf, l.Count, 10)
			buf = append(buf, "}}\n"...)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range rows {
		r := &rows[i]
		if err := flushLate(r.WindowStart); err != nil {
			return err
		}
		buf = appendHead(buf[:0], r.WindowStart, r.Source.String())
		buf = append(buf, `,"dims":{`...)
		for j, d := range r.Dims {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, d.Name)
			buf = append(buf, ':')
			buf = appendJSONString(buf, d.Value)
		}
		buf = append(buf, `},"metrics":{`...)
		ms = r.Metrics(ms[:0])
		for j, m := range ms {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = append(buf, m.Name...)
			buf = append(buf, `":`...)
			buf = appendMetric(buf, m)
		}
		buf = append(buf, "}}\n"...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return flushLate(math.MaxInt64)
}

func sortLate(late []LateRow) {
	slices.SortFunc(late, func(a, b LateRow) int {
		if c := compareInt(a.WindowStart, b.WindowStart); c != 0 {
			return c
		}
		return compareInt(int64(route.Index(a.Source)), int64(route.Index(b.Source)))
	})
}

func appendHead(b []byte, ws int64, source string) []byte {
	b = append(b, `{"window_start":"`...)
	b = time.UnixMilli(ws).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","source":"`...)
	b = append(b, source...)
	return append(b, '"')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // cannot fail for a string
	return append(b, q...)
}

// appendMetric renders integers without exponent or fraction and other
// numbers in the shortest form that parses back to the same float64.
func appendMetric(b []byte, m Metric) []byte {
	switch {
	case !m.Valid:
		return append(b, "null"...)
	case m.Bool:
		return strconv.AppendBool(b, m.Value != 0)
	case m.Value == math.Trunc(m.Value) && math.Abs(m.Value) < 1e15:
		return strconv.AppendFloat(b, m.Value, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, m.Value, 'g', -1, 64)
}
