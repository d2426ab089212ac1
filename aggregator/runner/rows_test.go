package runner

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/schemas"
)

// genEvents returns users×d of `qoscope gen` events (seed 3).
func genEvents(t testing.TB, users int, d time.Duration) []schemas.Event {
	t.Helper()
	o := gen.DefaultOptions()
	o.Seed, o.Users, o.Duration, o.Progress = 3, users, d, "none"
	// Recent event times: the minute tables' 30-day TTL drops older rows
	// at insert. Crossing an hour boundary exercises the rollups.
	o.Start = RecentStart(time.Now())
	o.Output = filepath.Join(t.TempDir(), "events.ndjson")
	if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.Output)
	if err != nil {
		t.Fatal(err)
	}
	var out []schemas.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e schemas.Event
		if err := schemas.ParseLine(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// partitionRows aggregates events on one partition and returns every final
// row, the late rows, and the provisional rows of the windows still open
// when about 80 % of the events were in.
func partitionRows(t testing.TB, events []schemas.Event) (final, prov []aggregator.Row, late []aggregator.LateRow) {
	t.Helper()
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := aggregator.NewPartition(plan, aggregator.PartitionID{Topic: "events", Partition: 1}, schemas.SourceUnknown)
	for i := range events {
		p.Add(int64(i), &events[i])
		if i == len(events)*4/5 {
			b := p.Drain()
			final = append(final, b.Final...)
			late = append(late, b.Late...)
			prov = p.Snapshot()
		}
	}
	p.CloseAll()
	b := p.Drain()
	final = append(final, b.Final...)
	late = append(late, b.Late...)
	return final, prov, late
}
