package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/devinfra"
	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statuses lists each webhook notification as "status: fp=status,…".
func statuses(t *testing.T, c *capture) []string {
	var out []string
	for _, r := range c.requests() {
		out = append(out, summaryOf(t, r.Body))
	}
	return out
}

// TestIntegrationDelivery runs delivery against real servers: the outbox
// and silences in ClickHouse (migration 0007), a real Alertmanager
// (v0.28.1, built once into the cache) delivering to a local webhook, a
// direct webhook, and a receiver answering 500 while the Dispatcher is
// stopped and a new one started on the same outbox.
func TestIntegrationDelivery(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: ch.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cache, err := devinfra.DefaultCacheDir(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	bin, err := devinfra.InstallAlertmanager(ctx, cache, "", log)
	if err != nil {
		t.Fatal(err)
	}
	amHook, hook, flaky := newCapture(t), newCapture(t), newCapture(t)
	am, err := devinfra.StartAlertmanager(ctx, devinfra.AlertmanagerOptions{Binary: bin, Dir: filepath.Join(t.TempDir(), "am"), WebhookURL: amHook.URL + "/am"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := am.Stop(context.Background()); err != nil {
			t.Errorf("cannot stop alertmanager: %v", err)
		}
	})
	var flakyDown atomic.Bool
	var flakyAttempts atomic.Int32
	flakyDown.Store(true)
	flaky.status = func() int {
		flakyAttempts.Add(1)
		if flakyDown.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}

	const secret = "integration-webhook-secret"
	cfg := DefaultConfig()
	cfg.Tick, cfg.RetryMin, cfg.RetryMax, cfg.SilenceRefresh = 100*time.Millisecond, 200*time.Millisecond, time.Second, time.Second
	cfg.Receivers = []ReceiverConfig{
		{Name: "am", Type: TypeAlertmanager, URL: am.URL, Matchers: []string{`team="cdn"`}, ResendInterval: 2 * time.Second},
		{Name: "hook", Type: TypeWebhook, URL: hook.URL, Secret: secret, Matchers: []string{`team="cdn"`}, GroupBy: []string{"alertname", "vendor"}, GroupWait: time.Second, GroupInterval: time.Second},
		{Name: "flaky", Type: TypeWebhook, URL: flaky.URL, Secret: secret, Matchers: []string{`team="origin"`}, GroupWait: time.Second, GroupInterval: time.Second},
	}
	store := NewClickHouseStore(ch.Conn)
	start := func() (*Dispatcher, func()) {
		d, err := New(cfg, Deps{Store: store, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(rctx) }()
		return d, func() {
			stop()
			if err := <-done; err != context.Canceled {
				t.Errorf("Run: %v", err)
			}
		}
	}
	d1, stop1 := start()

	// A silence through the admin API, before the alert it mutes.
	tokens, err := httpx.NewStore([]httpx.TokenConfig{{Name: "ops", Token: "admin-token-0123456789", Scopes: []string{"admin", "read"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	d1.Mount(r, httpx.NewAuth(tokens, "test"))
	api := httptest.NewServer(r)
	defer api.Close()
	body := `{"matchers":[{"name":"vendor","op":"=","value":"cdn-s"}],"ends_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","comment":"maintenance of cdn-s"}`
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/api/v1/admin/silences", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created silenceJSON
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || created.CreatedBy != "ops" || created.State != SilenceActive {
		t.Fatalf("POST silence: %d %+v", resp.StatusCode, created)
	}

	now := time.Now().UTC().Truncate(time.Second)
	alert := func(fp, vendor, team, status string) Alert {
		a := Alert{Fingerprint: fp, Rule: "stutter-uv-high", Labels: map[string]string{"alertname": "stutter-uv-high", "vendor": vendor, "team": team, "severity": "critical"},
			Annotations: map[string]string{"summary": vendor + " stutter"}, Status: status, StartsAt: now.Add(-time.Minute), GeneratorURL: "http://wall/" + fp}
		if status == StatusResolved {
			a.EndsAt = time.Now().UTC()
		}
		return a
	}
	if err := d1.Submit(ctx, []Alert{alert("A", "cdn-b", "cdn", StatusFiring), alert("S", "cdn-s", "cdn", StatusFiring), alert("F", "cdn-o", "origin", StatusFiring)}); err != nil {
		t.Fatal(err)
	}
	amFiring := func() bool { return len(amHook.requests()) >= 1 }
	waitFor(t, time.Minute, "the firing notifications", func() bool { return len(hook.requests()) >= 1 && amFiring() })
	waitFor(t, time.Minute, "two failed attempts at the flaky receiver", func() bool { return flakyAttempts.Load() >= 2 })
	if err := d1.Submit(ctx, []Alert{alert("A", "cdn-b", "cdn", StatusResolved)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the resolved notifications", func() bool { return len(hook.requests()) >= 2 && len(amHook.requests()) >= 2 })

	// The flaky receiver's firing notification is still enqueued: stop
	// this Dispatcher, resolve F through a new one on the same outbox.
	stop1()
	d2, stop2 := start()
	defer stop2()
	if err := d2.Submit(ctx, []Alert{alert("F", "cdn-o", "origin", StatusResolved)}); err != nil {
		t.Fatal(err)
	}
	before := flakyAttempts.Load()
	waitFor(t, time.Minute, "the new dispatcher to retry", func() bool { return flakyAttempts.Load() >= before+2 })
	flakyDown.Store(false)
	waitFor(t, time.Minute, "the flaky receiver's notifications", func() bool { return len(flaky.requests()) >= 2 })
	// Nothing more may arrive: let the new Dispatcher run several group
	// intervals and Alertmanager resends before counting.
	time.Sleep(3 * time.Second)

	if got, want := statuses(t, hook), []string{"firing: A=firing", "resolved: A=resolved"}; !slices.Equal(got, want) {
		t.Errorf("direct webhook got %q, want %q", got, want)
	}
	if got, want := statuses(t, flaky), []string{"firing: F=firing", "resolved: F=resolved"}; !slices.Equal(got, want) {
		t.Errorf("flaky webhook got %q, want %q", got, want)
	}
	keys := map[string]bool{}
	for _, c := range []*capture{hook, flaky} {
		for _, r := range c.requests() {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write(r.Body)
			if r.Header.Get(SignatureHeader) != "sha256="+hex.EncodeToString(m.Sum(nil)) {
				t.Errorf("bad signature %q", r.Header.Get(SignatureHeader))
			}
			k := r.Header.Get(IdempotencyKeyHeader)
			if k == "" || keys[k] {
				t.Errorf("idempotency key %q empty or repeated", k)
			}
			keys[k] = true
		}
	}
	// Alertmanager's own webhook: one firing, one resolved, for A only.
	var amGot []string
	for _, r := range amHook.requests() {
		var m WebhookMessage
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, a := range m.Alerts {
			parts = append(parts, a.Labels["vendor"]+"="+a.Status)
		}
		amGot = append(amGot, m.Status+": "+strings.Join(parts, ","))
	}
	if want := []string{"firing: cdn-b=firing", "resolved: cdn-b=resolved"}; !slices.Equal(amGot, want) {
		t.Errorf("alertmanager's webhook got %q, want %q", amGot, want)
	}
	for _, c := range []*capture{hook, amHook} {
		for _, r := range c.requests() {
			if bytes.Contains(r.Body, []byte("cdn-s")) {
				t.Errorf("the silenced alert was sent: %s", r.Body)
			}
		}
	}
	ns, err := store.Notifications(ctx, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.State != StateSent {
			t.Errorf("outbox: %s %s seq %d is %s", n.Receiver, n.GroupKey, n.Seq, n.State)
		}
	}
	if len(ns) != 4 {
		t.Errorf("outbox holds %d notifications, want 4 (2 hook, 2 flaky)", len(ns))
	}
}
