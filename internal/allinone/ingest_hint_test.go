package allinone

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

// The curl line the demo prints must work when pasted into a shell: it
// reaches the client endpoint with the token, as NDJSON, and its event
// passes the parser with a ts of now.
func TestPrintedCurlLinePostsAValidEvent(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: the printed line cannot be run here")
	}
	type got struct {
		path, auth, ctype string
		body              []byte
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b}
	}))
	defer srv.Close()
	var out bytes.Buffer
	printIngest(&out, srv.URL, "tok123")
	text := out.String()
	if !strings.Contains(text, "tok123") {
		t.Fatalf("token not printed:\n%s", text)
	}
	_, cmd, ok := strings.Cut(text, "post your own event: ")
	if !ok {
		t.Fatalf("no curl line:\n%s", text)
	}
	if b, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	g := <-ch
	if g.path != "/v1/events/client" || g.auth != "Bearer tok123" || g.ctype != "application/x-ndjson" {
		t.Errorf("request %s auth %q type %q", g.path, g.auth, g.ctype)
	}
	var e schemas.Event
	if err := schemas.ParseLine(bytes.TrimSpace(g.body), &e); err != nil {
		t.Fatalf("event %s: %v", g.body, err)
	}
	if d := time.Since(time.UnixMilli(e.TS)); d < 0 || d > time.Minute {
		t.Errorf("ts %d is not now", e.TS)
	}
}

// The history stops before the start's minute today (the streaming
// aggregator owns it) and surrounds it yesterday and a week ago.
func TestHistorySpans(t *testing.T) {
	start := time.Date(2026, 12, 6, 4, 10, 42, 0, time.UTC)
	got := historySpans(start, 30*time.Minute)
	want := []historySpan{
		{"today", time.Date(2026, 12, 6, 3, 40, 0, 0, time.UTC), time.Date(2026, 12, 6, 4, 10, 0, 0, time.UTC)},
		{"yesterday", time.Date(2026, 12, 5, 3, 40, 0, 0, time.UTC), time.Date(2026, 12, 5, 4, 40, 0, 0, time.UTC)},
		{"last week", time.Date(2026, 11, 29, 3, 40, 0, 0, time.UTC), time.Date(2026, 11, 29, 4, 40, 0, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("spans %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("span %d: %v, want %v", i, got[i], want[i])
		}
	}
}
