package aggregator

import (
	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// batchSize is how many events AddBatch prepares before applying them: the
// cache misses of their user lookups overlap, and what the first events
// brought into the cache is still there when the last are applied.
const batchSize = 32

// prepared is what AddBatch computed for one event ahead of applying it.
type prepared struct {
	ok     bool     // vec and keys hold the event's tuples and keys (Partition.tuples)
	vec    []uint32 // tuple id per component of the event's source
	keys   []uint32 // key id per grouping set, in component order
	hashed bool     // uh is the user's hash (a client pull-side event)
	uh     uint32
	cw     *clientWin // the client state of the event's window, if it exists
}

// Result is what AddBatch reports for one event.
type Result struct {
	Outcome Outcome
	// Watermark is the partition's watermark (Watermark) right after the
	// event, e.g. for the dead letter of a TooLate event.
	Watermark int64
}

// AddBatch applies events[i], read at offsets[i], for every i in order,
// exactly as the same sequence of Add calls would (same outcomes, windows,
// watermark, late counts and checkpoint offsets), and sets out[i]. offsets
// and out must be at least as long as events. The events are only read
// during the call.
//
// It is faster than Add per event: the lookups an event needs that usually
// miss the CPU caches (its user in the window's user table: a slot, then a
// record, both in tables of several megabytes) are first issued for a
// group of events together, so their memory latencies overlap instead of
// adding up, then the events are applied one by one with what they need
// in the cache. The dimension lookups (dictionaries, tuples) are done in
// the first pass too; they mark tuples used by the event's window and may
// create tuples, which Add would have done as well unless the event turns
// out late (its window closed by an earlier event of the group): such a
// tuple is only kept until the next sweep and never produces a row.
func (p *Partition) AddBatch(offsets []int64, events []schemas.Event, out []Result) {
	_, _ = offsets[:len(events)], out[:len(events)]
	for len(events) > 0 {
		n := min(len(events), batchSize)
		p.prepare(events[:n])
		for i := range n {
			out[i] = Result{Outcome: p.add(offsets[i], &events[i], &p.pre[i]), Watermark: p.Watermark()}
		}
		offsets, events, out = offsets[n:], events[n:], out[n:]
	}
}

// prepare fills p.pre for events (at most batchSize) and issues the loads
// of their user lookups.
func (p *Partition) prepare(events []schemas.Event) {
	if p.pre == nil {
		p.pre = make([]prepared, batchSize)
		p.prevec = make([]uint32, batchSize*len(p.scr))
	}
	ns := len(p.scr)
	var sink uint64
	for i := range events {
		e := &events[i]
		pr := &p.pre[i]
		*pr = prepared{}
		si := route.Index(e.Type.Source())
		if si < 0 {
			continue
		}
		ws := route.WindowStart(e.TS)
		if ws+WindowMS <= p.closedThrough {
			continue // late: Add does not look at its dimensions
		}
		pr.vec, pr.keys = p.tuples(si, e, ws, p.prevec[i*ns:(i+1)*ns])
		pr.ok = true
		sink += p.dedup.touch(e.EID)
		if si != 0 || !e.Type.PullSide() {
			continue
		}
		pr.uh, pr.hashed = userHash(&p.ukey, e.UserID), true
		if w := p.peekWindow(ws); w != nil && w.client != nil {
			pr.cw = w.client
		}
	}
	// Tight loops, so that the loads of the whole batch are in flight
	// together: first the slots, then the records they point to.
	for i := range events {
		if pr := &p.pre[i]; pr.cw != nil {
			sink += pr.cw.users.touchSlot(pr.uh)
		}
	}
	for i := range events {
		if pr := &p.pre[i]; pr.cw != nil {
			sink += pr.cw.users.touchRecord(pr.uh)
		}
	}
	p.sink += sink
}

// peekWindow returns the live window starting at ws, or nil; unlike window
// it creates none and leaves the last-window cache alone.
func (p *Partition) peekWindow(ws int64) *window {
	if p.last != nil && p.last.start == ws {
		return p.last
	}
	i, found := p.findWindow(ws)
	if !found {
		return nil
	}
	return p.windows[i]
}
