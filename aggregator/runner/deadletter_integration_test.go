package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator/runner"
	"github.com/qoscope/qoscope/aggregator/runner/e2e"
	"github.com/qoscope/qoscope/internal/testenv"
)

func heartbeat(ts int64) []byte {
	return fmt.Appendf(nil, `{"v":1,"type":"heartbeat","ts":%d,"user_id":"u1","session_id":"s1","stream_id":"live-1","vendor":"cdn-a",`+
		`"node":"n1","province":"sichuan","isp":"telecom","platform":"ios","client_version":"6.4.0","quality":"origin",`+
		`"role":"audience","video_buffer_ms":1967,"stalled":false}`, ts)
}

// Undecodable messages and events too late for any window go to the
// dead-letter topic with their reason and origin, are counted, and the
// offsets move past them; a replay after a restart does not dead-letter
// them again.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := testenv.Kafka(t, testenv.WithPartitions(1))
	ch := testenv.ClickHouse(t)
	if err := e2e.Migrate(ctx, ch.DSN); err != nil {
		t.Fatal(err)
	}
	kc := k.Config()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()
	msgs := [][]byte{
		heartbeat(t0),                        // 0: window t0
		heartbeat(t0 + 10*60_000),            // 1: watermark t0+8m: window t0 closes
		heartbeat(t0 + 5_000),                // 2: t0's counter is beyond late_horizon (1m): too late
		[]byte(`not json`),                   // 3: undecodable
		[]byte(`{"v":1,"type":"heartbeat"}`), // 4: undecodable: missing fields
		heartbeat(t0 + 10*60_000 + 1),        // 5: window t0+10m still open
	}
	if err := e2e.ProduceRaw(ctx, kc, kc.Topics.Client, []byte("u1"), msgs...); err != nil {
		t.Fatal(err)
	}
	ends, err := e2e.EndOffsets(ctx, kc, kc.Topics.Client, kc.Topics.CDN, kc.Topics.Origin)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2e.TestConfig(kc, ch.Config(), ch.HTTP, k.GroupID("dl"))
	cfg.Aggregator.LateHorizon = time.Minute
	cfg.IdleAfter = 0 // keep window t0+10m open: the restart replays messages 1..5
	fail := make(chan error, 2)
	a := startInstance(t, ctx, cfg, fail)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := e2e.WaitCheckpointed(wctx, ch.Conn, cfg.GroupID, ends, fail); err != nil {
		t.Fatal(err)
	}
	if got := a.Metric("qoscope_aggregator_deadlettered_total"); got != 3 {
		t.Errorf("deadlettered_total %v, want 3", got)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	// A new instance restores the checkpoint (resume = message 1, the open
	// window's first event), replays 1..5 and closes everything.
	cfg.IdleAfter = time.Second
	b := startInstance(t, ctx, cfg, fail)
	if err := e2e.WaitCommitted(wctx, kc, cfg.GroupID, ends, fail); err != nil {
		t.Fatal(err)
	}
	if got := b.Metric("qoscope_aggregator_deadlettered_total"); got != 0 {
		t.Errorf("the replay dead-lettered %v messages again", got)
	}
	if got := b.Metric("qoscope_aggregator_events_total"); got < 5 {
		t.Errorf("the restarted instance saw %v messages; the replay did not happen", got)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Topic: kc.Topics.DeadLetter, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	var got []runner.DeadLetter
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	for len(got) < 3 {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("read dead letters: %v (have %d)", err, len(got))
		}
		var d runner.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
	}
	if end, err := e2e.EndOffsets(ctx, kc, kc.Topics.DeadLetter); err != nil || end[kc.Topics.DeadLetter][0] != 3 {
		t.Errorf("dead-letter topic holds %v records, want 3 (%v)", end, err)
	}
	want := []struct {
		class, field string
		offset       int64
		raw          string
	}{
		{runner.ClassTooLate, "", 2, string(msgs[2])},
		{runner.ClassUndecodable, "", 3, "not json"},
		{runner.ClassUndecodable, "ts", 4, string(msgs[4])},
	}
	for i, w := range want {
		d := got[i]
		if d.Stage != "aggregator" || d.Class != w.class || d.Offset != w.offset || d.Raw != w.raw || d.Topic != kc.Topics.Client || d.Reason == "" {
			t.Errorf("dead letter %d: %+v, want class %s offset %d raw %q", i, d, w.class, w.offset, w.raw)
		}
		if w.field != "" && d.Field == "" {
			t.Errorf("dead letter %d names no field: %+v", i, d)
		}
	}
	if got[0].WindowStart != t0 || got[0].Source != "client" {
		t.Errorf("too-late record: window %d source %q, want %d client", got[0].WindowStart, got[0].Source, t0)
	}
	var late uint64
	if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM client_minute FINAL WHERE grouping = '' AND final = 1").Scan(&late); err != nil || late != 2 {
		t.Errorf("final total rows %d (%v), want 2 (windows t0 and t0+10m)", late, err)
	}
}
