package aggregator

import (
	"hash/maphash"
	"math"
	"slices"
	"strings"
)

// tupleTable interns, per partition, source and component (see component),
// the tuple of an event's values of the component's fields, so the hot path
// hashes each dimension once and reaches every grouping key through a cached
// projection instead of building one key per grouping set.
//
// The tables are small (hundreds to a few thousand tuples per component), so
// a tuple keeps a flat copy of its value headers for a one-load comparison;
// the bytes are shared with the key tables.
//
// Ids are stable while any live window (open, or closed and not yet drained)
// may use them; sweep frees the rest for reuse.
type tupleTable struct {
	n    int // number of fields of the component
	g    int // number of grouping sets of the component
	seed maphash.Seed

	// Per tuple id t:
	strs     []string // its values, [t*n : (t+1)*n], shared with the key tables
	proj     []uint32 // key id per local grouping set, [t*g : (t+1)*g]
	hashes   []uint32
	lastUsed []int32 // minute (start/60 000) of the newest window that used it
	free     []uint32
	live     int

	slots []uint32 // open addressing, linear probing: tuple id + 1, 0 = empty
	mask  uint32

	keys []keyTable // per local grouping set
}

// freeTuple marks a free tuple id in lastUsed.
const freeTuple = math.MinInt32

func newTupleTable(sp *sourcePlan, c int) *tupleTable {
	comp := &sp.comps[c]
	t := &tupleTable{
		n:    len(comp.fields),
		g:    len(comp.sets),
		seed: maphash.MakeSeed(),
		keys: make([]keyTable, len(comp.sets)),
	}
	for j, g := range comp.sets {
		fs := sp.sets[g].Fields
		kt := keyTable{ids: map[string]uint32{}}
		for _, f := range fs {
			kt.pos = append(kt.pos, slices.Index(comp.fields, f))
		}
		t.keys[j] = kt
	}
	t.resize(16)
	return t
}

func minuteOf(ws int64) int32 { return int32(ws / WindowMS) }

// lookup returns the tuple of the component values vals (see
// sourcePlan.values), creating it if needed, and marks it used by the window
// starting at ws.
func (t *tupleTable) lookup(vals []string, ws int64) uint32 {
	m := minuteOf(ws)
	if t.n == 0 {
		return t.lookupTotal(m)
	}
	h := uint64(0x9E3779B97F4A7C15)
	for _, v := range vals {
		h = (h ^ maphash.String(t.seed, v)) * 0xBF58476D1CE4E5B9
	}
	h32 := uint32(h ^ h>>32)
	for i := h32 & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			break
		}
		id := s - 1
		if t.hashes[id] == h32 && t.equal(id, vals) {
			t.use(id, m)
			return id
		}
	}
	return t.insert(vals, h32, m)
}

// use marks tuple id used by the window of minute m.
func (t *tupleTable) use(id uint32, m int32) {
	if t.lastUsed[id] < m {
		t.lastUsed[id] = m
	}
}

// lookupTotal serves the component of the total (no fields): one tuple.
func (t *tupleTable) lookupTotal(m int32) uint32 {
	if t.live == 0 {
		return t.insert(nil, 0, m)
	}
	// The only live tuple; after a sweep freed and re-created it, its id
	// may be any, so take it from the slot rather than assuming 0.
	id := t.slots[0] - 1
	t.use(id, m)
	return id
}

// equal reports whether tuple id has the values vals.
func (t *tupleTable) equal(id uint32, vals []string) bool {
	s := t.strs[int(id)*t.n : int(id+1)*t.n]
	for k, v := range vals {
		if s[k] != v {
			return false
		}
	}
	return true
}

func (t *tupleTable) insert(vals []string, h uint32, m int32) uint32 {
	var id uint32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.hashes[id] = h
		t.lastUsed[id] = m
	} else {
		id = uint32(len(t.hashes))
		t.hashes = append(t.hashes, h)
		t.lastUsed = append(t.lastUsed, m)
		t.proj = append(t.proj, make([]uint32, t.g)...)
		t.strs = append(t.strs, make([]string, t.n)...)
	}
	pj := t.proj[int(id)*t.g : int(id+1)*t.g]
	s := t.strs[int(id)*t.n : int(id+1)*t.n]
	for j := range t.keys {
		k := &t.keys[j]
		pj[j] = k.intern(vals)
		for i, p := range k.pos {
			s[p] = k.vals[pj[j]][i] // the key's own copy
		}
	}
	t.live++
	if uint32(t.live)*4 > (t.mask+1)*3 {
		t.resize(int(t.mask+1) * 2)
	} else {
		t.place(id)
	}
	return id
}

func (t *tupleTable) place(id uint32) {
	for i := t.hashes[id] & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = id + 1
			return
		}
	}
}

func (t *tupleTable) resize(size int) {
	t.slots = make([]uint32, size)
	t.mask = uint32(size - 1)
	for id := range t.hashes {
		if t.lastUsed[id] != freeTuple {
			t.place(uint32(id))
		}
	}
}

// keysOf returns the grouping key ids of tuple id, one per local grouping set.
func (t *tupleTable) keysOf(id uint32) []uint32 {
	return t.proj[int(id)*t.g : int(id+1)*t.g]
}

// sweep frees every tuple not used by a window starting at or after oldest
// (the oldest live window) and the grouping keys no live tuple refers to, so
// the tables follow the active population instead of growing for the life
// of the process.
func (t *tupleTable) sweep(oldest int64) {
	m := int32(math.MaxInt32)
	if oldest < math.MaxInt64 {
		m = minuteOf(oldest)
	}
	freed := false
	for id, lu := range t.lastUsed {
		if lu != freeTuple && lu < m {
			t.lastUsed[id] = freeTuple
			clear(t.strs[id*t.n : (id+1)*t.n])
			t.free = append(t.free, uint32(id))
			t.live--
			freed = true
		}
	}
	if !freed {
		return
	}
	size := 16
	for size < t.live*2 {
		size *= 2
	}
	t.resize(size)
	for g := range t.keys {
		t.keys[g].beginMark()
	}
	for id, lu := range t.lastUsed {
		if lu == freeTuple {
			continue
		}
		for g, k := range t.proj[id*t.g : (id+1)*t.g] {
			t.keys[g].marked[k] = true
		}
	}
	for g := range t.keys {
		t.keys[g].endMark()
	}
}

// keyTable interns the grouping keys of one grouping set. Key ids index the
// per-window accumulator slices.
type keyTable struct {
	pos    []int // positions of the set's fields in the component's values
	ids    map[string]uint32
	vals   [][]string // per key id: the dimension values, in set order; nil when free
	marked []bool
	free   []uint32
	buf    []byte
}

// intern returns the key id of the component values vals for this set
// (cold path: once per new tuple).
func (k *keyTable) intern(vals []string) uint32 {
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
		// The event's strings may share a decode buffer: keep our own copy.
		kv[i] = strings.Clone(vals[p])
	}
	var id uint32
	if n := len(k.free); n > 0 {
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
			k.free = append(k.free, uint32(id))
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
