package notify

import (
	"context"
	"strconv"
	"testing"
	"time"
)

type nopReceiver struct{ n int }

func (r *nopReceiver) send(context.Context, *Notification) error { r.n++; return nil }

// BenchmarkDispatch is the dispatch path of one evaluation minute: Submit
// of 1,000 alerts (100 groups of 10 by vendor) of which a tenth changed
// status, then one step deciding the due groups, storing and "sending"
// their notifications (the receiver does nothing; the store is MemStore).
func BenchmarkDispatch(b *testing.B) {
	c := newClock(t0)
	d := newTestDispatcher(b, NewMemStore(), c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: "http://127.0.0.1:1", Secret: "s",
		GroupBy: []string{"vendor"}, GroupWait: time.Second, GroupInterval: time.Second})
	nop := &nopReceiver{}
	d.routes[0].r = nop
	alerts := make([]Alert, 1000)
	for i := range alerts {
		alerts[i] = alertAt("fp"+strconv.Itoa(i), "stutter", StatusFiring, t0, map[string]string{"vendor": "v" + strconv.Itoa(i%100), "province": "p" + strconv.Itoa(i)})
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// A tenth of the alerts flip, so every group has news.
		for j := i % 10; j < len(alerts); j += 10 {
			if alerts[j].Status == StatusFiring {
				alerts[j].Status, alerts[j].EndsAt = StatusResolved, c.Now()
			} else {
				alerts[j].Status, alerts[j].EndsAt = StatusFiring, time.Time{}
			}
		}
		if err := d.Submit(ctx, alerts); err != nil {
			b.Fatal(err)
		}
		c.Add(time.Second)
		d.step(ctx)
	}
	b.ReportMetric(float64(nop.n)/float64(b.N), "notifications/op")
}
