package live

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query"
)

// The incident of the integration test: 2 vendors × 2 provinces × 2 ISPs,
// 50 users in each group, 1 of them stuttering (2 %) at every minute but
// 30–32, when 30 of the 50 in cdn-b × guangdong × telecom stutter. The
// total is then (7 + 30) / 400 = 9.25 %, above the rule's 5 %; with for:
// 2m it is pending at 30, firing at 32 and resolved at 33 (2 %).
//
// Diagnosis at 32, pending since 30: the baseline is the total's rate over
// minutes 0–29, 240 / 12,000 = 2 %. Excess of cdn-b × guangdong × telecom
// = 30 − 50 × 0.02 = 29, every other group of its set 1 − 1 = 0, so its
// share is 100 %; vendor cdn-b (33 − 200 × 0.02 = 29) and guangdong ×
// telecom (31 − 100 × 0.02 = 29) have the same excess but are skipped: the
// finer group holds all of it (≥ 80 %). One cause.
const incidentRules = `
- name: stutter-total
  source: client
  metric: stutter_rate_uv
  group_by: []
  above: 0.05
  min_users: 100
  for: 2m
  severity: warning
  annotations: {summary: "total stutter {{ .Value | pct }} over {{ .Users }} users"}
`

const wantCause = "cdn-b × guangdong × telecom: 60 % vs 2.0 % baseline, 100 % of the excess"

type recordingSink struct {
	mu  sync.Mutex
	got [][]notify.Alert
}

func (s *recordingSink) Submit(_ context.Context, as []notify.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, append([]notify.Alert(nil), as...))
	return nil
}

func (s *recordingSink) all() [][]notify.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]notify.Alert(nil), s.got...)
}

func TestLiveIncidentOnRealServers(t *testing.T) {
	ch := testenv.ClickHouse(t)
	k := testenv.Kafka(t, testenv.WithTopics())
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: ch.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) {
		t.Helper()
		if err := ch.Conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
	}
	// insertMinute writes minute m's rows as one aggregator partition does.
	insertMinute := func(m int, final bool) {
		t.Helper()
		ws := at(m).Format(time.DateTime)
		f, version := 0, 1
		if final {
			f, version = 1, 2
		}
		bad := func(v, p, i string) int {
			if m >= 30 && m <= 32 && v == "cdn-b" && p == "guangdong" && i == "telecom" {
				return 30
			}
			return 1
		}
		type agg struct{ users, stutter int }
		sets := map[string]map[string]*agg{"": {}, "vendor": {}, "province,isp": {}, "vendor,province,isp": {}}
		add := func(set, key string, s int, n int) {
			a := sets[set][key]
			if a == nil {
				a = &agg{}
				sets[set][key] = a
			}
			a.users += n
			a.stutter += s
		}
		for _, v := range []string{"cdn-a", "cdn-b"} {
			for _, p := range []string{"guangdong", "beijing"} {
				for _, i := range []string{"telecom", "unicom"} {
					s := bad(v, p, i)
					add("", "", s, 50)
					add("vendor", v, s, 50)
					add("province,isp", p+"|"+i, s, 50)
					add("vendor,province,isp", v+"|"+p+"|"+i, s, 50)
				}
			}
		}
		var vals []string
		for set, keys := range sets {
			names := strings.Split(set, ",")
			for key, a := range keys {
				var kv []string
				if set != "" {
					for j, val := range strings.Split(key, "|") {
						kv = append(kv, fmt.Sprintf("'%s','%s'", names[j], val))
					}
				}
				vals = append(vals, fmt.Sprintf("('%s','%s',map(%s),'t.client',0,%d,%d,%d,%d)", ws, set, strings.Join(kv, ","), version, f, a.users, a.stutter))
			}
		}
		exec("INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users) VALUES " + strings.Join(vals, ","))
	}
	// checkpoint: the partition's clock has passed minute complete's end,
	// and every window up to minute final's end is closed.
	wm := ch.Watermarks("aggs")
	checkpoint := func(complete, final int) {
		t.Helper()
		wm.Advance(t, "t.client", 0, at(complete), at(final))
	}

	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(incidentRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Rules, cfg.Brokers, cfg.AggregatorGroup = rulesFile, k.Brokers, "aggs"
	cfg.Topics = config.Topics{Client: "t.client", CDN: "t.cdn", Origin: "t.origin"}
	cfg.Leader.Topic, cfg.Leader.GroupID = k.ReserveTopic("alert-leader"), k.GroupID("alert-leader")
	cfg.Leader.SessionTimeout, cfg.Leader.HeartbeatInterval = 6*time.Second, 500*time.Millisecond
	cfg.Evaluation.Interval = 100 * time.Millisecond
	cat := catalog(t)
	sink := &recordingSink{}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)

	// start runs a serve instance's alerting until stop, woken by wake
	// (nil: on its interval only); it returns once the instance leads and
	// has loaded its state.
	type instance struct {
		svc  *Service
		stop func()
	}
	start := func(wake <-chan struct{}) instance {
		t.Helper()
		svc, err := NewService(cfg, ch.Conn, query.NewQuerier(ch.Conn, cat, query.Options{}), sink, prometheus.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		svc.WakeOn(wake)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(rctx) }()
		waitFor(t, "leadership and state", func() bool { return svc.IsLeader() && svc.Evaluator().Snapshot() != nil })
		return instance{svc, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}}
	}
	evaluated := func(in instance, m int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("minute %d evaluated", m), func() bool {
			st := in.svc.Evaluator().Snapshot()
			return st != nil && !st.current().Evaluated.Before(at(m)) && len(st.Outbox) == 0
		})
	}

	for m := range 30 {
		insertMinute(m, true)
	}
	checkpoint(29, 29)
	a := start(nil)
	evaluated(a, 29) // the first start evaluates from the newest complete minute
	insertMinute(30, false)
	checkpoint(30, 29)
	evaluated(a, 30) // pending
	insertMinute(30, true)
	insertMinute(31, false)
	checkpoint(31, 30)
	evaluated(a, 31)
	a.stop() // restart while pending

	b := start(nil)
	insertMinute(31, true)
	insertMinute(32, false)
	checkpoint(32, 31)
	evaluated(b, 32) // held 30–32: firing
	// GET /api/v1/alerts answers from the state while firing.
	rec := httptest.NewRecorder()
	b.svc.ServeAlerts(rec, httptest.NewRequest(http.MethodGet, "/api/v1/alerts?state=active", nil))
	var active ActiveAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &active); err != nil || rec.Code != 200 {
		t.Fatalf("active: %d %s", rec.Code, rec.Body)
	}
	if len(active.Alerts) != 1 || active.Alerts[0].State != "firing" || len(active.Alerts[0].Diagnosis) != 1 ||
		active.Alerts[0].Diagnosis[0].Text != wantCause || active.At == nil || !active.At.Equal(at(32)) {
		t.Errorf("active alerts: %s", rec.Body)
	}
	b.stop() // restart while firing

	c := start(nil)
	insertMinute(32, true)
	insertMinute(33, false)
	checkpoint(33, 32)
	evaluated(c, 33) // back to 2 %: resolved
	c.stop()

	// Woken by its aggregator's flushes (all-in-one), an instance looks
	// at the watermarks at once, not at its next interval: with the
	// interval at a minute, minute 34 is evaluated well before it.
	cfg.Evaluation.Interval = time.Minute
	wake := make(chan struct{}, 1)
	woken := start(wake)
	evaluated(woken, 33) // its first look, at start
	insertMinute(33, true)
	insertMinute(34, false)
	checkpoint(34, 33)
	wake <- struct{}{}
	deadline := time.Now().Add(20 * time.Second)
	for st := woken.svc.Evaluator().Snapshot(); st.current().Evaluated.Before(at(34)); st = woken.svc.Evaluator().Snapshot() {
		if time.Now().After(deadline) {
			t.Fatal("minute 34 not evaluated 20 s after the wake; the next interval is a minute away")
		}
		time.Sleep(50 * time.Millisecond)
	}
	woken.stop()

	// Delivery: one firing (with the diagnosis naming the degraded group
	// first), then one resolved; the restarts sent nothing again.
	got := sink.all()
	var lines []string
	for _, as := range got {
		for _, a := range as {
			lines = append(lines, fmt.Sprintf("%s@%d", a.Status, int(a.EvaluatedAt.Sub(t0)/time.Minute)))
		}
	}
	if strings.Join(lines, " ") != "firing@32 resolved@33" {
		t.Fatalf("sink got %v, want a firing at 32 then a resolved at 33", lines)
	}
	f := got[0][0]
	if f.Labels["alertname"] != "stutter-total" || f.Annotations["diagnosis"] != wantCause ||
		f.Annotations["summary"] != "total stutter 9.2% over 400 users" || !f.StartsAt.Equal(at(32)) {
		t.Errorf("firing notification: %+v", f)
	}
	if r := got[1][0]; r.Fingerprint != f.Fingerprint || !r.EndsAt.Equal(at(33)) || !r.StartsAt.Equal(at(32)) {
		t.Errorf("resolved notification: %+v", r)
	}

	// The history, as GET /api/v1/alerts?from=&to= reads it.
	rec = httptest.NewRecorder()
	c.svc.ServeAlerts(rec, httptest.NewRequest(http.MethodGet, "/api/v1/alerts?from="+at(0).Format(time.RFC3339)+"&to="+at(60).Format(time.RFC3339)+"&rule=stutter-total", nil))
	var hist HistoryAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &hist); err != nil || rec.Code != 200 {
		t.Fatalf("history: %d %s", rec.Code, rec.Body)
	}
	var changes []string
	for _, h := range hist.Changes {
		changes = append(changes, fmt.Sprintf("%d:%s", int(h.At.Sub(t0)/time.Minute), h.State))
	}
	if strings.Join(changes, " ") != "30:pending 32:firing 33:resolved" {
		t.Errorf("history: %v", changes)
	}
	var diag string
	if err := ch.Conn.QueryRow(ctx, "SELECT diagnosis FROM alert_history FINAL WHERE state = 'firing'").Scan(&diag); err != nil || !strings.Contains(diag, wantCause) {
		t.Errorf("history diagnosis: %q, %v", diag, err)
	}
}

// waitFor polls cond until it holds; the deadline only turns a hang into a
// failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
