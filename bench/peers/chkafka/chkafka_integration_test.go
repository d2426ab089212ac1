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
	"github.com/qoscope/qoscope/schemas"
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

// TestMeasureFreshness runs the paced freshness measurement on a generated
// file through the real broker and server, and checks what must hold of
// every measured window whatever the timing: every client event of the
// file is in exactly one window (closed or open), a window's rows are
// complete only after its last event was sent and close only after it,
// its query returned rows, and freshness is complete + query − close,
// clamped at 0.
func TestMeasureFreshness(t *testing.T) {
	ch := testenv.ClickHouse(t)
	k := testenv.Kafka(t, testenv.WithTopics("client", "cdn", "origin"))

	path := filepath.Join(t.TempDir(), "events.ndjson")
	o := gen.DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = gen.ModeFast, "none", "warn"
	o.Users, o.Duration, o.Output = 100, 6*time.Minute, path
	if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	f, err := events.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	topics := events.Topics{Client: k.Topic("client"), CDN: k.Topic("cdn"), Origin: k.Topic("origin")}
	res, err := MeasureFreshness(ctx, PacedOptions{
		Options: Options{DSN: ch.DSN, Brokers: k.Brokers, Topics: topics, Partitions: k.Partitions, Prefix: "kp",
			Timeout: 2 * time.Minute},
		// gen's events lag at most 61 s: with 2 minutes none is sent after
		// its window closed.
		Pace: 30, Lateness: 2 * time.Minute,
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if len(res.Windows) == 0 || res.Open == 0 {
		t.Fatalf("%d closed and %d open windows: 6 minutes with 2 minutes of lateness have both", len(res.Windows), res.Open)
	}
	closedEvents := 0
	for i, w := range res.Windows {
		closedEvents += w.Events
		if i > 0 && !w.Window.After(res.Windows[i-1].Window) {
			t.Errorf("windows out of order: %s after %s", w.Window, res.Windows[i-1].Window)
		}
		if w.Window.UnixMilli()%aggregator.WindowMS != 0 || w.Events == 0 {
			t.Errorf("window %+v", w)
		}
		if w.Complete < w.LastSent || w.Closed < w.LastSent {
			t.Errorf("window %s: complete %s or closed %s before its last event was sent (%s)", w.Window, w.Complete, w.Closed, w.LastSent)
		}
		if w.Rows == 0 || w.Query <= 0 {
			t.Errorf("window %s: query %s returned %d rows", w.Window, w.Query, w.Rows)
		}
		if want := max(w.Complete+w.Query-w.Closed, 0); w.Freshness != want {
			t.Errorf("window %s: freshness %s, want %s", w.Window, w.Freshness, want)
		}
		if w.Freshness > res.FreshnessMax {
			t.Errorf("window %s: freshness %s above the max %s", w.Window, w.Freshness, res.FreshnessMax)
		}
	}
	// The open windows hold the rest of the client events.
	if client := f.Count(schemas.SourceClient); closedEvents >= client {
		t.Errorf("closed windows hold %d of %d client events: none left for the %d open ones", closedEvents, client, res.Open)
	}
	if res.Polls == 0 || res.OfferedRate <= 0 || res.Run.Events != int64(f.Len()) {
		t.Errorf("polls %d, offered %v, run %+v", res.Polls, res.OfferedRate, res.Run)
	}
}
