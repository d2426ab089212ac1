package harness

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/chkafka"
	"github.com/qoscope/qoscope/bench/peers/chraw"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/kstreams"
	"github.com/qoscope/qoscope/bench/peers/measure"
)

// peerDatabase is the ClickHouse database of the SQL peers' tables.
const peerDatabase = "qoscope_bench"

// ignoredSources: gen files have no late events, and the peers without a
// watermark have no late rows; qoscope's late rows (if any) are counted
// apart (OfflineResult.LateRows).
var ignoredSources = []string{"late"}

// withDatabase returns dsn naming database db instead of its own.
func withDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// The DSN may hold a password: do not echo it.
		return "", fmt.Errorf("cannot parse the clickhouse dsn")
	}
	u.Path = "/" + db
	return u.String(), nil
}

// runOffline aggregates the file with qoscope's offline mode (the same
// code as the streaming aggregator) and reads its rows: the reference
// every peer is compared with.
func runOffline(ctx context.Context, ds *Dataset, dir string) (*OfflineResult, error) {
	out := filepath.Join(dir, "qoscope.rows.ndjson")
	m := measure.Start("qoscope_offline", 0)
	err := aggregator.RunOffline(ctx, aggregator.OfflineOptions{Inputs: []string{ds.path}, Output: out}, io.Discard)
	st := m.Done()
	if err != nil {
		return nil, fmt.Errorf("qoscope aggregate: %w", err)
	}
	st.Events = int64(ds.Events)
	st.Note = "parse (schemas.ParseLine) + aggregate + write rows, one goroutine; CPU of this process (getrusage)"
	rows, err := compare.ReadFile(out)
	if err != nil {
		return nil, err
	}
	res := &OfflineResult{Step: stepOf(st), Rows: len(rows), rows: rows, path: out}
	if fi, err := os.Stat(out); err == nil {
		res.OutputSize = fi.Size()
	}
	for _, r := range rows {
		if r.Source == "late" {
			res.LateRows++
		}
	}
	return res, nil
}

// check compares a peer's rows with qoscope's and flags the peer when they
// differ (or cannot be compared).
func (p *PeerResult) check(ref *OfflineResult, rows []compare.Row) {
	if ref == nil {
		p.Flagged = true
		p.Notes = append(p.Notes, "not checked: qoscope's offline rows are missing")
		return
	}
	rep := compare.Compare(ref.rows, rows, compare.Options{IgnoreSources: ignoredSources})
	p.Agreement = agreementOf(rep, ignoredSources)
	if !rep.OK() {
		p.Flagged = true
		p.Notes = append(p.Notes, fmt.Sprintf("disagrees with qoscope: %d differences; its speed is not comparable", len(rep.Diffs)))
	}
}

// sumCost adds steps up into one cost over events. Unlike
// chraw.SumSteps, a CPU one step did not measure counts as 0 when another
// step measured it (the queries do not touch the broker the consume step
// measured); it stays Unknown only when no step measured it.
func sumCost(name string, events int, steps ...measure.Step) Step {
	s := measure.Step{Name: name, Events: int64(events), ServerCPU: measure.Unknown,
		ServerProcCPU: measure.Unknown, BrokerProcCPU: measure.Unknown}
	add := func(sum *time.Duration, v time.Duration) {
		if v == measure.Unknown {
			return
		}
		if *sum == measure.Unknown {
			*sum = 0
		}
		*sum += v
	}
	var from []string
	for _, x := range steps {
		s.Wall += x.Wall
		s.ClientCPU += x.ClientCPU
		add(&s.ServerCPU, x.ServerCPU)
		add(&s.ServerProcCPU, x.ServerProcCPU)
		add(&s.BrokerProcCPU, x.BrokerProcCPU)
		if x.ServerCPUFrom != "" && !slices.Contains(from, x.ServerCPUFrom) {
			from = append(from, x.ServerCPUFrom)
		}
	}
	s.ServerCPUFrom = strings.Join(from, "+")
	return stepOf(s)
}

// runCHRaw is the peer "raw events into a ClickHouse MergeTree, metrics by
// SQL" with one loader.
func runCHRaw(ctx context.Context, o *Options, ds *Dataset, ref *OfflineResult, loader string) *PeerResult {
	p := &PeerResult{Name: "chraw-" + loader}
	switch loader {
	case chraw.LoaderNative:
		p.Description = "raw events → ClickHouse MergeTree by native batch insert (clickhouse-go, typed columns; client parses the JSON), one-minute metrics by SQL (GROUPING SETS)"
	default:
		p.Description = "raw events → ClickHouse MergeTree as JSONEachRow over HTTP (server parses the JSON), one-minute metrics by SQL (GROUPING SETS)"
	}
	dsn, err := withDatabase(o.ClickHouseDSN, peerDatabase)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	res, err := chraw.Run(ctx, chraw.Options{DSN: dsn, HTTPURL: o.ClickHouseHTTP, Loader: loader,
		Table: "raw_" + loader, ServerPID: o.ClickHousePID, WarmQueries: true}, ds.file)
	p.Steps = append(p.Steps, stepOf(res.Load))
	for _, q := range res.Queries {
		p.Steps = append(p.Steps, stepOf(q))
	}
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.Cost = sumCost("load+queries", ds.Events, res.Load, res.Query)
	q := sumCost("queries", ds.Events, res.Query)
	p.Query = &q
	p.check(ref, res.Rows)
	return p
}

// peerTopics are the topics the Kafka peers read, produced once.
type peerTopics struct {
	topics  events.Topics
	produce Step
}

// producePeerTopics creates the three topics and writes the file into them
// as ingest would (keys, murmur2, canonical JSON, acks=all). Producing is
// not a peer's cost: it is reported apart.
func producePeerTopics(ctx context.Context, o *Options, ds *Dataset, prefix string, partitions int) (*peerTopics, error) {
	t := events.Topics{Client: prefix + ".client", CDN: prefix + ".cdn", Origin: prefix + ".origin"}
	if err := events.EnsureTopics(ctx, o.KafkaBrokers, partitions, t.Client, t.CDN, t.Origin); err != nil {
		return nil, err
	}
	m := measure.StartWithBroker(fmt.Sprintf("produce %s (%d partitions)", prefix, partitions), 0, o.KafkaPID)
	st, err := events.Produce(ctx, o.KafkaBrokers, t, ds.file)
	s := m.Done()
	s.Events = int64(st.Records)
	if err != nil {
		return nil, err
	}
	return &peerTopics{topics: t, produce: stepOf(s)}, nil
}

func (pt *peerTopics) delete(ctx context.Context, brokers []string) error {
	return events.DeleteTopics(context.WithoutCancel(ctx), brokers, pt.topics.Client, pt.topics.CDN, pt.topics.Origin)
}

// runCHKafka is the peer "ClickHouse's Kafka table engine + materialized
// view" reading the produced topics.
func runCHKafka(ctx context.Context, o *Options, ds *Dataset, ref *OfflineResult, pt *peerTopics) *PeerResult {
	p := &PeerResult{Name: "chkafka", Description: "ClickHouse's Kafka table engine (JSONEachRow) + materialized view into the raw MergeTree, then chraw's SQL"}
	dsn, err := withDatabase(o.ClickHouseDSN, peerDatabase)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	res, err := chkafka.Run(ctx, chkafka.Options{DSN: dsn, Brokers: o.KafkaBrokers, Topics: pt.topics, Produce: false,
		Prefix: "bench_chkafka", ServerPID: o.ClickHousePID, BrokerPID: o.KafkaPID, WarmQueries: true}, ds.file)
	p.Steps = append(p.Steps, stepOf(res.Consume))
	for _, q := range res.Queries {
		p.Steps = append(p.Steps, stepOf(q))
	}
	if err != nil {
		p.Error = err.Error()
		if strings.Contains(err.Error(), "Kafka") && strings.Contains(err.Error(), "engine") {
			p.Notes = append(p.Notes, "the Kafka table engine may be missing from this ClickHouse build")
		}
		return p
	}
	p.Cost = sumCost("consume+queries", ds.Events, res.Consume, res.Query)
	q := sumCost("queries", ds.Events, res.Query)
	p.Query = &q
	p.check(ref, res.Rows)
	return p
}

// runCHKafkaPaced measures the chkafka peer's freshness on a paced stream
// like the end-to-end step's (E2EPaced): the same file, producer, pace and
// lateness, into fresh topics of Options.Partitions partitions.
func runCHKafkaPaced(ctx context.Context, o *Options, ds *Dataset, prefix string) *PeerPaced {
	lateness := e2eLateness()
	pp := &PeerPaced{Pace: o.E2EPace, LatenessSec: lateness.Seconds()}
	dsn, err := withDatabase(o.ClickHouseDSN, peerDatabase)
	if err != nil {
		pp.Error = err.Error()
		return pp
	}
	t := events.Topics{Client: prefix + ".client", CDN: prefix + ".cdn", Origin: prefix + ".origin"}
	if err := events.EnsureTopics(ctx, o.KafkaBrokers, o.Partitions, t.Client, t.CDN, t.Origin); err != nil {
		pp.Error = err.Error()
		return pp
	}
	defer func() { _ = events.DeleteTopics(context.WithoutCancel(ctx), o.KafkaBrokers, t.Client, t.CDN, t.Origin) }()
	res, err := chkafka.MeasureFreshness(ctx, chkafka.PacedOptions{
		Options: chkafka.Options{DSN: dsn, Brokers: o.KafkaBrokers, Topics: t, Partitions: o.Partitions,
			Prefix: "bench_chkafka_paced", ServerPID: o.ClickHousePID, BrokerPID: o.KafkaPID, MaxBlockRows: o.CHKafkaPacedBlockRows},
		Pace: o.E2EPace, Lateness: lateness}, ds.file)
	pp.BlockRows, pp.FlushIntervalSec = res.MaxBlockRows, res.FlushInterval.Seconds()
	pp.OfferedRate, pp.ProduceSec = res.OfferedRate, res.Produce.Seconds()
	pp.Windows, pp.OpenWindows, pp.Polls = len(res.Windows), res.Open, res.Polls
	pp.FreshnessP50Sec, pp.FreshnessP99Sec, pp.FreshnessMaxSec = res.FreshnessP50.Seconds(), res.FreshnessP99.Seconds(), res.FreshnessMax.Seconds()
	pp.SignedP50Sec, pp.SignedP99Sec = res.SignedP50.Seconds(), res.SignedP99.Seconds()
	pp.AfterLastP50Sec, pp.AfterLastP99Sec = res.AfterLastP50.Seconds(), res.AfterLastP99.Seconds()
	pp.QueryP50Sec, pp.QueryP99Sec, pp.QueryMaxSec = res.QueryP50.Seconds(), res.QueryP99.Seconds(), res.QueryMax.Seconds()
	pp.Run, pp.PollCPUSec, pp.PerWindow = stepOf(res.Run), res.PollCPU.Seconds(), res.Windows
	pp.Summary = res.String()
	if err != nil {
		pp.Error = err.Error()
	}
	return pp
}

// runKStreams builds the Kafka Streams job (offline first: after one
// online build ~/.m2 has everything) and runs it on the produced topics.
func runKStreams(ctx context.Context, o *Options, ds *Dataset, ref *OfflineResult, pt *peerTopics, dir string) *PeerResult {
	p := &PeerResult{Name: "kstreams", Description: fmt.Sprintf("Kafka Streams 4.1.1 job (Java 17, RocksDB window stores, 1 stream thread, at-least-once) on the real broker, topics of %d partition(s)", o.KStreamsPartitions),
		Extra: map[string]any{"partitions": o.KStreamsPartitions}}
	jar, build, err := kstreams.Build(ctx, kstreams.BuildOptions{Offline: true})
	if err != nil {
		p.Notes = append(p.Notes, "offline maven build failed, retrying online: "+firstLine(err.Error()))
		jar, build, err = kstreams.Build(ctx, kstreams.BuildOptions{})
	}
	p.Extra["build"] = stepOf(build)
	if err != nil {
		p.Error = fmt.Sprintf("cannot build the job (Java/Maven): %v", err)
		return p
	}
	work := filepath.Join(dir, "kstreams")
	if err := os.MkdirAll(work, 0o755); err != nil {
		p.Error = err.Error()
		return p
	}
	logPath := filepath.Join(dir, "kstreams.log")
	logf, err := os.Create(logPath)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	defer logf.Close()
	res, err := kstreams.Run(ctx, kstreams.Options{Jar: jar, Brokers: o.KafkaBrokers, Topics: pt.topics, Produce: false,
		BrokerPID: o.KafkaPID, Timeout: o.KStreamsTimeout, Stderr: logf,
		WorkDir: work}, ds.file)
	p.Steps = append(p.Steps, stepOf(res.Process), stepOf(res.JVM))
	p.Extra["job"] = res.Job
	if err != nil {
		p.Error = err.Error()
		if b, rerr := os.ReadFile(logPath); rerr == nil && len(b) > 0 {
			p.Notes = append(p.Notes, "job log tail: "+tail(string(b), 1500))
		}
		return p
	}
	p.Cost = stepOf(res.Process)
	p.Cost.Name = "process"
	if res.Job.Dropped > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("the job dropped %d per-key records as late (stream time across tasks, see bench/peers/README.md)", res.Job.Dropped))
	}
	p.check(ref, res.Rows)
	return p
}
