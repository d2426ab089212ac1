package httpx

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/qoscope/qoscope/internal/config"
)

// Scope is a named permission of a bearer token; a token may hold several.
type Scope string

// The scopes. Ingest's endpoints each need their ingest:<source> scope
// (CMCD its own: browser tokens are public by nature, docs/INGEST.md);
// the read side needs read, its administrative endpoints admin; metrics
// lets a scraper read /metrics and nothing else.
const (
	ScopeIngestClient Scope = "ingest:client"
	ScopeIngestCDN    Scope = "ingest:cdn"
	ScopeIngestOrigin Scope = "ingest:origin"
	ScopeIngestCMCD   Scope = "ingest:cmcd"
	ScopeRead         Scope = "read"
	ScopeAdmin        Scope = "admin"
	ScopeMetrics      Scope = "metrics"
)

// Scopes lists every scope, in the order error messages name them.
var Scopes = []Scope{ScopeIngestClient, ScopeIngestCDN, ScopeIngestOrigin, ScopeIngestCMCD, ScopeRead, ScopeAdmin, ScopeMetrics}

// actions says what a scope allows, for 403 messages.
var actions = map[Scope]string{
	ScopeIngestClient: "write client events",
	ScopeIngestCDN:    "write cdn events",
	ScopeIngestOrigin: "write origin events",
	ScopeIngestCMCD:   "write cmcd events",
	ScopeRead:         "read the query API",
	ScopeAdmin:        "use administrative endpoints",
	ScopeMetrics:      "read /metrics",
}

// ScopeNames is Scopes as strings, comma-separated, for messages.
func ScopeNames() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// MinTokenLength rejects guessable secrets.
const MinTokenLength = 16

// TokenConfig is one bearer token as a config file gives it. Exactly one
// of Token, TokenFile and TokenEnv gives the secret; only Name is ever
// logged.
type TokenConfig struct {
	Name      string   `yaml:"name"`
	Token     string   `yaml:"token"`
	TokenFile string   `yaml:"token_file"`
	TokenEnv  string   `yaml:"token_env"`
	Scopes    []string `yaml:"scopes"`
}

// Validate adds every problem of t to errs, each prefixed by key (e.g.
// "tokens[2]"). names collects the names seen so far, to refuse a repeated
// one. It does not require a scope: a service may grant others its own way.
func (t *TokenConfig) Validate(key string, names map[string]bool, errs *config.Errors) {
	switch {
	case t.Name == "":
		errs.Addf("%s.name: required (it is what logs show instead of the secret)", key)
	case names[t.Name]:
		errs.Addf("%s.name: %q is used twice", key, t.Name)
	}
	names[t.Name] = true
	set := 0
	for _, s := range []string{t.Token, t.TokenFile, t.TokenEnv} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		errs.Addf("%s: exactly one of token, token_file, token_env is required", key)
	}
	if t.Token != "" && len(t.Token) < MinTokenLength {
		errs.Addf("%s.token: shorter than %d characters", key, MinTokenLength)
	}
	for _, s := range t.Scopes {
		if !slices.Contains(Scopes, Scope(s)) {
			errs.Addf("%s.scopes: %q is not one of %s", key, s, ScopeNames())
		}
	}
}

// Token is a configured bearer token: its name, scopes and the SHA-256 of
// its secret (the secret itself is not kept).
type Token struct {
	// Name is what logs, dead letters and rate limits use.
	Name string
	// Index is the token's position in the configuration, for per-token
	// state a service keeps beside the store (ingest's rate limiters).
	Index  int
	scopes []Scope
	digest [sha256.Size]byte
}

// Has reports whether the token holds scope s.
func (t *Token) Has(s Scope) bool { return slices.Contains(t.scopes, s) }

// Scopes returns the token's scopes.
func (t *Token) Scopes() []Scope { return slices.Clone(t.scopes) }

// Store holds the configured tokens and finds the one a request presents.
type Store struct {
	tokens []*Token
}

// NewStore resolves each token's secret (inline, file, or environment
// variable through getenv; nil means os.Getenv) and keeps its digest.
// Errors name the key (tokens[i]) and the token's name, never the secret:
// an unreadable file, an empty variable, a secret under MinTokenLength, two
// tokens with the same secret, an unknown scope.
func NewStore(cfgs []TokenConfig, getenv func(string) string) (*Store, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := &Store{}
	seen := map[[sha256.Size]byte]string{}
	for i, c := range cfgs {
		key := fmt.Sprintf("tokens[%d]", i)
		secret := c.Token
		switch {
		case c.TokenFile != "":
			b, err := os.ReadFile(c.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("%s.token_file: cannot read: %w", key, err)
			}
			secret = strings.TrimSpace(string(b))
		case c.TokenEnv != "":
			secret = strings.TrimSpace(getenv(c.TokenEnv))
			if secret == "" {
				return nil, fmt.Errorf("%s.token_env: environment variable %s is empty or unset", key, c.TokenEnv)
			}
		}
		if len(secret) < MinTokenLength {
			return nil, fmt.Errorf("%s: token %q is shorter than %d characters", key, c.Name, MinTokenLength)
		}
		t := &Token{Name: c.Name, Index: i, digest: sha256.Sum256([]byte(secret))}
		if other, dup := seen[t.digest]; dup {
			return nil, fmt.Errorf("%s: token %q has the same secret as %q", key, c.Name, other)
		}
		seen[t.digest] = c.Name
		for _, sc := range c.Scopes {
			if !slices.Contains(Scopes, Scope(sc)) {
				return nil, fmt.Errorf("%s.scopes: %q is not one of %s", key, sc, ScopeNames())
			}
			if !t.Has(Scope(sc)) {
				t.scopes = append(t.scopes, Scope(sc))
			}
		}
		s.tokens = append(s.tokens, t)
	}
	return s, nil
}

// Len is the number of tokens.
func (s *Store) Len() int { return len(s.tokens) }

// Tokens returns the tokens in configuration order.
func (s *Store) Tokens() []*Token { return slices.Clone(s.tokens) }

// Lookup returns the token whose secret is secret, or nil. The presented
// secret is hashed and its digest compared with every configured digest
// with crypto/subtle, whether or not one matched earlier: fixed-length
// digests leak neither the secret's length nor, by an early exit, which
// token came close.
func (s *Store) Lookup(secret string) *Token {
	d := sha256.Sum256([]byte(secret))
	match := -1
	for i, t := range s.tokens {
		eq := subtle.ConstantTimeCompare(d[:], t.digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	return s.tokens[match]
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header (scheme case-insensitive, RFC 9110 §11.1), or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

// Authenticate returns the token r presents, or nil.
func (s *Store) Authenticate(r *http.Request) *Token {
	secret := bearer(r)
	if secret == "" {
		return nil
	}
	return s.Lookup(secret)
}

// Auth answers requests without a valid token (401) or without the
// required scope (403), in JSON.
type Auth struct {
	store *Store
	realm string
}

// NewAuth authenticates against store; realm names the service in the
// WWW-Authenticate challenge (e.g. "qoscope-ingest").
func NewAuth(store *Store, realm string) *Auth {
	return &Auth{store: store, realm: realm}
}

// Authenticate is middleware: a request without a known bearer token gets
// 401 with a Bearer challenge (error="invalid_token" when it presented
// one, RFC 6750 §3.1); otherwise the token is recorded for TokenFrom and
// the access log.
func (a *Auth) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, r := a.authenticate(w, r); t != nil {
			next.ServeHTTP(w, r)
		}
	})
}

// authenticate returns r's token, or answers 401 and returns nil; the
// request it returns carries the token for TokenFrom.
func (a *Auth) authenticate(w http.ResponseWriter, r *http.Request) (*Token, *http.Request) {
	info, r := ensureInfo(r)
	if info.token != nil {
		return info.token, r // an outer Authenticate did it
	}
	t := a.store.Authenticate(r)
	if t == nil {
		challenge := `Bearer realm="` + a.realm + `"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		WriteError(w, http.StatusUnauthorized, "missing or invalid bearer token (Authorization: Bearer <token>)")
		return nil, r
	}
	info.token = t
	return t, r
}

// Require is middleware that authenticates (as Authenticate) and then
// answers 403 unless the token holds at least one of scopes. The 403
// body names the token (not its secret), what it may not do, and
// "required_scopes".
func (a *Auth) Require(scopes ...Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t, r := a.authenticate(w, r)
			if t == nil {
				return
			}
			if !hasAny(t, scopes) {
				Forbid(w, t, scopes...)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func hasAny(t *Token, scopes []Scope) bool {
	for _, s := range scopes {
		if t.Has(s) {
			return true
		}
	}
	return false
}

// Forbid answers 403 for token t, which lacks every one of scopes.
func Forbid(w http.ResponseWriter, t *Token, scopes ...Scope) {
	what := make([]string, len(scopes))
	names := make([]string, len(scopes))
	for i, s := range scopes {
		what[i], names[i] = actions[s], string(s)
	}
	WriteErrorWith(w, http.StatusForbidden, fmt.Sprintf("token %q may not %s", t.Name, strings.Join(what, " or ")),
		map[string]any{"required_scopes": names})
}

// TokenFrom returns the token Authenticate or Require accepted for r, or
// nil.
func TokenFrom(r *http.Request) *Token {
	if info := infoOf(r); info != nil {
		return info.token
	}
	return nil
}

// Store returns the tokens a checks against.
func (a *Auth) Store() *Store { return a.store }
