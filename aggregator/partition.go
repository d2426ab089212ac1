package aggregator

import (
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"

	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// WindowMS is the window length: tumbling one-minute windows [m, m+60s)
// UTC (route.WindowStart gives a timestamp's window).
const WindowMS = route.WindowMS

// Outcome says what Add did with an event.
type Outcome uint8

const (
	// Applied: the event was added to its open window.
	Applied Outcome = iota
	// Late: its window had already closed; it was counted in the window's
	// late counter (a LateRow), not applied.
	Late
	// TooLate: its window closed more than LateHorizon ago; it was counted in
	// Stats.TooLate only. The runner should dead-letter it.
	TooLate
	// Replayed: re-read after Restore, already accounted for before the
	// checkpoint (in a final row or a late counter); nothing changed.
	Replayed
	// Rejected: not an event of a known source; nothing changed.
	Rejected
	// Duplicate: an event with the same identity (EID) was already applied
	// to a window that is still live; nothing changed (dedup.go).
	Duplicate
)

var outcomeNames = [...]string{"applied", "late", "too_late", "replayed", "rejected", "duplicate"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Stats counts events by outcome.
type Stats struct {
	Applied, Late, TooLate, Replayed, Rejected, Duplicate uint64
}

// Partition aggregates the events of one input partition: event-time
// windows, a watermark from this partition's event times only, and partial
// rows that the queries sum across partitions.
//
// Add must see the partition's events in offset order. A Partition is not
// safe for concurrent use: the runner owns it from one goroutine (one per
// assigned Kafka partition), calling Add for each message, and Drain and
// Snapshot on its flush ticks.
type Partition struct {
	plan *Plan
	id   PartitionID
	// lateness is the allowed lateness (ms) of the partition's source.
	lateness int64

	tables [route.NumSources][]*tupleTable // per source, per component
	ukey   hashKey                         // of the user tables (userHash)
	// keyGen[si] changes whenever source si's key tables may have grown.
	keyGen [route.NumSources]uint64
	dicts  [route.NumSources][]fieldDict // per source, per field (sourcePlan.fields)
	// Per source, for the fast paths of tuples: the fields, the component
	// without fields (the total) and those of several fields.
	fields         [route.NumSources][]fieldRef
	totals, multis [route.NumSources][]compRef
	// windows are the live windows, sorted by start: open ones and closed
	// ones (final) not yet drained.
	windows []*window
	last    *window // cache: consecutive events mostly share a window

	maxTS         int64 // the clock: newest eventClock seen or Advance (math.MinInt64: none)
	closedThrough int64 // every window ending at or before it is closed
	lastOffset    int64
	replayUntil   int64 // see Restore

	late       map[lateKey]*lateCounter
	originSeen []map[string]*seenKey // per origin grouping set
	maxSeen    int64                 // newest window start any origin key was seen in

	stats   Stats
	pending int // closed windows not yet drained

	dbuf []*CDNRaw
	obuf []*OriginRaw
	scr  []uint32 // scratch of tuples

	dedup dedupSet // identities of the events in live windows (dedup.go)

	pre    []prepared // AddBatch's per-event state
	prevec []uint32   // scratch of tuples for each pre[i]
	sink   uint64     // keeps AddBatch's cache-warming loads alive
}

type lateKey struct {
	start int64
	src   int
}

type lateCounter struct {
	count      uint64
	lastOffset int64
	dirty      bool
}

// seenKey remembers in which recent windows an origin grouping key had data.
type seenKey struct {
	vals []string
	last int64  // newest window start it was seen in
	mask uint64 // bit k: seen in window last − k·WindowMS
}

func (s *seenKey) mark(ws int64) {
	switch d := (ws - s.last) / WindowMS; {
	case d > 0:
		if d >= 64 {
			s.mask = 0
		} else {
			s.mask <<= uint(d)
		}
		s.mask |= 1
		s.last = ws
	case -d < 64:
		s.mask |= 1 << uint(-d)
	}
}

// seenIn reports whether the key was seen in a window starting in [from, to].
func (s *seenKey) seenIn(from, to int64) bool {
	for m := from; m <= to; m += WindowMS {
		if d := (s.last - m) / WindowMS; d >= 0 && d < 64 && s.mask&(1<<uint(d)) != 0 {
			return true
		}
	}
	return false
}

// NewPartition returns an empty partition aggregator for the events of
// source src (one Kafka topic per source; the offline mode keeps one
// partition per source too): its windows take late events for that source's
// allowed lateness. SourceUnknown, for a partition that may hold several
// sources, takes the largest.
func NewPartition(plan *Plan, id PartitionID, src schemas.Source) *Partition {
	p := &Partition{
		plan:          plan,
		id:            id,
		lateness:      plan.latenessOf(src),
		maxTS:         math.MinInt64,
		closedThrough: math.MinInt64,
		lastOffset:    -1,
		replayUntil:   -1,
		late:          map[lateKey]*lateCounter{},
		originSeen:    make([]map[string]*seenKey, len(plan.src[2].sets)),
		maxSeen:       math.MinInt64,
	}
	seed := maphash.MakeSeed()
	p.dedup = newDedupSet(maphash.String(seed, "dedup"))
	p.ukey = newHashKey(seed, "users")
	for si := range p.tables {
		sp := &plan.src[si]
		p.dicts[si] = make([]fieldDict, len(sp.fields))
		for f := range sp.fields {
			p.dicts[si][f] = newFieldDict(newHashKey(seed, [2]int{si, f}))
		}
		for c := range sp.comps {
			t := newTupleTable(sp, si, c, p.dicts[si], seed)
			p.tables[si] = append(p.tables[si], t)
			nf, nc := len(sp.fields), len(sp.comps)
			ref := compRef{t: t, c: c, f: sp.comps[c].off, vi: nf + c, ki: nf + nc + sp.comps[c].kpos}
			switch {
			case t.n == 0 && t.keys[0].fixed:
				p.totals[si] = append(p.totals[si], ref)
			case t.n == 1 && t.keys[0].fixed:
				// Handled with its field, in fieldsFast.
			default:
				p.multis[si] = append(p.multis[si], ref)
			}
		}
		for f := range sp.fields {
			r := fieldRef{getter: sp.get[f], d: &p.dicts[si][f]}
			for c, cp := range sp.comps {
				if t := p.tables[si][c]; cp.off == f && t.n == 1 && t.keys[0].fixed {
					r.t, r.c = t, c
					r.vi, r.ki = len(sp.fields)+c, len(sp.fields)+len(sp.comps)+cp.kpos
				}
			}
			p.fields[si] = append(p.fields[si], r)
		}
	}
	p.scr = make([]uint32, p.scratchLen())
	for i := range p.originSeen {
		p.originSeen[i] = map[string]*seenKey{}
	}
	return p
}

// ID returns the partition's identity.
func (p *Partition) ID() PartitionID { return p.id }

// Stats returns the event counts so far.
func (p *Partition) Stats() Stats { return p.stats }

// Watermark is the partition's clock minus the allowed lateness (Unix ms);
// math.MinInt64 before the first event. Windows ending at or before it are
// final.
func (p *Partition) Watermark() int64 {
	if p.maxTS == math.MinInt64 {
		return math.MinInt64
	}
	return p.maxTS - p.lateness
}

// Clock is the newest event time the partition has seen, each event's ts
// bounded by its recv_ts (eventClock), or the time of the last Advance;
// math.MinInt64 before the first event.
func (p *Partition) Clock() int64 { return p.maxTS }

// eventClock is how far an event moves its partition's clock: its ts, but
// never later than the time ingest received it. A client whose clock runs
// ahead (within ingest's max_future_skew) would otherwise push the
// watermark past the windows every other user is still filling, and their
// on-time events would turn late. Events that did not pass through ingest
// (recv_ts 0: files, tests) move it by their ts.
func eventClock(e *schemas.Event) int64 {
	if e.RecvTS > 0 && e.RecvTS < e.TS {
		return e.RecvTS
	}
	return e.TS
}

// Add applies the event read at offset (offsets increase; the offline mode
// numbers lines). The event is only read during the call. AddBatch does the
// same for many events, faster.
func (p *Partition) Add(offset int64, e *schemas.Event) Outcome {
	return p.add(offset, e, nil)
}

// add is Add; pre, if not nil, holds what AddBatch prepared for e.
func (p *Partition) add(offset int64, e *schemas.Event, pre *prepared) Outcome {
	si := route.Index(e.Type.Source())
	if si < 0 {
		p.lastOffset = max(p.lastOffset, offset)
		p.stats.Rejected++
		return Rejected
	}
	ws := route.WindowStart(e.TS)
	if ws+WindowMS <= p.closedThrough {
		return p.addLate(offset, ws, si)
	}
	if offset > p.lastOffset {
		p.lastOffset = offset
	}
	if p.dedup.seenOrAdd(e.EID, ws) {
		p.stats.Duplicate++
		return Duplicate
	}
	w := p.window(ws)
	if offset < w.firstOffset {
		w.firstOffset = offset
	}
	w.changed = true
	var vec, keys []uint32
	if pre != nil && pre.ok {
		vec, keys = pre.vec, pre.keys
	} else {
		vec, keys = p.tuples(si, e, ws, p.scr)
	}
	switch si {
	case 0:
		p.addClient(w, e, vec, keys, pre)
	case 1:
		p.addCDN(w, e, keys)
	case 2:
		p.addOrigin(w, e, keys)
	}
	p.stats.Applied++
	if c := eventClock(e); c > p.maxTS {
		p.maxTS = c
		if ct := route.WindowStart(p.Watermark()); ct > p.closedThrough {
			p.closeThrough(ct, offset)
		}
	}
	return Applied
}

func (p *Partition) addLate(offset, ws int64, si int) Outcome {
	if offset > p.lastOffset {
		p.lastOffset = offset
	}
	if offset < p.replayUntil {
		p.stats.Replayed++
		return Replayed
	}
	k := lateKey{ws, si}
	c := p.late[k]
	if c == nil {
		if ws+WindowMS+p.plan.horizon < p.Watermark() {
			// Its counter may already have been forgotten: a fresh one
			// would replace the stored cumulative count with a smaller one.
			p.stats.TooLate++
			return TooLate
		}
		c = &lateCounter{}
		p.late[k] = c
	}
	c.count++
	c.lastOffset = offset
	c.dirty = true
	p.stats.Late++
	return Late
}

// window returns the live window starting at ws, creating it.
func (p *Partition) window(ws int64) *window {
	if p.last != nil && p.last.start == ws {
		return p.last
	}
	i, found := p.findWindow(ws)
	if !found {
		p.windows = slices.Insert(p.windows, i, &window{start: ws, firstOffset: math.MaxInt64})
	}
	p.last = p.windows[i]
	return p.last
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// closeThrough closes every window ending at or before ct; offset is the
// event that moved the watermark (the final rows' version).
func (p *Partition) closeThrough(ct, offset int64) {
	for _, w := range p.windows {
		if w.start+WindowMS > ct {
			break
		}
		if !w.final {
			w.final, w.closeOffset = true, offset
			p.pending++
		}
	}
	// Minutes without any event still owe no_data rows to the origin keys
	// seen shortly before them.
	if p.maxSeen != math.MinInt64 {
		from := p.closedThrough
		if from == math.MinInt64 {
			// Nothing was closed yet, so every window ever created is
			// still live and the first one bounds every gap (after a
			// Restore there may be none yet: then the last seen one).
			from = p.maxSeen
			if len(p.windows) > 0 {
				from = min(from, p.windows[0].start)
			}
		}
		limit := min(ct, p.maxSeen+(p.plan.noDataN+1)*WindowMS)
		for m := from; m+WindowMS <= limit; m += WindowMS {
			if p.originRecent(m) {
				w := p.window(m)
				if !w.final {
					w.final, w.closeOffset = true, offset
					p.pending++
				}
			}
		}
	}
	p.closedThrough = ct
}

// originRecent reports whether some origin key was seen in the N windows
// before the window starting at ws.
func (p *Partition) originRecent(ws int64) bool {
	from, to := ws-p.plan.noDataN*WindowMS, ws-WindowMS
	if p.maxSeen < from {
		return false
	}
	for _, m := range p.originSeen {
		for _, s := range m {
			if s.seenIn(from, to) {
				return true
			}
		}
	}
	return false
}

// Skip records that the message at offset was consumed without an event
// (the runner dead-letters undecodable messages): the next checkpoint moves
// past it, so a restart neither re-reads nor re-reports it.
func (p *Partition) Skip(offset int64) {
	if offset > p.lastOffset {
		p.lastOffset = offset
	}
}

// Advance moves the event-time clock to ts as if an event of that time had
// arrived (for an idle partition, from processing time). Windows it closes
// get the current offset as their version.
func (p *Partition) Advance(ts int64) {
	if ts <= p.maxTS {
		return
	}
	p.maxTS = ts
	if ct := route.WindowStart(p.Watermark()); ct > p.closedThrough {
		p.closeThrough(ct, p.lastOffset)
	}
}

// CloseAll closes every window up to the one holding the newest event time
// (raised by Advance too), including event-less minutes that owe origin
// no_data rows: the end of the input (offline mode).
func (p *Partition) CloseAll() {
	end := p.closedThrough
	if n := len(p.windows); n > 0 {
		end = max(end, p.windows[n-1].start+WindowMS)
	}
	if p.maxTS != math.MinInt64 {
		end = max(end, route.WindowStart(p.maxTS)+WindowMS)
	}
	if end > p.closedThrough {
		p.closeThrough(end, p.lastOffset)
	}
}

// Pending reports whether windows closed since the last Drain.
func (p *Partition) Pending() bool { return p.pending > 0 }

// Batch is what Drain hands to the writer.
type Batch struct {
	// Final rows of the windows closed since the previous Drain, sorted.
	Final []Row
	// Late holds the late counters that changed since the previous Drain.
	Late []LateRow
	// Checkpoint restores this partition's state as of this Drain; store it
	// durably with the rows, then consume from Checkpoint.Resume on restart.
	Checkpoint Checkpoint
}

// Drain returns and forgets the closed windows, the changed late counters
// and a checkpoint. Write all of it, then commit Checkpoint.Resume.
func (p *Partition) Drain() Batch {
	var b Batch
	keep := p.windows[:0]
	for _, w := range p.windows {
		if w.final {
			b.Final = p.windowRows(b.Final, w, true)
			continue
		}
		keep = append(keep, w)
	}
	clear(p.windows[len(keep):])
	p.pending = 0
	dropped := len(keep) < len(p.windows)
	p.windows = keep
	p.last = nil
	for k, c := range p.late {
		if c.dirty {
			b.Late = append(b.Late, LateRow{
				Partition: p.id, WindowStart: k.start, Source: route.Sources[k.src],
				Count: c.count, Version: versionOf(c.lastOffset, true),
			})
			c.dirty = false
		}
		if k.start+WindowMS+p.plan.horizon < p.Watermark() {
			delete(p.late, k)
		}
	}
	slices.SortFunc(b.Late, func(a, b LateRow) int {
		if c := compareInt(a.WindowStart, b.WindowStart); c != 0 {
			return c
		}
		return compareInt(int64(route.Index(a.Source)), int64(route.Index(b.Source)))
	})
	if dropped {
		oldest := int64(math.MaxInt64)
		if len(p.windows) > 0 {
			oldest = p.windows[0].start
		}
		for _, ts := range p.tables {
			for _, t := range ts {
				t.sweep(oldest)
			}
		}
		p.pruneSeen()
		p.dedup.retain(p.windows)
	}
	b.Checkpoint = p.Checkpoint()
	return b
}

// pruneSeen forgets origin keys too old to owe a no_data row to any window
// that is still open or yet to come.
func (p *Partition) pruneSeen() {
	if p.closedThrough == math.MinInt64 {
		return
	}
	horizon := p.closedThrough - p.plan.noDataN*WindowMS
	for _, m := range p.originSeen {
		for k, s := range m {
			if s.last < horizon {
				delete(m, k)
			}
		}
	}
}

// Snapshot returns provisional rows (Final false) of every open window,
// including minutes without events that owe origin no_data rows. It does
// not change the state; call it after Drain.
func (p *Partition) Snapshot() []Row { return p.snapshot(false) }

// SnapshotChanged is Snapshot for the windows whose rows changed since the
// previous SnapshotChanged (plus the event-less minutes that owe origin
// no_data rows, which are few): with windows open for the whole allowed
// lateness, re-emitting every open window at each flush would rewrite
// minutes of unchanged rows. A row stored earlier for an unchanged window
// is still its newest version.
func (p *Partition) SnapshotChanged() []Row { return p.snapshot(true) }

func (p *Partition) snapshot(onlyChanged bool) []Row {
	var rows []Row
	for _, w := range p.windows {
		if !w.final && (w.changed || !onlyChanged) {
			rows = p.windowRows(rows, w, false)
		}
		if onlyChanged {
			w.changed = false
		}
	}
	if p.maxSeen != math.MinInt64 && p.maxTS != math.MinInt64 {
		from := p.closedThrough
		if len(p.windows) > 0 {
			from = max(from, p.windows[0].start)
		}
		if from == math.MinInt64 {
			return rows
		}
		for m := from; m <= route.WindowStart(p.maxTS); m += WindowMS {
			if !p.hasWindow(m) && p.originRecent(m) {
				rows = p.windowRows(rows, &window{start: m}, false)
			}
		}
		SortRows(rows)
	}
	return rows
}

func (p *Partition) hasWindow(ws int64) bool {
	_, found := p.findWindow(ws)
	return found
}

// findWindow is where the live window starting at ws is, or would be
// inserted, in p.windows.
func (p *Partition) findWindow(ws int64) (int, bool) {
	return slices.BinarySearchFunc(p.windows, ws, func(w *window, s int64) int {
		return compareInt(w.start, s)
	})
}

// Checkpoint is the state a replacement Partition needs to continue exactly
// where this one was at its last Drain, after re-reading from Resume. It is
// small: no window contents (the open windows are rebuilt by the replay).
type Checkpoint struct {
	// Resume is the first offset to consume after a restart: the oldest
	// event of a still-open window (or the next offset). Commit it to Kafka.
	Resume int64 `json:"resume"`
	// Next is the offset after the last one applied before the checkpoint.
	Next          int64         `json:"next"`
	MaxTS         int64         `json:"max_ts"`
	ClosedThrough int64         `json:"closed_through"`
	Late          []LateState   `json:"late,omitempty"`
	OriginSeen    []OriginState `json:"origin_seen,omitempty"`
}

// LateState is one late counter in a Checkpoint.
type LateState struct {
	WindowStart int64  `json:"window_start"`
	Source      string `json:"source"`
	Count       uint64 `json:"count"`
	LastOffset  int64  `json:"last_offset"`
}

// OriginState is one origin key's recent presence in a Checkpoint.
type OriginState struct {
	Set  int      `json:"set"`
	Dims []string `json:"dims"`
	Last int64    `json:"last"`
	Mask uint64   `json:"mask"`
}

// Checkpoint returns the current checkpoint (Drain returns one too).
func (p *Partition) Checkpoint() Checkpoint {
	cp := Checkpoint{
		Resume: p.lastOffset + 1,
		// A partition still replaying after Restore has not re-read up to
		// the restored Next, but its late counters (restored) already count
		// the late events before it: moving Next back would make the next
		// restore count them again.
		Next:          max(p.lastOffset+1, p.replayUntil),
		MaxTS:         p.maxTS,
		ClosedThrough: p.closedThrough,
	}
	for _, w := range p.windows {
		if w.firstOffset < cp.Resume {
			cp.Resume = w.firstOffset
		}
	}
	for k, c := range p.late {
		cp.Late = append(cp.Late, LateState{WindowStart: k.start, Source: route.Sources[k.src].String(), Count: c.count, LastOffset: c.lastOffset})
	}
	slices.SortFunc(cp.Late, func(a, b LateState) int {
		if c := compareInt(a.WindowStart, b.WindowStart); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	for g, m := range p.originSeen {
		for _, s := range m {
			cp.OriginSeen = append(cp.OriginSeen, OriginState{Set: g, Dims: s.vals, Last: s.last, Mask: s.mask})
		}
	}
	slices.SortFunc(cp.OriginSeen, func(a, b OriginState) int {
		if c := compareInt(int64(a.Set), int64(b.Set)); c != 0 {
			return c
		}
		return slices.Compare(a.Dims, b.Dims)
	})
	return cp
}

// Restore loads a checkpoint into a new Partition before its first Add. The
// caller then re-reads from cp.Resume: events before cp.Next whose window
// was already closed at the checkpoint are skipped (Replayed), since they
// are in a final row or a late counter already; the others rebuild the open
// windows exactly as they were.
func (p *Partition) Restore(cp Checkpoint) error {
	if p.lastOffset >= 0 || len(p.windows) > 0 {
		return fmt.Errorf("cannot restore partition %s/%d: it already has events", p.id.Topic, p.id.Partition)
	}
	p.maxTS = cp.MaxTS
	p.closedThrough = cp.ClosedThrough
	p.replayUntil = cp.Next
	p.lastOffset = cp.Resume - 1
	for _, l := range cp.Late {
		s, ok := schemas.ParseSource(l.Source)
		if !ok || route.Index(s) < 0 {
			return fmt.Errorf("cannot restore late counter: unknown source %q", l.Source)
		}
		p.late[lateKey{l.WindowStart, route.Index(s)}] = &lateCounter{count: l.Count, lastOffset: l.LastOffset}
	}
	for _, o := range cp.OriginSeen {
		if o.Set < 0 || o.Set >= len(p.originSeen) || len(o.Dims) != len(p.plan.src[2].sets[o.Set].Fields) {
			return fmt.Errorf("cannot restore origin key %v: grouping set %d does not match the configuration", o.Dims, o.Set)
		}
		p.originSeen[o.Set][keyString(o.Dims)] = &seenKey{vals: slices.Clone(o.Dims), last: o.Last, mask: o.Mask}
		p.maxSeen = max(p.maxSeen, o.Last)
	}
	return nil
}

// window is one one-minute window's state on one partition.
type window struct {
	start       int64
	firstOffset int64
	final       bool
	closeOffset int64
	// changed: its rows changed since SnapshotChanged last returned them
	// (an event applied, or an origin key seen shortly before it, which
	// may owe it a no_data row).
	changed bool

	client *clientWin
	cdn    [][]CDNRaw    // per grouping set, by key id
	origin [][]OriginRaw // per grouping set, by key id
}

type clientWin struct {
	// hot and cold are per grouping set in component order (sourcePlan.pos),
	// by key id, sized to the key tables (cold only once a non-heartbeat
	// event came).
	hot   [][]clientHot
	cold  [][]ClientRaw
	users *userTable
	// hot (cold) is sized to the key tables as of Partition.keyGen[0] = hotGen (coldGen).
	hotGen, coldGen uint64
}

// size grows the hot (or cold) accumulators to the sizes of the key tables.
func (cw *clientWin) size(tables []*tupleTable, hot bool) {
	x := 0
	for _, tt := range tables {
		for j := range tt.keys {
			if hot {
				cw.hot[x] = grow(cw.hot[x], tt.keys[j].size())
			} else {
				cw.cold[x] = grow(cw.cold[x], tt.keys[j].size())
			}
			x++
		}
	}
}

func grow[T any](s []T, n int) []T {
	if n <= len(s) {
		return s
	}
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)[:n]
}

// keys returns the key table of grouping set g of source si.
func (p *Partition) keys(si, g int) *keyTable {
	sc := p.plan.src[si].setComp[g]
	return &p.tables[si][sc.c].keys[sc.j]
}

// addClient applies a client event to its window; vec and keys are its
// tuples and keys (Partition.tuples).
func (p *Partition) addClient(w *window, e *schemas.Event, vec, keys []uint32, pre *prepared) {
	sp := &p.plan.src[0]
	cw := w.client
	if cw == nil {
		cw = &clientWin{hot: make([][]clientHot, len(sp.sets)), cold: make([][]ClientRaw, len(sp.sets)),
			users: newUserTable(len(sp.comps)), hotGen: ^uint64(0), coldGen: ^uint64(0)}
		w.client = cw
	}
	tables := p.tables[0]
	heartbeat := e.Type == schemas.TypeHeartbeat
	// Accumulators are indexed by grouping set in component order, the
	// order of keys, and sized to the key tables before the loops so that
	// these have no calls.
	if cw.hotGen != p.keyGen[0] {
		cw.size(tables, true)
		cw.hotGen = p.keyGen[0]
	}
	hot := cw.hot[:len(keys)]
	if heartbeat {
		d := heartbeatDelta(e)
		for x, k := range keys {
			h := &hot[x][k]
			h.events++
			h.samples++
			h.stalled += d.stalled
			h.videoSum += d.videoSum
			h.videoN += d.videoN
			h.audioSum += d.audioSum
			h.audioN += d.audioN
		}
	} else {
		if cw.coldGen != p.keyGen[0] {
			cw.size(tables, false)
			cw.coldGen = p.keyGen[0]
		}
		// Pointers to the cold accumulators, on the stack (no write barriers).
		var abuf [32]*ClientRaw
		accs := abuf[:]
		if len(keys) > len(abuf) {
			accs = make([]*ClientRaw, len(keys))
		}
		accs = accs[:len(keys)]
		cold := cw.cold[:len(keys)]
		for x, k := range keys {
			hot[x][k].events++
			accs[x] = &cold[x][k]
		}
		applyClient(e, accs)
	}
	if !e.Type.PullSide() {
		return
	}
	var fl uint8
	if e.IsStall() {
		fl = flagStall
		switch e.Media {
		case "video":
			fl |= flagVideo
		case "audio":
			fl |= flagAudio
		}
	}
	var uh uint32
	if pre != nil && pre.hashed {
		uh = pre.uh
	} else {
		uh = userHash(&p.ukey, e.UserID)
	}
	cw.users.add(e.UserID, uh, vec, fl)
}

func (p *Partition) addCDN(w *window, e *schemas.Event, keys []uint32) {
	sp := &p.plan.src[1]
	if w.cdn == nil {
		w.cdn = make([][]CDNRaw, len(sp.sets))
	}
	accs := p.dbuf[:0]
	x := 0
	for c, tt := range p.tables[1] {
		for j, g := range sp.comps[c].sets {
			k := keys[x]
			x++
			if int(k) >= len(w.cdn[g]) {
				w.cdn[g] = grow(w.cdn[g], tt.keys[j].size())
			}
			accs = append(accs, &w.cdn[g][k])
		}
	}
	p.dbuf = accs
	applyCDN(e, accs)
}

func (p *Partition) addOrigin(w *window, e *schemas.Event, keys []uint32) {
	sp := &p.plan.src[2]
	if w.origin == nil {
		w.origin = make([][]OriginRaw, len(sp.sets))
	}
	accs := p.obuf[:0]
	x := 0
	for c, tt := range p.tables[2] {
		for j, g := range sp.comps[c].sets {
			k := keys[x]
			x++
			if int(k) >= len(w.origin[g]) {
				w.origin[g] = grow(w.origin[g], tt.keys[j].size())
			}
			a := &w.origin[g][k]
			if a.Samples == 0 {
				// First data of this key in this window: remember it for
				// the no_data rows of the following windows.
				p.markSeen(g, tt.keys[j].vals[k], w.start)
				a.FPSMin, a.BitrateKbpsMin = e.FPS, e.BitrateKbps
			}
			accs = append(accs, a)
		}
	}
	p.obuf = accs
	applyOrigin(e, accs)
}

func (p *Partition) markSeen(g int, vals []string, ws int64) {
	k := keyString(vals)
	s := p.originSeen[g][k]
	if s == nil {
		s = &seenKey{vals: vals, last: ws, mask: 1}
		p.originSeen[g][k] = s
	} else {
		s.mark(ws)
	}
	p.maxSeen = max(p.maxSeen, ws)
	// The following N windows may now owe the key a no_data row.
	for _, w := range p.windows {
		if w.start > ws && w.start <= ws+p.plan.noDataN*WindowMS {
			w.changed = true
		}
	}
}

// windowRows appends the rows of w. Provisional rows copy the accumulators
// (the window keeps filling); final rows take them over.
func (p *Partition) windowRows(rows []Row, w *window, final bool) []Row {
	n0 := len(rows)
	version := versionOf(p.lastOffset, false)
	if final {
		version = versionOf(w.closeOffset, true)
	}
	mk := func(si, g int, k uint32) Row {
		sp := &p.plan.src[si]
		gs := &sp.sets[g]
		vals := p.keys(si, g).vals[k]
		var dims []Dim
		if len(gs.Names) > 0 {
			dims = make([]Dim, len(gs.Names))
			for i, n := range gs.Names {
				dims[i] = Dim{Name: n, Value: vals[i]}
			}
		}
		return Row{
			Partition: p.id, WindowStart: w.start, Source: sp.source, Set: g,
			Grouping: gs.Name, Dims: dims, Final: final, Version: version,
		}
	}
	if cw := w.client; cw != nil {
		users := p.countUsers(cw)
		for g := range p.plan.src[0].sets {
			x := p.plan.src[0].pos[g]
			hot := cw.hot[x]
			for k := range hot {
				h := &hot[k]
				if h.events == 0 {
					continue
				}
				r := mk(0, g, uint32(k))
				switch {
				case k >= len(cw.cold[x]):
					r.Client = &ClientRaw{}
				case final:
					r.Client = &cw.cold[x][k] // the window is being dropped
				default:
					r.Client = cw.cold[x][k].clone()
				}
				r.Client.addHot(h)
				if k < len(users[g]) {
					u := users[g][k]
					r.Client.Users, r.Client.StutterUsers = uint64(u.users), uint64(u.stutter)
					r.Client.StutterUsersVideo, r.Client.StutterUsersAudio = uint64(u.video), uint64(u.audio)
				}
				rows = append(rows, r)
			}
		}
	}
	for g, accs := range w.cdn {
		for k := range accs {
			a := &accs[k]
			if a.Requests == 0 {
				continue
			}
			r := mk(1, g, uint32(k))
			if final {
				r.CDN = a
			} else {
				r.CDN = a.clone()
			}
			rows = append(rows, r)
		}
	}
	for g := range p.plan.src[2].sets {
		var accs []OriginRaw
		if w.origin != nil {
			accs = w.origin[g]
		}
		for k := range accs {
			a := &accs[k]
			if a.Samples == 0 {
				continue
			}
			r := mk(2, g, uint32(k))
			c := *a
			r.Origin = &c
			rows = append(rows, r)
		}
		// no_data rows: keys seen in the N previous windows, silent in this one.
		from, to := w.start-p.plan.noDataN*WindowMS, w.start-WindowMS
		for _, s := range p.originSeen[g] {
			if !s.seenIn(from, to) || p.originHasData(w, g, s.vals) {
				continue
			}
			dims := make([]Dim, len(s.vals))
			for i, n := range p.plan.src[2].sets[g].Names {
				dims[i] = Dim{Name: n, Value: s.vals[i]}
			}
			rows = append(rows, Row{
				Partition: p.id, WindowStart: w.start, Source: schemas.SourceOrigin, Set: g,
				Grouping: p.plan.src[2].sets[g].Name, Dims: dims, Final: final, Version: version,
				Origin: &OriginRaw{NoData: true},
			})
		}
	}
	SortRows(rows[n0:])
	return rows
}

func (p *Partition) originHasData(w *window, g int, vals []string) bool {
	if w.origin == nil {
		return false
	}
	id, ok := p.keys(2, g).ids[keyString(vals)]
	return ok && int(id) < len(w.origin[g]) && w.origin[g][id].Samples > 0
}

type userCount struct {
	users, stutter, video, audio uint32
}

// countUsers computes the distinct users of every grouping key of a window:
// a user counts once for each key that one of their pull-side events
// carried, and as a stutter user of each key one of their qualifying stalls
// carried. Per-user state is one record per window, not one set per key.
func (p *Partition) countUsers(cw *clientWin) [][]userCount {
	sp := &p.plan.src[0]
	out := make([][]userCount, len(sp.sets))
	for g := range out {
		out[g] = make([]userCount, p.keys(0, g).size())
	}
	type kf struct {
		key   uint32
		flags uint8
	}
	var list []uint32 // packed tuples of one user in one component
	var seen []kf
	ut := cw.users
	ut.each(func(rec []uint32) {
		for c, tt := range p.tables[0] {
			first := rec[recVec+c]
			list = append(list[:0], first)
			for x := rec[recMore]; x != 0; x = ut.more[x-1].next {
				if m := &ut.more[x-1]; m.comp == uint32(c) {
					list = append(list, m.packed)
				}
			}
			sets := sp.comps[c].sets
			if len(list) == 1 {
				fl := uint8(first >> flagShift)
				for j, k := range tt.keysOf(first & idMask) {
					out[sets[j]][k].add(fl)
				}
				continue
			}
			// Several tuples: a user counts once per key, a stutter
			// user of a key if a stall carried any of its tuples.
			for j := range sets {
				seen = seen[:0]
			next:
				for _, w := range list {
					k, fl := tt.keysOf(w & idMask)[j], uint8(w>>flagShift)
					for x := range seen {
						if seen[x].key == k {
							seen[x].flags |= fl
							continue next
						}
					}
					seen = append(seen, kf{k, fl})
				}
				for _, s := range seen {
					out[sets[j]][s.key].add(s.flags)
				}
			}
		}
	})
	return out
}

func (u *userCount) add(flags uint8) {
	u.users++
	if flags&flagStall != 0 {
		u.stutter++
	}
	if flags&flagVideo != 0 {
		u.video++
	}
	if flags&flagAudio != 0 {
		u.audio++
	}
}
