package runner

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
)

func hbJSON(ts int64, user string) []byte {
	return fmt.Appendf(nil, `{"v":1,"type":"heartbeat","ts":%d,"user_id":%q,"session_id":"s","stream_id":"live-1","province":"p","isp":"i","stalled":false}`, ts, user)
}

func testWorker(t *testing.T, mod func(*Config), cp *storedCheckpoint) *worker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Aggregator.LateHorizon = time.Minute
	// The cases below were computed for 2 minutes of lateness.
	cfg.Aggregator.Lateness = aggregator.AllLateness(2 * time.Minute)
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg, Deps{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.newWorker(aggregator.PartitionID{Topic: cfg.Kafka.Topics.Client, Partition: 0}, 0, cp)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func msgs(values ...[]byte) []kafka.Message {
	out := make([]kafka.Message, len(values))
	for i, v := range values {
		out[i] = kafka.Message{Offset: int64(i), Value: v}
	}
	return out
}

// The worker applies events, dead-letters undecodable and too-late ones
// (with the reason and origin, never counting them), moves the checkpoint
// past them, and after a restore does not dead-letter them again.
func TestWorkerOutcomesAndDeadLetters(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixMilli()
	in := msgs(
		hbJSON(t0, "u1"),                // 0 applied
		hbJSON(t0+10*60_000, "u1"),      // 1 applied, closes window t0
		hbJSON(t0+5_000, "u2"),          // 2 too late (horizon 1m)
		[]byte(`{"v":1,"type":"nope"}`), // 3 undecodable
		hbJSON(t0+10*60_000+5, "u3"),    // 4 applied
	)
	w := testWorker(t, nil, nil)
	if !w.process(in) {
		t.Error("window t0 closed: pending expected")
	}
	if len(w.dl) != 2 {
		t.Fatalf("%d dead letters, want 2", len(w.dl))
	}
	var tooLate, bad DeadLetter
	_ = json.Unmarshal(w.dl[0].Value, &tooLate)
	_ = json.Unmarshal(w.dl[1].Value, &bad)
	if tooLate.Class != ClassTooLate || tooLate.Offset != 2 || tooLate.WindowStart != t0 || tooLate.Source != "client" || tooLate.Raw != string(in[2].Value) {
		t.Errorf("too-late record: %+v", tooLate)
	}
	if bad.Class != ClassUndecodable || bad.Offset != 3 || bad.Field != "type" || bad.Reason == "" || w.dl[1].Topic != DefaultConfig().Kafka.Topics.DeadLetter {
		t.Errorf("undecodable record: %+v", bad)
	}
	c := w.collect(true, false, time.Now())
	if cp := c.batch.Checkpoint; cp.Next != 5 || cp.Resume != 1 {
		t.Errorf("checkpoint next %d resume %d, want 5 and 1", cp.Next, cp.Resume)
	}
	if len(c.dl) != 2 || len(w.dl) != 0 || len(c.batch.Final) == 0 || len(c.prov) == 0 {
		t.Errorf("collect: %d dead letters (%d left), %d final, %d provisional rows", len(c.dl), len(w.dl), len(c.batch.Final), len(c.prov))
	}

	// Restart from that checkpoint: messages 1..4 are read again.
	r := testWorker(t, nil, &storedCheckpoint{cp: c.batch.Checkpoint, version: 7})
	r.process(in[1:])
	if len(r.dl) != 0 {
		t.Errorf("the replay dead-lettered %d messages again", len(r.dl))
	}
	if got := r.collect(true, false, time.Now()).batch.Checkpoint; got.Next != 5 {
		t.Errorf("after the replay next %d, want 5", got.Next)
	}
}

// A caught-up partition without messages for idle_after is advanced to the
// wall clock, which closes its windows; one with a backlog is not.
func TestWorkerIdleAdvance(t *testing.T) {
	now := time.Now()
	ts := now.Add(-5 * time.Minute).UnixMilli()
	for _, c := range []struct {
		name    string
		end     int64
		quiet   time.Duration
		closing bool
	}{
		{"caught up and quiet", 1, 11 * time.Second, true},
		{"behind", 100, 11 * time.Second, false},
		{"end unknown", -1, 11 * time.Second, false},
		{"recent message", 1, time.Second, false},
	} {
		w := testWorker(t, nil, nil)
		w.process(msgs(hbJSON(ts, "u1")))
		w.end, w.lastMsg = c.end, now.Add(-c.quiet)
		got := w.collect(true, false, now)
		if closed := len(got.batch.Final) > 0; closed != c.closing {
			t.Errorf("%s: windows closed %v, want %v", c.name, closed, c.closing)
		}
	}
	// With the default client lateness (10m) the wall clock closes nothing
	// of a delivery 5 minutes old: a delayed batch is not turned late.
	w := testWorker(t, func(c *Config) { c.Aggregator.Lateness = aggregator.DefaultLateness() }, nil)
	w.process(msgs(hbJSON(ts, "u1")))
	w.end, w.lastMsg = 1, now.Add(-time.Minute)
	if got := w.collect(true, false, now); len(got.batch.Final) != 0 || len(got.prov) == 0 {
		t.Errorf("default lateness: %d final rows, %d provisional, want none and some", len(got.batch.Final), len(got.prov))
	}
	late := hbJSON(now.Add(-9*time.Minute).UnixMilli(), "u2")
	w.process([]kafka.Message{{Offset: 1, Value: late}})
	if st := w.p.Stats(); st.Applied != 2 || st.Late != 0 {
		t.Errorf("default lateness: a 9-minute-old event after the idle advance: %+v, want applied", st)
	}
	w = testWorker(t, func(c *Config) { c.IdleAfter = 0 }, nil)
	w.process(msgs(hbJSON(ts, "u1")))
	w.end, w.lastMsg = 1, now.Add(-time.Hour)
	if got := w.collect(true, false, now); len(got.batch.Final) != 0 {
		t.Error("idle_after 0 still advanced the partition")
	}
}
