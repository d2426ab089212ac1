package runner

import (
	"testing"
	"time"
)

// A live clock passing into a new minute is reported once; the first
// clock after a start, a clock still in the same minute, and a replayed
// backlog (older than liveClock) are not.
func TestMinuteCrossed(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 45, 0, 300_000_000, time.UTC)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	var m int64
	steps := []struct {
		clock int64
		want  bool
	}{
		{ms(-10 * time.Second), false},      // first clock seen: 04:44
		{ms(-5 * time.Second), false},       // still 04:44
		{ms(0), true},                       // 04:45:00.3: crossed
		{ms(200 * time.Millisecond), false}, // same minute
		{ms(-30 * time.Second), false},      // a late event: the clock never goes back
		{ms(time.Minute), true},             // 04:46
	}
	for i, s := range steps {
		if got := minuteCrossed(&m, s.clock, now.Add(time.Duration(i)*time.Millisecond)); got != s.want {
			t.Errorf("step %d (%s): %v, want %v", i, time.UnixMilli(s.clock).UTC().Format(time.TimeOnly), got, s.want)
		}
	}
	// A backlog replayed hours later crosses minutes without a report.
	var b int64
	old := now.Add(-3 * time.Hour)
	minuteCrossed(&b, old.UnixMilli(), now)
	if minuteCrossed(&b, old.Add(time.Minute).UnixMilli(), now) {
		t.Error("a backlog's minute crossing was reported")
	}
}
