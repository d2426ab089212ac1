package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// receiver delivers one notification (a group's alerts) to one place.
type receiver interface {
	send(ctx context.Context, n *Notification) error
}

// Headers of the generic webhook.
const (
	// SignatureHeader carries "sha256=" and the lowercase hex HMAC-SHA256
	// of the request body keyed with the receiver's secret.
	SignatureHeader = "X-Qoscope-Signature"
	// IdempotencyKeyHeader carries the notification's key: the same for
	// every attempt and every resend of one notification.
	IdempotencyKeyHeader = "Idempotency-Key"
)

// poster sends JSON bodies and turns answers into errors Classify knows.
type poster struct {
	client  *http.Client
	timeout time.Duration
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 64 << 10

// post POSTs body to u with headers and returns the answer's body when it
// is 2xx.
func (p poster) post(ctx context.Context, u string, body []byte, header http.Header) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, permanent(fmt.Errorf("cannot build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "qoscope-notify")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// url.Error names the URL, which may carry a robot's token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot post: %w", err)
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("cannot read the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Status: resp.StatusCode, Body: truncate(strings.TrimSpace(string(ans)), 512)}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			he.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, he
	}
	return ans, nil
}

// --- Alertmanager API v2 -------------------------------------------------

// amAlert is Alertmanager's postableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// alertmanager posts alerts to /api/v2/alerts like Prometheus: firing
// ones with endsAt = now + 4 × resend interval (so Alertmanager resolves
// them by itself if qoscope stops sending), resolved ones with their
// endsAt.
type alertmanager struct {
	url    string
	resend time.Duration
	p      poster
}

func (r *alertmanager) postAlerts(ctx context.Context, alerts []Alert, now time.Time) error {
	out := make([]amAlert, len(alerts))
	for i, a := range alerts {
		out[i] = amAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt.UTC(), EndsAt: a.EndsAt.UTC(), GeneratorURL: a.GeneratorURL}
		if a.Status == StatusFiring {
			out[i].EndsAt = now.Add(4 * r.resend).UTC()
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return permanent(err)
	}
	_, err = r.p.post(ctx, r.url, body, nil)
	return err
}

// --- generic webhook (Alertmanager's v4 payload) -------------------------

// WebhookMessage is the generic webhook's body: Alertmanager's webhook
// payload, version 4, so receivers written for Alertmanager work unchanged.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type webhook struct {
	name, url   string
	secret      []byte
	externalURL string
	groupBy     []string
	p           poster
}

func (r *webhook) payload(n *Notification) ([]byte, error) {
	m := WebhookMessage{
		Version: "4", GroupKey: n.GroupKey, Status: groupStatus(n.Alerts), Receiver: r.name,
		GroupLabels: groupLabels(n.Alerts, r.groupBy), CommonLabels: commonLabels(n.Alerts, func(a Alert) map[string]string { return a.Labels }),
		CommonAnnotations: commonLabels(n.Alerts, func(a Alert) map[string]string { return a.Annotations }),
		ExternalURL:       r.externalURL, Alerts: make([]WebhookAlert, len(n.Alerts)),
	}
	for i, a := range n.Alerts {
		m.Alerts[i] = WebhookAlert{Status: a.Status, Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations),
			StartsAt: a.StartsAt.UTC(), EndsAt: a.EndsAt.UTC(), GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint}
	}
	return json.Marshal(m)
}

func (r *webhook) send(ctx context.Context, n *Notification) error {
	body, err := r.payload(n)
	if err != nil {
		return permanent(err)
	}
	h := http.Header{}
	h.Set(SignatureHeader, "sha256="+Sign(r.secret, body))
	h.Set(IdempotencyKeyHeader, n.Key)
	_, err = r.p.post(ctx, r.url, body, h)
	return err
}

// Verify reports whether header (the SignatureHeader value) is the
// signature of body with secret, in constant time.
func Verify(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	return hmac.Equal([]byte(got), []byte(Sign(secret, body)))
}

// Sign is the webhook's signature of body: lowercase hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// --- robots: DingTalk, WeCom, Feishu ------------------------------------

// robotAnswer is the body DingTalk and WeCom (errcode) and Feishu (code)
// answer with, HTTP 200 even for errors.
type robotAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
	Code    *int   `json:"code"`
	Msg     string `json:"msg"`
}

// rateLimitCodes are the robots' "too many messages" codes: DingTalk
// 130101, WeCom 45009 (and -1, system busy), Feishu 9499 and 11232.
var rateLimitCodes = map[int]bool{130101: true, 45009: true, -1: true, 9499: true, 11232: true}

func robotError(ans []byte) error {
	var a robotAnswer
	if err := json.Unmarshal(ans, &a); err != nil {
		return permanent(fmt.Errorf("unexpected answer %q: %w", truncate(string(ans), 200), err))
	}
	code, msg := 0, a.ErrMsg
	switch {
	case a.ErrCode != nil:
		code = *a.ErrCode
	case a.Code != nil:
		code, msg = *a.Code, a.Msg
	}
	if code == 0 {
		return nil
	}
	return &APIError{Code: code, Msg: msg, RateLimited: rateLimitCodes[code]}
}

// Message size limits of the robots (bytes of the markdown/text).
const (
	dingTalkMaxText = 18000
	weComMaxText    = 4000
	feishuMaxText   = 18000
)

type dingTalk struct {
	url    string
	secret string
	now    func() time.Time
	p      poster
}

// DingTalkSign is DingTalk's signature of a robot request: the base64 of
// HMAC-SHA256 keyed with the secret over "<timestamp ms>\n<secret>" (the
// caller URL-encodes it into the sign parameter).
func DingTalkSign(secret string, timestampMs int64) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d\n%s", timestampMs, secret)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (r *dingTalk) send(ctx context.Context, n *Notification) error {
	title, text := markdown(n.Alerts)
	body, err := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": title, "text": truncate(text, dingTalkMaxText)}})
	if err != nil {
		return permanent(err)
	}
	u := r.url
	if r.secret != "" {
		ts := r.now().UnixMilli()
		u += sep(u) + "timestamp=" + strconv.FormatInt(ts, 10) + "&sign=" + url.QueryEscape(DingTalkSign(r.secret, ts))
	}
	ans, err := r.p.post(ctx, u, body, nil)
	if err != nil {
		return err
	}
	return robotError(ans)
}

type weCom struct {
	url string
	p   poster
}

func (r *weCom) send(ctx context.Context, n *Notification) error {
	_, text := markdown(n.Alerts)
	body, err := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": truncate(text, weComMaxText)}})
	if err != nil {
		return permanent(err)
	}
	ans, err := r.p.post(ctx, r.url, body, nil)
	if err != nil {
		return err
	}
	return robotError(ans)
}

type feishu struct {
	url    string
	secret string
	now    func() time.Time
	p      poster
}

// FeishuSign is Feishu's signature of a custom bot request: the base64 of
// HMAC-SHA256 keyed with "<timestamp s>\n<secret>" over an empty message.
func FeishuSign(secret string, timestampS int64) string {
	m := hmac.New(sha256.New, []byte(strconv.FormatInt(timestampS, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (r *feishu) send(ctx context.Context, n *Notification) error {
	title, text := markdown(n.Alerts)
	msg := map[string]any{"msg_type": "text", "content": map[string]string{"text": truncate(title+"\n"+text, feishuMaxText)}}
	if r.secret != "" {
		ts := r.now().Unix()
		msg["timestamp"], msg["sign"] = strconv.FormatInt(ts, 10), FeishuSign(r.secret, ts)
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return permanent(err)
	}
	ans, err := r.p.post(ctx, r.url, body, nil)
	if err != nil {
		return err
	}
	return robotError(ans)
}

// --- PagerDuty Events API v2 --------------------------------------------

type pagerDuty struct {
	url        string
	routingKey string
	p          poster
}

type pdEvent struct {
	RoutingKey  string     `json:"routing_key"`
	EventAction string     `json:"event_action"`
	DedupKey    string     `json:"dedup_key"`
	Payload     *pdPayload `json:"payload,omitempty"`
	Client      string     `json:"client,omitempty"`
	ClientURL   string     `json:"client_url,omitempty"`
}

type pdPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     time.Time      `json:"timestamp"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// pdSeverity maps a rule's severity to PagerDuty's four.
func pdSeverity(s string) string {
	switch s {
	case "critical", "warning", "info":
		return s
	}
	return "error"
}

// send posts one event per alert (trigger or resolve, dedup_key = the
// fingerprint): PagerDuty's incidents are per alert, and an event sent
// twice with one dedup_key changes nothing, so a retry of the whole
// notification after a partial failure is harmless.
func (r *pagerDuty) send(ctx context.Context, n *Notification) error {
	for _, a := range n.Alerts {
		ev := pdEvent{RoutingKey: r.routingKey, EventAction: "trigger", DedupKey: a.Fingerprint}
		if a.Status == StatusResolved {
			ev.EventAction = "resolve"
		} else {
			ev.Payload = &pdPayload{
				Summary: truncate(summary(a), 1024), Source: "qoscope", Severity: pdSeverity(a.Labels["severity"]),
				Timestamp: a.StartsAt.UTC(), Component: a.Labels["vendor"], Group: a.Rule,
				CustomDetails: map[string]any{"labels": a.Labels, "annotations": a.Annotations},
			}
			ev.Client, ev.ClientURL = "qoscope", a.GeneratorURL
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return permanent(err)
		}
		if _, err := r.p.post(ctx, r.url, body, nil); err != nil {
			return err
		}
	}
	return nil
}

// --- shared text ---------------------------------------------------------

// groupStatus is "firing" when any alert fires, else "resolved".
func groupStatus(alerts []Alert) string {
	for _, a := range alerts {
		if a.Status == StatusFiring {
			return StatusFiring
		}
	}
	return StatusResolved
}

// groupLabels are the group_by labels' values (all labels for "...").
func groupLabels(alerts []Alert, groupBy []string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	if slices.Contains(groupBy, groupByAll) {
		return cloneMap(alerts[0].Labels)
	}
	for _, l := range groupBy {
		if v, ok := alerts[0].Labels[l]; ok {
			out[l] = v
		}
	}
	return out
}

// commonLabels are the pairs every alert shares.
func commonLabels(alerts []Alert, of func(Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	maps.Copy(out, of(alerts[0]))
	for _, a := range alerts[1:] {
		m := of(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

func summary(a Alert) string {
	if s := a.Annotations["summary"]; s != "" {
		return s
	}
	return a.Rule + " " + labelString(a.Labels)
}

// markdown is the robots' message: a title ("[FIRING:2] rule") and a
// markdown list of the alerts, firing first.
func markdown(alerts []Alert) (title, text string) {
	var firing, resolved []Alert
	for _, a := range alerts {
		if a.Status == StatusFiring {
			firing = append(firing, a)
		} else {
			resolved = append(resolved, a)
		}
	}
	name := ""
	if len(alerts) > 0 {
		name = alerts[0].Rule
	}
	if len(firing) > 0 {
		title = fmt.Sprintf("[FIRING:%d] %s", len(firing), name)
	} else {
		title = fmt.Sprintf("[RESOLVED] %s", name)
	}
	var b strings.Builder
	b.WriteString("### " + title + "\n")
	write := func(head string, as []Alert) {
		if len(as) == 0 {
			return
		}
		b.WriteString("\n**" + head + "**\n")
		for _, a := range as {
			b.WriteString("\n- " + summary(a) + "\n")
			b.WriteString("  - labels: " + labelString(a.Labels) + "\n")
			b.WriteString("  - since: " + a.StartsAt.UTC().Format(time.RFC3339))
			if a.Status == StatusResolved && !a.EndsAt.IsZero() {
				b.WriteString(", resolved: " + a.EndsAt.UTC().Format(time.RFC3339))
			}
			b.WriteString("\n")
			if d := a.Annotations["diagnosis"]; d != "" {
				b.WriteString("  - diagnosis: " + d + "\n")
			}
			if a.GeneratorURL != "" {
				b.WriteString("  - [view](" + a.GeneratorURL + ")\n")
			}
		}
	}
	write("Firing", firing)
	write("Resolved", resolved)
	return title, b.String()
}

// labelString writes labels sorted by name: a="x", b="y".
func labelString(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return strings.Join(parts, ", ")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}
