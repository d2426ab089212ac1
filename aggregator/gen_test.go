package aggregator

import (
	"fmt"
	"math/rand/v2"

	"github.com/qoscope/qoscope/schemas"
)

// genOptions shapes a synthetic event stream for tests and benchmarks.
type genOptions struct {
	seed          uint64
	users         int
	streams       int
	start         int64   // first event time, Unix ms
	eventsPerMin  int     // events per minute of event time
	lateFrac      float64 // share of events whose ts lags 0..maxLagMS behind
	maxLagMS      int64
	switchFrac    float64 // share of pull events with a different stream/quality/province
	missingFrac   float64 // share of events with a missing dimension
	cdnFrac       float64
	originFrac    float64
	originStreams int
	// recvFrac: share of events stamped with a recv_ts (its nominal arrival
	// time); fastFrac: share of those whose ts is 0..maxAheadMS ahead of it
	// (a client clock running fast).
	recvFrac, fastFrac float64
	maxAheadMS         int64
	// dupFrac is the share of events that are a copy (same EID) of one of
	// the last 500 events: a retried request.
	dupFrac float64
}

var (
	provinces = []string{"guangdong", "beijing", "shanghai", "zhejiang", "jiangsu", "sichuan", "hubei", "henan",
		"shandong", "fujian", "hunan", "anhui", "hebei", "shaanxi", "liaoning", "chongqing", "yunnan", "guangxi",
		"jiangxi", "shanxi", "guizhou", "tianjin", "jilin", "heilongjiang", "neimenggu", "xinjiang", "gansu",
		"hainan", "ningxia", "qinghai", "xizang", "hongkong", "macau", "taiwan"}
	isps      = []string{"telecom", "unicom", "mobile", "cernet", "other"}
	vendors   = []string{"ali", "tencent", "ks", "ws"}
	platforms = []string{"android", "ios", "web", "pc"}
	versions  = []string{"5.1.0", "5.1.1", "5.2.0", "5.2.1", "5.3.0", "5.3.2", "6.0.0", "6.0.1"}
	qualities = []string{"360p", "720p", "1080p", "origin"}
)

type genUser struct {
	id                                                      string
	province, isp, vendor, node, platform, version, role, q string
	stream                                                  string
}

type generator struct {
	o     genOptions
	rng   *rand.Rand
	users []genUser
	n     int64
	past  []schemas.Event // the last events, for dupFrac
}

func newGenerator(o genOptions) *generator {
	g := &generator{o: o, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x5eed))}
	for i := range o.users {
		u := genUser{
			id:       fmt.Sprintf("%016x", uint64(i)*0x9E3779B97F4A7C15), // device-id-like
			province: provinces[g.zipf(len(provinces))],
			isp:      isps[g.zipf(len(isps))],
			vendor:   vendors[g.rng.IntN(len(vendors))],
			platform: platforms[g.rng.IntN(len(platforms))],
			version:  versions[g.zipf(len(versions))],
			q:        qualities[g.rng.IntN(len(qualities))],
			stream:   fmt.Sprintf("s%04d", g.zipf(o.streams)),
			role:     "audience",
		}
		if g.rng.IntN(50) == 0 {
			u.role = "cohost"
		}
		if g.rng.IntN(200) == 0 {
			u.role = "host"
		}
		// An edge node serves one vendor in one province and ISP.
		u.node = fmt.Sprintf("%s-%s-%s-%d", u.vendor, u.province, u.isp, g.rng.IntN(2))
		g.users = append(g.users, u)
	}
	return g
}

// zipf picks 0..n-1 with a skew towards small values.
func (g *generator) zipf(n int) int {
	x := g.rng.ExpFloat64() * float64(n) / 4
	if int(x) >= n {
		return g.rng.IntN(n)
	}
	return int(x)
}

// next fills e with the next event.
func (g *generator) next(e *schemas.Event) {
	if g.o.dupFrac > 0 && len(g.past) > 0 && g.rng.Float64() < g.o.dupFrac {
		*e = g.past[g.rng.IntN(len(g.past))]
		return
	}
	g.fresh(e)
	if g.o.dupFrac > 0 {
		if len(g.past) == 500 {
			g.past = g.past[1:]
		}
		g.past = append(g.past, *e)
	}
}

// fresh makes a new event with its own identity (EID), as ingest stamps it.
func (g *generator) fresh(e *schemas.Event) {
	e.Reset()
	g.n++
	e.EID = splitmix(uint64(g.n) ^ g.o.seed<<32)
	o := &g.o
	ts := o.start + g.n*60_000/int64(max(o.eventsPerMin, 1))
	if g.rng.Float64() < o.lateFrac {
		ts -= g.rng.Int64N(o.maxLagMS + 1)
	}
	e.V = 1
	e.TS = ts
	if g.rng.Float64() < o.recvFrac {
		e.RecvTS = o.start + g.n*60_000/int64(max(o.eventsPerMin, 1))
		if g.rng.Float64() < o.fastFrac {
			e.TS = e.RecvTS + g.rng.Int64N(o.maxAheadMS+1)
		}
	}
	r := g.rng.Float64()
	switch {
	case r < o.cdnFrac:
		g.cdn(e)
	case r < o.cdnFrac+o.originFrac:
		g.origin(e)
	default:
		g.client(e)
	}
}

func (g *generator) client(e *schemas.Event) {
	u := &g.users[g.rng.IntN(len(g.users))]
	e.UserID = u.id
	e.StreamID, e.Province, e.ISP, e.Vendor, e.Node = u.stream, u.province, u.isp, u.vendor, u.node
	e.Platform, e.ClientVersion, e.Role, e.Quality = u.platform, u.version, u.role, u.q
	if g.rng.Float64() < g.o.switchFrac {
		switch g.rng.IntN(3) {
		case 0:
			e.StreamID = fmt.Sprintf("s%04d", g.zipf(g.o.streams))
		case 1:
			e.Quality = qualities[g.rng.IntN(len(qualities))]
		default:
			e.Province = provinces[g.rng.IntN(len(provinces))]
		}
	}
	if g.rng.Float64() < g.o.missingFrac {
		switch g.rng.IntN(3) {
		case 0:
			e.Province = ""
		case 1:
			e.ISP = ""
		default:
			e.ClientVersion = ""
		}
	}
	r := g.rng.IntN(100)
	switch {
	case r < 70:
		e.Type = schemas.TypeHeartbeat
		e.Stalled = g.rng.IntN(20) == 0
		if g.rng.IntN(10) != 0 {
			e.VideoBufferMS = g.rng.Int64N(8000)
			e.Present = e.Present.With(schemas.PropVideoBufferMS)
		}
		if g.rng.IntN(10) != 0 {
			e.AudioBufferMS = g.rng.Int64N(8000)
			e.Present = e.Present.With(schemas.PropAudioBufferMS)
		}
	case r < 76:
		e.Type = schemas.TypeStall
		e.DurationMS = 500 + g.rng.Int64N(4000)
		e.Media = []string{"video", "audio"}[g.rng.IntN(2)]
	case r < 82:
		e.Type = schemas.TypePlayStart
		e.OK = g.rng.IntN(10) != 0
		if e.OK {
			e.ConnectMS = 20 + g.rng.Int64N(800)
		}
	case r < 88:
		e.Type = schemas.TypeFirstFrame
		e.FirstFrameMS = 100 + int64(g.rng.ExpFloat64()*700)
	case r < 91:
		e.Type = schemas.TypePlayEnd
		e.Reason = []string{"user", "error", "eos"}[g.rng.IntN(3)]
	case r < 94:
		e.Type = schemas.TypeDNS
		e.CacheHit = g.rng.IntN(4) != 0
	case r < 96:
		e.Type = schemas.TypePushStart
		e.OK = g.rng.IntN(8) != 0
		if e.OK {
			e.ConnectMS = 50 + g.rng.Int64N(500)
		}
	case r < 98:
		e.Type = schemas.TypePushEnd
		e.Dropped = g.rng.IntN(5) == 0
	default:
		e.Type = schemas.TypeRelay
		e.OK = g.rng.IntN(6) != 0
		if e.OK {
			e.DurationMS = 10 + g.rng.Int64N(3000)
		}
	}
}

func (g *generator) cdn(e *schemas.Event) {
	e.Type = schemas.TypeCDNRequest
	u := &g.users[g.rng.IntN(len(g.users))]
	e.Vendor, e.Node, e.Province, e.ISP, e.StreamID = u.vendor, u.node, u.province, u.isp, u.stream
	if g.rng.Float64() < g.o.missingFrac {
		e.ISP = ""
	}
	e.Status = 200
	switch g.rng.IntN(40) {
	case 0:
		e.Status = 404
	case 1:
		e.Status = 502
	}
	e.Bytes = g.rng.Int64N(2_000_000)
	e.TTFBMS = 5 + int64(g.rng.ExpFloat64()*80)
}

func (g *generator) origin(e *schemas.Event) {
	e.Type = schemas.TypeOriginStats
	s := g.rng.IntN(max(g.o.originStreams, 1))
	e.StreamID = fmt.Sprintf("s%04d", s)
	e.Node = "origin-1"
	e.Line = []string{"primary", "backup"}[g.rng.IntN(2)]
	e.FPS = 20 + float64(g.rng.IntN(11))
	e.BitrateKbps = 500 + float64(g.rng.IntN(3000))
	e.RTTMS = float64(5 + g.rng.IntN(100))
}

// splitmix is a bijection of uint64 with good mixing (SplitMix64's finalizer).
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	if x == 0 {
		return 1
	}
	return x
}
