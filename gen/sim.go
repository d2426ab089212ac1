package gen

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/qoscope/qoscope/schemas"
)

// The simulation advances a virtual clock in ticks of one second. Within a
// tick every user and stream, in index order, performs the actions due
// before the tick's end; each action appends events stamped with their
// event time (ts) and the time they are emitted (emit ≥ ts: a stall is
// reported when it ends, a connect attempt when its result is known).
// Events due in a later tick wait in a heap. A tick's events are then
// sorted by (emit, creation order) and encoded. Nothing here reads the
// wall clock, iterates a map or depends on goroutine scheduling, so a seed
// and the options fix every byte of the output.

const tickMS = 1000

// stallRing keeps a user's most recent buffer-empty periods; a heartbeat
// looks at those overlapping its interval.
const stallRing = 3

const (
	phaseIdle = iota
	phaseConnecting
	phasePlaying // pull: connected; push: live
)

type user struct {
	idx      int
	r        *rand.Rand
	tmpl     schemas.Event // identity fields shared by all its events
	region   int
	province string
	isp      string
	onMic    bool
	room     int // on-mic users' room; -1 for the audience
	pull     pullState
	push     pushState
}

type stallRec struct {
	s, e  int64
	media string
}

type pullState struct {
	phase     uint8
	wakeAt    int64
	attemptAt int64
	attempts  int
	session   string
	stream    int
	quality   int
	vendor    int
	node      string
	kbps      float64 // nominal bitrate of the tier, counted in the vendor's load
	loaded    bool
	playStart int64
	ffAt      int64
	endAt     int64
	endReason string
	prevHB    int64
	nextHB    int64
	lastCDN   int64
	nextCDN   int64
	stalls    [stallRing]stallRec
	nStalls   int
}

type pushState struct {
	phase     uint8
	wakeAt    int64
	attemptAt int64
	session   string
	upSince   int64
	downAt    int64 // last drop
	prevUp    int64 // upSince of the push that dropped at downAt
	leaveAt   int64 // a co-host's planned leaving of the mic; 0: none
}

type pending struct {
	at  int64
	seq uint64
	ev  schemas.Event
}

type pendingHeap []*pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(*pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

type evKey struct {
	at int64
	i  int32
}

// sim is the mutable state of one run.
type sim struct {
	w   *world
	sc  *Scenario
	ctl simControl

	start, end       int64 // Unix ms
	hbMS, cdnMS      int64
	originMS         int64
	connShare        [2]float64
	connFailMedianMS float64

	buf   []schemas.Event
	keys  []evKey
	later pendingHeap
	free  []*pending
	seq   uint64
	t1    int64

	vendorLoad []float64 // kbps of playing sessions per vendor
	congestion []float64 // stall multiplier per vendor, fixed per tick
	scratch    []float64

	counts [16]int64 // events per schemas.Type
}

// simControl holds the run options the simulation itself needs.
type simControl struct {
	start    int64 // Unix ms
	duration int64 // ms
	hbMS     int64
}

func newSim(w *world, ctl simControl) *sim {
	sc := w.sc
	s := &sim{
		w: w, sc: sc, ctl: ctl,
		start: ctl.start, end: ctl.start + ctl.duration,
		hbMS:       ctl.hbMS,
		cdnMS:      sc.CDNLogInterval.Milliseconds(),
		originMS:   sc.OriginInterval.Milliseconds(),
		connShare:  sc.Playback.ConnectShare,
		vendorLoad: make([]float64, len(w.vendors)),
		congestion: make([]float64, len(w.vendors)),
		scratch:    make([]float64, len(w.vendors)),
	}
	s.connFailMedianMS = sc.Playback.FirstFrameMS.Median * (s.connShare[0] + s.connShare[1]) / 2
	ramp := sc.RampUp.Milliseconds()
	for i := range w.users {
		u := &w.users[i]
		if u.onMic {
			// Rooms open first: hosts and co-hosts push, then watch.
			u.push.wakeAt = s.start + u.r.Int64N(3000)
			u.pull.wakeAt = s.start + 1000 + u.r.Int64N(4000)
			u.push.downAt = math.MinInt64
		} else {
			u.pull.wakeAt = s.start
			if ramp > 0 {
				u.pull.wakeAt += u.r.Int64N(ramp)
			}
		}
	}
	for i := range w.streams {
		st := &w.streams[i]
		for li := range st.next {
			st.next[li] += s.start
		}
	}
	return s
}

// ticks is the number of ticks of the run.
func (s *sim) ticks() int64 { return (s.end - s.start + tickMS - 1) / tickMS }

// tick simulates tick k and appends its events, encoded, to c.
func (s *sim) tick(k int64, c *chunk) {
	t0 := s.start + k*tickMS
	t1 := min(t0+tickMS, s.end)
	s.t1 = t1
	s.buf = s.buf[:0]
	s.keys = s.keys[:0]
	for len(s.later) > 0 && s.later[0].at < t1 {
		p := heap.Pop(&s.later).(*pending)
		s.push(p.at, &p.ev)
		p.ev = schemas.Event{}
		s.free = append(s.free, p)
	}
	for v := range s.w.vendors {
		s.congestion[v] = congestion(s.vendorLoad[v] / s.w.vendors[v].maxKbps)
	}
	for i := range s.w.users {
		u := &s.w.users[i]
		if u.onMic {
			s.stepPush(u, t0, t1)
		}
		s.stepPull(u, t0, t1)
	}
	for i := range s.w.streams {
		s.stepOrigin(&s.w.streams[i], t1)
	}
	slices.SortFunc(s.keys, func(a, b evKey) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return int(a.i - b.i)
	})
	c.tickEnd = t1
	for _, key := range s.keys {
		e := &s.buf[key.i]
		s.counts[e.Type]++
		c.data = schemas.AppendJSON(c.data, e)
		c.data = append(c.data, '\n')
		c.ends = append(c.ends, int32(len(c.data)))
		c.srcs = append(c.srcs, e.Type.Source())
	}
}

// congestion is the rebuffering multiplier of a vendor at utilization u of
// its maximum bandwidth: 1 up to 90%, rising linearly to 3 at 100% and on.
func congestion(u float64) float64 {
	if u <= 0.9 {
		return 1
	}
	return 1 + 20*(math.Min(u, 1)-0.9)
}

// emit schedules e (copied) for emission at at ≥ e.TS. Events emitted at
// or after the end of the run are dropped: they have not happened yet.
func (s *sim) emit(at int64, e *schemas.Event) {
	if at >= s.end {
		return
	}
	if at < s.t1 {
		s.push(at, e)
		return
	}
	var p *pending
	if n := len(s.free); n > 0 {
		p = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		p = new(pending)
	}
	s.seq++
	p.at, p.seq, p.ev = at, s.seq, *e
	heap.Push(&s.later, p)
}

func (s *sim) push(at int64, e *schemas.Event) {
	s.keys = append(s.keys, evKey{at: at, i: int32(len(s.buf))})
	s.buf = append(s.buf, *e)
}

func sessionID(r *rand.Rand) string {
	var b [16]byte
	const hexd = "0123456789abcdef"
	x := r.Uint64()
	for i := range b {
		b[i] = hexd[x>>60]
		x <<= 4
	}
	return string(b[:])
}

// ---- effects of vendors, congestion and incidents ----

type pullFx struct {
	stallX, durX, ffX, ttfbX float64
	connFail, httpErr        float64
}

func (s *sim) pullEffects(u *user, t int64) pullFx {
	p := &u.pull
	v := &s.w.vendors[p.vendor]
	fx := pullFx{
		stallX:   v.StallRateX * v.regionStallX[u.region] * s.congestion[p.vendor],
		durX:     1,
		ffX:      v.FirstFrameX,
		ttfbX:    1,
		connFail: v.ConnectFailRate,
		httpErr:  v.HTTPErrorRate,
	}
	rel := t - s.start
	for i := range s.w.incidents {
		in := &s.w.incidents[i]
		if rel < in.from || rel >= in.to {
			continue
		}
		switch in.kind {
		case incCDN:
			if in.vendor != p.vendor || (in.province != "" && in.province != u.province) || (in.isp != "" && in.isp != u.isp) {
				continue
			}
			d := in.src.CDNDegradation
			fx.stallX *= orOne(d.StallRateX)
			fx.durX *= orOne(d.StallDurationX)
			fx.ffX *= orOne(d.FirstFrameX)
			fx.ttfbX *= orOne(d.TTFBX)
			fx.connFail = math.Max(fx.connFail, d.ConnectFailRate)
			fx.httpErr = math.Max(fx.httpErr, d.HTTPErrorRate)
		case incBitrate:
			if in.stream == p.stream {
				fx.stallX *= orOne(in.src.OriginBitrateDrop.ViewerStallRateX)
			}
		}
	}
	return fx
}

func orOne(x float64) float64 {
	if x == 0 {
		return 1
	}
	return x
}

type pushFx struct {
	connFail, dropsPerHour, relayFail float64
}

func (s *sim) pushEffects(u *user, t int64) pushFx {
	ps := &s.sc.Push
	fx := pushFx{connFail: ps.ConnectFailRate, dropsPerHour: ps.DropsPerHour, relayFail: ps.RelayFailRate}
	rel := t - s.start
	for i := range s.w.incidents {
		in := &s.w.incidents[i]
		if in.kind != incPush || rel < in.from || rel >= in.to {
			continue
		}
		if (in.stream >= 0 && in.stream != u.room) || (in.province != "" && in.province != u.province) || (in.isp != "" && in.isp != u.isp) {
			continue
		}
		d := in.src.PushFailure
		fx.connFail = math.Max(fx.connFail, d.ConnectFailRate)
		fx.dropsPerHour = math.Max(fx.dropsPerHour, d.DropsPerHour)
		fx.relayFail = math.Max(fx.relayFail, d.RelayFailRate)
	}
	return fx
}

// originFx returns the bitrate and fps factors of a stream's line at t and
// whether its origin_stats are silenced.
func (s *sim) originFx(stream int, line string, t int64) (bitrate, fps float64, silent bool) {
	bitrate, fps = 1, 1
	rel := t - s.start
	for i := range s.w.incidents {
		in := &s.w.incidents[i]
		if rel < in.from || rel >= in.to || in.stream != stream || (in.line != "" && in.line != line) {
			continue
		}
		switch in.kind {
		case incBitrate:
			bitrate *= in.src.OriginBitrateDrop.Factor
			fps *= orOne(in.src.OriginBitrateDrop.FPSFactor)
		case incSilent:
			silent = true
		}
	}
	return bitrate, fps, silent
}

// ---- pull side ----

func (s *sim) pullEvent(u *user, typ schemas.Type, ts int64) schemas.Event {
	p := &u.pull
	e := u.tmpl
	e.Type = typ
	e.TS = ts
	e.SessionID = p.session
	e.StreamID = s.w.streams[p.stream].id
	e.Vendor = s.w.vendors[p.vendor].Name
	e.Node = p.node
	e.Quality = s.w.qualities[p.quality].Name
	return e
}

func (s *sim) stepPull(u *user, t0, t1 int64) {
	p := &u.pull
	r := u.r
	if p.phase == phasePlaying && t0 >= p.ffAt && !p.stalledAt(t0) && p.endAt > t0 {
		fx := s.pullEffects(u, t0)
		if poissonHit(r, s.sc.Playback.RebuffersPerMin*fx.stallX, t1-t0) {
			if at := t0 + r.Int64N(t1-t0); at < p.endAt {
				s.startStall(u, at, fx)
			}
		}
	}
	for {
		switch p.phase {
		case phaseIdle:
			if p.wakeAt >= t1 {
				return
			}
			s.beginSession(u, p.wakeAt)
		case phaseConnecting:
			if p.attemptAt >= t1 {
				return
			}
			s.attempt(u, p.attemptAt)
		case phasePlaying:
			next := min(p.nextHB, p.nextCDN, p.endAt)
			if next >= t1 {
				return
			}
			switch next {
			case p.nextHB:
				s.heartbeat(u, next)
			case p.nextCDN:
				s.cdnLog(u, next, false)
			default:
				s.endSession(u, next)
			}
		}
	}
}

func (p *pullState) stalledAt(t int64) bool {
	if p.nStalls == 0 {
		return false
	}
	last := &p.stalls[(p.nStalls-1)%stallRing]
	return last.s <= t && t < last.e
}

// dnsLookup emits the httpdns lookup preceding a connect and returns how
// long it took.
func (s *sim) dnsLookup(u *user, t int64, session string, stream int) int64 {
	r := u.r
	e := u.tmpl
	e.Type = schemas.TypeDNS
	e.TS = t
	e.SessionID = session
	e.StreamID = s.w.streams[stream].id
	e.CacheHit = r.Float64() < s.sc.DNS.CacheHitRate
	ms := int64(1 + r.IntN(4))
	if !e.CacheHit {
		ms = int64(lognormal(r, LogNormal{Median: 40, Sigma: 0.6, Max: 3000}, 1))
	}
	s.emit(t+ms, &e)
	return ms
}

func (s *sim) beginSession(u *user, t int64) {
	p := &u.pull
	r := u.r
	p.session = sessionID(r)
	if u.onMic {
		p.stream = u.room
		p.quality = s.w.originQ
		if p.quality < 0 {
			p.quality = len(s.w.qualities) - 1
		}
	} else {
		p.stream = s.w.streamPick.pick(r)
		p.quality = s.w.qualityPick.pick(r)
	}
	p.kbps = s.w.qualities[p.quality].BitrateKbps
	s.setVendor(u, s.chooseVendor(u, -1))
	p.attempts = 0
	p.nStalls = 0
	p.attemptAt = t + s.dnsLookup(u, t, p.session, p.stream)
	p.phase = phaseConnecting
}

func (s *sim) setVendor(u *user, v int) {
	p := &u.pull
	p.vendor = v
	nodes := s.w.nodes[v][u.region]
	p.node = nodes[u.r.IntN(len(nodes))]
}

// chooseVendor draws a vendor by the region's shares, skipping exclude and
// vendors whose maximum bandwidth the session would exceed (unless no
// vendor has room: then the shares alone decide).
func (s *sim) chooseVendor(u *user, exclude int) int {
	w := s.scratch
	copy(w, s.w.vendorW[u.region])
	if exclude >= 0 {
		w[exclude] = 0
	}
	room := false
	for v := range w {
		if w[v] > 0 && s.vendorLoad[v]+u.pull.kbps <= s.w.vendors[v].maxKbps {
			room = true
		}
	}
	if room {
		for v := range w {
			if s.vendorLoad[v]+u.pull.kbps > s.w.vendors[v].maxKbps {
				w[v] = 0
			}
		}
	}
	v := pickWeights(u.r, w)
	if v < 0 {
		// Only the excluded vendor serves this region.
		return exclude
	}
	return v
}

func (s *sim) attempt(u *user, t int64) {
	p := &u.pull
	r := u.r
	pb := &s.sc.Playback
	fx := s.pullEffects(u, t)
	if r.Float64() < fx.connFail {
		ce := pb.Errors[pickErr(r, pb.Errors)]
		conn := int64(lognormal(r, LogNormal{Median: s.connFailMedianMS, Sigma: 0.5}, fx.ffX))
		if ce.Timeout {
			conn = pb.ConnectTimeoutMS + r.Int64N(200)
		}
		e := s.pullEvent(u, schemas.TypePlayStart, t)
		e.OK = false
		e.ConnectMS = conn
		e.Error = ce.Name
		s.emit(t+conn, &e)
		if ce.Status != 0 {
			c := s.cdnEvent(u, t+conn)
			c.Status = ce.Status
			c.Bytes = int64(150 + r.IntN(400))
			c.TTFBMS = conn
			c.DurationMS = conn
			s.emit(t+conn, &c)
		}
		p.attempts++
		if p.attempts < pb.MaxAttempts {
			p.attemptAt = t + conn + pb.RetryDelay.Milliseconds()
			// SDKs fail over to another vendor after a failed connect.
			if len(s.w.vendors) > 1 {
				s.setVendor(u, s.chooseVendor(u, p.vendor))
			}
			return
		}
		end := s.pullEvent(u, schemas.TypePlayEnd, t+conn)
		end.Reason = "error"
		end.Error = ce.Name
		s.emit(t+conn, &end)
		p.phase = phaseIdle
		p.wakeAt = t + conn + int64(1000*lognormal(r, pb.GapS, 1))
		return
	}
	ff := max(int64(lognormal(r, pb.FirstFrameMS, fx.ffX)), 30)
	conn := max(int64(float64(ff)*(s.connShare[0]+r.Float64()*(s.connShare[1]-s.connShare[0]))), 5)
	e := s.pullEvent(u, schemas.TypePlayStart, t)
	e.OK = true
	e.ConnectMS = conn
	s.emit(t+conn, &e)
	f := s.pullEvent(u, schemas.TypeFirstFrame, t+ff)
	f.FirstFrameMS = ff
	s.emit(t+ff, &f)

	p.phase = phasePlaying
	p.playStart = t
	p.ffAt = t + ff
	p.prevHB, p.nextHB = t, t+s.hbMS
	p.lastCDN, p.nextCDN = t, t+s.cdnMS
	p.endReason = "user"
	if u.onMic {
		p.endAt = math.MaxInt64
	} else {
		p.endAt = t + max(int64(1000*lognormal(r, pb.WatchS, 1)), 10_000)
		if r.Float64() < pb.EOSShare {
			p.endReason = "eos"
		}
	}
	s.vendorLoad[p.vendor] += p.kbps
	p.loaded = true
}

func pickErr(r *rand.Rand, errs []ConnectError) int {
	total := 0.0
	for _, e := range errs {
		total += e.Weight
	}
	x := r.Float64() * total
	for i, e := range errs {
		if x < e.Weight {
			return i
		}
		x -= e.Weight
	}
	return len(errs) - 1
}

func (s *sim) startStall(u *user, at int64, fx pullFx) {
	p := &u.pull
	r := u.r
	pb := &s.sc.Playback
	d := max(int64(lognormal(r, pb.RebufferMS, fx.durX)), 50)
	media := "video"
	if r.Float64() < pb.AudioShare {
		media = "audio"
	}
	p.stalls[p.nStalls%stallRing] = stallRec{s: at, e: at + d, media: media}
	p.nStalls++
	e := s.pullEvent(u, schemas.TypeStall, at)
	e.DurationMS = d
	e.Media = media
	s.emit(at+d, &e)
	if d >= pb.QuitAfterStallMS && r.Float64() < pb.QuitProb {
		p.endAt, p.endReason = at+d, "error"
	} else if p.endAt > at && p.endAt < at+d {
		p.endAt = at + d // nobody leaves in the middle of a stall's report
	}
}

// stallOverlap returns the buffer-empty ms within (a, b] and whether a
// stall (≥ 2 s) overlaps it.
func (p *pullState) stallOverlap(a, b int64) (ms int64, stall bool) {
	n := min(p.nStalls, stallRing)
	for i := range n {
		st := &p.stalls[i]
		lo, hi := max(st.s, a), min(st.e, b)
		if hi > lo {
			ms += hi - lo
			if st.e-st.s >= schemas.StallThresholdMS {
				stall = true
			}
		}
	}
	return ms, stall
}

// tierKbps is the bitrate the viewer receives now: the tier's, except the
// "origin" tier that follows an upstream bitrate drop of the primary line.
func (s *sim) tierKbps(u *user, t int64) (kbps, fps float64) {
	p := &u.pull
	q := &s.w.qualities[p.quality]
	kbps, fps = q.BitrateKbps, q.FPS
	if p.quality == s.w.originQ && len(s.w.lines) > 0 {
		bf, ff, _ := s.originFx(p.stream, s.w.lines[0].Name, t)
		kbps *= bf
		fps *= ff
	}
	return kbps, fps
}

func (s *sim) heartbeat(u *user, h int64) {
	p := &u.pull
	r := u.r
	pb := &s.sc.Playback
	stalledMS, stalled := p.stallOverlap(p.prevHB, h)
	frac := float64(stalledMS) / float64(h-p.prevHB)
	target := pb.AudienceBuffer
	if u.onMic {
		target = pb.OnMicBuffer
	}
	var vb, ab float64
	// The buffer fills up after the first frame as after a stall.
	lastEnd := p.ffAt
	active := ""
	for i := range min(p.nStalls, stallRing) {
		st := &p.stalls[i]
		if st.s <= h && h < st.e {
			active = st.media
		}
		if st.e <= h {
			lastEnd = max(lastEnd, st.e)
		}
	}
	switch {
	case h < p.ffAt:
		vb, ab = 0, 0
	case active == "video":
		vb, ab = 0, target.AudioMS*0.3*r.Float64()
	case active == "audio":
		vb, ab = target.VideoMS*0.3*r.Float64(), 0
	case h-lastEnd < 3000:
		fill := float64(h-lastEnd) / 3000 * (0.8 + 0.2*r.Float64())
		vb, ab = target.VideoMS*fill, target.AudioMS*fill
	default:
		x := 0.75 + 0.5*r.Float64()
		vb, ab = target.VideoMS*x, target.AudioMS*(x+0.1*r.Float64())
	}
	kbps, fps := s.tierKbps(u, h)
	e := s.pullEvent(u, schemas.TypeHeartbeat, h)
	e.Stalled = stalled
	e.VideoBufferMS = int64(vb)
	e.AudioBufferMS = int64(ab)
	e.BitrateKbps = round1(math.Max(0, kbps*(1+0.04*r.NormFloat64())*(1-frac)))
	e.FPS = round1(math.Max(0, fps*(1-frac)-0.3*math.Abs(r.NormFloat64())))
	// Zero buffers during a stall are measurements, not absent values.
	e.Present = heartbeatProps
	s.emit(h, &e)
	p.prevHB = h
	p.nextHB = h + s.hbMS
}

var heartbeatProps = schemas.PropSet(0).With(schemas.PropVideoBufferMS).With(schemas.PropAudioBufferMS).
	With(schemas.PropBitrateKbps).With(schemas.PropFPS)

// cdnEvent is a CDN access-log record of u's current edge node.
func (s *sim) cdnEvent(u *user, ts int64) schemas.Event {
	p := &u.pull
	return schemas.Event{
		V: 1, Type: schemas.TypeCDNRequest, TS: ts,
		StreamID: s.w.streams[p.stream].id,
		Vendor:   s.w.vendors[p.vendor].Name, Node: p.node,
		IP: u.tmpl.IP, Country: u.tmpl.Country, Province: u.tmpl.Province, City: u.tmpl.City, ISP: u.tmpl.ISP,
	}
}

// cdnLog emits the CDN record of the bytes served to u since the last one.
func (s *sim) cdnLog(u *user, c int64, final bool) {
	p := &u.pull
	r := u.r
	dur := c - p.lastCDN
	if dur <= 0 {
		return
	}
	stalledMS, _ := p.stallOverlap(p.lastCDN, c)
	played := dur - stalledMS
	kbps, _ := s.tierKbps(u, c)
	fx := s.pullEffects(u, c)
	e := s.cdnEvent(u, c)
	e.Status = 200
	e.Bytes = max(0, int64(kbps*125*float64(played)/1000*(1+0.03*r.NormFloat64())))
	if r.Float64() < fx.httpErr {
		e.Status = 502 + 2*r.IntN(2) // 502 or 504
		e.Bytes = int64(float64(e.Bytes) * 0.5 * r.Float64())
	}
	e.TTFBMS = int64(lognormal(r, s.w.vendors[p.vendor].TTFBMS, fx.ttfbX))
	e.DurationMS = dur
	s.emit(c, &e)
	p.lastCDN = c
	if !final {
		p.nextCDN = c + s.cdnMS
	}
}

func (s *sim) endSession(u *user, t int64) {
	p := &u.pull
	s.cdnLog(u, t, true)
	e := s.pullEvent(u, schemas.TypePlayEnd, t)
	e.Reason = p.endReason
	e.WatchMS = t - p.playStart
	s.emit(t, &e)
	if p.loaded {
		s.vendorLoad[p.vendor] -= p.kbps
		p.loaded = false
	}
	p.phase = phaseIdle
	p.wakeAt = t + int64(1000*lognormal(u.r, s.sc.Playback.GapS, 1))
}

// ---- push side (hosts and co-hosts) ----

func (s *sim) pushEvent(u *user, typ schemas.Type, ts int64) schemas.Event {
	e := u.tmpl
	e.Type = typ
	e.TS = ts
	e.SessionID = u.push.session
	e.StreamID = s.w.streams[u.room].id
	if len(s.w.lines) > 0 {
		e.Node = s.w.lines[0].Node
	}
	return e
}

func (s *sim) stepPush(u *user, t0, t1 int64) {
	q := &u.push
	r := u.r
	if q.phase == phasePlaying && q.leaveAt > 0 && q.leaveAt < t1 {
		// The co-host leaves the mic: the push ends, not dropped.
		at := max(q.leaveAt, t0)
		e := s.pushEvent(u, schemas.TypePushEnd, at)
		s.emit(at, &e)
		q.phase, q.leaveAt = phaseIdle, 0
		q.wakeAt = at + int64(1000*lognormal(r, s.sc.Push.CohostOffS, 1))
	}
	if q.phase == phasePlaying && q.upSince <= t0 {
		fx := s.pushEffects(u, t0)
		if poissonHit(r, fx.dropsPerHour/60, t1-t0) {
			at := t0 + r.Int64N(t1-t0)
			e := s.pushEvent(u, schemas.TypePushEnd, at)
			e.Dropped = true
			e.Error = "network_lost"
			s.emit(at, &e)
			q.phase = phaseIdle
			q.prevUp, q.downAt = q.upSince, at
			q.wakeAt = at + s.sc.Push.ReconnectDelay.Milliseconds() + r.Int64N(1000)
		}
	}
	for {
		switch q.phase {
		case phaseIdle:
			if q.wakeAt >= t1 {
				return
			}
			q.session = sessionID(r)
			q.attemptAt = q.wakeAt + s.dnsLookup(u, q.wakeAt, q.session, u.room)
			q.phase = phaseConnecting
		case phaseConnecting:
			if q.attemptAt >= t1 {
				return
			}
			s.pushAttempt(u, q.attemptAt)
		default:
			return
		}
	}
}

func (s *sim) pushAttempt(u *user, t int64) {
	q := &u.push
	r := u.r
	ps := &s.sc.Push
	fx := s.pushEffects(u, t)
	if r.Float64() < fx.connFail {
		name := ps.Errors[pickWeights(r, weightsOf(ps.Errors))].Name
		conn := int64(lognormal(r, ps.ConnectMS, 1))
		if name == "timeout" {
			conn = s.sc.Playback.ConnectTimeoutMS + r.Int64N(200)
		}
		e := s.pushEvent(u, schemas.TypePushStart, t)
		e.OK = false
		e.ConnectMS = conn
		e.Error = name
		s.emit(t+conn, &e)
		q.attemptAt = t + conn + ps.ReconnectDelay.Milliseconds()
		return
	}
	conn := max(int64(lognormal(r, ps.ConnectMS, 1)), 5)
	e := s.pushEvent(u, schemas.TypePushStart, t)
	e.OK = true
	e.ConnectMS = conn
	s.emit(t+conn, &e)
	q.phase = phasePlaying
	q.upSince = t + conn
	q.leaveAt = 0
	if u.tmpl.Role == "cohost" && ps.CohostMicS.Median > 0 {
		q.leaveAt = q.upSince + int64(1000*lognormal(r, ps.CohostMicS, 1))
	}
	if u.tmpl.Role != "host" {
		return
	}
	// The host's stream is relayed (转推) to every CDN vendor.
	for v := range s.w.vendors {
		at := q.upSince
		for try := 0; try <= ps.RelayRetries; try++ {
			d := max(int64(lognormal(r, ps.RelayMS, 1)), 10)
			e := s.pushEvent(u, schemas.TypeRelay, at)
			e.Vendor = s.w.vendors[v].Name
			e.DurationMS = d
			e.OK = r.Float64() >= fx.relayFail
			if !e.OK {
				e.Error = "relay_failed"
			}
			s.emit(at+d, &e)
			if e.OK {
				break
			}
			at += d + 1000
		}
	}
}

// hostLive reports whether the host of st was pushing at t (t within the
// current tick, whose push steps already ran).
func (s *sim) hostLive(st *stream, t int64) bool {
	q := &s.w.users[st.host].push
	if q.phase == phasePlaying && t >= q.upSince {
		return true
	}
	return t < q.downAt && t >= q.prevUp
}

// ---- origin ----

func (s *sim) stepOrigin(st *stream, t1 int64) {
	r := st.r
	sc := s.sc
	for li := range st.next {
		for st.next[li] < t1 {
			t := st.next[li]
			st.next[li] += s.originMS
			le := &st.lineE[li]
			bf, ff, silent := s.originFx(st.idx, le.line, t)
			// No upstream (host not pushing) means no origin_stats at all:
			// the wall shows N/A, never a stale or zero number.
			if silent || !s.hostLive(st, t) {
				continue
			}
			e := schemas.Event{
				V: 1, Type: schemas.TypeOriginStats, TS: t,
				StreamID: st.id, Node: le.node, Line: le.line, EgressISP: le.egress,
			}
			e.BitrateKbps = round1(math.Max(1, sc.Streams.BitrateKbps*bf*(1+sc.Origin.BitrateJitter*r.NormFloat64())))
			e.FPS = round1(math.Min(sc.Streams.FPS, math.Max(0, sc.Streams.FPS*ff*(1+sc.Origin.FPSJitter*r.NormFloat64()))))
			// A congested uplink queues: RTT grows as the bitrate collapses.
			e.RTTMS = round1(lognormal(r, sc.Origin.Lines[li].RTTMS, 1+3*(1-bf)))
			s.emit(t, &e)
		}
	}
}

// typeCounts returns the events emitted so far by type name.
func (s *sim) typeCounts() map[string]int64 {
	out := map[string]int64{}
	for _, t := range schemas.Types() {
		if s.counts[t] > 0 {
			out[t.String()] = s.counts[t]
		}
	}
	return out
}
