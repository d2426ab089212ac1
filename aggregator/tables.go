package aggregator

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// The hot path turns an event's dimension strings into small integers once
// per event (fieldDict: one hash and one exact comparison per field, in a
// table small enough to stay in the CPU cache), and everything after works
// on those: a component's tuple is found by its field ids (a fixed-size
// integer key), a tuple caches its grouping-key ids, and the user records
// hold tuple ids. No grouping key is built or hashed per event.

// fieldDict interns the values of one dimension field on one partition
// (source and component fixed): value ↔ field id. Ids are stable while a
// live tuple refers to them; sweep frees the rest for reuse.
//
// The table is open addressing over entries that hold a value's length and
// up to 24 of its bytes, so a lookup of a value of at most 24 bytes (nearly
// all dimension values) reads one entry and compares registers, without
// following a pointer; only longer values are compared in full.
type fieldDict struct {
	key     hashKey
	entries []dictEntry
	mask    uint32
	strs    []string // per id: the value (our own copy); "" when free
	free    []uint32
	live    int
}

// dictEntry is a slot of a fieldDict; n == 0 is an empty slot (values are
// never empty: a missing one is "unknown").
type dictEntry struct {
	w0, w1, w2 uint64 // the value's words (see valueWords)
	n          uint32 // the value's length
	id         uint32
}

func newFieldDict(key hashKey) fieldDict {
	return fieldDict{key: key, entries: make([]dictEntry, 16), mask: 15}
}

// hashKey is the random key of a value hash (valueWords). Each of its words
// enters one of the multiplications, so that no choice of the hashed bytes
// makes a product zero (wyhash's weakness with fixed constants) without
// knowing the key: values sent by clients (stream ids, user ids) cannot be
// chosen to collide.
type hashKey struct{ s0, s1, s2 uint64 }

func newHashKey(seed maphash.Seed, salt any) hashKey {
	return hashKey{
		s0: maphash.Comparable(seed, [2]any{salt, 0}),
		s1: maphash.Comparable(seed, [2]any{salt, 1}),
		s2: maphash.Comparable(seed, [2]any{salt, 2}) | 1,
	}
}

// hash finishes valueWords' hash of a value of n ≤ 24 bytes.
func (k *hashKey) hash(w0, w1, w2 uint64, n int) uint64 {
	return mix(mix(w0^k.s0^uint64(n), w1^k.s1)^w2, k.s2)
}

// valueWords returns words that, with the length, determine a value of at
// most 24 bytes exactly (longer values: some of their bytes), and a keyed
// hash of the whole value: a fraction of hash/maphash.String's cost on the
// path of every event (nine values per client event with the default
// grouping sets). The hash follows wyhash (public domain; Go's runtime uses
// it without AES): overlapping word loads, 16-byte blocks for long values,
// 64×64→128-bit multiplications folded. fieldsFast has a copy of it
// inlined: keep them equal (TestFieldsFastMatchesIntern).
func valueWords(s string, k *hashKey) (w0, w1, w2, h uint64) {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	n := len(b)
	switch {
	case n >= 8 && n <= 24:
		// Three words at 0, (n−8)/2 and n−8 cover every byte.
		w0, w1, w2 = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[(n-8)/2:]), binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4 && n < 8:
		w0 = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	case n > 0 && n < 4:
		w0 = uint64(b[0])<<16 | uint64(b[n>>1])<<8 | uint64(b[n-1])
	case n > 24:
		return longWords(b, k)
	}
	return w0, w1, w2, k.hash(w0, w1, w2, n)
}

// longWords is valueWords for values longer than 24 bytes.
func longWords(b []byte, k *hashKey) (w0, w1, w2, h uint64) {
	n := len(b)
	acc := k.s0
	for i := 0; n-i > 16; i += 16 {
		acc = mix(binary.LittleEndian.Uint64(b[i:])^k.s1, binary.LittleEndian.Uint64(b[i+8:])^acc)
	}
	w0, w1, w2 = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-16:]), binary.LittleEndian.Uint64(b[n-8:])
	return w0, w1, w2, mix(mix(w1^acc^uint64(n), w2^k.s1), k.s2)
}

// intern returns the id of value s, adding it if needed. s is only read
// during the call. (fieldsFast has the path of a present value inlined.)
func (d *fieldDict) intern(s string) uint32 {
	w0, w1, w2, h := valueWords(s, &d.key)
	n := uint32(len(s))
	for i := uint32(h) & d.mask; ; i = (i + 1) & d.mask {
		e := &d.entries[i]
		if e.n == n && e.w0 == w0 && e.w1 == w1 && e.w2 == w2 && (n <= 24 || d.strs[e.id] == s) {
			return e.id
		}
		if e.n == 0 {
			return d.insert(s)
		}
	}
}

func (d *fieldDict) insert(s string) uint32 {
	v := strings.Clone(s) // the event's strings may alias a decode buffer
	var id uint32
	if n := len(d.free); n > 0 {
		id = d.free[n-1]
		d.free = d.free[:n-1]
		d.strs[id] = v
	} else {
		id = uint32(len(d.strs))
		d.strs = append(d.strs, v)
	}
	d.live++
	if uint32(d.live)*2 > d.mask+1 {
		d.rehash(int(d.mask+1) * 2)
	} else {
		d.place(id)
	}
	return id
}

func (d *fieldDict) place(id uint32) {
	s := d.strs[id]
	w0, w1, w2, h := valueWords(s, &d.key)
	i := uint32(h) & d.mask
	for d.entries[i].n != 0 {
		i = (i + 1) & d.mask
	}
	d.entries[i] = dictEntry{w0: w0, w1: w1, w2: w2, n: uint32(len(s)), id: id}
}

func (d *fieldDict) rehash(size int) {
	d.entries = make([]dictEntry, size)
	d.mask = uint32(size - 1)
	for id, s := range d.strs {
		if s != "" {
			d.place(uint32(id))
		}
	}
}

// sweptSize is the slot count a hash table shrinks to after a sweep left
// live entries: a power of two, at least 16, at most half full.
func sweptSize(live int) int {
	size := 16
	for size < live*2 {
		size *= 2
	}
	return size
}

// sweep frees the ids not set in used.
func (d *fieldDict) sweep(used []bool) {
	freed := false
	for id, s := range d.strs {
		if s != "" && (id >= len(used) || !used[id]) {
			d.strs[id] = ""
			d.free = append(d.free, uint32(id))
			d.live--
			freed = true
		}
	}
	if !freed {
		return
	}
	d.rehash(sweptSize(d.live))
}

// tupleTable interns, per partition, source and component (see component),
// the tuple of an event's values of the component's fields, as the tuple of
// their field ids, so the hot path reaches every grouping key through a
// cached projection instead of building one key per grouping set.
//
// A tuple is a record of words in recs, everything the hot path reads
// about it in one place: [lastUsed, key id per local grouping set…, field
// id per field…]. The tuple of a component of one field is that field's id
// (the dictionary is the component's own), so it needs no lookup; the
// total's one tuple is 0; tuples of several fields are found by hashing
// their field ids.
//
// The tables are small (hundreds to a few thousand tuples per component).
// Ids are stable while any live window (open, or closed and not yet drained)
// may use them; sweep frees the rest for reuse.
type tupleTable struct {
	n      int // number of fields of the component
	g      int // number of grouping sets of the component
	stride int // words per record: 1 + g + n
	seed   uint64

	dicts []fieldDict // per field of the component (a view of Partition.dicts)

	recs []uint32 // per tuple id t: recs[t*stride : (t+1)*stride]
	free []uint32 // n ≥ 2: free ids
	live int

	// n ≥ 2: open addressing, linear probing: hash<<32 | (tuple id + 1).
	slots []uint64
	mask  uint32

	keys []keyTable // per local grouping set
	vbuf []string
}

// freeTuple is the lastUsed word of a free tuple id.
const freeTuple = uint32(1) << 31

// recUsed is the offset of lastUsed in a record: the minute (start/60 000,
// an int32) of the newest window that used the tuple, or freeTuple.
const recUsed = 0

// newTupleTable returns the table of component c of source si; dicts are
// the source's field dictionaries (indexed like sourcePlan.fields), seed is
// the partition's.
func newTupleTable(sp *sourcePlan, si, c int, dicts []fieldDict, seed maphash.Seed) *tupleTable {
	comp := &sp.comps[c]
	t := &tupleTable{
		n:     len(comp.fields),
		g:     len(comp.sets),
		seed:  maphash.Comparable(seed, [2]int{si, c}),
		dicts: dicts[comp.off : comp.off+len(comp.fields) : comp.off+len(comp.fields)],
		keys:  make([]keyTable, len(comp.sets)),
	}
	t.stride = 1 + t.g + t.n
	for j, g := range comp.sets {
		fs := sp.sets[g].Fields
		// Validation refuses two sets of the same fields, so a component
		// of at most one field has one set.
		kt := keyTable{ids: map[string]uint32{}, fixed: t.n <= 1 && t.g == 1}
		for _, f := range fs {
			kt.pos = append(kt.pos, slices.Index(comp.fields, f))
		}
		t.keys[j] = kt
	}
	t.resize(16)
	return t
}

// hashM1 is wyhash's first constant; hashIDs mixes field ids (which the
// tables assign, so need no keyed hash) with it.
const hashM1 = 0xa0761d6478bd642f

// mix folds the 128-bit product of a and b.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func minuteOf(ws int64) int32 { return int32(ws / WindowMS) }

// rec returns the record of tuple id.
func (t *tupleTable) rec(id uint32) []uint32 {
	return t.recs[int(id)*t.stride : int(id+1)*t.stride]
}

// keysOf returns the grouping key ids of tuple id, one per local grouping set.
func (t *tupleTable) keysOf(id uint32) []uint32 {
	return t.recs[int(id)*t.stride+1:][:t.g]
}

// fidsOf returns the field ids of tuple id.
func (t *tupleTable) fidsOf(id uint32) []uint32 {
	return t.recs[int(id)*t.stride+1+t.g:][:t.n]
}

// lookup returns the tuple of the field ids fids (len n), creating it if
// needed, and marks it used by the window of minute m. (fieldsFast and
// multisFast have the path of an existing tuple inlined.)
func (t *tupleTable) lookup(fids []uint32, m int32) uint32 {
	var id uint32
	switch t.n {
	case 0:
		id = 0
	case 1:
		id = fids[0]
	default:
		return t.lookupMulti(fids, m)
	}
	o := int(id) * t.stride
	if o >= len(t.recs) || t.recs[o] == freeTuple {
		return t.insert(fids, 0, m)
	}
	if int32(t.recs[o]) < m {
		t.recs[o] = uint32(m)
	}
	return id
}

// lookupMulti is lookup for components of several fields.
func (t *tupleTable) lookupMulti(fids []uint32, m int32) uint32 {
	h := t.hashIDs(fids)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return t.insert(fids, h, m)
		}
		if uint32(s>>32) == h {
			id := uint32(s) - 1
			if slices.Equal(t.fidsOf(id), fids) {
				if r := t.rec(id); int32(r[recUsed]) < m {
					r[recUsed] = uint32(m)
				}
				return id
			}
		}
	}
}

func (t *tupleTable) hashIDs(fids []uint32) uint32 {
	h := t.seed
	for _, f := range fids {
		h = mix(h^uint64(f), hashM1)
	}
	return uint32(h ^ h>>32)
}

// insert adds the tuple of fids, absent, with hash h (n ≥ 2), used by the
// window of minute m.
func (t *tupleTable) insert(fids []uint32, h uint32, m int32) uint32 {
	var id uint32
	switch {
	case t.n == 0:
		id = 0
	case t.n == 1:
		id = fids[0]
	case len(t.free) > 0:
		id = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	default:
		id = uint32(len(t.recs) / t.stride)
	}
	if need := int(id+1) * t.stride; need > len(t.recs) {
		old := len(t.recs)
		t.recs = append(t.recs, make([]uint32, need-old)...)
		for o := old; o < need; o += t.stride {
			t.recs[o] = freeTuple
		}
	}
	r := t.rec(id)
	r[recUsed] = uint32(m)
	copy(r[1+t.g:], fids)
	vals := t.vbuf[:0]
	for i, f := range fids {
		vals = append(vals, t.dicts[i].strs[f])
	}
	t.vbuf = vals
	for j := range t.keys {
		r[1+j] = t.keys[j].intern(vals, id)
	}
	clear(vals) // do not keep values alive past their dict entries
	t.live++
	if t.n >= 2 {
		if uint32(t.live)*4 > (t.mask+1)*3 {
			t.resize(int(t.mask+1) * 2)
		} else {
			t.place(h, id)
		}
	}
	return id
}

func (t *tupleTable) place(h, id uint32) {
	i := h & t.mask
	for t.slots[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = uint64(h)<<32 | uint64(id+1)
}

// resize rebuilds the slots of a table with n ≥ 2.
func (t *tupleTable) resize(size int) {
	if t.n < 2 {
		return
	}
	t.slots = make([]uint64, size)
	t.mask = uint32(size - 1)
	for o := 0; o < len(t.recs); o += t.stride {
		if t.recs[o] != freeTuple {
			id := uint32(o / t.stride)
			t.place(t.hashIDs(t.fidsOf(id)), id)
		}
	}
}

// sweep frees every tuple not used by a window starting at or after oldest
// (the oldest live window), then the field values and grouping keys no live
// tuple refers to, so the tables follow the active population instead of
// growing for the life of the process.
func (t *tupleTable) sweep(oldest int64) {
	m := int32(math.MaxInt32)
	if oldest < math.MaxInt64 {
		m = minuteOf(oldest)
	}
	freed := false
	for o := 0; o < len(t.recs); o += t.stride {
		if lu := t.recs[o]; lu != freeTuple && int32(lu) < m {
			t.recs[o] = freeTuple
			if t.n >= 2 {
				t.free = append(t.free, uint32(o/t.stride))
			}
			t.live--
			freed = true
		}
	}
	if !freed {
		return
	}
	t.resize(sweptSize(t.live))
	for g := range t.keys {
		t.keys[g].beginMark()
	}
	used := make([][]bool, t.n)
	for i := range used {
		used[i] = make([]bool, len(t.dicts[i].strs))
	}
	for o := 0; o < len(t.recs); o += t.stride {
		if t.recs[o] == freeTuple {
			continue
		}
		r := t.recs[o : o+t.stride]
		for g, k := range r[1 : 1+t.g] {
			t.keys[g].marked[k] = true
		}
		for i, f := range r[1+t.g:] {
			used[i][f] = true
		}
	}
	for g := range t.keys {
		t.keys[g].endMark()
	}
	for i := range t.dicts {
		t.dicts[i].sweep(used[i])
	}
}

// keyTable interns the grouping keys of one grouping set. Key ids index the
// per-window accumulator slices.
type keyTable struct {
	// fixed: the component has at most one field, so it has this one set
	// and the key of a tuple is the tuple: key id = tuple id.
	fixed  bool
	pos    []int // positions of the set's fields in the component's values
	ids    map[string]uint32
	vals   [][]string // per key id: the dimension values, in set order; nil when free
	marked []bool
	free   []uint32
	buf    []byte
}

// intern returns the key id of the component values vals for this set
// (cold path: once per new tuple). vals are owned by the field dicts and
// immutable, so the key shares them. In a fixed table the key is the
// tuple, whose id is tid.
func (k *keyTable) intern(vals []string, tid uint32) uint32 {
	k.buf = k.buf[:0]
	for _, p := range k.pos {
		k.buf = append(k.buf, vals[p]...)
		k.buf = append(k.buf, 0)
	}
	if id, ok := k.ids[string(k.buf)]; ok {
		return id
	}
	kv := make([]string, len(k.pos))
	for i, p := range k.pos {
		kv[i] = vals[p]
	}
	var id uint32
	if k.fixed {
		id = tid
		if int(id) >= len(k.vals) {
			k.vals = append(k.vals, make([][]string, int(id)+1-len(k.vals))...)
		}
		k.vals[id] = kv
	} else if n := len(k.free); n > 0 {
		id = k.free[n-1]
		k.free = k.free[:n-1]
		k.vals[id] = kv
	} else {
		id = uint32(len(k.vals))
		k.vals = append(k.vals, kv)
	}
	k.ids[string(k.buf)] = id
	return id
}

// size is the number of key ids in use or free (the length accumulator
// slices need).
func (k *keyTable) size() int { return len(k.vals) }

func (k *keyTable) beginMark() {
	k.marked = append(k.marked[:0], make([]bool, len(k.vals))...)
}

func (k *keyTable) endMark() {
	for id, m := range k.marked {
		if !m && k.vals[id] != nil {
			delete(k.ids, keyString(k.vals[id]))
			k.vals[id] = nil
			if !k.fixed {
				k.free = append(k.free, uint32(id))
			}
		}
	}
}

func keyString(vals []string) string {
	var b strings.Builder
	for _, v := range vals {
		b.WriteString(v)
		b.WriteByte(0)
	}
	return b.String()
}
