package ingest

import (
	"math"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/qoscope/qoscope/internal/httpx"
)

// sourceScopes maps the legacy tokens[].sources values onto scopes
// (docs/INGEST.md, "Security"): existing configurations keep working.
var sourceScopes = map[string]httpx.Scope{
	"client":  httpx.ScopeIngestClient,
	"cdn":     httpx.ScopeIngestCDN,
	"origin":  httpx.ScopeIngestOrigin,
	"cmcd":    httpx.ScopeIngestCMCD,
	"metrics": httpx.ScopeMetrics,
}

// shared is the token as the shared plumbing sees it: sources folded
// into scopes.
func (t *TokenConfig) shared() httpx.TokenConfig {
	scopes := append([]string(nil), t.Scopes...)
	for _, s := range t.Sources {
		if sc, ok := sourceScopes[s]; ok {
			scopes = append(scopes, string(sc))
		}
	}
	return httpx.TokenConfig{Name: t.Name, Token: t.Token, TokenFile: t.TokenFile, TokenEnv: t.TokenEnv, Scopes: scopes}
}

// limiters are a token's rate limits; nil limiters are unlimited.
type limiters struct {
	req, ev *rate.Limiter
}

// newLimiters builds each token's limiters, by httpx.Token.Index.
func newLimiters(cfgs []TokenConfig, def RateLimit) []limiters {
	ls := make([]limiters, len(cfgs))
	for i, c := range cfgs {
		rl := def
		if c.RateLimit != nil {
			rl = *c.RateLimit
		}
		if rl.RequestsPerSecond > 0 {
			ls[i].req = rate.NewLimiter(rate.Limit(rl.RequestsPerSecond), rl.RequestBurst)
		}
		if rl.EventsPerSecond > 0 {
			ls[i].ev = rate.NewLimiter(rate.Limit(rl.EventsPerSecond), rl.EventBurst)
		}
	}
	return ls
}

// requestLimit is middleware, after authentication: 429 when the token is
// over its requests_per_second, checked before the body is read.
func (s *Server) requestLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := httpx.TokenFrom(r)
		if d := wait(s.limits[t.Index].req, 1, s.now()); d > 0 {
			s.tooMany(w, r, t, d, "requests_per_second")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// wait reports how long a caller must wait before n more units are allowed;
// 0 means allowed now (and the units are taken).
func wait(l *rate.Limiter, n int, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	r := l.ReserveN(now, n)
	if !r.OK() {
		// n exceeds the burst; Validate prevents it for events, so this is
		// a token whose own limit is too tight for any request.
		return time.Duration(math.MaxInt64)
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}
