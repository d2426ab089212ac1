package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/qoscope/qoscope/bench/peers/chkafka"
	"github.com/qoscope/qoscope/bench/peers/chraw"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/bench/peers/kstreams"
)

const usage = `usage: peers chraw|chkafka|kstreams|compare [flags]   (peers CMD -h for flags)`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	switch args[0] {
	case "chraw":
		return runCHRaw(ctx, args[1:])
	case "chkafka":
		return runCHKafka(ctx, args[1:])
	case "kstreams":
		return runKStreams(ctx, args[1:])
	case "compare":
		return runCompare(args[1:])
	}
	return fmt.Errorf("unknown command %q; %s", args[0], usage)
}

// common flags of the peers.
type common struct {
	input, rows, jsonOut string
	serverPID, brokerPID int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.input, "input", "", "event file (NDJSON, plain or gzip), e.g. from `qoscope gen`")
	fs.StringVar(&c.rows, "rows", "", "write the peer's metrics here in qoscope's offline row format")
	fs.StringVar(&c.jsonOut, "json", "", "write the measurements here as JSON")
	fs.IntVar(&c.serverPID, "server-pid", envInt("QOSCOPE_INFRA_CLICKHOUSE_PID"), "local ClickHouse server PID, to measure its whole-process CPU (env QOSCOPE_INFRA_CLICKHOUSE_PID)")
	fs.IntVar(&c.brokerPID, "broker-pid", envInt("QOSCOPE_INFRA_KAFKA_PID"), "local Kafka broker PID, to measure its whole-process CPU (env QOSCOPE_INFRA_KAFKA_PID)")
}

func (c *common) read() (*events.File, error) {
	if c.input == "" {
		return nil, fmt.Errorf("-input is required")
	}
	return events.Read(c.input)
}

func (c *common) finish(result any, rows []compare.Row) error {
	b, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return err
	}
	if c.jsonOut != "" {
		if err := os.WriteFile(c.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if c.rows != "" {
		if err := compare.WriteFile(c.rows, rows); err != nil {
			return err
		}
	}
	return nil
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func runCHRaw(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chraw", flag.ContinueOnError)
	var c common
	c.register(fs)
	var o chraw.Options
	fs.StringVar(&o.DSN, "dsn", envOr("QOSCOPE_CLICKHOUSE_DSN", ""), "ClickHouse DSN; its database holds the raw table (env QOSCOPE_CLICKHOUSE_DSN)")
	fs.StringVar(&o.HTTPURL, "http", envOr("QOSCOPE_CLICKHOUSE_HTTP", ""), "ClickHouse HTTP URL, for -loader http (env QOSCOPE_CLICKHOUSE_HTTP)")
	fs.StringVar(&o.Loader, "loader", chraw.LoaderNative, "native (clickhouse-go batch) or http (JSONEachRow)")
	fs.StringVar(&o.Table, "table", "raw_events", "raw events table")
	fs.IntVar(&o.BatchRows, "batch", chraw.DefaultBatchRows, "rows per INSERT")
	fs.BoolVar(&o.WarmQueries, "warm", true, "run each query once before the measured run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.ServerPID = c.serverPID
	f, err := c.read()
	if err != nil {
		return err
	}
	res, err := chraw.Run(ctx, o, f)
	if err != nil {
		return err
	}
	fmt.Println(res.Load)
	for _, q := range res.Queries {
		fmt.Println(q)
	}
	fmt.Println(res.Query)
	return c.finish(res, res.Rows)
}

func runCompare(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	want := fs.String("want", "", "reference rows (qoscope aggregate output)")
	got := fs.String("got", "", "peer rows")
	max := fs.Int("max", 30, "differences to print")
	ignoreLate := fs.Bool("ignore-late", false, "do not compare the late rows (peers without lateness)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w, err := compare.ReadFile(*want)
	if err != nil {
		return err
	}
	g, err := compare.ReadFile(*got)
	if err != nil {
		return err
	}
	var opts compare.Options
	if *ignoreLate {
		opts.IgnoreSources = []string{"late"}
	}
	rep := compare.Compare(w, g, opts)
	fmt.Println(rep.Summary(*max))
	if !rep.OK() {
		return fmt.Errorf("%d differences", len(rep.Diffs))
	}
	return nil
}

func runCHKafka(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chkafka", flag.ContinueOnError)
	var c common
	c.register(fs)
	var o chkafka.Options
	brokers := fs.String("brokers", envOr("QOSCOPE_KAFKA_BROKERS", ""), "Kafka bootstrap servers as the ClickHouse server reaches them (env QOSCOPE_KAFKA_BROKERS)")
	fs.StringVar(&o.DSN, "dsn", envOr("QOSCOPE_CLICKHOUSE_DSN", ""), "ClickHouse DSN (env QOSCOPE_CLICKHOUSE_DSN)")
	prefix := fs.String("topic-prefix", fmt.Sprintf("peers-chkafka-%d", time.Now().Unix()), "topics <prefix>.client/.cdn/.origin")
	fs.BoolVar(&o.Produce, "produce", true, "create the topics and produce the events first (false: they already hold them)")
	fs.IntVar(&o.Partitions, "partitions", 3, "partitions per topic when producing")
	fs.IntVar(&o.Consumers, "consumers", 1, "kafka_num_consumers")
	fs.DurationVar(&o.FlushInterval, "flush", time.Second, "kafka_flush_interval_ms")
	fs.BoolVar(&o.WarmQueries, "warm", true, "run each query once before the measured run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Brokers = strings.Split(*brokers, ",")
	o.Topics = events.Topics{Client: *prefix + ".client", CDN: *prefix + ".cdn", Origin: *prefix + ".origin"}
	o.ServerPID, o.BrokerPID = c.serverPID, c.brokerPID
	f, err := c.read()
	if err != nil {
		return err
	}
	res, err := chkafka.Run(ctx, o, f)
	if o.Produce {
		fmt.Println(res.Produce)
	}
	fmt.Println(res.Consume)
	if err != nil {
		return err
	}
	for _, q := range res.Queries {
		fmt.Println(q)
	}
	fmt.Println(res.Query)
	return c.finish(res, res.Rows)
}

func runKStreams(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kstreams", flag.ContinueOnError)
	var c common
	c.register(fs)
	var o kstreams.Options
	brokers := fs.String("brokers", envOr("QOSCOPE_KAFKA_BROKERS", ""), "Kafka bootstrap servers (env QOSCOPE_KAFKA_BROKERS)")
	prefix := fs.String("topic-prefix", fmt.Sprintf("peers-kstreams-%d", time.Now().Unix()), "topics <prefix>.client/.cdn/.origin")
	fs.BoolVar(&o.Produce, "produce", true, "create the topics and produce the events first (false: they already hold them)")
	fs.IntVar(&o.Partitions, "partitions", 3, "partitions per topic when producing")
	fs.StringVar(&o.Jar, "jar", "", "prebuilt job jar (default: build it with mvn -q -B package)")
	offline := fs.Bool("offline", false, "build with mvn -o (after one online build)")
	fs.IntVar(&o.Threads, "threads", 1, "num.stream.threads")
	fs.StringVar(&o.Store, "store", "rocksdb", "window store: rocksdb or memory")
	fs.StringVar(&o.Guarantee, "guarantee", "at_least_once", "processing.guarantee: at_least_once or exactly_once_v2")
	verbose := fs.Bool("v", false, "show the job's log (stderr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Brokers = strings.Split(*brokers, ",")
	o.Topics = events.Topics{Client: *prefix + ".client", CDN: *prefix + ".cdn", Origin: *prefix + ".origin"}
	if *verbose {
		o.Stderr = os.Stderr
	}
	o.BrokerPID = c.brokerPID
	f, err := c.read()
	if err != nil {
		return err
	}
	if o.Jar == "" {
		jar, st, err := kstreams.Build(ctx, kstreams.BuildOptions{Offline: *offline})
		if err != nil {
			return err
		}
		fmt.Println(st)
		o.Jar = jar
	}
	res, err := kstreams.Run(ctx, o, f)
	if o.Produce {
		fmt.Println(res.Produce)
	}
	fmt.Println(res.Process)
	fmt.Println(res.JVM)
	j, _ := json.Marshal(res.Job)
	fmt.Println("job:", string(j))
	if err != nil {
		return err
	}
	return c.finish(res, res.Rows)
}
