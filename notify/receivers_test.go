package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var labelsA = map[string]string{"vendor": "cdn-b", "severity": "critical"}

func TestWebhookPayloadSignatureAndKey(t *testing.T) {
	hook := newCapture(t)
	c := newClock(t0)
	d := newTestDispatcher(t, NewMemStore(), c, ReceiverConfig{Name: "hook", Type: TypeWebhook, URL: hook.URL + "/in", SecretEnv: "HOOK_SECRET"})
	ctx := context.Background()
	if err := d.Submit(ctx, []Alert{alertAt("fpA", "stutter", StatusFiring, t0, labelsA)}); err != nil {
		t.Fatal(err)
	}
	d.step(ctx)
	if n := len(hook.requests()); n != 0 {
		t.Fatalf("sent %d before group_wait", n)
	}
	sendAt := c.Add(30 * time.Second)
	d.step(ctx)
	got := hook.requests()
	if len(got) != 1 {
		t.Fatalf("want 1 notification after group_wait, got %d", len(got))
	}
	jsonEqual(t, "webhook body", got[0].Body, `{"version":"4","groupKey":"{alertname=\"stutter\"}","truncatedAlerts":0,"status":"firing","receiver":"hook",
	 "groupLabels":{"alertname":"stutter"},"commonLabels":{"alertname":"stutter","severity":"critical","vendor":"cdn-b"},
	 "commonAnnotations":{"summary":"stutter on cdn-b"},"externalURL":"http://qoscope.test",
	 "alerts":[{"status":"firing","labels":{"alertname":"stutter","severity":"critical","vendor":"cdn-b"},"annotations":{"summary":"stutter on cdn-b"},
	   "startsAt":"2026-11-20T12:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://wall/alerts/fpA","fingerprint":"fpA"}]}`)
	mac := hmac.New(sha256.New, []byte("webhook-secret-123"))
	mac.Write(got[0].Body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); got[0].Header.Get(SignatureHeader) != want {
		t.Errorf("signature %q, want %q", got[0].Header.Get(SignatureHeader), want)
	}
	// The key: SHA-256 of receiver, group key, seq (the group's first:
	// its notification time in ms) and fingerprint+status, 0xff between.
	h := sha256.Sum256([]byte("hook\xff{alertname=\"stutter\"}\xff" + strconv.FormatInt(sendAt.UnixMilli(), 10) + "\xfffpA\xfffiring\xff"))
	if got[0].Header.Get(IdempotencyKeyHeader) != hex.EncodeToString(h[:]) {
		t.Errorf("idempotency key %q, want %q", got[0].Header.Get(IdempotencyKeyHeader), hex.EncodeToString(h[:]))
	}
}

func TestSignKnownVector(t *testing.T) {
	// printf '{"a":1}' | openssl dgst -sha256 -hmac webhook-secret-123
	if got := Sign([]byte("webhook-secret-123"), []byte(`{"a":1}`)); got != "7d7a0b205f9e31d2c40e4094fc15c49abd9c84611f5caac95c10903984eb2a4a" {
		t.Errorf("Sign = %s", got)
	}
}

func oneFiring() *Notification {
	return &Notification{Key: "k1", Receiver: "r", GroupKey: `{alertname="stutter"}`, Seq: 1,
		Alerts: []Alert{alertAt("fpA", "stutter", StatusFiring, t0, labelsA)}}
}

const markdownA = "### [FIRING:1] stutter\n\n**Firing**\n\n- stutter on cdn-b\n" +
	"  - labels: alertname=\"stutter\", severity=\"critical\", vendor=\"cdn-b\"\n" +
	"  - since: 2026-11-20T12:00:00Z\n  - [view](http://wall/alerts/fpA)\n"

func TestDingTalkSignedMarkdown(t *testing.T) {
	srv := newCapture(t)
	srv.answer = `{"errcode":0,"errmsg":"ok"}`
	now := time.UnixMilli(1700000000000)
	r := &dingTalk{url: srv.URL + "/robot/send?access_token=tok", secret: "SECtest", now: func() time.Time { return now }, p: poster{client: srv.Client(), timeout: time.Second}}
	if err := r.send(context.Background(), oneFiring()); err != nil {
		t.Fatal(err)
	}
	got := srv.requests()[0]
	q, _ := url.ParseQuery(got.Query)
	// DingTalk's documented signature: base64(HmacSHA256(secret,
	// "1700000000000\nSECtest")), computed with openssl.
	if q.Get("access_token") != "tok" || q.Get("timestamp") != "1700000000000" || q.Get("sign") != "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g=" {
		t.Errorf("query %q", got.Query)
	}
	jsonEqual(t, "dingtalk body", got.Body, `{"msgtype":"markdown","markdown":{"title":"[FIRING:1] stutter","text":`+strconv.Quote(markdownA)+`}}`)

	srv.answer = `{"errcode":310000,"errmsg":"sign not match"}`
	err := r.send(context.Background(), oneFiring())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != 310000 || Classify(err) != Permanent {
		t.Errorf("bad signature answer: %v (%v)", err, Classify(err))
	}
	srv.answer = `{"errcode":130101,"errmsg":"send too fast"}`
	if err := r.send(context.Background(), oneFiring()); Classify(err) != Retry {
		t.Errorf("rate limit: %v is %v, want retryable", err, Classify(err))
	}
}

func TestWeComMarkdown(t *testing.T) {
	srv := newCapture(t)
	srv.answer = `{"errcode":0,"errmsg":"ok"}`
	r := &weCom{url: srv.URL + "/cgi-bin/webhook/send?key=k", p: poster{client: srv.Client(), timeout: time.Second}}
	if err := r.send(context.Background(), oneFiring()); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, "wecom body", srv.requests()[0].Body, `{"msgtype":"markdown","markdown":{"content":`+strconv.Quote(markdownA)+`}}`)
}

func TestFeishuSignedText(t *testing.T) {
	srv := newCapture(t)
	srv.answer = `{"code":0,"msg":"success"}`
	now := time.Unix(1700000000, 0)
	r := &feishu{url: srv.URL + "/open-apis/bot/v2/hook/x", secret: "feishu-secret", now: func() time.Time { return now }, p: poster{client: srv.Client(), timeout: time.Second}}
	if err := r.send(context.Background(), oneFiring()); err != nil {
		t.Fatal(err)
	}
	// Feishu's documented signature: base64(HmacSHA256(key =
	// "1700000000\nfeishu-secret", message = "")), computed with openssl.
	jsonEqual(t, "feishu body", srv.requests()[0].Body, `{"timestamp":"1700000000","sign":"OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU=","msg_type":"text","content":{"text":`+strconv.Quote("[FIRING:1] stutter\n"+markdownA)+`}}`)
	srv.answer = `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`
	if err := r.send(context.Background(), oneFiring()); Classify(err) != Permanent {
		t.Errorf("bad signature: %v is %v, want permanent", err, Classify(err))
	}
}

func TestPagerDutyEvents(t *testing.T) {
	srv := newCapture(t)
	r := &pagerDuty{url: srv.URL + "/v2/enqueue", routingKey: "R0UT1NGKEY", p: poster{client: srv.Client(), timeout: time.Second}}
	n := oneFiring()
	n.Alerts = append(n.Alerts, alertAt("fpB", "stutter", StatusResolved, t0, map[string]string{"vendor": "cdn-a", "severity": "warning"}))
	if err := r.send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := srv.requests()
	if len(got) != 2 {
		t.Fatalf("want one event per alert, got %d", len(got))
	}
	jsonEqual(t, "trigger", got[0].Body, `{"routing_key":"R0UT1NGKEY","event_action":"trigger","dedup_key":"fpA",
	  "payload":{"summary":"stutter on cdn-b","source":"qoscope","severity":"critical","timestamp":"2026-11-20T12:00:00Z","component":"cdn-b","group":"stutter",
	    "custom_details":{"labels":{"alertname":"stutter","severity":"critical","vendor":"cdn-b"},"annotations":{"summary":"stutter on cdn-b"}}},
	  "client":"qoscope","client_url":"http://wall/alerts/fpA"}`)
	jsonEqual(t, "resolve", got[1].Body, `{"routing_key":"R0UT1NGKEY","event_action":"resolve","dedup_key":"fpB"}`)
}

func TestAlertmanagerPost(t *testing.T) {
	srv := newCapture(t)
	r := &alertmanager{url: srv.URL + "/api/v2/alerts", resend: time.Minute, p: poster{client: srv.Client(), timeout: time.Second}}
	now := t0.Add(3 * time.Minute)
	res := alertAt("fpB", "stutter", StatusResolved, t0, map[string]string{"vendor": "cdn-a"})
	if err := r.postAlerts(context.Background(), []Alert{alertAt("fpA", "stutter", StatusFiring, t0, labelsA), res}, now); err != nil {
		t.Fatal(err)
	}
	got := srv.requests()[0]
	if got.Path != "/api/v2/alerts" {
		t.Errorf("path %s", got.Path)
	}
	// Firing: endsAt = now + 4 × resend (12:03 + 4m); resolved: its end.
	jsonEqual(t, "alertmanager body", got.Body, `[
	  {"labels":{"alertname":"stutter","severity":"critical","vendor":"cdn-b"},"annotations":{"summary":"stutter on cdn-b"},
	   "startsAt":"2026-11-20T12:00:00Z","endsAt":"2026-11-20T12:07:00Z","generatorURL":"http://wall/alerts/fpA"},
	  {"labels":{"alertname":"stutter","vendor":"cdn-a"},"annotations":{"summary":"stutter on cdn-a"},
	   "startsAt":"2026-11-20T12:00:00Z","endsAt":"2026-11-20T12:05:00Z","generatorURL":"http://wall/alerts/fpB"}]`)
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Class
	}{
		{&HTTPError{Status: 500}, Retry},
		{&HTTPError{Status: 503}, Retry},
		{&HTTPError{Status: 429}, Retry},
		{&HTTPError{Status: 400}, Permanent},
		{&HTTPError{Status: 401}, Permanent},
		{&HTTPError{Status: 404}, Permanent},
		{&APIError{Code: 310000}, Permanent},
		{&APIError{Code: 45009, RateLimited: true}, Retry},
		{permanent(errors.New("cannot encode")), Permanent},
		{context.DeadlineExceeded, Retry},
		{&url.Error{Op: "Post", URL: "x", Err: errors.New("connection refused")}, Retry},
		{context.Canceled, Canceled},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRetrierBackoff(t *testing.T) {
	r := retrier{min: time.Second, max: 8 * time.Second, giveUp: time.Minute}
	// Attempt n waits between half and all of min(min × 2^(n-1), max).
	for attempt, full := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 9: 8 * time.Second} {
		w, ok := r.next(attempt, &HTTPError{Status: 502}, t0, t0)
		if !ok || w < full/2 || w > full {
			t.Errorf("attempt %d: wait %v (%v), want in [%v, %v]", attempt, w, ok, full/2, full)
		}
	}
	if _, ok := r.next(1, &HTTPError{Status: 400}, t0, t0); ok {
		t.Error("a 400 is retried")
	}
	if _, ok := r.next(1, &HTTPError{Status: 502}, t0, t0.Add(time.Minute)); ok {
		t.Error("retried past give_up_after")
	}
	if w, ok := r.next(1, &HTTPError{Status: 429, RetryAfter: 5 * time.Second}, t0, t0); !ok || w != 5*time.Second {
		t.Errorf("Retry-After 5s: wait %v", w)
	}
}

// Verify accepts the header the webhook sends and nothing else: the HMAC
// of "hello" with "k" was computed with
// `printf hello | openssl dgst -sha256 -hmac k`.
func TestVerify(t *testing.T) {
	const good = "sha256=406e4b43f87095aa86ca6299d25e875921fefa180f02043bb29bec5681c0c2d0"
	if !Verify([]byte("k"), []byte("hello"), good) {
		t.Error("the right signature is refused")
	}
	for _, bad := range []string{strings.TrimPrefix(good, "sha256="), "sha256=" + strings.Repeat("0", 64), good[:len(good)-1], ""} {
		if Verify([]byte("k"), []byte("hello"), bad) {
			t.Errorf("%q accepted", bad)
		}
	}
	if Verify([]byte("other"), []byte("hello"), good) {
		t.Error("another secret's signature accepted")
	}
}
