package ipdb

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// File format, version 1 (all integers little-endian):
//
//	offset  size  field
//	0       8     magic "QOSIPDB\x1a"
//	8       2     version (1)
//	10      2     flags: bit 0 = payload is zstd-compressed runs; other bits 0
//	12      4     dictionary length in bytes
//	16      8     payload length in bytes
//	24      4     CRC-32C of the dictionary
//	28      4     CRC-32C of the uncompressed code array
//	32      D     dictionary (below)
//	32+D    P     zero padding up to a multiple of 8
//	...           payload: the 2^24 codes as uint16 (32 MiB), or, with flag
//	              bit 0, a zstd stream of the array as runs: uvarint count,
//	              uint16 code, repeated; the counts add up to 2^24
//
// The runs make compression and loading an order of magnitude faster than
// zstd on the raw array: a real table is a few hundred thousand runs, while
// zstd spends its time re-expanding millions of repeated 2-byte codes.
//
// The file ends with the payload: trailing bytes are an error. The padding
// keeps the raw array 8-byte aligned so an uncompressed file can be mapped
// and used in place.
//
// Dictionary: uvarint length + source text; uvarint count n; then n entries
// of code (uint16) and four uvarint-length-prefixed UTF-8 strings (country,
// province, city, isp), codes strictly increasing and non-zero.
const (
	magic         = "QOSIPDB\x1a"
	fileVersion   = 1
	headerSize    = 32
	flagZstd      = 1
	tableBytes    = 2 * Blocks
	maxDictBytes  = 16 << 20
	maxSourceLen  = 4096
	maxRunBytes   = 6 * Blocks                               // every run one block: 4-byte count + code
	maxZstdBytes  = maxRunBytes + maxRunBytes/64 + (1 << 16) // above zstd's worst case for that
	zstdMaxWindow = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat is wrapped by every error about the content of a table file.
var ErrFormat = errors.New("invalid ip table file")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

type entry struct {
	code Code
	loc  Location
}

type header struct {
	version  uint16
	flags    uint16
	dictLen  uint32
	payLen   uint64
	dictCRC  uint32
	tableCRC uint32
}

func (h header) padding() int { return (8 - (headerSize+int(h.dictLen))%8) % 8 }

func parseHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, formatErr("file is %d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	if string(b[:8]) != magic {
		return header{}, formatErr("bad magic %q: not a qoscope IP table", b[:8])
	}
	h := header{
		version:  binary.LittleEndian.Uint16(b[8:]),
		flags:    binary.LittleEndian.Uint16(b[10:]),
		dictLen:  binary.LittleEndian.Uint32(b[12:]),
		payLen:   binary.LittleEndian.Uint64(b[16:]),
		dictCRC:  binary.LittleEndian.Uint32(b[24:]),
		tableCRC: binary.LittleEndian.Uint32(b[28:]),
	}
	switch {
	case h.version != fileVersion:
		return header{}, formatErr("version %d is not supported (this build reads version %d)", h.version, fileVersion)
	case h.flags&^flagZstd != 0:
		return header{}, formatErr("unknown flags %#x", h.flags)
	case h.dictLen > maxDictBytes:
		return header{}, formatErr("dictionary length %d exceeds the limit of %d bytes", h.dictLen, maxDictBytes)
	case h.flags&flagZstd == 0 && h.payLen != tableBytes:
		return header{}, formatErr("uncompressed payload length is %d, want %d", h.payLen, tableBytes)
	case h.flags&flagZstd != 0 && (h.payLen == 0 || h.payLen > maxZstdBytes):
		return header{}, formatErr("compressed payload length %d is out of range (1..%d)", h.payLen, maxZstdBytes)
	}
	return h, nil
}

func encodeDict(source string, entries []entry) []byte {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(source)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e.code))
		str(e.loc.Country)
		str(e.loc.Province)
		str(e.loc.City)
		str(e.loc.ISP)
	}
	return b
}

func decodeDict(b []byte) (string, []entry, error) {
	str := func(what string, limit int) (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return "", formatErr("dictionary: cannot read the length of %s", what)
		}
		if n > uint64(limit) || n > uint64(len(b)-k) {
			return "", formatErr("dictionary: %s length %d exceeds %d or the data left", what, n, limit)
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		if !utf8.ValidString(s) {
			return "", formatErr("dictionary: %s is not valid UTF-8", what)
		}
		return s, nil
	}
	source, err := str("source", maxSourceLen)
	if err != nil {
		return "", nil, err
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1<<16-1 {
		return "", nil, formatErr("dictionary: bad entry count")
	}
	b = b[k:]
	entries := make([]entry, 0, min(n, uint64(len(b)/6)))
	for i := range int(n) {
		if len(b) < 2 {
			return "", nil, formatErr("dictionary: entry %d is truncated", i)
		}
		e := entry{code: Code(binary.LittleEndian.Uint16(b))}
		b = b[2:]
		for _, f := range [4]struct {
			name string
			p    *string
		}{{"country", &e.loc.Country}, {"province", &e.loc.Province}, {"city", &e.loc.City}, {"isp", &e.loc.ISP}} {
			if *f.p, err = str(fmt.Sprintf("entry %d %s", i, f.name), maxField); err != nil {
				return "", nil, err
			}
		}
		entries = append(entries, e)
	}
	if len(b) != 0 {
		return "", nil, formatErr("dictionary: %d unexpected bytes after the last entry", len(b))
	}
	return source, entries, nil
}

// checkEntries verifies that each code's names agree with its bits, so a
// table built with a different geography is refused instead of mislabelled.
func checkEntries(entries []entry) error {
	var prev Code
	for i, e := range entries {
		if e.code == 0 || (i > 0 && e.code <= prev) {
			return formatErr("dictionary: entry %d: code %#04x is zero or not in increasing order", i, uint16(e.code))
		}
		prev = e.code
		if e.loc.Country == "" {
			return formatErr("dictionary: entry %d: code %#04x has no country", i, uint16(e.code))
		}
		if e.code.Domestic() {
			r, p, _, _, isp := e.code.domesticParts()
			pi := mainlandByBits[r][p]
			switch {
			case pi == nil:
				return formatErr("dictionary: entry %d: code %#04x has no province in region %s slot %d", i, uint16(e.code), RegionNames[r], p)
			case e.loc.Country != countryChina || e.loc.Province != pi.name:
				return formatErr("dictionary: entry %d: code %#04x names %s/%s but its bits say cn/%s", i, uint16(e.code), e.loc.Country, e.loc.Province, pi.name)
			case e.loc.ISP != ISPNames[isp]:
				return formatErr("dictionary: entry %d: code %#04x names isp %q but its bits say %q", i, uint16(e.code), e.loc.ISP, ISPNames[isp])
			}
			continue
		}
		if d, _ := e.code.otherParts(); d == domainUnknown {
			return formatErr("dictionary: entry %d: code %#04x is in the reserved domain 0", i, uint16(e.code))
		}
		if d, _ := e.code.otherParts(); d >= domainCNNoProv && d <= domainTaiwan &&
			(e.loc.Country != countryChina || e.loc.Province != fixedProvince(d)) {
			return formatErr("dictionary: entry %d: code %#04x names %s/%s but its domain is cn/%s", i, uint16(e.code), e.loc.Country, e.loc.Province, fixedProvince(d))
		}
	}
	return nil
}

// newTable wires a code array and its dictionary. With scan set it also checks
// that every code in the array has names (a loaded file); the builder makes
// the dictionary from the array, so it skips the 16M-entry scan.
func newTable(codes *[Blocks]Code, entries []entry, source string, scan bool) (*Table, error) {
	if err := checkEntries(entries); err != nil {
		return nil, err
	}
	t := &Table{codes: codes, slot: new([1 << 16]uint16), source: source}
	t.locs = make([]Location, 1, len(entries)+1)
	t.codeOf = make([]Code, 1, len(entries)+1)
	for _, e := range entries {
		t.slot[e.code] = uint16(len(t.locs))
		t.locs = append(t.locs, e.loc)
		t.codeOf = append(t.codeOf, e.code)
	}
	if scan {
		for blk, c := range codes {
			if c != 0 && t.slot[c] == 0 {
				return nil, formatErr("code %#04x of block %s/24 is not in the dictionary", uint16(c), addr(uint32(blk)<<8))
			}
		}
	}
	return t, nil
}

func codeBytes(codes *[Blocks]Code) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(codes)), tableBytes)
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// swapIfBigEndian converts between the file's little-endian codes and the
// host's order.
func swapIfBigEndian(codes *[Blocks]Code) {
	if littleEndian {
		return
	}
	for i, c := range codes {
		codes[i] = c>>8 | c<<8
	}
}

// Write stores the table in the file format above, zstd-compressed when
// compress is set (the usual choice; uncompressed files can be mapped by Open
// instead of decompressed).
func (t *Table) Write(w io.Writer, compress bool) error {
	entries := make([]entry, 0, len(t.locs)-1)
	for i := 1; i < len(t.locs); i++ {
		entries = append(entries, entry{t.codeOf[i], t.locs[i]})
	}
	dict := encodeDict(t.source, entries)
	raw := codeBytes(t.codes)
	if !littleEndian {
		cp := *t.codes
		swapIfBigEndian(&cp)
		raw = codeBytes(&cp)
	}
	payload, flags := raw, uint16(0)
	if compress {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithWindowSize(zstdMaxWindow), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("cannot create zstd encoder: %w", err)
		}
		payload = enc.EncodeAll(encodeRuns(t.codes), nil)
		enc.Close()
		flags = flagZstd
	}
	h := header{version: fileVersion, flags: flags, dictLen: uint32(len(dict)), payLen: uint64(len(payload)),
		dictCRC: crc32.Checksum(dict, castagnoli), tableCRC: crc32.Checksum(raw, castagnoli)}
	hb := make([]byte, headerSize, headerSize+8)
	copy(hb, magic)
	binary.LittleEndian.PutUint16(hb[8:], h.version)
	binary.LittleEndian.PutUint16(hb[10:], h.flags)
	binary.LittleEndian.PutUint32(hb[12:], h.dictLen)
	binary.LittleEndian.PutUint64(hb[16:], h.payLen)
	binary.LittleEndian.PutUint32(hb[24:], h.dictCRC)
	binary.LittleEndian.PutUint32(hb[28:], h.tableCRC)
	for _, part := range [][]byte{hb, dict, make([]byte, h.padding()), payload} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("cannot write ip table: %w", err)
		}
	}
	return nil
}

// WriteFile writes the table to path atomically (a temporary file renamed
// into place), so a reader never sees half a table.
func (t *Table) WriteFile(path string, compress bool) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = t.Write(bw, compress); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	// CreateTemp makes the file private; a table is data for other services.
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cannot rename into %s: %w", path, err)
	}
	return nil
}

// LoadBytes decodes a table file held in memory. See Load.
func LoadBytes(b []byte) (*Table, error) { return Load(bytes.NewReader(b)) }

// Load reads a table file into memory (32 MiB), decompressing it if needed,
// and validates it: magic, version, flags, sizes, both checksums, that the
// dictionary agrees with the code layout, and that every code in the array
// has names. Errors wrap ErrFormat and say what is wrong.
func Load(r io.Reader) (*Table, error) {
	hb := make([]byte, headerSize)
	if n, err := io.ReadFull(r, hb); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, formatErr("file is %d bytes, shorter than the %d-byte header", n, headerSize)
		}
		return nil, fmt.Errorf("cannot read ip table: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	dict := make([]byte, int(h.dictLen)+h.padding())
	if err := readPart(r, dict, "dictionary"); err != nil {
		return nil, err
	}
	if !allZero(dict[h.dictLen:]) {
		return nil, formatErr("padding after the dictionary is not zero")
	}
	dict = dict[:h.dictLen]
	if crc32.Checksum(dict, castagnoli) != h.dictCRC {
		return nil, formatErr("dictionary checksum mismatch: the file is corrupted")
	}
	source, entries, err := decodeDict(dict)
	if err != nil {
		return nil, err
	}
	codes := allocCodes()
	raw := codeBytes(codes)
	scan := true
	if h.flags&flagZstd == 0 {
		if err := readPart(r, raw, "code array"); err != nil {
			return nil, err
		}
	} else {
		comp := make([]byte, h.payLen)
		if err := readPart(r, comp, "compressed code array"); err != nil {
			return nil, err
		}
		runs, err := decompress(comp)
		if err != nil {
			return nil, err
		}
		if err := expandRuns(runs, codes, entries); err != nil {
			return nil, err
		}
		scan = false // expandRuns checked each run's code
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n != 0 {
		return nil, formatErr("unexpected data after the payload")
	}
	if crc32.Checksum(raw, castagnoli) != h.tableCRC {
		return nil, formatErr("code array checksum mismatch: the file is corrupted")
	}
	swapIfBigEndian(codes)
	return newTable(codes, entries, source, scan)
}

func decompress(comp []byte) ([]byte, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxRunBytes), zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		return nil, fmt.Errorf("cannot create zstd decoder: %w", err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(comp, nil)
	if err != nil {
		return nil, formatErr("cannot decompress the code array: %v", err)
	}
	return out, nil
}

// encodeRuns is the run-length form of the payload (see the format above).
func encodeRuns(codes *[Blocks]Code) []byte {
	var b []byte
	for blk := 0; blk < Blocks; {
		c := codes[blk]
		end := blk + 1
		for end < Blocks && codes[end] == c {
			end++
		}
		b = binary.AppendUvarint(b, uint64(end-blk))
		b = binary.LittleEndian.AppendUint16(b, uint16(c))
		blk = end
	}
	return b
}

// expandRuns fills codes (in the file's little-endian byte order, like a raw
// read) from runs, checking that the runs cover the array exactly and that
// every code has a dictionary entry.
func expandRuns(b []byte, codes *[Blocks]Code, entries []entry) error {
	var known [1 << 16]bool
	known[0] = true
	for _, e := range entries {
		known[e.code] = true
	}
	blk := 0
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || len(b) < k+2 {
			return formatErr("code array: run at block %d is truncated", blk)
		}
		c := Code(binary.LittleEndian.Uint16(b[k:]))
		b = b[k+2:]
		if n == 0 || n > uint64(Blocks-blk) {
			return formatErr("code array: run of %d blocks at block %d does not fit the %d blocks", n, blk, Blocks)
		}
		if !known[c] {
			return formatErr("code %#04x of block %s/24 is not in the dictionary", uint16(c), addr(uint32(blk)<<8))
		}
		if c != 0 { // the array starts zeroed
			if !littleEndian {
				c = c>>8 | c<<8
			}
			fill := codes[blk : blk+int(n)]
			for i := range fill {
				fill[i] = c
			}
		}
		blk += int(n)
	}
	if blk != Blocks {
		return formatErr("code array: runs cover %d blocks, want %d", blk, Blocks)
	}
	return nil
}

func readPart(r io.Reader, b []byte, what string) error {
	n, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr("file is truncated: %s has %d of %d bytes", what, n, len(b))
	}
	if err != nil {
		return fmt.Errorf("cannot read ip table %s: %w", what, err)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Open loads a table file. An uncompressed file is memory-mapped where the
// platform allows (the pages are shared between processes and the start is
// instant); call Close to unmap it. Other files are read as by Load.
func Open(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open ip table: %w", err)
	}
	defer f.Close()
	hb := make([]byte, headerSize)
	if _, err := io.ReadFull(f, hb); err == nil {
		if h, err := parseHeader(hb); err == nil && h.flags&flagZstd == 0 && littleEndian && canMmap {
			t, err := mmapTable(f, h)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return t, nil
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("cannot read ip table: %w", err)
	}
	t, err := Load(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// fromMapped validates a whole uncompressed file held in b (mapped) and
// returns a table whose codes point into it.
func fromMapped(b []byte, h header) (*Table, error) {
	off := headerSize + int(h.dictLen) + h.padding()
	if len(b) != off+tableBytes {
		return nil, formatErr("file is %d bytes, want %d for its header", len(b), off+tableBytes)
	}
	dict := b[headerSize : headerSize+int(h.dictLen)]
	if !allZero(b[headerSize+int(h.dictLen) : off]) {
		return nil, formatErr("padding after the dictionary is not zero")
	}
	if crc32.Checksum(dict, castagnoli) != h.dictCRC {
		return nil, formatErr("dictionary checksum mismatch: the file is corrupted")
	}
	source, entries, err := decodeDict(dict)
	if err != nil {
		return nil, err
	}
	raw := b[off:]
	if crc32.Checksum(raw, castagnoli) != h.tableCRC {
		return nil, formatErr("code array checksum mismatch: the file is corrupted")
	}
	return newTable((*[Blocks]Code)(unsafe.Pointer(&raw[0])), entries, source, true)
}
