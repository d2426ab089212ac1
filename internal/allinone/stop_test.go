package allinone

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// The stop order with stand-in components: an upload is in flight when the
// stop begins; the aggregator must keep running while ingest drains it,
// wait until it consumed what ingest wrote, and only then stop.
func TestPipelineDrainsIngestBeforeTheAggregator(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	upload := make(chan struct{}) // closed when the in-flight upload is answered
	draining := make(chan struct{})
	aggCtxs := make(chan context.Context, 1)
	p := pipeline{
		ingest: func(ctx context.Context) error {
			<-ctx.Done()
			close(draining)
			<-upload
			note("ingest drained")
			return nil
		},
		consumed: func(ctx context.Context) error {
			note("aggregator consumed")
			return nil
		},
		consumeTimeout: time.Hour,
		agg: func(ctx context.Context) error {
			aggCtxs <- ctx
			<-ctx.Done()
			note("aggregator stopped")
			return nil
		},
		log: zerolog.Nop(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	p.start(g, gctx)
	aggCtx := <-aggCtxs
	cancel()
	<-draining
	// Cancellation reaches child contexts synchronously: had the
	// aggregator run on gctx, its context would be done by now.
	if aggCtx.Err() != nil {
		t.Fatal("the aggregator was stopped while ingest was still draining")
	}
	close(upload)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ingest drained", "aggregator consumed", "aggregator stopped"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

// An aggregator that fails stops ingest, and the stop does not wait for it
// to consume anything.
func TestPipelineAggregatorFailureStopsIngest(t *testing.T) {
	boom := errors.New("clickhouse gone")
	p := pipeline{
		ingest: func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		},
		consumed: func(ctx context.Context) error {
			<-ctx.Done() // never catches up: only the aggregator's end releases it
			return ctx.Err()
		},
		consumeTimeout: time.Hour,
		agg:            func(context.Context) error { return boom },
		log:            zerolog.Nop(),
	}
	g, gctx := errgroup.WithContext(context.Background())
	p.start(g, gctx)
	if err := g.Wait(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the aggregator's error", err)
	}
}

func TestWrittenAndBehind(t *testing.T) {
	c0, c1, o0 := partition{"client", 0}, partition{"client", 1}, partition{"origin", 0}
	before := map[partition]int64{c0: 10, c1: 5}
	// c0 moved 10 → 12, c1 did not, o0 is new with 3 records.
	after := map[partition]int64{c0: 12, c1: 5, o0: 3}
	parts := written(before, after)
	slices.SortFunc(parts, func(a, b partition) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.id, b.id))
	})
	if want := []partition{c0, o0}; !slices.Equal(parts, want) {
		t.Fatalf("written = %v, want %v", parts, want)
	}
	for _, tc := range []struct {
		committed map[partition]int64
		behind    bool
		at        partition
	}{
		{map[partition]int64{c0: 12, o0: 3}, false, partition{}},
		{map[partition]int64{c0: 11, o0: 3}, true, c0},  // one record of c0 unconsumed
		{map[partition]int64{c0: 12, o0: -1}, true, o0}, // nothing committed on o0
		{map[partition]int64{c0: 12}, true, o0},         // o0 missing from the answer
	} {
		at, late := behind(parts, after, tc.committed)
		if late != tc.behind || at != tc.at {
			t.Errorf("behind(%v) = %v %v, want %v %v", tc.committed, at, late, tc.at, tc.behind)
		}
	}
}
