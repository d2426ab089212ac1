package testenv

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
)

// Watermarks fakes the aggregators' progress on a test's database: it
// writes aggregator_checkpoints rows (migrations/0003) in the runner's
// format, so that what reads the watermarks (alert/live's evaluator: a
// minute is complete when every partition's clock passed its end, final
// when every partition closed it; docs/ALERTS.md "Live") sees minutes
// complete and final without an aggregator consuming Kafka. Pair it with
// minute rows inserted as the aggregator writes them.
type Watermarks struct {
	env   *ClickHouseEnv
	group string

	mu      sync.Mutex
	version uint64
}

// Watermarks returns the checkpoint writer of aggregator group group
// (aggregator.group_id; alert.AggregatorGroup reads it) on this database.
func (c *ClickHouseEnv) Watermarks(group string) *Watermarks {
	return &Watermarks{env: c, group: group}
}

// Advance writes the newest checkpoint of topic's partition: its clock
// (max_ts) half a second past the end of the minute starting at complete,
// so that minute and every one before it are complete, and its
// closed_through at the end of the minute starting at final, so final and
// every minute before it are closed. Each call takes the next version, so
// the newest call wins.
func (w *Watermarks) Advance(t testing.TB, topic string, partition int32, complete, final time.Time) {
	t.Helper()
	w.mu.Lock()
	w.version++
	version := w.version
	w.mu.Unlock()
	state, err := json.Marshal(aggregator.Checkpoint{
		MaxTS:         complete.Add(time.Minute + 500*time.Millisecond).UnixMilli(),
		ClosedThrough: final.Add(time.Minute).UnixMilli(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.env.Conn.Exec(ctx, "INSERT INTO aggregator_checkpoints (group_id, topic, kafka_partition, version, resume, next, plan_hash, state) VALUES (?, ?, ?, ?, 0, 0, '', ?)",
		w.group, topic, uint32(partition), version, string(state))
	if err != nil {
		t.Fatalf("testenv: cannot insert into aggregator_checkpoints: %v", err)
	}
}
