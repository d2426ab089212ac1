package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// grant is a bit set of what a token may write.
type grant uint8

const (
	grantClient grant = 1 << iota
	grantCDN
	grantOrigin
	grantCMCD
	grantMetrics // read /metrics (an admin endpoint, not a source)
)

func parseGrant(s string) grant {
	switch s {
	case "client":
		return grantClient
	case "cdn":
		return grantCDN
	case "origin":
		return grantOrigin
	case "cmcd":
		return grantCMCD
	case "metrics":
		return grantMetrics
	}
	return 0
}

// token is a resolved bearer token. Only the SHA-256 of the secret is kept:
// comparing fixed-length digests in constant time does not leak the secret's
// length, which subtle.ConstantTimeCompare on the raw strings would.
type token struct {
	name   string
	digest [sha256.Size]byte
	grants grant
	reqLim *rate.Limiter // nil: unlimited
	evLim  *rate.Limiter // nil: unlimited
}

// authenticator checks bearer tokens.
type authenticator struct {
	tokens []*token
}

// newAuthenticator resolves token secrets (inline, file or environment) and
// builds their rate limiters. Errors name the key, never the secret.
func newAuthenticator(cfgs []TokenConfig, def RateLimit, getenv func(string) string) (*authenticator, error) {
	a := &authenticator{}
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
		t := &token{name: c.Name, digest: sha256.Sum256([]byte(secret))}
		if other, dup := seen[t.digest]; dup {
			return nil, fmt.Errorf("%s: token %q has the same secret as %q", key, c.Name, other)
		}
		seen[t.digest] = c.Name
		for _, s := range c.Sources {
			t.grants |= parseGrant(s)
		}
		rl := def
		if c.RateLimit != nil {
			rl = *c.RateLimit
		}
		if rl.RequestsPerSecond > 0 {
			t.reqLim = rate.NewLimiter(rate.Limit(rl.RequestsPerSecond), rl.RequestBurst)
		}
		if rl.EventsPerSecond > 0 {
			t.evLim = rate.NewLimiter(rate.Limit(rl.EventsPerSecond), rl.EventBurst)
		}
		a.tokens = append(a.tokens, t)
	}
	return a, nil
}

// authenticate returns the token presented in r's Authorization header, or
// nil. Every configured token is compared, whether or not one matched
// earlier, so timing says nothing about which token was close.
func (a *authenticator) authenticate(r *http.Request) *token {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return nil
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(h[len(scheme):])))
	match := -1
	for i, t := range a.tokens {
		eq := subtle.ConstantTimeCompare(d[:], t.digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	return a.tokens[match]
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
