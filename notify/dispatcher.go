package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/qoscope/qoscope/internal/config"
)

// Deps are what a Dispatcher is built on.
type Deps struct {
	// Store keeps alerts, notifications and silences durably. Required:
	// NewClickHouseStore in production, NewMemStore in tests.
	Store Store
	// Logger gets a "component": "notify" field.
	Logger zerolog.Logger
	// Registry receives the qoscope_notify_* metrics; nil registers none.
	Registry prometheus.Registerer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// HTTPClient sends to receivers; nil is a client without a global
	// timeout (each request has the receiver's timeout).
	HTTPClient *http.Client
	// Getenv reads url_env and secret_env; nil is os.Getenv.
	Getenv func(string) string
}

// Dispatcher groups the alerts Submit hands it per receiver, decides the
// notifications (Alertmanager's grouping semantics), stores them in the
// outbox before sending and sends them with retries (docs/ALERTS.md,
// "Delivery"). Run must run in one instance at a time (the leader).
type Dispatcher struct {
	cfg   Config
	store Store
	log   zerolog.Logger
	now   func() time.Time
	m     *metrics
	retry retrier

	routes []*route
	ams    []*amRoute

	wake chan struct{}
	// storeFailed: the last step could not store its decisions (the send
	// loop then waits a whole tick).
	storeFailed bool

	mu       sync.Mutex
	loaded   bool
	alerts   map[string]Alert
	changed  time.Time // last Submit that changed an alert
	silences map[string]Silence
	silAt    time.Time
	// silGen counts the API's silence changes; silSet holds, per silence
	// the API set since the last refresh, the count after it.
	silGen uint64
	silSet map[string]uint64

	running sync.Mutex // held by Run

	// Owned by Run.
	groups  map[groupID]*group
	out     map[groupID][]*outgoing // enqueued notifications per group, seq order
	unsaved []Notification          // final states not yet stored
}

// route is one grouped receiver.
type route struct {
	cfg      ReceiverConfig
	matchers Matchers
	r        receiver
}

// amRoute is one Alertmanager receiver: no grouping here, Alertmanager
// groups.
type amRoute struct {
	cfg      ReceiverConfig
	matchers Matchers
	r        *alertmanager
	next     time.Time // next resend
	seen     time.Time // the Submit change last posted
	attempts int
}

type groupID struct{ receiver, key string }

// group is one receiver's group of alerts.
type group struct {
	route *route
	key   string
	next  time.Time     // next check
	last  *Notification // newest notification, nil before the first
	// lastFiring and lastResolved are the fingerprints last notified.
	lastFiring, lastResolved map[string]bool
}

// outgoing is an enqueued notification and its attempts in this process.
type outgoing struct {
	n        Notification
	route    *route
	attempts int
	nextAt   time.Time
}

// resolvedResend is how long Alertmanager receivers keep posting a
// resolved alert (Prometheus's 15 minutes), so an Alertmanager that was
// briefly down learns the resolution.
const resolvedResend = 15 * time.Minute

// New builds a Dispatcher; cfg is validated here (errors named from
// alert.notify) and secrets read.
func New(cfg Config, d Deps) (*Dispatcher, error) {
	var errs config.Errors
	cfg.Validate(errs.In("alert.notify"))
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if d.Store == nil {
		return nil, errors.New("notify: a store is required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{}
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	m, err := newMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	disp := &Dispatcher{
		cfg: cfg, store: d.Store, log: d.Logger.With().Str("component", "notify").Logger(), now: d.Now, m: m,
		retry:  retrier{min: cfg.RetryMin, max: cfg.RetryMax, giveUp: cfg.GiveUpAfter},
		wake:   make(chan struct{}, 1),
		alerts: map[string]Alert{}, silences: map[string]Silence{}, silSet: map[string]uint64{},
		groups: map[groupID]*group{}, out: map[groupID][]*outgoing{},
	}
	for i, rc := range cfg.Receivers {
		key := fmt.Sprintf("alert.notify.receivers[%d] (%s).", i, rc.Name)
		var ms Matchers
		for _, s := range rc.Matchers {
			mt, _ := ParseMatcher(s) // validated above
			ms = append(ms, mt)
		}
		u, err := resolve("url", rc.URL, rc.URLEnv, rc.URLFile, d.Getenv)
		if err != nil {
			return nil, fmt.Errorf("%s%w", key, err)
		}
		secret, err := resolve("secret", rc.Secret, rc.SecretEnv, rc.SecretFile, d.Getenv)
		if err != nil {
			return nil, fmt.Errorf("%s%w", key, err)
		}
		timeout := cfg.Timeout
		if rc.Timeout > 0 {
			timeout = rc.Timeout
		}
		p := poster{client: d.HTTPClient, timeout: timeout}
		m.depth.WithLabelValues(rc.Name).Set(0)
		if rc.Type == TypeAlertmanager {
			disp.ams = append(disp.ams, &amRoute{cfg: rc, matchers: ms,
				r: &alertmanager{url: strings.TrimRight(u, "/") + "/api/v2/alerts", resend: rc.ResendInterval, p: p}})
			continue
		}
		var r receiver
		switch rc.Type {
		case TypeWebhook:
			r = &webhook{name: rc.Name, url: u, secret: []byte(secret), externalURL: cfg.ExternalURL, groupBy: rc.GroupBy, p: p}
		case TypeDingTalk:
			r = &dingTalk{url: u, secret: secret, now: d.Now, p: p}
		case TypeWeCom:
			r = &weCom{url: u, p: p}
		case TypeFeishu:
			r = &feishu{url: u, secret: secret, now: d.Now, p: p}
		case TypePagerDuty:
			if u == "" {
				u = DefaultPagerDutyURL
			}
			r = &pagerDuty{url: u, routingKey: secret, p: p}
		}
		disp.routes = append(disp.routes, &route{cfg: rc, matchers: ms, r: r})
	}
	return disp, nil
}

// Submit stores alerts in the outbox and returns once they are durable
// (or with the error: nothing was accepted, submit again). Alerts whose
// status, times, labels and annotations did not change since the last
// Submit are not written again.
func (d *Dispatcher) Submit(ctx context.Context, alerts []Alert) error {
	for i, a := range alerts {
		switch {
		case a.Fingerprint == "":
			return fmt.Errorf("alert %d (%s): fingerprint: required", i, a.Rule)
		case a.Status != StatusFiring && a.Status != StatusResolved:
			return fmt.Errorf("alert %d (%s): status %q: want firing or resolved", i, a.Fingerprint, a.Status)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.loadAlertsLocked(ctx); err != nil {
		return err
	}
	var changed []Alert
	for _, a := range alerts {
		a = cloneAlert(a)
		if a.Labels == nil {
			a.Labels = map[string]string{}
		}
		if _, ok := a.Labels["alertname"]; !ok && a.Rule != "" {
			a.Labels["alertname"] = a.Rule
		}
		if old, ok := d.alerts[a.Fingerprint]; ok && sameAlert(old, a) {
			continue
		}
		changed = append(changed, a)
	}
	if len(changed) == 0 {
		return nil
	}
	now := d.now()
	if err := d.store.PutAlerts(ctx, changed, uint64(now.UnixNano())); err != nil {
		return err
	}
	for _, a := range changed {
		d.alerts[a.Fingerprint] = a
	}
	d.changed = now
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
}

// sameAlert: nothing a notification shows changed (the value and the
// minute evaluated change every minute and are not shown).
func sameAlert(a, b Alert) bool {
	return a.Status == b.Status && a.StartsAt.Equal(b.StartsAt) && a.EndsAt.Equal(b.EndsAt) &&
		a.GeneratorURL == b.GeneratorURL && maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}

func (d *Dispatcher) loadAlertsLocked(ctx context.Context) error {
	if d.loaded {
		return nil
	}
	as, err := d.store.Alerts(ctx, d.now().Add(-d.cfg.Lookback))
	if err != nil {
		return fmt.Errorf("cannot load alerts: %w", err)
	}
	for _, a := range as {
		d.alerts[a.Fingerprint] = a
	}
	d.loaded = true
	return nil
}

// Run is the send loop: it resumes the notifications a previous run left
// enqueued, then every tick (and at once after a Submit) groups the
// alerts, enqueues the notifications due and sends them. It returns
// ctx's error when ctx ends, or the error of loading the outbox.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.TryLock() {
		return errors.New("notify: Run is already running")
	}
	defer d.running.Unlock()
	if err := d.restore(ctx); err != nil {
		return err
	}
	t := time.NewTimer(d.cfg.Tick)
	defer t.Stop()
	for {
		d.step(ctx)
		t.Reset(d.sleep(d.now()))
		select {
		case <-ctx.Done():
			d.saveOnStop(ctx)
			return ctx.Err()
		case <-t.C:
		case <-d.wake:
		}
	}
}

// stopSaveTimeout bounds the last store of final states when Run stops.
const stopSaveTimeout = 5 * time.Second

// saveOnStop stores the final states decided before ctx ended, with a
// context of its own: a notification sent in the last step (or whose store
// the cancellation interrupted) is otherwise sent again by the next run.
// That repeat carries the same idempotency key, so receivers can drop it,
// but a clean stop should not cause it; only a crash may.
func (d *Dispatcher) saveOnStop(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopSaveTimeout)
	defer cancel()
	d.saveFinals(sctx)
}

// minSleep is the shortest pause of the send loop between two steps.
const minSleep = 50 * time.Millisecond

// sleep is how long the send loop may pause after a step at now: until
// the first group, notification or Alertmanager resend falls due, at most
// a tick. A group's group_wait or group_interval so ends on time rather
// than at the tick after it (up to a tick late). After a step whose
// decisions could not be stored, a whole tick: the store is not retried
// in a tight loop.
func (d *Dispatcher) sleep(now time.Time) time.Duration {
	if d.storeFailed {
		return d.cfg.Tick
	}
	next := now.Add(d.cfg.Tick)
	for id, g := range d.groups {
		// A group with a notification on its way decides again only
		// after it went out: that notification's attempt is its next due.
		if len(d.out[id]) == 0 {
			next = minTime(next, g.next)
		}
	}
	for _, os := range d.out {
		if len(os) > 0 {
			next = minTime(next, os[0].nextAt)
		}
	}
	for _, am := range d.ams {
		next = minTime(next, am.next)
	}
	return max(next.Sub(now), minSleep)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// restore rebuilds groups and the enqueued notifications from the store.
func (d *Dispatcher) restore(ctx context.Context) error {
	d.mu.Lock()
	err := d.loadAlertsLocked(ctx)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := d.refreshSilences(ctx, d.now()); err != nil {
		return err
	}
	ns, err := d.store.Notifications(ctx, d.now().Add(-d.cfg.Lookback))
	if err != nil {
		return fmt.Errorf("cannot load the outbox: %w", err)
	}
	sortNotifications(ns)
	byName := map[string]*route{}
	for _, r := range d.routes {
		byName[r.cfg.Name] = r
	}
	d.groups, d.out = map[groupID]*group{}, map[groupID][]*outgoing{}
	resumed := 0
	for _, n := range ns {
		r := byName[n.Receiver]
		if r == nil {
			continue // a receiver removed from the configuration
		}
		id := groupID{n.Receiver, n.GroupKey}
		g := d.groups[id]
		if g == nil {
			g = &group{route: r, key: n.GroupKey}
			d.groups[id] = g
		}
		g.noted(&n, r.cfg.GroupInterval)
		if n.State == StateEnqueued {
			d.out[id] = append(d.out[id], &outgoing{n: n, route: r, nextAt: d.now()})
			d.m.depth.WithLabelValues(r.cfg.Name).Inc()
			resumed++
		}
	}
	d.log.Info().Int("notifications", len(ns)).Int("resumed", resumed).Int("groups", len(d.groups)).Msg("outbox loaded")
	return nil
}

// noted makes n the group's newest notification.
func (g *group) noted(n *Notification, interval time.Duration) {
	g.last = n
	g.lastFiring, g.lastResolved = map[string]bool{}, map[string]bool{}
	for _, a := range n.Alerts {
		if a.Status == StatusFiring {
			g.lastFiring[a.Fingerprint] = true
		} else {
			g.lastResolved[a.Fingerprint] = true
		}
	}
	g.next = n.CreatedAt.Add(interval)
}

// refreshSilences replaces the silences by the store's (other instances'
// changes). A silence this instance's API set after the read began is
// kept unless the read has a newer version of it: the read may have
// missed it, and dropping it would let the alerts it mutes through until
// the next refresh. (The API stores a silence before setting it here, so
// one set before the read began is in what the read returns.)
func (d *Dispatcher) refreshSilences(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	gen := d.silGen
	d.mu.Unlock()
	ss, err := d.store.Silences(ctx)
	if err != nil {
		return fmt.Errorf("cannot load silences: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fresh := make(map[string]Silence, len(ss))
	for _, s := range ss {
		fresh[s.ID] = s
	}
	for id, g := range d.silSet {
		if g <= gen {
			delete(d.silSet, id) // the read saw it
			continue
		}
		if r, ok := fresh[id]; !ok || d.silences[id].UpdatedAt.After(r.UpdatedAt) {
			fresh[id] = d.silences[id]
		}
	}
	d.silences = fresh
	d.silAt = now
	return nil
}

// setSilence applies a silence the API just stored.
func (d *Dispatcher) setSilence(s Silence) {
	d.mu.Lock()
	d.silences[s.ID] = s
	d.silGen++
	d.silSet[s.ID] = d.silGen
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// step is one pass of Run at now: decide, store, send.
func (d *Dispatcher) step(ctx context.Context) {
	now := d.now()
	if now.Sub(d.silAt) >= d.cfg.SilenceRefresh {
		if err := d.refreshSilences(ctx, now); err != nil {
			d.log.Warn().Err(err).Msg("keeping the silences read before")
		}
	}
	d.saveFinals(ctx)
	d.mu.Lock()
	alerts := make([]Alert, 0, len(d.alerts))
	for _, a := range d.alerts {
		if !d.silencedLocked(a.Labels, now) {
			alerts = append(alerts, a)
		}
	}
	changed := d.changed
	d.mu.Unlock()
	slices.SortFunc(alerts, func(a, b Alert) int { return compareStrings(a.Fingerprint, b.Fingerprint) })

	err := d.decide(ctx, alerts, now)
	d.storeFailed = err != nil
	if err != nil {
		d.log.Warn().Err(err).Msg("cannot store new notifications; deciding again next tick")
	}
	var g errgroup.Group
	for _, am := range d.ams {
		if now.Before(am.next) && !changed.After(am.seen) {
			continue
		}
		g.Go(func() error { d.postAlertmanager(ctx, am, alerts, changed, now); return nil })
	}
	// Each receiver's due notifications go out in one goroutine, in group
	// order; d.out is only changed here, after they all returned.
	due := d.due(now)
	done := make([][]bool, len(due))
	for i, os := range due {
		done[i] = make([]bool, len(os))
		g.Go(func() error {
			for j, o := range os {
				if ctx.Err() == nil {
					done[i][j] = d.attempt(ctx, o, now)
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, os := range due {
		for j, o := range os {
			if done[i][j] {
				id := groupID{o.n.Receiver, o.n.GroupKey}
				d.out[id] = d.out[id][1:]
				if len(d.out[id]) == 0 {
					delete(d.out, id)
				}
				d.m.depth.WithLabelValues(o.n.Receiver).Dec()
			}
		}
	}
	d.saveFinals(ctx)
	d.pruneResolved(now)
}

func (d *Dispatcher) silencedLocked(labels map[string]string, now time.Time) bool {
	for _, s := range d.silences {
		if s.Mutes(labels, now) {
			return true
		}
	}
	return false
}

// decide checks every group that is due and enqueues its notification
// when Alertmanager's rules say one is needed.
func (d *Dispatcher) decide(ctx context.Context, alerts []Alert, now time.Time) error {
	members := map[groupID][]Alert{}
	for _, r := range d.routes {
		for _, a := range alerts {
			if !r.matchers.Matches(a.Labels) {
				continue
			}
			id := groupID{r.cfg.Name, groupKey(a.Labels, r.cfg.GroupBy)}
			members[id] = append(members[id], a)
			if d.groups[id] == nil && a.Status == StatusFiring {
				g := &group{route: r, key: id.key, next: now.Add(r.cfg.GroupWait)}
				// As Alertmanager does: an alert that started more than
				// group_wait ago has waited enough; its group notifies at
				// once. A firing alert starts at the minute it fired, so a
				// new group is sent as soon as the evaluator hands it over;
				// group_wait still gathers alerts that start together.
				if !a.StartsAt.Add(r.cfg.GroupWait).After(now) {
					g.next = now
				}
				d.groups[id] = g
			}
		}
	}
	var fresh []Notification
	var freshOut []*outgoing
	for id, g := range d.groups {
		if len(g.lastFiring) == 0 && len(d.out[id]) == 0 && !hasFiring(members[id]) {
			// Nothing left to say (Alertmanager deletes such a group);
			// its last notification stays in the store.
			delete(d.groups, id)
			continue
		}
		if now.Before(g.next) || len(d.out[id]) > 0 {
			continue // not due, or an earlier notification is still on its way
		}
		n, ok := g.check(members[id], now)
		g.next = now.Add(g.route.cfg.GroupInterval)
		if !ok {
			continue
		}
		fresh = append(fresh, n)
		freshOut = append(freshOut, &outgoing{n: n, route: g.route, nextAt: now})
	}
	if len(fresh) == 0 {
		return nil
	}
	// Stored before anything is sent: a crash from here on resends these
	// with their keys, and never decides them again differently.
	if err := d.store.PutNotifications(ctx, fresh); err != nil {
		for _, n := range fresh {
			d.groups[groupID{n.Receiver, n.GroupKey}].next = now // decide again
		}
		return err
	}
	for _, o := range freshOut {
		id := groupID{o.n.Receiver, o.n.GroupKey}
		g := d.groups[id]
		g.noted(&o.n, g.route.cfg.GroupInterval)
		if o.n.State == StateEnqueued {
			d.out[id] = append(d.out[id], o)
			d.m.depth.WithLabelValues(o.n.Receiver).Inc()
		}
	}
	return nil
}

// check is Alertmanager's decision (its DedupStage) for a group whose
// current alerts are members: notify when a firing alert is new, when all
// resolved after a notification that had firing ones, when (with
// send_resolved) an alert notified as firing resolved, or when the repeat
// interval passed.
func (g *group) check(members []Alert, now time.Time) (Notification, bool) {
	var alerts []Alert
	firing, resolved := map[string]bool{}, map[string]bool{}
	for _, a := range members {
		switch {
		case a.Status == StatusFiring:
			firing[a.Fingerprint] = true
		case g.lastFiring[a.Fingerprint]:
			// A resolved alert the receiver knew as firing. One that fired
			// and resolved between two notifications never reached it, one
			// notified as resolved is done with (Alertmanager drops both).
			resolved[a.Fingerprint] = true
		default:
			continue
		}
		alerts = append(alerts, a)
	}
	cfg := g.route.cfg
	need := false
	switch {
	case g.last == nil:
		need = len(firing) > 0
	case !subset(firing, g.lastFiring):
		need = true
	case len(firing) == 0:
		need = len(g.lastFiring) > 0
	case *cfg.SendResolved && !subset(resolved, g.lastResolved):
		need = true
	default:
		need = !now.Before(g.last.CreatedAt.Add(cfg.RepeatInterval))
	}
	if !need {
		return Notification{}, false
	}
	// The first notification of a group is numbered by the group's
	// creation in milliseconds: a group forgotten (no notification within
	// the lookback) and formed again never reuses a key.
	seq := uint64(now.UnixMilli())
	if g.last != nil {
		seq = g.last.Seq + 1
	}
	n := Notification{Receiver: cfg.Name, GroupKey: g.key, Seq: seq, State: StateEnqueued, Alerts: alerts, CreatedAt: now.UTC()}
	if len(firing) == 0 && (!*cfg.SendResolved || len(resolved) == 0) {
		// Nothing the receiver wants: all resolved without send_resolved,
		// or the alerts it knew were silenced. Recorded, not sent.
		n.State = StateSkipped
	}
	n.Key = idempotencyKey(&n)
	return n, true
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// idempotencyKey is the SHA-256 of receiver, group key, seq and each
// alert's fingerprint and status (sorted), as lowercase hex; 0xff
// separates the parts (it never occurs in UTF-8).
func idempotencyKey(n *Notification) string {
	parts := make([]string, len(n.Alerts))
	for i, a := range n.Alerts {
		parts[i] = a.Fingerprint + "\xff" + a.Status
	}
	slices.Sort(parts)
	h := sha256.New()
	h.Write([]byte(n.Receiver + "\xff" + n.GroupKey + "\xff" + strconv.FormatUint(n.Seq, 10) + "\xff"))
	for _, p := range parts {
		h.Write([]byte(p + "\xff"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// groupKey writes the group_by labels' values: {a="x",b="y"}, sorted by
// name; "..." takes every label.
func groupKey(labels map[string]string, groupBy []string) string {
	var names []string
	if slices.Contains(groupBy, groupByAll) {
		names = slices.Sorted(maps.Keys(labels))
	} else {
		names = slices.Sorted(slices.Values(groupBy))
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n + "=" + strconv.Quote(labels[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// due returns, per receiver, the oldest enqueued notification of each of
// its groups whose attempt is due: a group's notifications go out in order.
func (d *Dispatcher) due(now time.Time) [][]*outgoing {
	idx := map[string]int{}
	var out [][]*outgoing
	ids := slices.SortedFunc(maps.Keys(d.out), func(a, b groupID) int {
		if c := compareStrings(a.receiver, b.receiver); c != 0 {
			return c
		}
		return compareStrings(a.key, b.key)
	})
	for _, id := range ids {
		os := d.out[id]
		if len(os) == 0 || now.Before(os[0].nextAt) {
			continue
		}
		i, ok := idx[id.receiver]
		if !ok {
			i = len(out)
			idx[id.receiver] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], os[0])
	}
	return out
}

// attempt sends o once and reports whether it reached a final state.
func (d *Dispatcher) attempt(ctx context.Context, o *outgoing, now time.Time) bool {
	name := o.route.cfg.Name
	log := d.log.With().Str("receiver", name).Str("group", o.n.GroupKey).Str("key", o.n.Key).Logger()
	send := o.n
	if !*o.route.cfg.SendResolved {
		send.Alerts = slices.DeleteFunc(slices.Clone(send.Alerts), func(a Alert) bool { return a.Status != StatusFiring })
	}
	var err error
	if o.n.State != StateSkipped {
		start := time.Now()
		// A request under way when Run stops is finished (bounded by the
		// receiver's timeout), not cut: cut, the receiver may have it while
		// the outbox does not know, and the next run sends it again.
		err = o.route.r.send(context.WithoutCancel(ctx), &send)
		d.m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
	o.attempts++
	switch {
	case err == nil:
		o.n.State = StateSent
		d.m.sent.WithLabelValues(name).Inc()
		log.Info().Int("alerts", len(send.Alerts)).Int("attempts", o.attempts).Msg("notification sent")
	case Classify(err) == Canceled:
		return false
	default:
		if wait, ok := d.retry.next(o.attempts, err, o.n.CreatedAt, now); ok {
			o.nextAt = now.Add(wait)
			d.m.retried.WithLabelValues(name).Inc()
			log.Warn().Err(err).Int("attempts", o.attempts).Dur("retry_in", wait).Msg("notification not sent; retrying")
			return false
		}
		o.n.State, o.n.Error = StateFailed, err.Error()
		d.m.failed.WithLabelValues(name).Inc()
		log.Error().Err(err).Int("attempts", o.attempts).Str("class", Classify(err).String()).Msg("notification failed; giving up")
	}
	d.mu.Lock()
	d.unsaved = append(d.unsaved, o.n)
	d.mu.Unlock()
	return true
}

// saveFinals stores the final states decided so far. Until it succeeds a
// restart would send those notifications again, with the same key.
func (d *Dispatcher) saveFinals(ctx context.Context) {
	d.mu.Lock()
	ns := d.unsaved
	d.unsaved = nil
	d.mu.Unlock()
	if len(ns) == 0 {
		return
	}
	if err := d.store.PutNotifications(ctx, ns); err != nil {
		d.log.Warn().Err(err).Int("notifications", len(ns)).Msg("cannot store sent states; retrying next tick")
		d.mu.Lock()
		d.unsaved = append(ns, d.unsaved...)
		d.mu.Unlock()
	}
}

// postAlertmanager posts the receiver's current alerts: firing ones and
// those resolved within resolvedResend.
func (d *Dispatcher) postAlertmanager(ctx context.Context, am *amRoute, alerts []Alert, changed, now time.Time) {
	var post []Alert
	for _, a := range alerts {
		if !am.matchers.Matches(a.Labels) {
			continue
		}
		if a.Status == StatusResolved && now.Sub(a.EndsAt) > resolvedResend {
			continue
		}
		post = append(post, a)
	}
	name := am.cfg.Name
	if len(post) == 0 {
		am.next, am.seen = now.Add(am.cfg.ResendInterval), changed
		return
	}
	start := time.Now()
	err := am.r.postAlerts(ctx, post, now)
	d.m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	if err == nil {
		am.next, am.seen, am.attempts = now.Add(am.cfg.ResendInterval), changed, 0
		d.m.sent.WithLabelValues(name).Inc()
		d.log.Debug().Str("receiver", name).Int("alerts", len(post)).Msg("alerts posted to alertmanager")
		return
	}
	if Classify(err) == Canceled {
		return
	}
	am.attempts++
	// Every post carries all current alerts, so a failed one is not kept:
	// the next (after the backoff, at most the resend interval) replaces it.
	wait, ok := d.retry.next(am.attempts, err, now, now)
	if !ok || wait > am.cfg.ResendInterval {
		wait = am.cfg.ResendInterval
	}
	if Classify(err) == Permanent {
		d.m.failed.WithLabelValues(name).Inc()
	} else {
		d.m.retried.WithLabelValues(name).Inc()
	}
	am.next, am.seen = now.Add(wait), changed
	d.log.Warn().Err(err).Str("receiver", name).Int("alerts", len(post)).Dur("retry_in", wait).Msg("cannot post alerts to alertmanager")
}

// pruneResolved forgets resolved alerts no receiver needs any more: every
// group that had them notified their resolution (or never knew them) and
// Alertmanager receivers are past resolvedResend.
func (d *Dispatcher) pruneResolved(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for fp, a := range d.alerts {
		if a.Status != StatusResolved || (len(d.ams) > 0 && now.Sub(a.EndsAt) <= resolvedResend) {
			continue
		}
		needed := false
		for _, r := range d.routes {
			if !r.matchers.Matches(a.Labels) {
				continue
			}
			id := groupID{r.cfg.Name, groupKey(a.Labels, r.cfg.GroupBy)}
			if g := d.groups[id]; g != nil && (g.lastFiring[fp] || len(d.out[id]) > 0) {
				needed = true
				break
			}
		}
		if !needed {
			delete(d.alerts, fp)
		}
	}

}

func hasFiring(as []Alert) bool {
	return slices.ContainsFunc(as, func(a Alert) bool { return a.Status == StatusFiring })
}
