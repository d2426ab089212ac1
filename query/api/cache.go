package api

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// answerCache shares answers between the clients that ask the same
// question within ttl. A war room shows the same wall on many screens and
// each refreshes every few seconds: without it every screen costs a
// ClickHouse query (10–50 ms of CPU each on a small server), with it one
// screen does per ttl and the others, including those that ask while that
// query runs (singleflight), get its bytes. An answer is thus at most ttl
// older than ClickHouse; /api/v1/live pushes changes as they land.
//
// An answer past its ttl but younger than 2 × ttl is still served (X-Cache:
// stale) while one request refreshes it in the background: on a busy wall
// no screen waits for ClickHouse once the answer exists, and no answer is
// older than 2 × ttl plus one query.
//
// When new rows land (the live hub saw the minute tables change and is
// about to tell the screens), invalidate drops every answer: a screen
// refreshing on that event must not get an answer computed before the
// rows, served as fresh for the rest of its ttl and not asked again.
//
// Only 200 answers are kept; the key is the path and the raw query string,
// after authentication (every read token sees the same data).
type answerCache struct {
	ttl     time.Duration
	max     int
	now     func() time.Time
	flights singleflight.Group

	mu      sync.Mutex
	entries map[string]cachedAnswer
	// gen counts invalidations: an answer whose query began before the
	// last one is not kept, and flights of different generations are not
	// shared.
	gen uint64
}

type cachedAnswer struct {
	status  int
	ctype   string
	body    []byte
	expires time.Time
}

func newAnswerCache(ttl time.Duration, maxEntries int, now func() time.Time) *answerCache {
	return &answerCache{ttl: ttl, max: maxEntries, now: now, entries: map[string]cachedAnswer{}}
}

// wrap serves next's answers through the cache; ttl 0 turns it off.
func (c *answerCache) wrap(next http.HandlerFunc) http.HandlerFunc {
	if c == nil || c.ttl <= 0 {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path + "?" + r.URL.RawQuery
		a, fresh, ok, gen := c.get(key)
		if ok && fresh {
			c.write(w, a, "hit")
			return
		}
		ask := func(r *http.Request) func() (any, error) {
			return func() (any, error) {
				rec := &recorder{header: http.Header{}, status: http.StatusOK}
				next(rec, r)
				a := cachedAnswer{status: rec.status, ctype: rec.header.Get("Content-Type"), body: rec.body.Bytes(),
					expires: c.now().Add(c.ttl)}
				if a.status == http.StatusOK {
					c.put(key, a, gen)
				}
				return a, nil
			}
		}
		flight := key + "#" + strconv.FormatUint(gen, 10)
		if ok {
			// Stale: answer now, refresh once in the background, with a
			// context that outlives this request.
			c.flights.DoChan(flight, ask(r.Clone(context.WithoutCancel(r.Context()))))
			c.write(w, a, "stale")
			return
		}
		v, _, shared := c.flights.Do(flight, ask(r))
		state := "miss"
		if shared {
			state = "shared"
		}
		c.write(w, v.(cachedAnswer), state)
	}
}

// get returns the answer kept for key: fresh (within its ttl), or stale
// (within a second ttl), or nothing; and the generation a query started
// now belongs to.
func (c *answerCache) get(key string) (a cachedAnswer, fresh, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok = c.entries[key]
	now := c.now()
	switch {
	case !ok || !now.Before(a.expires.Add(c.ttl)):
		return cachedAnswer{}, false, false, c.gen
	case now.Before(a.expires):
		return a, true, true, c.gen
	}
	return a, false, true, c.gen
}

// invalidate drops every answer, and those of the queries under way when
// they end: new rows have landed.
func (c *answerCache) invalidate() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

// put keeps a, the answer of a query of generation gen, unless an
// invalidation came since that query began.
func (c *answerCache) put(key string, a cachedAnswer, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= c.max {
		// Entries past serving (2 × ttl) first; if every entry is live (many distinct
		// questions within one ttl), start over rather than grow.
		now := c.now()
		for k, e := range c.entries {
			if !now.Before(e.expires.Add(c.ttl)) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[key] = a
}

func (c *answerCache) write(w http.ResponseWriter, a cachedAnswer, state string) {
	if a.ctype != "" {
		w.Header().Set("Content-Type", a.ctype)
	}
	w.Header().Set("X-Cache", state)
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// recorder keeps a handler's answer for the cache.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
