package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/internal/config"
)

// Secrets of the test tokens: equal length and sharing long prefixes, so
// a comparison that stopped early or looked at lengths would still have
// to tell them apart.
const (
	secA = "aaaaaaaaaaaaaaaaaaaaaaaa-1"
	secB = "aaaaaaaaaaaaaaaaaaaaaaaa-2"
	secC = "aaaaaaaaaaaaaaaaaaaaaaaa-3"
	secD = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" // longer
)

func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore([]TokenConfig{
		{Name: "sdk", Token: secA, Scopes: []string{"ingest:client", "ingest:cmcd"}},
		{Name: "reader", Token: secB, Scopes: []string{"read"}},
		{Name: "ops", Token: secC, Scopes: []string{"read", "admin", "metrics", "read"}},
		{Name: "scraper", Token: secD, Scopes: []string{"metrics"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every token is found by its own secret and by no other string: the
// constant-time scan picks the right one wherever it sits in the list.
func TestLookupFindsEachTokenAndNoOther(t *testing.T) {
	s := testStore(t)
	for secret, name := range map[string]string{secA: "sdk", secB: "reader", secC: "ops", secD: "scraper"} {
		tok := s.Lookup(secret)
		if tok == nil || tok.Name != name {
			t.Errorf("Lookup(secret of %s) = %v", name, tok)
		}
	}
	for _, wrong := range []string{"", "aaaaaaaaaaaaaaaaaaaaaaaa-", "aaaaaaaaaaaaaaaaaaaaaaaa-4", secA + "x", secA[:len(secA)-1],
		strings.ToUpper(secA), secD[1:], " " + secB} {
		if tok := s.Lookup(wrong); tok != nil {
			t.Errorf("Lookup(%q) = %s, want none", wrong, tok.Name)
		}
	}
	if s.Len() != 4 {
		t.Fatalf("Len = %d", s.Len())
	}
	if got := s.Tokens()[2]; got.Index != 2 || !got.Has(ScopeAdmin) || got.Has(ScopeIngestClient) || len(got.Scopes()) != 3 {
		t.Fatalf("ops token: index %d scopes %v", got.Index, got.Scopes())
	}
}

func TestStoreErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("  "+secB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOK_C": secC}
	getenv := func(k string) string { return env[k] }
	s, err := NewStore([]TokenConfig{{Name: "a", TokenFile: file}, {Name: "b", TokenEnv: "TOK_C"}}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lookup(secB).Name != "a" || s.Lookup(secC).Name != "b" {
		t.Fatal("file (trimmed) and env secrets not resolved")
	}
	for _, c := range []struct {
		cfgs []TokenConfig
		want string
	}{
		{[]TokenConfig{{Name: "x", Token: secA}, {Name: "y", TokenFile: filepath.Join(dir, "none")}}, "tokens[1].token_file: cannot read"},
		{[]TokenConfig{{Name: "x", TokenEnv: "UNSET"}}, "tokens[0].token_env: environment variable UNSET is empty or unset"},
		{[]TokenConfig{{Name: "x", Token: "short"}}, `tokens[0]: token "x" is shorter than 16 characters`},
		{[]TokenConfig{{Name: "x", Token: secA}, {Name: "y", Token: secA}}, `tokens[1]: token "y" has the same secret as "x"`},
		{[]TokenConfig{{Name: "x", Token: secA, Scopes: []string{"write"}}}, `tokens[0].scopes: "write" is not one of ingest:client,`},
	} {
		_, err := NewStore(c.cfgs, getenv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error containing %q, got %v", c.want, err)
		}
		if err != nil && strings.Contains(err.Error(), secA) {
			t.Errorf("error %q shows the secret", err)
		}
	}
}

func TestTokenConfigValidate(t *testing.T) {
	var errs config.Errors
	names := map[string]bool{}
	for i, c := range []TokenConfig{
		{Name: "ok", Token: secA, Scopes: []string{"read"}},
		{Name: "ok", TokenEnv: "X"},
		{Token: secA, TokenFile: "/f"},
		{Name: "short", Token: "abc"},
		{Name: "bad-scope", TokenEnv: "Y", Scopes: []string{"ingest:everything"}},
	} {
		c.Validate("tokens["+string(rune('0'+i))+"]", names, &errs)
	}
	err := errs.Err()
	if err == nil {
		t.Fatal("no errors")
	}
	for _, want := range []string{
		`tokens[1].name: "ok" is used twice`,
		"tokens[2].name: required",
		"tokens[2]: exactly one of token, token_file, token_env is required",
		"tokens[3].token: shorter than 16 characters",
		`tokens[4].scopes: "ingest:everything" is not one of`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "tokens[0]") {
		t.Errorf("valid token reported: %v", err)
	}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func serve(t *testing.T, h http.Handler, method, path, authz string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header()}
	if rec.Body.Len() > 0 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &a.body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, rec.Body, err)
		}
	}
	return a
}

func TestRequire(t *testing.T) {
	a := NewAuth(testStore(t), "qoscope-test")
	var seen string
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = TokenFrom(r).Name
		WriteJSON(w, http.StatusOK, map[string]string{"token": Info(r).TokenName()})
	})
	r := NewRouter()
	r.With(a.Require(ScopeRead)).Get("/read", ok)
	r.With(a.Require(ScopeAdmin, ScopeMetrics)).Get("/either", ok)
	r.With(a.Authenticate).Get("/any", ok)

	for _, c := range []struct {
		path, authz string
		status      int
		token       string // for 200
		challenge   string // for 401
		msg         string // for 401/403
	}{
		{"/read", "", 401, "", `Bearer realm="qoscope-test"`, "missing or invalid bearer token (Authorization: Bearer <token>)"},
		{"/read", "Bearer " + secA + "x", 401, "", `Bearer realm="qoscope-test", error="invalid_token"`, "missing or invalid bearer token (Authorization: Bearer <token>)"},
		{"/read", "Basic " + secB, 401, "", `Bearer realm="qoscope-test", error="invalid_token"`, "missing or invalid bearer token (Authorization: Bearer <token>)"},
		{"/read", "Bearer", 401, "", `Bearer realm="qoscope-test", error="invalid_token"`, "missing or invalid bearer token (Authorization: Bearer <token>)"},
		{"/read", "Bearer " + secB, 200, "reader", "", ""},
		{"/read", "bearer  " + secC + " ", 200, "ops", "", ""},
		{"/read", "Bearer " + secA, 403, "", "", `token "sdk" may not read the query API`},
		{"/read", "Bearer " + secD, 403, "", "", `token "scraper" may not read the query API`},
		{"/either", "Bearer " + secD, 200, "scraper", "", ""},
		{"/either", "Bearer " + secC, 200, "ops", "", ""},
		{"/either", "Bearer " + secB, 403, "", "", `token "reader" may not use administrative endpoints or read /metrics`},
		{"/any", "Bearer " + secA, 200, "sdk", "", ""},
		{"/any", "", 401, "", `Bearer realm="qoscope-test"`, "missing or invalid bearer token (Authorization: Bearer <token>)"},
	} {
		seen = ""
		got := serve(t, r, http.MethodGet, c.path, c.authz)
		if got.status != c.status {
			t.Errorf("%s %q: status %d, want %d", c.path, c.authz, got.status, c.status)
			continue
		}
		switch c.status {
		case 200:
			if seen != c.token || got.body["token"] != c.token {
				t.Errorf("%s %q: handler saw token %q (info %v), want %q", c.path, c.authz, seen, got.body["token"], c.token)
			}
		case 401:
			if got.header.Get("WWW-Authenticate") != c.challenge || got.body["error"] != c.msg {
				t.Errorf("%s %q: challenge %q body %v", c.path, c.authz, got.header.Get("WWW-Authenticate"), got.body)
			}
		case 403:
			if got.body["error"] != c.msg || got.header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s %q: body %v, want error %q", c.path, c.authz, got.body, c.msg)
			}
		}
		if c.status != 200 && seen != "" {
			t.Errorf("%s %q: handler ran on a %d", c.path, c.authz, c.status)
		}
	}
	got := serve(t, r, http.MethodGet, "/either", "Bearer "+secB)
	if rs, _ := got.body["required_scopes"].([]any); len(rs) != 2 || rs[0] != "admin" || rs[1] != "metrics" {
		t.Errorf("required_scopes = %v, want [admin metrics]", got.body["required_scopes"])
	}
}
