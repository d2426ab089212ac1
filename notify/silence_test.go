package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/httpx"
)

func TestSilenceAPI(t *testing.T) {
	c := newClock(t0)
	store := NewMemStore()
	d := newTestDispatcher(t, store, c)
	tokens, err := httpx.NewStore([]httpx.TokenConfig{
		{Name: "ops", Token: "admin-token-0123456789", Scopes: []string{"admin", "read"}},
		{Name: "wall", Token: "read-token-0123456789", Scopes: []string{"read"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	d.Mount(r, httpx.NewAuth(tokens, "test"))
	srv := httptest.NewServer(r)
	defer srv.Close()
	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const admin, read = "admin-token-0123456789", "read-token-0123456789"
	ok := `{"matchers":[{"name":"vendor","op":"=~","value":"cdn-b|cdn-c"}],"ends_at":"2026-11-20T14:00:00Z","comment":"cdn-b maintenance"}`
	if code, _ := do("POST", "/api/v1/admin/silences", read, ok); code != http.StatusForbidden {
		t.Errorf("read token POST: %d, want 403", code)
	}
	for body, want := range map[string]string{
		`{"matchers":[{"name":"vendor","op":"=","value":"x"}],"ends_at":"2026-11-20T14:00:00Z"}`:                     "comment: required",
		`{"matchers":[],"ends_at":"2026-11-20T14:00:00Z","comment":"x"}`:                                             "matchers: at least one",
		`{"matchers":[{"name":"vendor","op":"=~","value":".*"}],"ends_at":"2026-11-20T14:00:00Z","comment":"x"}`:     "mute every alert",
		`{"matchers":[{"name":"vendor","op":"=","value":"x"}],"ends_at":"2026-11-20T11:00:00Z","comment":"x"}`:       "ends_at: must be after starts_at",
		`{"matchers":[{"name":"vendor","op":"~","value":"x"}],"ends_at":"2026-11-20T14:00:00Z","comment":"x"}`:       "want one of = != =~ !~",
		`{"matchers":[{"name":"vendor","op":"=","value":"x"}],"ends_at":"2026-11-20T14:00:00Z","comment":"x","y":1}`: "unknown field",
	} {
		if code, b := do("POST", "/api/v1/admin/silences", admin, body); code != http.StatusBadRequest || !strings.Contains(b, want) {
			t.Errorf("POST %s: %d %s, want 400 with %q", body, code, b, want)
		}
	}
	code, b := do("POST", "/api/v1/admin/silences", admin, ok)
	var s silenceJSON
	if err := json.Unmarshal([]byte(b), &s); err != nil || code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	if s.CreatedBy != "ops" || s.State != SilenceActive || !s.StartsAt.Equal(t0) || s.Comment != "cdn-b maintenance" {
		t.Errorf("created %+v", s)
	}
	if !d.silencedLocked(map[string]string{"vendor": "cdn-c"}, t0) || d.silencedLocked(map[string]string{"vendor": "cdn-a"}, t0) {
		t.Error("the new silence does not mute cdn-c alone")
	}
	code, b = do("GET", "/api/v1/silences", read, "")
	if code != http.StatusOK || !strings.Contains(b, `"id":"`+s.ID+`"`) || !strings.Contains(b, `"state":"active"`) {
		t.Errorf("GET: %d %s", code, b)
	}
	if code, _ := do("DELETE", "/api/v1/admin/silences/nope", admin, ""); code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d", code)
	}
	c.Add(time.Minute)
	code, b = do("DELETE", "/api/v1/admin/silences/"+s.ID, admin, "")
	if code != http.StatusOK || !strings.Contains(b, `"state":"expired"`) {
		t.Errorf("DELETE: %d %s", code, b)
	}
	if d.silencedLocked(map[string]string{"vendor": "cdn-c"}, c.Now()) {
		t.Error("an expired silence still mutes")
	}
	ss, _ := store.Silences(t.Context())
	if len(ss) != 1 || !ss[0].EndsAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("stored %+v", ss)
	}
}

// slowSilences holds a silences read between its query and its answer,
// once armed.
type slowSilences struct {
	Store
	armed         bool
	read, release chan struct{}
}

func (s *slowSilences) Silences(ctx context.Context) ([]Silence, error) {
	ss, err := s.Store.Silences(ctx)
	if s.armed {
		close(s.read)
		<-s.release
	}
	return ss, err
}

// TestSilenceSetDuringARefreshIsKept: a silence the API stores while a
// refresh's read is under way (the read misses it) stays in force when
// the refresh ends, not only from the next refresh on; a later refresh,
// whose read has it, keeps it too.
func TestSilenceSetDuringARefreshIsKept(t *testing.T) {
	c := newClock(t0)
	mem := NewMemStore()
	slow := &slowSilences{Store: mem, read: make(chan struct{}), release: make(chan struct{})}
	d := newTestDispatcher(t, slow, c)
	slow.armed = true
	ctx := context.Background()
	m, err := NewMatcher("vendor", OpEqual, "cdn-s")
	if err != nil {
		t.Fatal(err)
	}
	s := Silence{ID: "s1", Matchers: Matchers{m}, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "ops", Comment: "maintenance", UpdatedAt: t0}
	done := make(chan error)
	go func() { done <- d.refreshSilences(ctx, c.Now()) }()
	<-slow.read // the read has its answer: no silence
	if err := mem.PutSilence(ctx, s); err != nil {
		t.Fatal(err)
	}
	d.setSilence(s) // what the API does after storing it
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	muted := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.silencedLocked(map[string]string{"vendor": "cdn-s"}, c.Now())
	}
	if !muted() {
		t.Fatal("the silence set during the refresh was dropped")
	}
	slow.read, slow.release = make(chan struct{}), make(chan struct{})
	close(slow.release)
	if err := d.refreshSilences(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	if !muted() || len(d.silSet) != 0 {
		t.Errorf("after a refresh that read it: muted %v, %d silences still tracked as set locally", muted(), len(d.silSet))
	}
}
