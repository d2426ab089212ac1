package kstreams

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/internal/testenv"
)

// EnvIT opts in to TestJobAgreesWithOfflineAggregator: it needs Maven, a JVM
// and about a minute (a Maven build and a JVM run), so it is not part of
// `go tool task test`. The job's own unit tests run with `mvn -q -B test`.
const EnvIT = "QOSCOPE_KSTREAMS_IT"

// TestJobAgreesWithOfflineAggregator builds the Kafka Streams job, runs it on
// a generated file in real topics and requires its rows to equal
// qoscope's offline aggregation of the same file.
func TestJobAgreesWithOfflineAggregator(t *testing.T) {
	if os.Getenv(EnvIT) != "1" {
		t.Skipf("set %s=1 to build and run the Kafka Streams job (needs mvn and java, ~1 min)", EnvIT)
	}
	// One partition per topic: with several, the job's tasks start at
	// different moments, and on a file this small the first task can push
	// the repartition topic's stream time minutes ahead before the others
	// run, so their early records are dropped as later than the grace (see
	// README, "Stream time across tasks"). The benchmark's 3-partition runs
	// report Job.Dropped, which was 0 on 12k to 1M events.
	k := testenv.Kafka(t, testenv.WithTopics("client", "cdn", "origin"), testenv.WithPartitions(1))

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

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	jar, build, err := Build(ctx, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	topics := events.Topics{Client: k.Topic("client"), CDN: k.Topic("cdn"), Origin: k.Topic("origin")}
	if _, err := events.Produce(ctx, k.Brokers, topics, f); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Options{Jar: jar, Brokers: k.Brokers, Topics: topics, AppID: k.Prefix + "-app", Stderr: testWriter{t}}, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Job.Consumed != int64(f.Len()) || res.Job.Dropped != 0 || res.Job.Bad != 0 {
		t.Fatalf("job stats %+v for %d events", res.Job, f.Len())
	}
	rep := compare.Compare(want, res.Rows, compare.Options{})
	if !rep.OK() {
		t.Fatalf("%s", rep.Summary(40))
	}
	t.Logf("build %s; %d events processed in %s; %s", build.Wall.Round(time.Second), f.Len(),
		res.Process.Wall.Round(time.Millisecond), rep.Summary(0))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
