package schemas

import (
	"reflect"
	"testing"
)

// Expectations below are computed by hand from noon = 1795435200000
// (2026-11-23T12:00:00Z, see parse_test.go).

func TestCorrectTS(t *testing.T) {
	tests := []struct {
		name               string
		ts, sent, received int64
		want               int64
	}{
		// The fast clock: 4 min ahead; the event was 3 s before the
		// send, so it happened 3 s before the receive time.
		{"clock 4 min fast", noon + 240_000 - 3_000, noon + 240_000, noon, noon - 3_000},
		// 1 h slow, 500 ms in flight (counted as clock error), event 1 min
		// before the send: noon + 500 − 60,000.
		{"clock 1 h slow", noon - 3_600_000 - 60_000, noon - 3_600_000, noon + 500, 1795435140500},
		{"exact clock", noon - 10_000, noon, noon, noon - 10_000},
		// ts after sent_at: the formula still holds and yields a ts 2 s
		// after the receive time; the future check judges it.
		{"ts after sent_at", noon + 2_000, noon, noon, noon + 2_000},
		// A device whose clock reads 2001-09-09T01:46:40Z (1e12 ms).
		{"clock years behind", 1_000_000_000_000 - 10_000, 1_000_000_000_000, noon, noon - 10_000},
	}
	for _, tt := range tests {
		if got := CorrectTS(tt.ts, tt.sent, tt.received); got != tt.want {
			t.Errorf("%s: CorrectTS(%d, %d, %d) = %d, want %d", tt.name, tt.ts, tt.sent, tt.received, got, tt.want)
		}
	}
}

func TestCorrectClock(t *testing.T) {
	const recv = noon
	tests := []struct {
		name   string
		in     Event
		header int64
		want   Event
		err    string
	}{
		{
			name:   "header only",
			in:     Event{TS: noon + 237_000, Present: setOf(PropTS)},
			header: noon + 240_000,
			want: Event{TS: noon - 3_000, ClientTS: noon + 237_000, ClockSkewMS: -240_000,
				Present: setOf(PropTS, PropClientTS, PropClockSkewMS)},
		},
		{
			// The line says it was sent 1 min before the receive time (slow
			// clock), the header 4 min after: the line wins, +60,000.
			name:   "line sent_at wins over the header",
			in:     Event{TS: noon - 70_000, SentAt: noon - 60_000, Present: setOf(PropTS, PropSentAt)},
			header: noon + 240_000,
			want: Event{TS: noon - 10_000, ClientTS: noon - 70_000, ClockSkewMS: 60_000,
				Present: setOf(PropTS, PropClientTS, PropClockSkewMS)},
		},
		{
			// sent_at equal to the receive time: a correction of 0, still
			// recorded, so client_ts says the clock was checked.
			name:   "exact clock",
			in:     Event{TS: noon - 5, Present: setOf(PropTS)},
			header: noon,
			want:   Event{TS: noon - 5, ClientTS: noon - 5, Present: setOf(PropTS, PropClientTS, PropClockSkewMS)},
		},
		{
			name: "no sent_at: no correction, producer-sent stamps removed",
			in:   Event{TS: noon, ClientTS: noon - 1, ClockSkewMS: 7, Present: setOf(PropTS, PropClientTS, PropClockSkewMS)},
			want: Event{TS: noon, Present: setOf(PropTS)},
		},
		{
			// ts = MinTS, sent_at = MaxTS: MaxTS − MinTS = 253302300799999 ms
			// = 2931739 whole days (2931739 × 86,400,000 = 253302249600000).
			name: "corrected before 1973",
			in:   Event{TS: MinTS, SentAt: MaxTS, Present: setOf(PropTS, PropSentAt)},
			err:  "field ts: is 2931739 days before sent_at: corrected, it would be before 1973-03-03T09:46:40Z",
		},
	}
	for _, tt := range tests {
		e := tt.in
		fe := CorrectClock(&e, tt.header, recv)
		if tt.err != "" {
			if fe == nil || fe.Error() != tt.err {
				t.Errorf("%s: error %v, want %q", tt.name, fe, tt.err)
			}
			continue
		}
		if fe != nil {
			t.Errorf("%s: unexpected error %v", tt.name, fe)
			continue
		}
		if !reflect.DeepEqual(e, tt.want) {
			t.Errorf("%s:\n got  %+v\nwant %+v", tt.name, e, tt.want)
		}
	}
}

// The corrected event is what ingest writes to Kafka: client_ts and
// clock_skew_ms are encoded (a zero skew too), sent_at is not, and the line
// parses back to the same event.
func TestCorrectedEventEncoding(t *testing.T) {
	var e Event
	line := `{"v":1,"type":"dns","ts":1795435237000,"user_id":"u","cache_hit":true,"sent_at":"2026-11-23T12:04:00Z"}`
	if err := ParseLine([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	if fe := CorrectClock(&e, 0, noon); fe != nil {
		t.Fatal(fe)
	}
	// sent_at = noon + 240,000; ts' = noon − (240,000 − 37,000) = noon − 203,000.
	want := `{"v":1,"type":"dns","ts":1795434997000,"user_id":"u","cache_hit":true,"client_ts":1795435237000,"clock_skew_ms":-240000}`
	if got := string(AppendJSON(nil, &e)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var back Event
	if err := ParseLine([]byte(want), &back); err != nil || !sameEvent(back, e) {
		t.Fatalf("round trip: %v\n got  %+v\nwant %+v", err, back, e)
	}
	e.ClockSkewMS, e.ClientTS = 0, e.TS
	if got := string(AppendJSON(nil, &e)); got != `{"v":1,"type":"dns","ts":1795434997000,"user_id":"u","cache_hit":true,"client_ts":1795434997000,"clock_skew_ms":0}` {
		t.Fatalf("zero skew not encoded: %s", got)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in     string
		want   int64
		reason string
	}{
		{"1795435200000", noon, ""},
		{"2026-11-23T20:00:00.250+08:00", noon + 250, ""},
		{"2026-11-23T12:00:00Z", noon, ""},
		{"1795435200", 0, "looks like Unix seconds, want milliseconds"},
		{"253402300799999", MaxTS, ""},
		{"253402300800000", 0, "too large: looks like Unix micro- or nanoseconds, want milliseconds"},
		{"99999999999999999999", 0, "too large: looks like Unix micro- or nanoseconds, want milliseconds"},
		{"2026-11-23T12:00:00", 0, "RFC 3339 time needs a zone (Z or ±hh:mm)"},
		{"1970-01-01T00:00:00Z", 0, "must be after 1973-03-03T09:46:40Z"},
		{"-5", 0, reasonTime},
		{"", 0, reasonTime},
		{"1795435200000.5", 0, reasonTime},
	}
	for _, tt := range tests {
		got, reason := ParseTime(tt.in)
		if got != tt.want || reason != tt.reason {
			t.Errorf("ParseTime(%q) = %d, %q; want %d, %q", tt.in, got, reason, tt.want, tt.reason)
		}
	}
}

func TestFormatSpan(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{360_000, "6m0s"},
		{1_500, "1.5s"},
		{172_800_000, "48h0m0s"},
		{172_800_001, "2 days"},
		// 9999-12-31T23:59:59.999Z − 2026-03-01T12:00:00Z:
		// 253402300799999 − 1772366400000 = 251629934399999 ms,
		// / 86,400,000 = 2912383 whole days (2912383 × 86.4e6 = 251629891200000).
		{251_629_934_399_999, "2912383 days"},
		{-360_000, "-6m0s"},
	}
	for _, tt := range tests {
		if got := FormatSpan(tt.ms); got != tt.want {
			t.Errorf("FormatSpan(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestCheckRanges(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{Event{Type: TypeHeartbeat, VideoBufferMS: 600_000, FPS: 240, Present: setOf(PropVideoBufferMS, PropFPS)}, ""},
		{Event{Type: TypeHeartbeat, VideoBufferMS: 600_001}, "field video_buffer_ms: 600001 is above the maximum 600000"},
		{Event{Type: TypeHeartbeat, FPS: 240.5}, "field fps: 240.5 is above the maximum 240"},
		{Event{Type: TypeHeartbeat, BitrateKbps: -1}, "field bitrate_kbps: must be ≥ 0"},
		{Event{Type: TypeCDNRequest, Status: 99, Present: setOf(PropStatus)}, "field status: must be between 100 and 599"},
		// An absent zero is not checked (status 0 on a heartbeat).
		{Event{Type: TypeHeartbeat}, ""},
	}
	for _, tt := range tests {
		got := ""
		if fe := CheckRanges(&tt.e); fe != nil {
			got = fe.Error()
		}
		if got != tt.want {
			t.Errorf("CheckRanges(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}
