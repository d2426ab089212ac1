package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
)

// The tests insert rows into the minute, hour and day tables as the
// aggregator writes them (one partial row per window, grouping, key,
// topic and Kafka partition) and compute every expected number by hand
// from docs/METRICS.md's definitions, in the comments.

const (
	readToken  = "read-token-0123456789"
	adminToken = "admin-token-0123456789"
)

type fixture struct {
	env *testenv.ClickHouseEnv
	srv *Server
	ts  *httptest.Server
	ctx context.Context
}

// newFixture migrates a fresh database and serves the API over it with
// the clock at now (zero: the real clock).
func newFixture(t *testing.T, now time.Time, edit ...func(*Config)) *fixture {
	t.Helper()
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Tokens = []httpx.TokenConfig{
		{Name: "wall", Token: readToken, Scopes: []string{"read"}},
		{Name: "ops", Token: adminToken, Scopes: []string{"admin"}},
	}
	for _, e := range edit {
		e(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Deps{Conn: env.Conn, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	if !now.IsZero() {
		d.Now = func() time.Time { return now }
	}
	s, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &fixture{env: env, srv: s, ts: ts, ctx: ctx}
}

func (f *fixture) exec(t *testing.T, sql string) {
	t.Helper()
	if err := f.env.Conn.Exec(f.ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// get requests path?query with the read token; it returns the status and
// the raw body.
func (f *fixture) get(t *testing.T, path string, q url.Values) (int, []byte) {
	t.Helper()
	return f.getWith(t, readToken, path+"?"+q.Encode())
}

func (f *fixture) getWith(t *testing.T, token, pathQuery string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.ts.URL+pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// getJSON requests and decodes a 200 answer into v.
func (f *fixture) getJSON(t *testing.T, path string, q url.Values, v any) {
	t.Helper()
	code, b := f.get(t, path, q)
	if code != http.StatusOK {
		t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// errorOf requests and returns a non-200 answer's status, error and param.
func (f *fixture) errorOf(t *testing.T, path string, q url.Values) (int, string, string) {
	t.Helper()
	code, b := f.get(t, path, q)
	var e struct{ Error, Param string }
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("GET %s?%s: %d, not JSON: %s", path, q.Encode(), code, b)
	}
	return code, e.Error, e.Param
}

func near(got *float64, want float64) bool {
	if got == nil {
		return false
	}
	d := *got - want
	return d < 1e-9 && d > -1e-9
}

func ptr(v *float64) any {
	if v == nil {
		return "null"
	}
	return *v
}
