package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// summaryOf writes a webhook notification as "status: fp=status,…"
// sorted by fingerprint.
func summaryOf(t *testing.T, body []byte) string {
	t.Helper()
	var m WebhookMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, a := range m.Alerts {
		parts = append(parts, a.Fingerprint+"="+a.Status)
	}
	slices.Sort(parts)
	return m.Status + ": " + strings.Join(parts, ",")
}

// TestGroupingTimeline walks Alertmanager's grouping rules on a fake
// clock, the run ticking every 10 s. group_wait 30s, group_interval 5m,
// repeat_interval 1h; expectations worked out by hand:
//
//	12:00:00 A fires, 12:00:10 B fires (same alertname: one group)
//	12:00:30 group_wait over: [A firing, B firing]
//	12:01:00 A resolves: nothing until the next group_interval tick
//	12:05:30 [A resolved, B firing]
//	13:05:30 nothing changed for 1h since 12:05:30: repeat [B firing]
//	13:10:00 B resolves; 13:10:30 [B resolved], then the group is gone
//
// The send_resolved: false receiver gets 12:00:30 [A, B firing], skips
// 12:05:30 (only a resolution), repeats at 13:00:30 (1h after its last)
// with B only, and sends nothing when B resolves.
func TestGroupingTimeline(t *testing.T) {
	hook, quiet := newCapture(t), newCapture(t)
	c := newClock(t0)
	no := false
	d := newTestDispatcher(t, NewMemStore(), c,
		ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s3cret", RepeatInterval: time.Hour},
		ReceiverConfig{Name: "quiet", Type: TypeWebhook, URL: quiet.URL, Secret: "s3cret", RepeatInterval: time.Hour, SendResolved: &no})
	ctx := context.Background()
	submits := map[time.Duration][]Alert{
		0:                          {alertAt("A", "stutter", StatusFiring, t0, map[string]string{"vendor": "a"})},
		10 * time.Second:           {alertAt("B", "stutter", StatusFiring, t0, map[string]string{"vendor": "b"})},
		time.Minute:                {alertAt("A", "stutter", StatusResolved, t0, map[string]string{"vendor": "a"})},
		time.Hour + 10*time.Minute: {alertAt("B", "stutter", StatusResolved, t0, map[string]string{"vendor": "b"})},
	}
	type event struct {
		at   string
		what string
	}
	var gotHook, gotQuiet []event
	seenHook, seenQuiet := 0, 0
	for off := time.Duration(0); off <= time.Hour+30*time.Minute; off += 10 * time.Second {
		now := t0.Add(off)
		c.mu.Lock()
		c.t = now
		c.mu.Unlock()
		if as := submits[off]; as != nil {
			if err := d.Submit(ctx, as); err != nil {
				t.Fatal(err)
			}
		}
		d.step(ctx)
		for _, r := range hook.requests()[seenHook:] {
			gotHook = append(gotHook, event{now.Format("15:04:05"), summaryOf(t, r.Body)})
		}
		for _, r := range quiet.requests()[seenQuiet:] {
			gotQuiet = append(gotQuiet, event{now.Format("15:04:05"), summaryOf(t, r.Body)})
		}
		seenHook, seenQuiet = len(hook.requests()), len(quiet.requests())
	}
	wantHook := []event{
		{"12:00:30", "firing: A=firing,B=firing"},
		{"12:05:30", "firing: A=resolved,B=firing"},
		{"13:05:30", "firing: B=firing"},
		{"13:10:30", "resolved: B=resolved"},
	}
	wantQuiet := []event{
		{"12:00:30", "firing: A=firing,B=firing"},
		{"13:00:30", "firing: B=firing"},
	}
	if !slices.Equal(gotHook, wantHook) {
		t.Errorf("send_resolved receiver:\n got %v\nwant %v", gotHook, wantHook)
	}
	if !slices.Equal(gotQuiet, wantQuiet) {
		t.Errorf("send_resolved: false receiver:\n got %v\nwant %v", gotQuiet, wantQuiet)
	}
	if len(d.groups) != 0 || len(d.alerts) != 0 {
		t.Errorf("after everything resolved: %d groups and %d alerts left", len(d.groups), len(d.alerts))
	}
}

func TestGroupByAndMatchers(t *testing.T) {
	cdn, all := newCapture(t), newCapture(t)
	c := newClock(t0)
	d := newTestDispatcher(t, NewMemStore(), c,
		ReceiverConfig{Name: "cdn", Type: TypeWebhook, URL: cdn.URL, Secret: "s", Matchers: []string{`team="cdn"`, `severity=~"critical|warning"`}, GroupBy: []string{"vendor"}, GroupWait: time.Second},
		ReceiverConfig{Name: "all", Type: TypeWebhook, URL: all.URL, Secret: "s", GroupBy: []string{}, GroupWait: time.Second})
	ctx := context.Background()
	err := d.Submit(ctx, []Alert{
		alertAt("1", "r1", StatusFiring, t0, map[string]string{"team": "cdn", "severity": "critical", "vendor": "a"}),
		alertAt("2", "r2", StatusFiring, t0, map[string]string{"team": "cdn", "severity": "warning", "vendor": "a"}),
		alertAt("3", "r1", StatusFiring, t0, map[string]string{"team": "cdn", "severity": "critical", "vendor": "b"}),
		alertAt("4", "r1", StatusFiring, t0, map[string]string{"team": "cdn", "severity": "info", "vendor": "b"}),
		alertAt("5", "r1", StatusFiring, t0, map[string]string{"team": "origin", "severity": "critical", "vendor": "a"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	d.step(ctx)
	c.Add(time.Second)
	d.step(ctx)
	var got []string
	for _, r := range cdn.requests() {
		got = append(got, summaryOf(t, r.Body))
	}
	slices.Sort(got)
	// vendor a: 1 and 2; vendor b: 3 (4 is info, 5 is origin's).
	if want := []string{"firing: 1=firing,2=firing", "firing: 3=firing"}; !slices.Equal(got, want) {
		t.Errorf("cdn receiver got %v, want %v", got, want)
	}
	if n := len(all.requests()); n != 1 || summaryOf(t, all.requests()[0].Body) != "firing: 1=firing,2=firing,3=firing,4=firing,5=firing" {
		t.Errorf("group_by [] receiver: %d notifications", n)
	}
}

func TestSilencedAlertSendsNothing(t *testing.T) {
	hook := newCapture(t)
	c := newClock(t0)
	store := NewMemStore()
	d := newTestDispatcher(t, store, c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: time.Second, GroupBy: []string{"vendor"}})
	m, _ := ParseMatcher(`vendor=~"cdn-[bc]"`)
	d.setSilence(Silence{ID: "s1", Matchers: Matchers{m}, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "ops", Comment: "maintenance"})
	ctx := context.Background()
	if err := d.Submit(ctx, []Alert{alertAt("b", "r", StatusFiring, t0, map[string]string{"vendor": "cdn-b"}), alertAt("a", "r", StatusFiring, t0, map[string]string{"vendor": "cdn-a"})}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		d.step(ctx)
		c.Add(time.Second)
	}
	got := hook.requests()
	if len(got) != 1 || summaryOf(t, got[0].Body) != "firing: a=firing" {
		t.Fatalf("want only cdn-a's notification, got %d", len(got))
	}
	// Past the silence's end, cdn-b notifies (after its group_wait).
	c.Add(time.Hour)
	d.step(ctx)
	c.Add(time.Second)
	d.step(ctx)
	if got := hook.requests(); len(got) != 2 || summaryOf(t, got[1].Body) != "firing: b=firing" {
		t.Fatalf("after the silence: %d notifications", len(got))
	}
}

// A receiver failing with 500 gets the notification once it recovers,
// after retries; a 400 is not retried and the notification is failed.
func TestRetryThenPermanent(t *testing.T) {
	hook := newCapture(t)
	var fail atomic.Int32
	fail.Store(3)
	status := http.StatusInternalServerError
	hook.status = func() int {
		if fail.Add(-1) >= 0 {
			return status
		}
		return http.StatusOK
	}
	c := newClock(t0)
	store := NewMemStore()
	d := newTestDispatcher(t, store, c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: time.Second})
	ctx := context.Background()
	if err := d.Submit(ctx, []Alert{alertAt("A", "r", StatusFiring, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		d.step(ctx)
		c.Add(time.Second)
	}
	if n := len(hook.requests()); n != 1 {
		t.Fatalf("after 3 × 500: %d notifications accepted, want 1", n)
	}
	ns, _ := store.Notifications(ctx, time.Time{})
	if len(ns) != 1 || ns[0].State != StateSent {
		t.Fatalf("outbox: %+v", ns)
	}

	status = http.StatusBadRequest
	fail.Store(1)
	if err := d.Submit(ctx, []Alert{alertAt("B", "r", StatusFiring, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	c.Add(10 * time.Minute)
	d.step(ctx)
	c.Add(time.Minute)
	d.step(ctx)
	ns, _ = store.Notifications(ctx, time.Time{})
	if len(ns) != 2 || ns[1].State != StateFailed || !strings.Contains(ns[1].Error, "400") {
		t.Fatalf("after a 400: %+v", ns)
	}
}

// A restarted Dispatcher (new instance, same store) sends what the first
// left enqueued, once, and nothing it had sent.
func TestRestartResumesOutbox(t *testing.T) {
	hook := newCapture(t)
	var down atomic.Bool
	down.Store(true)
	hook.status = func() int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	c := newClock(t0)
	store := NewMemStore()
	rc := ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: time.Second, GroupInterval: time.Minute}
	d1 := newTestDispatcher(t, store, c, rc)
	ctx := context.Background()
	if err := d1.Submit(ctx, []Alert{alertAt("A", "r", StatusFiring, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		d1.step(ctx)
		c.Add(time.Second)
	}
	// d1 "crashes" with the firing notification enqueued; the alert
	// resolves meanwhile and the receiver recovers.
	down.Store(false)
	d2 := newTestDispatcher(t, store, c, rc)
	if err := d2.Submit(ctx, []Alert{alertAt("A", "r", StatusResolved, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	for range 120 {
		d2.step(ctx)
		c.Add(time.Second)
	}
	var got []string
	for _, r := range hook.requests() {
		got = append(got, summaryOf(t, r.Body))
	}
	if want := []string{"firing: A=firing", "resolved: A=resolved"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	d3 := newTestDispatcher(t, store, c, rc)
	for range 120 {
		d3.step(ctx)
		c.Add(time.Second)
	}
	if n := len(hook.requests()); n != 2 {
		t.Fatalf("a third instance sent again: %d notifications", n)
	}
}

// A crash between the send and storing "sent" resends the notification
// with the same idempotency key: at-least-once, and the key lets the
// receiver drop the repeat.
func TestCrashBeforeMarkSentResendsSameKey(t *testing.T) {
	hook := newCapture(t)
	c := newClock(t0)
	store := NewMemStore()
	rc := ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: time.Second}
	d1 := newTestDispatcher(t, store, c, rc)
	ctx := context.Background()
	if err := d1.Submit(ctx, []Alert{alertAt("A", "r", StatusFiring, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	d1.step(ctx)
	c.Add(time.Second)
	hook.status = func() int {
		store.mu.Lock()
		store.FailPut = errors.New("clickhouse down") // the "sent" write will fail
		store.mu.Unlock()
		return http.StatusOK
	}
	d1.step(ctx)
	store.FailPut = nil
	hook.status = nil
	d2 := newTestDispatcher(t, store, c, rc)
	d2.step(ctx)
	got := hook.requests()
	if len(got) != 2 {
		t.Fatalf("want the send and one resend, got %d", len(got))
	}
	if k1, k2 := got[0].Header.Get(IdempotencyKeyHeader), got[1].Header.Get(IdempotencyKeyHeader); k1 == "" || k1 != k2 {
		t.Errorf("keys %q and %q, want equal", k1, k2)
	}
	ns, _ := store.Notifications(ctx, time.Time{})
	if len(ns) != 1 || ns[0].State != StateSent {
		t.Errorf("outbox: %+v", ns)
	}
}

func TestSubmitRejectsAndPropagatesStoreErrors(t *testing.T) {
	c := newClock(t0)
	store := NewMemStore()
	d := newTestDispatcher(t, store, c)
	ctx := context.Background()
	if err := d.Submit(ctx, []Alert{{Fingerprint: "x", Status: "pending"}}); err == nil || !strings.Contains(err.Error(), `status "pending"`) {
		t.Errorf("pending status: %v", err)
	}
	store.FailPut = errors.New("clickhouse down")
	if err := d.Submit(ctx, []Alert{alertAt("A", "r", StatusFiring, t0, nil)}); err == nil {
		t.Error("Submit returned nil although the store failed")
	}
	store.FailPut = nil
	if err := d.Submit(ctx, []Alert{alertAt("A", "r", StatusFiring, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	if as, _ := store.Alerts(ctx, t0); len(as) != 1 || as[0].Labels["alertname"] != "r" {
		t.Errorf("stored %+v", as)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Receivers = []ReceiverConfig{
		{Name: "a", Type: "slack", URL: "http://x"},
		{Name: "a", Type: TypeWebhook, URL: "ftp://x"},
		{Name: "pd", Type: TypePagerDuty},
		{Name: "m", Type: TypeWeCom, URL: "http://x", Matchers: []string{"sev~~x"}, GroupBy: []string{"bad-label"}},
	}
	_, err := New(cfg, Deps{Store: NewMemStore()})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`alert.notify.receivers[0] (a).type: "slack" is not one of`,
		`alert.notify.receivers[1] (a).name: "a" is used twice`,
		`alert.notify.receivers[1] (a).url: not an http(s) URL`,
		`alert.notify.receivers[1] (a).secret: one of secret, secret_env, secret_file is required for webhook`,
		`alert.notify.receivers[2] (pd).secret: one of secret, secret_env, secret_file is required for pagerduty (the routing key)`,
		`alert.notify.receivers[3] (m).matchers: matcher "sev~~x"`,
		`alert.notify.receivers[3] (m).group_by: "bad-label" is not a label name`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestMatchers(t *testing.T) {
	l := map[string]string{"vendor": "cdn-b", "severity": "critical"}
	for s, want := range map[string]bool{
		`vendor="cdn-b"`:        true,
		`vendor!="cdn-b"`:       false,
		`vendor=~"cdn-.*"`:      true,
		`vendor=~"cdn"`:         false, // anchored
		`vendor!~"cdn-[ac]"`:    true,
		`isp=""`:                true, // a missing label is ""
		`severity = critical`:   true,
		`severity=~"warn|crit"`: false,
	} {
		m, err := ParseMatcher(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := m.Matches(l); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
	for _, bad := range []string{`=x`, `vendor~x`, `vendor=~"("`, `1x="a"`} {
		if _, err := ParseMatcher(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// A new group whose alert started more than group_wait ago is sent at
// once, as Alertmanager does (the evaluator's firing alerts start at the
// minute they fired); one that started just now waits group_wait.
func TestGroupWaitSkippedForOldAlerts(t *testing.T) {
	hook := newCapture(t)
	c := newClock(t0)
	d := newTestDispatcher(t, NewMemStore(), c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: 30 * time.Second, GroupBy: []string{"vendor"}})
	ctx := context.Background()
	if err := d.Submit(ctx, []Alert{alertAt("A", "stutter", StatusFiring, t0.Add(-time.Minute), map[string]string{"vendor": "a"}),
		alertAt("B", "stutter", StatusFiring, t0, map[string]string{"vendor": "b"})}); err != nil {
		t.Fatal(err)
	}
	d.step(ctx)
	if got := hook.requests(); len(got) != 1 || summaryOf(t, got[0].Body) != "firing: A=firing" {
		t.Fatalf("at once: %d requests", len(got))
	}
	c.Add(29 * time.Second)
	d.step(ctx)
	if got := hook.requests(); len(got) != 1 {
		t.Fatalf("B sent before its group_wait: %d requests", len(got))
	}
	c.Add(time.Second)
	d.step(ctx)
	if got := hook.requests(); len(got) != 2 || summaryOf(t, got[1].Body) != "firing: B=firing" {
		t.Fatalf("after group_wait: %d requests", len(got))
	}
}

// TestSendLoopSleepsUntilTheFirstDue: after a step the send loop pauses
// until the first group falls due (group_wait, group_interval), not until
// the next tick, which would make a notification up to a tick late; never
// longer than a tick, never shorter than minSleep, and a whole tick after
// its decisions could not be stored. Tick 1 s, group_wait 300 ms,
// group_interval 400 ms, by hand:
//   - nothing to say: a whole tick;
//   - A fires at 12:00:00 (started then): its group is due at 12:00:00.3,
//     so the loop sleeps 300 ms, not 1 s;
//   - at 12:00:00.3 the group is sent; next look at group_interval, 400 ms;
//   - at 12:00:00.68 (20 ms before that): minSleep, 50 ms.
func TestSendLoopSleepsUntilTheFirstDue(t *testing.T) {
	hook := newCapture(t)
	var failing atomic.Bool
	hook.status = func() int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	c := newClock(t0)
	d := newTestDispatcher(t, NewMemStore(), c,
		ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: 300 * time.Millisecond, GroupInterval: 400 * time.Millisecond})
	d.cfg.Tick = time.Second
	ctx := context.Background()
	d.step(ctx)
	if got := d.sleep(c.Now()); got != time.Second {
		t.Errorf("nothing to do: sleeps %s, want 1s", got)
	}
	if err := d.Submit(ctx, []Alert{alertAt("A", "stutter", StatusFiring, t0, map[string]string{"vendor": "a"})}); err != nil {
		t.Fatal(err)
	}
	d.step(ctx)
	if got := d.sleep(c.Now()); got != 300*time.Millisecond {
		t.Errorf("group_wait running: sleeps %s, want 300ms", got)
	}
	c.Add(300 * time.Millisecond)
	d.step(ctx)
	if n := len(hook.requests()); n != 1 {
		t.Fatalf("%d notifications at the end of group_wait, want 1", n)
	}
	if got := d.sleep(c.Now()); got != 400*time.Millisecond {
		t.Errorf("after a notification: sleeps %s, want group_interval 400ms", got)
	}
	c.Add(380 * time.Millisecond)
	if got := d.sleep(c.Now()); got != minSleep {
		t.Errorf("20 ms before due: sleeps %s, want %s", got, minSleep)
	}
	d.storeFailed = true
	if got := d.sleep(c.Now()); got != time.Second {
		t.Errorf("after a failed store: sleeps %s, want a tick", got)
	}
	d.storeFailed = false

	// The receiver fails: the group's next notification waits for its
	// retry (here 2–4 s: retry_min 4s with jitter, a tick of 10 s), and
	// the group, due before that, does not wake the loop every minSleep
	// meanwhile.
	d.retry.min, d.retry.max, d.cfg.Tick = 4*time.Second, 4*time.Second, 10*time.Second
	failing.Store(true)
	c.Add(20 * time.Millisecond) // 12:00:00.7: group_interval over
	if err := d.Submit(ctx, []Alert{alertAt("B", "stutter", StatusFiring, t0, map[string]string{"vendor": "b"})}); err != nil {
		t.Fatal(err)
	}
	d.step(ctx) // [A, B] decided, its first attempt fails
	c.Add(500 * time.Millisecond)
	d.step(ctx) // the group is due again, but its notification waits
	if got, want := d.sleep(c.Now()), d.out[groupID{"hook", `{alertname="stutter"}`}][0].nextAt.Sub(c.Now()); got != want || got < 1500*time.Millisecond {
		t.Errorf("a notification waiting for its retry: sleeps %s, want until its attempt (%s)", got, want)
	}
}

// stopDuringStore is a Store whose first store of a final state stops Run
// (cancel) and fails as an interrupted write would; later writes succeed
// unless their own context has ended.
type stopDuringStore struct {
	*MemStore
	cancel  context.CancelFunc
	stopped atomic.Bool
}

func (s *stopDuringStore) PutNotifications(ctx context.Context, ns []Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, n := range ns {
		if n.final() && s.stopped.CompareAndSwap(false, true) {
			s.cancel()
			return context.Canceled
		}
	}
	return s.MemStore.PutNotifications(ctx, ns)
}

// A clean stop stores the sent state the stop interrupted: otherwise the
// next run sends that notification a second time.
func TestStopStoresTheLastSentState(t *testing.T) {
	hook := newCapture(t)
	c := newClock(t0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := &stopDuringStore{MemStore: NewMemStore(), cancel: cancel}
	d := newTestDispatcher(t, store, c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: time.Second})
	if err := d.Submit(ctx, []Alert{alertAt("a", "r", StatusFiring, t0, nil)}); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute) // past group_wait: Run's first step sends
	if err := d.Run(ctx); err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if n := len(hook.requests()); n != 1 {
		t.Fatalf("%d notifications sent, want 1", n)
	}
	ns, err := store.Notifications(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].State != StateSent {
		t.Fatalf("stored after stop: %+v, want one notification in state sent", ns)
	}
	// A new Dispatcher on the same store sends nothing again.
	d2 := newTestDispatcher(t, store.MemStore, c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: "s", GroupWait: time.Second})
	for range 3 {
		d2.step(context.Background())
		c.Add(time.Second)
	}
	if n := len(hook.requests()); n != 1 {
		t.Errorf("after a restart: %d notifications sent, want still 1", n)
	}
}
