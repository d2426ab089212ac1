package aggregator

import (
	"math/bits"
)

// dedupSet holds the identities (schemas.Event.EID, stamped by ingest: see
// docs/INGEST.md, "Event identity") of the events applied to the
// partition's live windows, so that a copy of an event (a request retried
// after a 503 that had partly reached Kafka) is applied once.
//
// Entries belong to the window their event was applied to and leave with
// it when it is drained: the set costs memory only for open windows, and
// a Restore rebuilds it exactly, since the replay from Checkpoint.Resume
// re-reads every event of every open window. A copy arriving after its
// window was drained is late like any event of that window.
//
// It is one open-addressing table of full 64-bit ids per partition (not one
// per window: a copy may fall into another window than the original when
// ingest corrects the sender's clock differently on the retry), linear
// probing, home slot by multiply-shift so that any size works and growth
// can be 1.5×; each slot has a one-byte tag, the minute of its window
// modulo 256, to drop the entries of drained windows. Cost: 9 bytes per
// slot at a load between 0.53 and 0.8 (README.md, "Duplicates").
type dedupSet struct {
	ids  []uint64 // 0: empty
	tags []uint8
	n    int
	seed uint64
	keep [4]uint64 // scratch of retain: tags of the live windows
}

const (
	dedupMinSlots = 1024
	// dedupMaxLoad is n/len(ids) above which the table grows, in 1/16ths.
	dedupMaxLoad = 13 // 0.8125
)

func newDedupSet(seed uint64) dedupSet { return dedupSet{seed: seed | 1} }

func dedupTag(ws int64) uint8 { return uint8(ws / WindowMS) }

// home is id's first slot.
func (d *dedupSet) home(id uint64) int {
	h := (id ^ d.seed) * 0x9e3779b97f4a7c15
	h ^= h >> 31
	hi, _ := bits.Mul64(h, uint64(len(d.ids)))
	return int(hi)
}

// touch loads id's first slot (AddBatch issues these loads ahead).
func (d *dedupSet) touch(id uint64) uint64 {
	if id == 0 || len(d.ids) == 0 {
		return 0
	}
	return d.ids[d.home(id)]
}

// seenOrAdd reports whether id is in the set; if not, it adds id for the
// window starting at ws. The id 0 (an event without identity) is never in it.
func (d *dedupSet) seenOrAdd(id uint64, ws int64) bool {
	if id == 0 {
		return false
	}
	if (d.n+1)*16 > len(d.ids)*dedupMaxLoad {
		d.grow()
	}
	i := d.home(id)
	for {
		switch d.ids[i] {
		case id:
			return true
		case 0:
			d.ids[i], d.tags[i] = id, dedupTag(ws)
			d.n++
			return false
		}
		if i++; i == len(d.ids) {
			i = 0
		}
	}
}

func (d *dedupSet) grow() {
	ids, tags := d.ids, d.tags
	n := max(dedupMinSlots, len(ids)*3/2)
	d.ids, d.tags = make([]uint64, n), make([]uint8, n)
	for j, id := range ids {
		if id != 0 {
			d.put(id, tags[j])
		}
	}
}

// put places id, known to be absent, at the first free slot from its home.
func (d *dedupSet) put(id uint64, tag uint8) {
	i := d.home(id)
	for d.ids[i] != 0 {
		if i++; i == len(d.ids) {
			i = 0
		}
	}
	d.ids[i], d.tags[i] = id, tag
}

// retain keeps the entries of the windows in live and drops the others.
// Two windows 256 minutes apart share a tag: an entry of a drained window
// may then stay until the other one is drained too, which costs memory,
// never correctness (its event was applied; a copy is a copy).
func (d *dedupSet) retain(live []*window) {
	if d.n == 0 {
		return
	}
	clear(d.keep[:])
	for _, w := range live {
		t := dedupTag(w.start)
		d.keep[t>>6] |= 1 << (t & 63)
	}
	// Start right after a slot that was free before the deletions: no
	// entry's probe sequence crosses it, so one pass that re-places every
	// surviving entry from its home (into the first free slot, never past
	// its current one) leaves every entry reachable.
	start := 0
	for d.ids[start] != 0 {
		start++
	}
	for i, id := range d.ids {
		if id != 0 && d.keep[d.tags[i]>>6]&(1<<(d.tags[i]&63)) == 0 {
			d.ids[i] = 0
			d.n--
		}
	}
	for k := 1; k < len(d.ids); k++ {
		i := start + k
		if i >= len(d.ids) {
			i -= len(d.ids)
		}
		if id := d.ids[i]; id != 0 {
			tag := d.tags[i]
			d.ids[i] = 0
			d.put(id, tag)
		}
	}
	if len(d.ids) > dedupMinSlots && d.n*16 < len(d.ids)*2 {
		// Mostly empty after a burst: give the memory back.
		ids, tags := d.ids, d.tags
		n := max(dedupMinSlots, d.n*16/8)
		d.ids, d.tags = make([]uint64, n), make([]uint8, n)
		for j, id := range ids {
			if id != 0 {
				d.put(id, tags[j])
			}
		}
	}
}

// len is the number of identities held.
func (d *dedupSet) len() int { return d.n }
