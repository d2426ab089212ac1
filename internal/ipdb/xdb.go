package ipdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ip2region's xdb file, as documented by its maker (maker/golang/xdb/maker.go
// and binding/golang/xdb/header.go in github.com/lionsoul2014/ip2region).
// Its official Go reader cannot be fetched through the module proxy used
// here, so this is a reader of the documented layout. All numbers are
// little-endian.
//
//	0       header, 256 bytes:
//	          0  u16  structure version: 2 (IPv4 only), 3 (since 2025-09, with IPv6)
//	          2  u16  index policy: 1 vector, 2 btree (the file is the same)
//	          4  u32  creation time, Unix seconds
//	          8  u32  start index pointer: offset of the first segment index entry
//	         12  u32  end index pointer: offset of the LAST entry (inclusive)
//	         16  u16  IP version, 4 or 6 (version 3; 0 in version 2)
//	         18  u16  runtime pointer bytes, 4 (version 3)
//	256     vector index: 256×256 cells of 8 bytes, the first and past-the-end
//	        entry pointers of each A.B prefix (512 KiB); not needed to read
//	        every segment, so not read here
//	524544  region strings, each stored once, no terminator
//	start   segment index up to end+14, sorted by address, entries split at
//	        /16 boundaries; an IPv4 entry is 14 bytes:
//	          0  u32  first address (the address as a number, so a.b.c.d is d c b a)
//	          4  u32  last address, inclusive
//	          8  u16  region length
//	         10  u32  region offset
const (
	xdbHeaderSize   = 256
	xdbVectorEnd    = xdbHeaderSize + 256*256*8 // end of the vector index
	xdbEntrySize    = 14                        // IPv4 segment index entry
	xdbPolicyVector = 1
	xdbPolicyBTree  = 2
	// xdbMaxSize: pointers are 32-bit, so no valid file is larger.
	xdbMaxSize = 1<<32 - 1
)

// ReadXDB parses an ip2region IPv4 xdb file held in memory. It walks the
// segment index from the start to the end index pointer, checking the header
// and every pointer, and returns the ranges in address order. Adjacent
// entries with the same region (the maker splits ranges at /16 boundaries)
// are merged; Range.Line is the 1-based number of a range's first entry.
//
// Region strings are mapped as FormatIP2Region maps its rows: "0" is
// unknown, an ISO 3166-1 code replaces the country, and an empty region or
// one without a country is a range of unknown location. The layout of the
// region strings is detected once per file: 4 fields are
// country|province|city|isp; 5 fields are country|province|city|isp|iso when
// every fifth field is "0" or two ASCII letters (at least one of them
// letters), and otherwise the older country|region|province|city|isp, whose
// region field is dropped. Other field counts are an error.
//
// Errors name the header field or the segment, with their file offsets.
// IPv6 xdb files are refused: the table is IPv4 only.
func ReadXDB(data []byte) ([]Range, error) {
	h, layout, err := openXDB(data)
	if err != nil {
		return nil, err
	}
	out := make([]Range, 0, h.entries) // at most, and usually nearly, one range per entry
	err = h.scan(data, layout, func(r Range) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// readXDBFile reads a whole xdb: its pointers are absolute offsets.
func readXDBFile(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, xdbMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read xdb: %w", err)
	}
	if int64(len(data)) > xdbMaxSize {
		return nil, fmt.Errorf("xdb is larger than %d bytes, more than its 32-bit pointers can address", int64(xdbMaxSize))
	}
	return data, nil
}

type xdbHeader struct {
	start, end uint32 // offsets of the first and the last entry
	indexEnd   uint64 // offset just past the last entry
	entries    int
}

func parseXDBHeader(data []byte) (xdbHeader, error) {
	var h xdbHeader
	if len(data) < xdbHeaderSize {
		return h, fmt.Errorf("xdb is %d bytes, shorter than its %d-byte header", len(data), xdbHeaderSize)
	}
	u16 := func(off int) int { return int(binary.LittleEndian.Uint16(data[off:])) }
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(data[off:]) }
	switch version := u16(0); version {
	case 2:
		// IPv4 only; bytes 16-19 were not defined yet.
	case 3:
		switch v := u16(16); v {
		case 4:
		case 6:
			return h, fmt.Errorf("xdb header: ip version 6 (offset 16): IPv6 xdb files are not supported, the table is IPv4 only (use ip2region's IPv4 xdb)")
		default:
			return h, fmt.Errorf("xdb header: ip version %d (offset 16) is invalid (want 4)", v)
		}
		if n := u16(18); n != 4 {
			return h, fmt.Errorf("xdb header: runtime pointer bytes %d (offset 18) is not supported (want 4)", n)
		}
	default:
		return h, fmt.Errorf("xdb header: structure version %d (offset 0) is not supported (want 2 or 3); not an ip2region xdb?", version)
	}
	if p := u16(2); p != xdbPolicyVector && p != xdbPolicyBTree {
		return h, fmt.Errorf("xdb header: index policy %d (offset 2) is unknown (want 1 vector or 2 btree)", p)
	}
	h.start, h.end = u32(8), u32(12)
	switch {
	case h.start < xdbVectorEnd:
		return h, fmt.Errorf("xdb header: start index pointer %d (offset 8) points into the header or the vector index, which end at %d", h.start, xdbVectorEnd)
	case h.end < h.start:
		return h, fmt.Errorf("xdb header: end index pointer %d (offset 12) is before the start index pointer %d", h.end, h.start)
	case (h.end-h.start)%xdbEntrySize != 0:
		return h, fmt.Errorf("xdb header: end index pointer %d (offset 12) is not a whole number of %d-byte entries after the start index pointer %d", h.end, xdbEntrySize, h.start)
	}
	h.indexEnd = uint64(h.end) + xdbEntrySize
	if h.indexEnd > uint64(len(data)) {
		return h, fmt.Errorf("xdb is truncated: its segment index ends at %d (end index pointer %d + %d), the file has %d bytes", h.indexEnd, h.end, xdbEntrySize, len(data))
	}
	h.entries = int((h.end-h.start)/xdbEntrySize) + 1
	return h, nil
}

// xdbEntry is one segment index entry.
type xdbEntry struct {
	first, last uint32
	n, ptr      uint64 // region length and offset
}

func (h *xdbHeader) entry(data []byte, i int) xdbEntry {
	off := int(h.start) + i*xdbEntrySize
	b := data[off : off+xdbEntrySize]
	return xdbEntry{
		first: binary.LittleEndian.Uint32(b[0:]),
		last:  binary.LittleEndian.Uint32(b[4:]),
		n:     uint64(binary.LittleEndian.Uint16(b[8:])),
		ptr:   uint64(binary.LittleEndian.Uint32(b[10:])),
	}
}

// region returns the region string of e, which check has validated.
func (e xdbEntry) region(data []byte) []byte {
	if e.n == 0 {
		return nil
	}
	return data[e.ptr : e.ptr+e.n]
}

// segErr prefixes an error about entry i (0-based) with its number and offset.
func (h *xdbHeader) segErr(i int, format string, args ...any) error {
	return fmt.Errorf("xdb segment %d (offset %d): %s", i+1, int(h.start)+i*xdbEntrySize, fmt.Sprintf(format, args...))
}

// scanXDB checks the whole file first (pointers, order, one region layout),
// then calls fn for each merged range.
func scanXDB(data []byte, fn func(Range) error) error {
	h, layout, err := openXDB(data)
	if err != nil {
		return err
	}
	return h.scan(data, layout, fn)
}

func openXDB(data []byte) (xdbHeader, regionLayout, error) {
	h, err := parseXDBHeader(data)
	if err != nil {
		return h, 0, err
	}
	layout, err := h.check(data)
	return h, layout, err
}

// scan calls fn for each range of a checked file.
func (h *xdbHeader) scan(data []byte, layout regionLayout, fn func(Range) error) error {
	var (
		cur     xdbEntry
		curLine int
		// The maker stores each region once and entries share it: parse
		// it once, and let the ranges share the strings.
		locs = map[uint64]Location{}
	)
	emit := func() error {
		rg := Range{First: addr(cur.first), Last: addr(cur.last), Line: curLine}
		if cur.n > 0 {
			key := cur.ptr<<16 | cur.n
			loc, ok := locs[key]
			if !ok {
				names := layout.mapNames(strings.Split(string(cur.region(data)), "|"))
				if err := setNames(&loc, names, "0"); err != nil {
					return h.segErr(curLine-1, "region at %d: %v", cur.ptr, err)
				}
				locs[key] = loc
			}
			rg.Location = loc
		}
		return fn(rg)
	}
	for i := range h.entries {
		e := h.entry(data, i)
		if i > 0 && e.first == cur.last+1 && bytes.Equal(e.region(data), cur.region(data)) {
			cur.last = e.last
			continue
		}
		if i > 0 {
			if err := emit(); err != nil {
				return err
			}
		}
		cur, curLine = e, i+1
	}
	return emit()
}

// check validates every entry and returns the region layout of the file.
func (h *xdbHeader) check(data []byte) (regionLayout, error) {
	var (
		prevLast  uint32
		fields    int // of the first non-empty region
		fieldsSeg int
		isoShaped = true
		anyISO    bool
		maxEnd    = h.indexEnd
	)
	for i := range h.entries {
		e := h.entry(data, i)
		first, last, n, ptr := e.first, e.last, e.n, e.ptr
		switch {
		case last < first:
			return 0, h.segErr(i, "first address %s is after last address %s", addr(first), addr(last))
		case i > 0 && first <= prevLast:
			return 0, h.segErr(i, "first address %s is not after the previous segment's last address %s (the index must be sorted, without overlaps)", addr(first), addr(prevLast))
		}
		prevLast = last
		if n == 0 {
			continue // allowed by the maker since 2024-09: no location
		}
		end := ptr + n
		switch {
		case ptr < xdbVectorEnd || end > uint64(len(data)):
			return 0, h.segErr(i, "region at %d, %d bytes, is outside the region area (%d to the end of the file, %d)", ptr, n, xdbVectorEnd, len(data))
		case ptr < h.indexEnd && end > uint64(h.start):
			return 0, h.segErr(i, "region at %d, %d bytes, overlaps the segment index (%d to %d)", ptr, n, h.start, h.indexEnd)
		}
		maxEnd = max(maxEnd, end)
		region := data[ptr:end]
		nf := bytes.Count(region, []byte("|")) + 1
		switch {
		case fields == 0 && nf != 4 && nf != 5:
			return 0, h.segErr(i, "region %s has %d fields, want 4 (country|province|city|isp) or 5 (the same with the ISO 3166 code last, or the older country|region|province|city|isp)", quoteRegion(region), nf)
		case fields == 0:
			fields, fieldsSeg = nf, i+1
		case nf != fields:
			return 0, h.segErr(i, "region %s has %d fields, but segment %d's region has %d (a file has one layout)", quoteRegion(region), nf, fieldsSeg, fields)
		}
		if nf == 5 {
			switch classifyFifth(bytes.TrimSpace(region[bytes.LastIndexByte(region, '|')+1:])) {
			case fifthCode:
				anyISO = true
			case fifthOther:
				isoShaped = false
			}
		}
	}
	if maxEnd < uint64(len(data)) {
		return 0, fmt.Errorf("xdb has %d bytes after the end of its segment index and regions (at %d): corrupted, or its index pointers are wrong", uint64(len(data))-maxEnd, maxEnd)
	}
	switch {
	case fields == 5 && isoShaped && anyISO:
		return layoutISO, nil
	case fields == 5:
		return layoutLegacy, nil
	}
	return layoutPlain, nil
}

// quoteRegion quotes a region for an error, shortened: it can be 64 KiB.
func quoteRegion(b []byte) string {
	const limit = 80
	if len(b) <= limit {
		return fmt.Sprintf("%q", b)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", b[:cut])
}
