package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/qoscope/qoscope/notify"
)

// receiver is the demo's on-call end: a webhook receiver like one a team
// would write for Alertmanager's payload (notify.WebhookMessage). It checks
// each request's signature and prints the notification, so the demo shows
// what on-call gets, when.
type receiver struct {
	secret []byte
	out    io.Writer
	mu     sync.Mutex // one notification's lines together
	srv    *http.Server
	url    string
}

// startReceiver listens on a free loopback port until ctx ends.
func startReceiver(ctx context.Context, secret []byte, out io.Writer) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the demo's webhook receiver: %w", err)
	}
	r := &receiver{secret: secret, out: out, url: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = r.srv.Close()
	}()
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	if !notify.Verify(r.secret, body, req.Header.Get(notify.SignatureHeader)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m notify.WebhookMessage
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "not a webhook message", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = io.WriteString(r.out, formatNotification(&m, time.Now()))
	w.WriteHeader(http.StatusOK)
}

// formatNotification is what the demo prints for one notification: one
// line per alert with its summary, and its diagnosis when it has one.
func formatNotification(m *notify.WebhookMessage, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n>> on-call webhook %s UTC, signature ok: %d alert(s) %s\n", now.UTC().Format(time.TimeOnly), len(m.Alerts), strings.ToUpper(m.Status))
	alerts := append([]notify.WebhookAlert(nil), m.Alerts...)
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].Labels["alertname"] < alerts[j].Labels["alertname"] })
	for _, a := range alerts {
		what := a.Annotations["summary"]
		if what == "" {
			what = labelList(a.Labels)
		}
		fmt.Fprintf(&b, "   %-8s %s [%s] %s\n", strings.ToUpper(a.Status), a.Labels["alertname"], a.Labels["severity"], what)
		if d := a.Annotations["diagnosis"]; d != "" && a.Status == notify.StatusFiring {
			for _, line := range strings.Split(strings.TrimSpace(d), "\n") {
				fmt.Fprintf(&b, "            why: %s\n", strings.TrimSpace(line))
			}
		}
	}
	return b.String()
}

func labelList(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k != "alertname" && k != "severity" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, " ")
}
