package aggregator

import (
	"encoding/binary"
	"slices"
	"unsafe"

	"github.com/qoscope/qoscope/schemas"
)

// tuples interns e's values of the fields of source si and returns the
// tuple id of each component (vec), marked used by the window starting at
// ws, and the key id of each grouping set in component order (keys,
// sourcePlan.pos). It works in scr (at least Partition.scratchLen words),
// laid out [field ids | vec | keys], and returns vec and keys from it.
//
// This is the per-event dimension work of every source. The common case
// (a value of at most maxInlineValue bytes already in its dictionary, a
// tuple that exists) runs in fieldsFast and multisFast, loops without
// calls and with few live values: Go does not inline the general lookups,
// and a call in such a loop costs more than the lookup itself (every live
// register is saved around it). They stop at the first field or component
// that needs the general path, which handles that one, and then they go on.
func (p *Partition) tuples(si int, e *schemas.Event, ws int64, scr []uint32) (vec, keys []uint32) {
	refs := p.fields[si]
	nf, nc := len(refs), len(p.tables[si])
	scr = scr[:nf+nc+len(p.plan.src[si].sets)]
	m := minuteOf(ws)
	for i := fieldsFast(e, refs, scr, m, 0); i < len(refs); i = fieldsFast(e, refs, scr, m, i+1) {
		r := &refs[i]
		scr[i] = r.d.intern(r.getter.get(e))
		if r.t != nil {
			p.slowTuple(si, r.c, scr, m)
		}
	}
	for _, r := range p.totals[si] {
		if t := r.t; len(t.recs) > 0 && t.recs[recUsed] != freeTuple {
			if int32(t.recs[recUsed]) < m {
				t.recs[recUsed] = uint32(m)
			}
			scr[r.vi], scr[r.ki] = 0, 0
		} else {
			p.slowTuple(si, r.c, scr, m)
		}
	}
	multis := p.multis[si]
	for i := multisFast(multis, scr, m, 0); i < len(multis); i = multisFast(multis, scr, m, i+1) {
		p.slowTuple(si, multis[i].c, scr, m)
	}
	return scr[nf : nf+nc], scr[nf+nc:]
}

// scratchLen is the length of tuples' scratch space for any source.
func (p *Partition) scratchLen() int {
	n := 0
	for si := range p.fields {
		n = max(n, len(p.fields[si])+len(p.tables[si])+len(p.plan.src[si].sets))
	}
	return n
}

// slowTuple is the general path of tuples for component c (scr as there;
// the field ids of c are set), used by minute m.
func (p *Partition) slowTuple(si, c int, scr []uint32, m int32) {
	t, cp := p.tables[si][c], &p.plan.src[si].comps[c]
	nf, nc := len(p.fields[si]), len(p.tables[si])
	n := 0
	for j := range t.keys {
		n += t.keys[j].size()
	}
	id := t.lookup(scr[cp.off:cp.off+t.n], m)
	scr[nf+c] = id
	copy(scr[nf+nc+cp.kpos:][:t.g], t.keysOf(id))
	for j := range t.keys {
		n -= t.keys[j].size()
	}
	if n != 0 {
		p.keyGen[si]++ // the accumulators of the windows must grow
	}
}

// fieldRef is one field of a source on the hot path (Partition.fields,
// indexed like sourcePlan.fields).
type fieldRef struct {
	getter
	d *fieldDict
	// If t is not nil, the field is the only one of component c
	// (keyTable.fixed): its id is also the tuple and the key, and t holds
	// the tuple's record. vi and ki are where tuples' scratch holds the
	// component's tuple and its set's key.
	t      *tupleTable
	c      int
	vi, ki int
}

// compRef is a component in the fast paths' lists (Partition.totals,
// multis): its table and index, where its field ids start in tuples'
// scratch (f, = component.off), and where its tuple (vi) and its sets' keys
// (ki) go.
type compRef struct {
	t      *tupleTable
	c, f   int
	vi, ki int
}

// fieldsFast sets the field id scr[i] for i = from, from+1, … while the
// value of field i is found in its dictionary by the fast path and, for a
// field that is its component's only one, the tuple exists (then it also
// sets the tuple and the key in scr and marks the tuple used by minute m).
// It returns the first i it could not do (len(refs) when done). It is fieldDict.intern for values of
// at most 24 bytes that are present, and tupleTable.lookup for existing
// tuples, inlined; keep them equal.
func fieldsFast(e *schemas.Event, refs []fieldRef, scr []uint32, m int32, from int) int {
	for i := from; i < len(refs); i++ {
		r := &refs[i]
		if !r.fast {
			return i
		}
		s := *(*string)(unsafe.Add(unsafe.Pointer(e), r.off))
		if s == "" {
			s = unknown
		}
		d := r.d
		b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
		n := len(b)
		var w0, w1, w2, h uint64
		switch {
		case n >= 8 && n <= 24:
			w0, w1, w2 = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[(n-8)/2:]), binary.LittleEndian.Uint64(b[n-8:])
			h = d.key.hash(w0, w1, w2, n)
		case n >= 4 && n < 8:
			w0 = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
			h = d.key.hash(w0, 0, 0, n)
		case n > 0 && n < 4:
			w0 = uint64(b[0])<<16 | uint64(b[n>>1])<<8 | uint64(b[n-1])
			h = d.key.hash(w0, 0, 0, n)
		case n > 24 && n <= maxInlineValue:
			// longWords, inlined.
			acc := d.key.s0
			for j := 0; n-j > 16; j += 16 {
				acc = mix(binary.LittleEndian.Uint64(b[j:])^d.key.s1, binary.LittleEndian.Uint64(b[j+8:])^acc)
			}
			w0, w1, w2 = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-16:]), binary.LittleEndian.Uint64(b[n-8:])
			h = mix(mix(w1^acc^uint64(n), w2^d.key.s1), d.key.s2)
		default:
			return i
		}
		entries := d.entries
		var id uint32
		for j := uint32(h) & d.mask; ; j = (j + 1) & d.mask {
			en := &entries[j]
			if (uint64(en.n)^uint64(n))|(en.w0^w0)|(en.w1^w1)|(en.w2^w2) == 0 && (n <= 24 || sameBytes(b, d.strs[en.id])) {
				id = en.id
				break
			}
			if en.n == 0 {
				return i // not there: insert
			}
		}
		scr[i] = id
		if t := r.t; t != nil {
			recs := t.recs
			o := int(id) * t.stride
			if o >= len(recs) || recs[o] == freeTuple {
				return i
			}
			if int32(recs[o]) < m {
				recs[o] = uint32(m)
			}
			scr[r.vi] = id
			scr[r.ki] = id
		}
	}
	return len(refs)
}

// maxInlineValue bounds the values fieldsFast handles (longer ones take the
// general path): dimension values are short, and the bound keeps its loops
// short.
const maxInlineValue = 256

// sameBytes reports whether b and s, of the same length n > 24, are equal;
// an inlined comparison by words (the caller compared the first 8 and last
// 16 bytes).
func sameBytes(b []byte, s string) bool {
	c := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	if len(c) != len(b) {
		return false
	}
	for j := 8; j+8 <= len(b); j += 8 {
		if binary.LittleEndian.Uint64(b[j:]) != binary.LittleEndian.Uint64(c[j:]) {
			return false
		}
	}
	return true
}

// multisFast sets the tuple and the keys in scr of the components
// refs[from:], of several fields each, while the tuple exists (found by
// hashing the field ids), marking it used by minute m; it returns the
// first index it could not do (len(refs) when done). It is
// tupleTable.lookupMulti inlined, without the insertion; keep the two equal.
func multisFast(refs []compRef, scr []uint32, m int32, from int) int {
	for i := from; i < len(refs); i++ {
		r := &refs[i]
		t := r.t
		key := scr[r.f : r.f+t.n]
		h := t.seed
		for _, f := range key {
			h = mix(h^uint64(f), hashM1)
		}
		h32 := uint32(h ^ h>>32)
		var rec []uint32
		for j := h32 & t.mask; ; j = (j + 1) & t.mask {
			s := t.slots[j]
			if s == 0 {
				return i
			}
			if uint32(s>>32) == h32 {
				id := uint32(s) - 1
				rec = t.recs[int(id)*t.stride:][:t.stride]
				if slices.Equal(rec[1+t.g:], key) {
					scr[r.vi] = id
					break
				}
			}
		}
		if int32(rec[recUsed]) < m {
			rec[recUsed] = uint32(m)
		}
		k := scr[r.ki : r.ki+t.g]
		for j := range k {
			k[j] = rec[1+j]
		}
	}
	return len(refs)
}
