package aggregator

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

func heartbeat(user, stream string, ts, recv int64) schemas.Event {
	return schemas.Event{V: 1, Type: schemas.TypeHeartbeat, TS: ts, RecvTS: recv, UserID: user, StreamID: stream}
}

func cdnRequest(vendor string, ts, recv int64, bytes int64) schemas.Event {
	return schemas.Event{V: 1, Type: schemas.TypeCDNRequest, TS: ts, RecvTS: recv, Vendor: vendor, Node: "n1", Status: 200, Bytes: bytes}
}

// totalRow returns the total row (grouping "") of source src for window ws.
func totalRow(rows []Row, src schemas.Source, ws int64) *Row {
	for i := range rows {
		if r := &rows[i]; r.Source == src && r.WindowStart == ws && r.Grouping == "" {
			return r
		}
	}
	return nil
}

// The issue-10 repro: one client whose clock is 4 minutes fast, then 600
// on-time users. With ingest's recv_ts the fast event cannot move the clock;
// without it (a file) the default client lateness (10m) still covers it.
// Expected by hand: 600 users on the on-time minute, 1 at +4 minutes, no
// late events.
func TestFastClockCostsNoOneTheirData(t *testing.T) {
	now := int64(t0 + 30_000)
	for _, withRecv := range []bool{true, false} {
		t.Run(fmt.Sprintf("recv_ts=%v", withRecv), func(t *testing.T) {
			plan, err := NewPlan(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			p := NewPartition(plan, PartitionID{"client", 0}, schemas.SourceClient)
			recv := func(int64) int64 { return 0 }
			if withRecv {
				recv = func(ts int64) int64 { return now }
			}
			fast := heartbeat("fastclock", "sfast", now+240_000, recv(0))
			if o := p.Add(0, &fast); o != Applied {
				t.Fatalf("fast event: %v", o)
			}
			if withRecv && p.Clock() != now {
				t.Fatalf("clock %d, want the recv_ts %d", p.Clock(), now)
			}
			for i := range 600 {
				e := heartbeat(fmt.Sprintf("r%d", i), "srep", now+int64(i), recv(0))
				if o := p.Add(int64(i+1), &e); o != Applied {
					t.Fatalf("on-time event %d: %v", i, o)
				}
			}
			if st := p.Stats(); st.Applied != 601 || st.Late != 0 {
				t.Fatalf("stats %+v, want 601 applied, 0 late", st)
			}
			p.CloseAll()
			rows := p.Drain().Final
			if r := totalRow(rows, schemas.SourceClient, t0); r == nil || r.Client.Users != 600 {
				t.Fatalf("on-time minute: %+v", r)
			}
			if r := totalRow(rows, schemas.SourceClient, t0+240_000); r == nil || r.Client.Users != 1 {
				t.Fatalf("+4 minutes: %+v", r)
			}
		})
	}
}

// The same repro through the offline mode, as a file whose first line is
// the fast-clock event (no recv_ts: the file did not pass through ingest).
func TestOfflineFastClock(t *testing.T) {
	var b strings.Builder
	now := int64(t0 + 30_000)
	fmt.Fprintf(&b, `{"v":1,"type":"heartbeat","ts":%d,"user_id":"fastclock","stream_id":"sfast","stalled":false}`+"\n", now+240_000)
	for i := range 600 {
		fmt.Fprintf(&b, `{"v":1,"type":"heartbeat","ts":%d,"user_id":"r%d","stream_id":"srep","stalled":false}`+"\n", now, i)
	}
	var out bytes.Buffer
	if err := RunOffline(context.Background(), OfflineOptions{Inputs: []string{writeFile(t, "fast.ndjson", b.String())}}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		`{"window_start":"2026-11-23T12:00:00Z","source":"client","dims":{"stream_id":"srep"},"metrics":{"users":600,`,
		`{"window_start":"2026-11-23T12:04:00Z","source":"client","dims":{"stream_id":"sfast"},"metrics":{"users":1,`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Contains(got, `"source":"late"`) {
		t.Errorf("no event may be late:\n%s", got)
	}
}

// A CDN batch delivered 10 minutes late, within the default 30 minutes of
// CDN lateness: its minute's rows are re-emitted (SnapshotChanged, a higher
// version) and its final rows equal those of the same events on time.
func TestLateCDNBatchUpdatesItsMinute(t *testing.T) {
	plan, err := NewPlan(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Minute 0..19, one 1000-byte request per vendor per minute, arriving
	// 5 s after it was made; vendor "late" delivers minutes 3 and 4 only
	// at minute 14 (its batch: 3 requests of 2000 bytes each).
	type ev struct {
		e    schemas.Event
		late bool
	}
	var evs []ev
	for m := range int64(20) {
		at := t0 + m*60_000 + 1_000
		evs = append(evs, ev{e: cdnRequest("a", at, at+5_000, 1000)})
		if m == 14 {
			for _, lm := range []int64{3, 3, 4} {
				ts := t0 + lm*60_000 + 2_000
				evs = append(evs, ev{e: cdnRequest("late", ts, at+6_000, 2000), late: true})
			}
		}
	}
	onTime := NewPartition(plan, PartitionID{"cdn", 0}, schemas.SourceCDN)
	delayed := NewPartition(plan, PartitionID{"cdn", 0}, schemas.SourceCDN)
	// On time: the same events in event-time order.
	var ordered []schemas.Event
	for _, x := range evs {
		ordered = append(ordered, x.e)
	}
	slices.SortStableFunc(ordered, func(a, b schemas.Event) int { return cmp.Compare(a.TS, b.TS) })
	for i := range ordered {
		onTime.Add(int64(i), &ordered[i])
	}
	var prov []Row
	for i := range evs {
		if evs[i].late && prov == nil {
			// Before the late batch: the minutes it belongs to already
			// have provisional rows.
			delayed.Drain()
			prov = delayed.SnapshotChanged()
			if r := totalRow(prov, schemas.SourceCDN, t0+3*60_000); r == nil || r.CDN.Bytes != 1000 || r.Final {
				t.Fatalf("minute 3 before the batch: %+v", r)
			}
			if again := delayed.SnapshotChanged(); len(again) != 0 {
				t.Fatalf("nothing changed, yet %d rows re-emitted", len(again))
			}
		}
		if o := delayed.Add(int64(i), &evs[i].e); o != Applied {
			t.Fatalf("event %d (%+v): %v, want applied", i, evs[i], o)
		}
		if evs[i].late && !evs[i+1].late {
			// Right after the batch only minutes 3 and 4 changed (minute
			// 14's event came before the previous snapshot).
			re := delayed.SnapshotChanged()
			mins := map[int64]bool{}
			for _, r := range re {
				mins[(r.WindowStart-t0)/60_000] = true
			}
			if len(mins) != 2 || !mins[3] || !mins[4] {
				t.Fatalf("re-emitted minutes %v, want 3 and 4", mins)
			}
			r3 := totalRow(re, schemas.SourceCDN, t0+3*60_000)
			old := totalRow(prov, schemas.SourceCDN, t0+3*60_000)
			// 1000 on time + 2 × 2000 late.
			if r3 == nil || r3.CDN.Bytes != 5000 || r3.CDN.Requests != 3 || r3.Version <= old.Version {
				t.Fatalf("minute 3 after the batch: %+v (before: version %d)", r3, old.Version)
			}
		}
	}
	if st := delayed.Stats(); st.Late != 0 || st.Applied != uint64(len(evs)) {
		t.Fatalf("stats %+v", st)
	}
	onTime.CloseAll()
	delayed.CloseAll()
	a, b := onTime.Drain().Final, delayed.Drain().Final
	if len(a) != len(b) {
		t.Fatalf("%d final rows on time, %d delayed", len(a), len(b))
	}
	for i := range a {
		if a[i].WindowStart != b[i].WindowStart || a[i].Grouping != b[i].Grouping || fmt.Sprint(a[i].Dims) != fmt.Sprint(b[i].Dims) || !reflect.DeepEqual(a[i].CDN, b[i].CDN) {
			t.Fatalf("row %d differs:\n on time %+v %+v\n delayed %+v %+v", i, a[i], a[i].CDN, b[i], b[i].CDN)
		}
	}
}

// Only events for windows past the source's lateness are late; the
// partition's lateness is that of its source.
func TestLatenessPerSource(t *testing.T) {
	plan, err := NewPlan(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src      schemas.Source
		ev       func(ts int64) schemas.Event
		lateness int64 // minutes
	}{
		{schemas.SourceClient, func(ts int64) schemas.Event { return heartbeat("u", "s", ts, 0) }, 10},
		{schemas.SourceCDN, func(ts int64) schemas.Event { return cdnRequest("v", ts, 0, 1) }, 30},
		{schemas.SourceOrigin, func(ts int64) schemas.Event {
			return schemas.Event{V: 1, Type: schemas.TypeOriginStats, TS: ts, StreamID: "s", Line: "primary", FPS: 25}
		}, 10},
	} {
		// The window [t0, t0+60s) is final once the clock reaches its end
		// plus the lateness: 1 ms before, an event for it still counts.
		for _, k := range []struct {
			after int64 // ms after the window's end
			want  Outcome
		}{{c.lateness*60_000 - 1, Applied}, {c.lateness * 60_000, Late}} {
			p := NewPartition(plan, PartitionID{c.src.String(), 0}, c.src)
			now := c.ev(t0 + 60_000 + k.after)
			p.Add(0, &now)
			old := c.ev(t0 + 30_000)
			if o := p.Add(1, &old); o != k.want {
				t.Errorf("%s, clock %d ms after the window's end: %v, want %v", c.src, k.after, o, k.want)
			}
		}
	}
	// The lateness is a whole configuration: a client partition with
	// cdn's 30 minutes would not turn this event late.
	if d := DefaultLateness().Of(schemas.SourceUnknown); d != 30*time.Minute {
		t.Fatalf("mixed partitions take the largest lateness, got %s", d)
	}
}
