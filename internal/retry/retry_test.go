package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 5 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 10: 5 * time.Second} {
		if got := b.Base(attempt); got != want {
			t.Errorf("Base(%d) = %s, want %s", attempt, got, want)
		}
		for range 100 {
			if w := b.Wait(attempt); w < want/2 || w > want {
				t.Fatalf("Wait(%d) = %s outside [%s, %s]", attempt, w, want/2, want)
			}
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("a cancelled context's sleep reported a full wait")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("an uncancelled sleep reported an interruption")
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{Retry: "retryable", Permanent: "permanent", Canceled: "canceled"} {
		if c.String() != want {
			t.Errorf("%d: %q", c, c.String())
		}
	}
}
