package aggregator

import (
	"unsafe"
)

// userTable is one window's set of active users: for each user and each
// component of the client grouping sets, the component tuples of their
// pull-side events, each with the kinds of qualifying stalls that carried
// it. Distinct users per grouping key are computed from it at snapshot time
// (countUsers), so memory grows with active users, not users × grouping sets.
//
// It is a flat open-addressing table rather than a map[string]. Records are
// variable-length runs of 32-bit words in one slice, holding everything about
// a user next to each other (a lookup that hits costs the slot and one
// record, usually one cache line each):
//
//	[0] hash  [1] id length  [2] 1 + index of the first extra tuple (0: none)
//	[3 : 3+C] first tuple of each component, stall flags in the top bits
//	[3+C : ] the id's bytes, padded to a word
//
// Slots hold the hash in the high half, so probing past other users never
// touches their records.
type userTable struct {
	comps int      // C
	slots []uint64 // hash<<32 | (record offset + 1); 0 = empty
	mask  uint32
	words []uint32
	n     int
	more  []extraTuple // further tuples of users seen with several, as linked lists
}

const (
	recHash = iota
	recLen
	recMore
	recVec
)

type extraTuple struct {
	comp   uint32
	packed uint32 // tuple id | flags<<flagShift
	next   uint32 // 0, or 1 + index into more
}

// maxUserID bounds the stored id length (the schema allows 256 code points,
// at most 1024 bytes); longer ids are compared on their first maxUserID bytes.
const maxUserID = 1<<16 - 1

// Stall flags, kept in the top bits of a packed tuple word. A component
// table would need 2^29 live tuples on one partition to collide with them,
// far beyond any memory budget.
const (
	flagStall uint8 = 1 << iota
	flagVideo
	flagAudio

	flagShift        = 29
	idMask    uint32 = 1<<flagShift - 1
)

// newUserTable returns an empty table. Users are found by their hash
// (userHash) with the partition's key, the same in every window's table.
func newUserTable(comps int) *userTable {
	return &userTable{comps: comps, slots: make([]uint64, 1024), mask: 1023}
}

// userHash is the hash of uid in the user tables of a partition whose hash
// key is k.
func userHash(k *hashKey, uid string) uint32 {
	if len(uid) > maxUserID {
		uid = uid[:maxUserID]
	}
	_, _, _, h := valueWords(uid, k)
	return uint32(h)
}

func (u *userTable) len() int { return u.n }

// recSize is the number of words of a record whose id has n bytes.
func (u *userTable) recSize(n int) int { return recVec + u.comps + (n+3)/4 }

// idOf returns the id bytes of the record at offset o as a string that
// aliases the table (valid until the next insert).
func (u *userTable) idOf(o int) string {
	r := u.words[o:]
	n := int(r[recLen])
	if n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(&r[recVec+u.comps])), n)
}

// touchSlot and touchRecord read, without using them, the slot and the
// record that the lookup of a user with hash h will read, so that the cache
// misses of a batch of events overlap (see Partition.AddBatch): touchSlot
// for all events first, then touchRecord (the slot is in the cache by
// then). touchRecord only looks at the first slot probed, which holds the
// user in most cases, so that its loop has no unpredictable branches. The
// results only keep the loads alive.
func (u *userTable) touchSlot(h uint32) uint64 {
	return u.slots[h&u.mask]
}

func (u *userTable) touchRecord(h uint32) uint64 {
	s := u.slots[h&u.mask]
	if uint32(s>>32) != h || uint32(s) == 0 {
		return 0
	}
	// The record's first word and the start of the id: it may straddle
	// two cache lines.
	o := int(uint32(s)) - 1
	if o+recVec+u.comps >= len(u.words) {
		return 0
	}
	return uint64(u.words[o]) + uint64(u.words[o+recVec+u.comps])
}

// insert adds uid, absent from the table (add), with hash h: its
// pull-side event had the component tuples vec and stall flags fl.
func (u *userTable) insert(uid string, h uint32, vec []uint32, fl uint8) {
	if len(uid) > maxUserID {
		uid = uid[:maxUserID]
	}
	o := len(u.words)
	u.place(h, o)
	u.n++
	u.words = append(u.words, h, uint32(len(uid)), 0)
	f := uint32(fl) << flagShift
	for _, t := range vec {
		u.words = append(u.words, t|f)
	}
	idw := (len(uid) + 3) / 4
	u.words = append(u.words, make([]uint32, idw)...)
	if idw > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&u.words[o+recVec+u.comps])), idw*4), uid)
	}
	if uint32(u.n)*4 > (u.mask+1)*3 {
		u.grow()
	}
}

func (u *userTable) place(h uint32, o int) {
	i := h & u.mask
	for u.slots[i] != 0 {
		i = (i + 1) & u.mask
	}
	u.slots[i] = uint64(h)<<32 | uint64(o+1)
}

// add records a pull-side event of uid, whose hash is h (userHash): its
// component tuples vec and stall flags fl.
func (u *userTable) add(uid string, h uint32, vec []uint32, fl uint8) {
	if len(uid) > maxUserID {
		uid = uid[:maxUserID]
	}
	for i := h & u.mask; ; i = (i + 1) & u.mask {
		s := u.slots[i]
		if s == 0 {
			u.insert(uid, h, vec, fl)
			return
		}
		if uint32(s>>32) != h {
			continue
		}
		o := int(uint32(s)) - 1
		if u.idOf(o) != uid {
			continue
		}
		r := u.words[o : o+u.recSize(len(uid))]
		// Mostly the event has the tuples of the user's first one.
		words := r[recVec : recVec+len(vec)]
		for c, t := range vec {
			if words[c]&idMask != t {
				u.update(r, vec, fl)
				return
			}
		}
		if fl != 0 {
			f := uint32(fl) << flagShift
			for c := range words {
				words[c] |= f
			}
		}
		return
	}
}

// update records another pull-side event of the user of record r.
func (u *userTable) update(r []uint32, vec []uint32, fl uint8) {
	f := uint32(fl) << flagShift
	words := r[recVec:]
next:
	for c, t := range vec {
		if words[c]&idMask == t {
			words[c] |= f
			continue
		}
		last := uint32(0)
		for x := r[recMore]; x != 0; x = u.more[x-1].next {
			m := &u.more[x-1]
			if m.comp == uint32(c) && m.packed&idMask == t {
				m.packed |= f
				continue next
			}
			last = x
		}
		u.more = append(u.more, extraTuple{comp: uint32(c), packed: t | f})
		if last == 0 {
			r[recMore] = uint32(len(u.more))
		} else {
			u.more[last-1].next = uint32(len(u.more))
		}
	}
}

func (u *userTable) grow() {
	size := (u.mask + 1) * 2
	u.slots = make([]uint64, size)
	u.mask = size - 1
	for o := 0; o < len(u.words); o += u.recSize(int(u.words[o+recLen])) {
		u.place(u.words[o+recHash], o)
	}
}

// each calls fn with every record, in insertion order.
func (u *userTable) each(fn func(rec []uint32)) {
	for o := 0; o < len(u.words); {
		n := u.recSize(int(u.words[o+recLen]))
		fn(u.words[o : o+n])
		o += n
	}
}
