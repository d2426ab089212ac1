package chkafka

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/internal/testenv"
)

// TestKafkaEngineAgreesWithOfflineAggregator produces a generated file into
// real Kafka topics, lets ClickHouse's Kafka engine and a materialized view
// consume them into the raw table, and requires chraw's SQL over it to
// agree with qoscope's offline aggregation of the same file: this proves
// both that the engine works in this ClickHouse build against the real
// broker and that nothing is lost or duplicated on the way.
func TestKafkaEngineAgreesWithOfflineAggregator(t *testing.T) {
	ch := testenv.ClickHouse(t)
	k := testenv.Kafka(t, testenv.WithTopics("client", "cdn", "origin"))

	path := filepath.Join(t.TempDir(), "events.ndjson")
	o := gen.DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = gen.ModeFast, "none", "warn"
	o.Scenario, o.Users, o.Duration, o.Output = "origin-silent", 100, 7*time.Minute, path
	if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := aggregator.RunOffline(context.Background(), aggregator.OfflineOptions{Inputs: []string{path}, Output: "-"}, &out); err != nil {
		t.Fatal(err)
	}
	want, err := compare.ReadRows(&out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := events.Read(path)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	topics := events.Topics{Client: k.Topic("client"), CDN: k.Topic("cdn"), Origin: k.Topic("origin")}
	if _, err := events.Produce(ctx, k.Brokers, topics, f); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Options{
		DSN: ch.DSN, Brokers: k.Brokers, Topics: topics, Prefix: "kt", Timeout: 3 * time.Minute,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Consume.Events != int64(f.Len()) {
		t.Fatalf("consumed %d of %d events", res.Consume.Events, f.Len())
	}
	rep := compare.Compare(want, res.Rows, compare.Options{})
	if !rep.OK() {
		t.Fatalf("%s", rep.Summary(40))
	}
	t.Logf("%d events consumed in %s; %s", f.Len(), res.Consume.Wall.Round(time.Millisecond), rep.Summary(0))
}

func TestOptionsRefuseUnsafeNames(t *testing.T) {
	good := Options{DSN: "clickhouse://x/db", Brokers: []string{"127.0.0.1:9092"},
		Topics: events.Topics{Client: "a.client", CDN: "a.cdn", Origin: "a.origin"}}
	good.defaults()
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(o *Options){
		"topic quote": func(o *Options) { o.Topics.CDN = "a'cdn" },
		"topic comma": func(o *Options) { o.Topics.Origin = "a,b" },
		"broker":      func(o *Options) { o.Brokers = []string{"127.0.0.1:9092', x='"} },
		"prefix":      func(o *Options) { o.Prefix = "p-1" },
		"no brokers":  func(o *Options) { o.Brokers = nil },
		"no dsn":      func(o *Options) { o.DSN = "" },
		"empty topic": func(o *Options) { o.Topics.Client = "" },
	} {
		o := good
		mutate(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
