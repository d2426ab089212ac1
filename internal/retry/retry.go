// Package retry is what every retry loop of qoscope shares: the three
// outcomes a classifier gives a failure, the exponential backoff with
// jitter, and a sleep that ends with its context. Each caller keeps its
// own classifier (which errors are transient depends on what it talks
// to: ClickHouse in aggregator/runner/errors.go, receivers in
// notify/errors.go); what to do with the class is the same everywhere.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Class says what to do about a failure.
type Class uint8

const (
	// Retry: transient; try again after a backoff.
	Retry Class = iota
	// Permanent: retrying cannot help.
	Permanent
	// Canceled: the caller is stopping.
	Canceled
)

func (c Class) String() string {
	switch c {
	case Retry:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return "canceled"
}

// Backoff is exponential: Min after the first failure, doubling up to Max.
type Backoff struct {
	Min, Max time.Duration
}

// Base is the backoff after the attempt-th failure (1-based), without
// jitter.
func (b Backoff) Base(attempt int) time.Duration {
	wait := b.Min
	for i := 1; i < attempt && wait < b.Max; i++ {
		wait *= 2
	}
	return min(wait, b.Max)
}

// Wait is Base with jitter: half fixed, half random, so that writers (or
// instances) that failed together do not retry in lockstep, while the
// wait still grows.
func (b Backoff) Wait(attempt int) time.Duration {
	w := b.Base(attempt)
	return w/2 + rand.N(w/2+1)
}

// Sleep waits d or until ctx ends; it reports whether the full wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
