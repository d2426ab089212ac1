package steer

import (
	"net/netip"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// limiter is a token bucket per client address, in shards so concurrent
// requests rarely share a lock. A player asks once per TTL (minutes), so a
// bucket that refills to full is forgotten: each shard drops its full
// buckets when it has grown past maxPerShard, keeping memory bounded by the
// addresses active within about burst/rate seconds.
type limiter struct {
	rate, burst float64
	shards      [limiterShards]limiterShard
}

const (
	limiterShards = 64
	maxPerShard   = 4096
)

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last update
}

func newLimiter(rate float64, burst int) *limiter {
	l := &limiter{rate: rate, burst: float64(burst)}
	for i := range l.shards {
		l.shards[i].buckets = map[netip.Addr]*bucket{}
	}
	return l
}

// allow takes a token from ip's bucket at time now, reporting whether
// there was one.
func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	b16 := ip.As16()
	sh := &l.shards[xxhash.Sum64(b16[:])%limiterShards]
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[ip]
	if b == nil {
		if len(sh.buckets) >= maxPerShard {
			l.sweep(sh, t)
		}
		b = &bucket{tokens: l.burst, last: t}
		sh.buckets[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(t-b.last)/1e9*l.rate)
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the buckets that would be full by now: forgetting them
// changes nothing for their addresses.
func (l *limiter) sweep(sh *limiterShard, t int64) {
	for ip, b := range sh.buckets {
		if b.tokens+float64(t-b.last)/1e9*l.rate >= l.burst {
			delete(sh.buckets, ip)
		}
	}
}
