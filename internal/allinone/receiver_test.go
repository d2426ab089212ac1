package allinone

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/qoscope/qoscope/notify"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The demo's receiver prints a signed notification with its diagnosis and
// refuses an unsigned or wrongly signed one without printing it.
func TestReceiverPrintsSignedNotifications(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	r, err := startReceiver(ctx, []byte("s3"), &out)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"stutter-uv-high","severity":"critical","vendor":"cdn-b"},` +
		`"annotations":{"summary":"cdn-b stutter 21.0% in guangdong/telecom","diagnosis":"cdn-b × guangdong × telecom: 21.0 % vs 3.0 % baseline, 90 % of the excess"}}]}`)
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(body))
		req.Header.Set(notify.SignatureHeader, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("sha256=" + notify.Sign([]byte("other"), body)); c != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", c)
	}
	if out.String() != "" {
		t.Fatalf("printed a refused notification: %s", out.String())
	}
	if c := post("sha256=" + notify.Sign([]byte("s3"), body)); c != http.StatusOK {
		t.Fatalf("signed: %d", c)
	}
	got := out.String()
	for _, want := range []string{"1 alert(s) FIRING", "FIRING   stutter-uv-high [critical] cdn-b stutter 21.0% in guangdong/telecom",
		"why: cdn-b × guangdong × telecom: 21.0 % vs 3.0 % baseline, 90 % of the excess"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
