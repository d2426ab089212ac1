package route

import (
	"testing"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
)

func TestKey(t *testing.T) {
	for _, c := range []struct {
		name string
		e    schemas.Event
		want string // "" means no key (nil)
	}{
		{"client: user_id", schemas.Event{Type: schemas.TypeHeartbeat, UserID: "u1", StreamID: "s", Vendor: "v"}, "u1"},
		{"client without user: no key", schemas.Event{Type: schemas.TypeStall, StreamID: "s"}, ""},
		{"cdn: vendor/node", schemas.Event{Type: schemas.TypeCDNRequest, Vendor: "cdn-a", Node: "edge-7", UserID: "u"}, "cdn-a/edge-7"},
		{"cdn without node", schemas.Event{Type: schemas.TypeCDNRequest, Vendor: "cdn-a"}, "cdn-a/"},
		{"cdn without vendor", schemas.Event{Type: schemas.TypeCDNRequest, Node: "edge-7"}, "/edge-7"},
		{"cdn without vendor and node: no key, not \"/\"", schemas.Event{Type: schemas.TypeCDNRequest}, ""},
		{"origin: stream_id", schemas.Event{Type: schemas.TypeOriginStats, StreamID: "room-1", Node: "o1"}, "room-1"},
		{"origin without stream: no key", schemas.Event{Type: schemas.TypeOriginStats}, ""},
		{"unknown type: no key", schemas.Event{UserID: "u"}, ""},
	} {
		got := Key(&c.e)
		if string(got) != c.want || (c.want == "" && got != nil) {
			t.Errorf("%s: Key = %q (nil %v), want %q", c.name, got, got == nil, c.want)
		}
		if app := AppendKey([]byte("x"), &c.e); string(app) != "x"+c.want {
			t.Errorf("%s: AppendKey = %q, want %q", c.name, app, "x"+c.want)
		}
	}
}

func TestTopics(t *testing.T) {
	tp := config.Topics{Client: "c", CDN: "d", Origin: "o", DeadLetter: "dl"}
	for _, c := range []struct {
		src   schemas.Source
		topic string
	}{
		{schemas.SourceClient, "c"},
		{schemas.SourceCDN, "d"},
		{schemas.SourceOrigin, "o"},
	} {
		if got := Topic(tp, c.src); got != c.topic {
			t.Errorf("Topic(%v) = %q, want %q", c.src, got, c.topic)
		}
		if got := TopicSource(tp, c.topic); got != c.src {
			t.Errorf("TopicSource(%q) = %v, want %v", c.topic, got, c.src)
		}
	}
	if got := Topic(tp, schemas.SourceUnknown); got != "" {
		t.Errorf("Topic(unknown) = %q, want none", got)
	}
	for _, topic := range []string{"dl", "other", ""} {
		if got := TopicSource(tp, topic); got != schemas.SourceUnknown {
			t.Errorf("TopicSource(%q) = %v, want unknown", topic, got)
		}
	}
}

func TestIndex(t *testing.T) {
	want := map[schemas.Source]int{schemas.SourceClient: 0, schemas.SourceCDN: 1, schemas.SourceOrigin: 2, schemas.SourceUnknown: -1, schemas.Source(99): -1}
	for s, i := range want {
		if got := Index(s); got != i {
			t.Errorf("Index(%v) = %d, want %d", s, got, i)
		}
	}
	for i, s := range Sources {
		if Index(s) != i {
			t.Errorf("Sources[%d] = %v, whose Index is %d", i, s, Index(s))
		}
	}
}

func TestWindowStart(t *testing.T) {
	for _, c := range []struct{ ts, want int64 }{
		{0, 0},
		{59_999, 0},
		{60_000, 60_000},
		{1_795_435_261_234, 1_795_435_260_000}, // 1.234 s into its minute
		{-1, -60_000},                          // the last minute before 1970
		{-60_000, -60_000},
		{-60_001, -120_000},
	} {
		if got := WindowStart(c.ts); got != c.want {
			t.Errorf("WindowStart(%d) = %d, want %d", c.ts, got, c.want)
		}
	}
}
