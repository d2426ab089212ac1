package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

func TestSpansOfMergesConsecutiveMinutes(t *testing.T) {
	got := spansOf([]int64{0, 60, 120, 300, 360, 900}, 60)
	want := []span{{0, 180}, {300, 420}, {900, 960}}
	if len(got) != len(want) {
		t.Fatalf("spans %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("spans %v, want %v", got, want)
		}
	}
	if s := spanSQL("w", got[:1]); s != "(w >= toDateTime(0, 'UTC') AND w < toDateTime(180, 'UTC'))" {
		t.Errorf("spanSQL = %s", s)
	}
}

func TestOwnedMinutesErrorNamesMinutesTopicsAndReplace(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Unix()
	e := &OwnedMinutesError{
		Minutes: map[schemas.Source][]int64{
			schemas.SourceClient: {base, base + 60, base + 120},
			schemas.SourceOrigin: {base + 600},
		},
		Topics: map[schemas.Source][]string{schemas.SourceClient: {"qoscope.client"}, schemas.SourceOrigin: {"qoscope.origin"}},
	}
	msg := e.Error()
	for _, want := range []string{
		"client 2026-11-23T10:00:00Z..2026-11-23T10:02:00Z (3 minutes, topics qoscope.client)",
		"origin 2026-11-23T10:10:00Z (1 minute, topics qoscope.origin)",
		"nothing was written", "--replace",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}
