package ipdb

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Format is the dialect of a range file.
type Format int

const (
	// FormatCSV is `start,end,country,province,city,isp`: RFC 4180 CSV, an
	// optional header line whose first field is "start", '#' comment lines.
	// Empty fields are unknown; the country is required.
	FormatCSV Format = iota
	// FormatIP2Region is ip2region's source text (data/ipv4_source.txt in
	// its repository), "0" meaning unknown, in one of its layouts:
	// `start|end|country|province|city|isp`,
	// `start|end|country|province|city|isp|iso-3166 code` (the ISO code, when
	// not "0", is used as the country) or the older
	// `start|end|country|region|province|city|isp` (the region is dropped).
	// A file has one layout; the two 7-field ones are told apart as ReadXDB
	// tells its region strings apart (see scanIP2Region). Rows without a
	// country (private and reserved space) are kept as unknown.
	FormatIP2Region
	// FormatXDB is ip2region's binary xdb file (IPv4 only), read by ReadXDB;
	// its region strings are mapped as FormatIP2Region maps its rows.
	FormatXDB
)

// ParseFormat maps the command-line names "csv", "ip2region" and "xdb" to a
// Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "csv":
		return FormatCSV, nil
	case "ip2region":
		return FormatIP2Region, nil
	case "xdb":
		return FormatXDB, nil
	}
	return 0, fmt.Errorf("unknown format %q (want csv, ip2region or xdb)", s)
}

// Range is one row of a range file: the inclusive address range and the
// names as written (the builder normalizes them). Line is the 1-based line
// number, used in every error about the row; for an xdb it is the 1-based
// number of the (first) segment index entry of the range.
type Range struct {
	First, Last netip.Addr
	Location
	Line int
}

// maxField bounds a name so a garbage file cannot blow up the dictionary.
const maxField = 255

// ParseRanges reads a whole range file. It checks the syntax of each row
// (field count, IPv4 addresses, start ≤ end, field sizes, UTF-8) and stops
// at the first bad row with an error naming its line. Overlaps and names are
// checked by the Builder.
func ParseRanges(r io.Reader, f Format) ([]Range, error) {
	var out []Range
	err := scanRanges(r, f, func(rg Range) error {
		out = append(out, rg)
		return nil
	})
	return out, err
}

func scanRanges(r io.Reader, f Format, fn func(Range) error) error {
	if f == FormatXDB {
		data, err := readXDBFile(r)
		if err != nil {
			return err
		}
		return scanXDB(data, fn)
	}
	// Spreadsheet exports often start with a UTF-8 byte order mark.
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		br.Discard(3)
	}
	r = br
	switch f {
	case FormatCSV:
		return scanCSV(r, fn)
	case FormatIP2Region:
		return scanIP2Region(r, fn)
	}
	return fmt.Errorf("unknown format %d", f)
}

func scanCSV(r io.Reader, fn func(Range) error) error {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("line %d: %v", pe.Line, pe.Err)
			}
			return fmt.Errorf("cannot read csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if strings.EqualFold(strings.TrimSpace(rec[0]), "start") {
				continue
			}
		}
		rg, err := parseRow(rec, line, "")
		if err != nil {
			return err
		}
		if rg.Country == "" {
			return fmt.Errorf("line %d: country is empty (leave ranges of unknown location out of the file)", line)
		}
		if err := fn(rg); err != nil {
			return err
		}
	}
}

// scanIP2Region reads ip2region's source text row by row. Its layouts are
// the xdb reader's region layouts after start|end, and a file has one: the
// field count of its first row is that of every row. Seven fields are the
// ISO layout or the legacy one, told apart by the rule of ReadXDB, applied
// while streaming instead of over the whole file: the first row whose 7th
// field is not "0" decides, the ISO layout if that field is two ASCII
// letters, the legacy one otherwise. The rows before it, which read
// differently in the two layouts, are held back until then; if no row
// decides, the file is legacy, as an xdb without any ISO code is. A later
// row whose 7th field is neither "0" nor two letters contradicts the ISO
// layout: an error, where the whole-file rule would have read the file
// again as legacy. Nothing contradicts the legacy layout: its ISP can be
// two letters.
func scanIP2Region(r io.Reader, fn func(Range) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	s := sourceScanner{fn: fn}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if err := s.row(text, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return s.fail(fmt.Errorf("line %d: longer than 64 KiB", line+1))
		}
		return s.fail(fmt.Errorf("cannot read ip2region source: %w", err))
	}
	if len(s.pending) > 0 {
		s.layout = layoutLegacy
		return s.flush()
	}
	return nil
}

// sourceScanner is the state of scanIP2Region.
type sourceScanner struct {
	fn         func(Range) error
	fields     int // of the first row, 6 or 7; 0 before it
	fieldsLine int
	layout     regionLayout
	decided    int    // the line that decided the layout of a 7-field file; 0 before it
	decidedBy  string // its 7th field
	pending    []pendingRow
}

// pendingRow is a 7-field row read before the layout was decided.
type pendingRow struct {
	rg    Range // addresses and line
	names []string
}

const sourceLayouts = "6 (start|end|country|province|city|isp) or 7 (the same with the ISO 3166 code last, or the older start|end|country|region|province|city|isp)"

func (s *sourceScanner) row(text string, line int) error {
	fields := strings.Split(text, "|")
	switch n := len(fields); {
	case n != 6 && n != 7:
		return s.fail(fmt.Errorf("line %d: has %d fields, want %s", line, n, sourceLayouts))
	case s.fields == 0:
		s.fields, s.fieldsLine = n, line
	case n != s.fields:
		return s.fail(fmt.Errorf("line %d: has %d fields, but line %d has %d (a file has one layout, want %s)", line, n, s.fieldsLine, s.fields, sourceLayouts))
	}
	rg, err := parseAddrs(fields[0], fields[1], line)
	if err != nil {
		return s.fail(err)
	}
	names := fields[2:]
	if len(names) == 5 {
		last := strings.TrimSpace(names[4])
		kind := classifyFifth(last)
		switch {
		case s.decided == 0 && kind == fifthUnknown:
			s.pending = append(s.pending, pendingRow{rg, names})
			return nil
		case s.decided == 0:
			s.layout = layoutLegacy
			if kind == fifthCode {
				s.layout = layoutISO
			}
			s.decided, s.decidedBy = line, last
			if err := s.flush(); err != nil {
				return err
			}
		case s.layout == layoutISO && kind == fifthOther:
			return fmt.Errorf("line %d: 7th field %q is not an ISO 3166 code or 0, but line %d's %q made the layout start|end|country|province|city|isp|iso (a file has one layout; this row looks like the older start|end|country|region|province|city|isp)",
				line, last, s.decided, s.decidedBy)
		}
	}
	return s.emit(rg, names)
}

// emit maps the names of a row in the decided layout and passes it on.
func (s *sourceScanner) emit(rg Range, names []string) error {
	if err := setNames(&rg.Location, s.layout.mapNames(names), "0"); err != nil {
		return fmt.Errorf("line %d: %w", rg.Line, err)
	}
	return s.fn(rg)
}

func (s *sourceScanner) flush() error {
	for _, p := range s.pending {
		if err := s.emit(p.rg, p.names); err != nil {
			return err
		}
	}
	s.pending = nil
	return nil
}

// fail returns err, the error of a row, unless a row held back before it
// has a bad name: errors name the first bad row. The names of the held-back
// rows are checked as the end of the file would read them: no row so far
// decided, so they are legacy. They are not passed on: what the builder
// makes of them depends on the layout, which is still unknown.
func (s *sourceScanner) fail(err error) error {
	for _, p := range s.pending {
		var loc Location
		if nerr := setNames(&loc, layoutLegacy.mapNames(p.names), "0"); nerr != nil {
			return fmt.Errorf("line %d: %w", p.rg.Line, nerr)
		}
	}
	return err
}

// regionLayout is a layout of ip2region's names: the fields after start|end
// of its source text, the region strings of its xdb. A file has one.
type regionLayout int

const (
	layoutPlain  regionLayout = iota // country|province|city|isp (2025-09 to 2026-01)
	layoutISO                        // country|province|city|isp|iso-3166 code (since 2026-01)
	layoutLegacy                     // country|region|province|city|isp (2022 to 2025-09; region "0" or e.g. "华南")
)

// mapNames returns the four names country, province, city, isp of names in
// layout l (four names for layoutPlain, five for the others). It may modify
// names.
func (l regionLayout) mapNames(names []string) []string {
	switch l {
	case layoutISO:
		return useISOCode(names)
	case layoutLegacy:
		return append(names[:1], names[2:]...)
	}
	return names
}

// fifthName is what the fifth of five names says about the layout.
type fifthName int

const (
	fifthUnknown fifthName = iota // "0": unknown in either layout
	fifthCode                     // two ASCII letters: an ISO code, or a legacy ISP such as "KT"
	fifthOther                    // anything else ("电信", "TOT", ""): a legacy ISP
)

// classifyFifth classifies the fifth name, already trimmed. The legacy
// layout ends in the ISP, mostly Chinese, "0" or ASCII ("TOT"); the ISO
// layout in the ISO 3166-1 code, or "0".
func classifyFifth[T string | []byte](s T) fifthName {
	isLetter := func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	switch {
	case string(s) == "0":
		return fifthUnknown
	case len(s) == 2 && isLetter(s[0]) && isLetter(s[1]):
		return fifthCode
	}
	return fifthOther
}

// useISOCode turns ip2region's country|province|city|isp|iso names into
// the four names. The current ip2region data appends the ISO 3166-1 code; it
// names the country better than the (localized) country name.
func useISOCode(names []string) []string {
	if iso := strings.TrimSpace(names[4]); iso != "" && iso != "0" {
		names[0] = iso
	}
	return names[:4]
}

var fieldNames = [6]string{"start", "end", "country", "province", "city", "isp"}

// parseRow checks one row; unknown is the source's spelling of "no data"
// (ip2region's "0"), mapped to "".
func parseRow(rec []string, line int, unknown string) (Range, error) {
	if len(rec) != 6 {
		return Range{}, fmt.Errorf("line %d: has %d fields, want 6 (start,end,country,province,city,isp)", line, len(rec))
	}
	rg, err := parseAddrs(rec[0], rec[1], line)
	if err != nil {
		return Range{}, err
	}
	if err := setNames(&rg.Location, rec[2:], unknown); err != nil {
		return Range{}, fmt.Errorf("line %d: %w", line, err)
	}
	return rg, nil
}

// parseAddrs checks the start and end of a row.
func parseAddrs(start, end string, line int) (Range, error) {
	rg := Range{Line: line}
	var err error
	if rg.First, err = parseIPv4(start); err != nil {
		return Range{}, fmt.Errorf("line %d: start %q %v", line, start, err)
	}
	if rg.Last, err = parseIPv4(end); err != nil {
		return Range{}, fmt.Errorf("line %d: end %q %v", line, end, err)
	}
	if rg.Last.Less(rg.First) {
		return Range{}, fmt.Errorf("line %d: start %s is after end %s", line, rg.First, rg.Last)
	}
	return rg, nil
}

// setNames fills loc from the four names country, province, city, isp,
// checking each; unknown is as for parseRow.
func setNames(loc *Location, names []string, unknown string) error {
	ptrs := [4]*string{&loc.Country, &loc.Province, &loc.City, &loc.ISP}
	for i, p := range ptrs {
		v := strings.TrimSpace(names[i])
		if unknown != "" && v == unknown {
			v = ""
		}
		if len(v) > maxField {
			return fmt.Errorf("%s is %d bytes, longer than %d", fieldNames[i+2], len(v), maxField)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%s is not valid UTF-8", fieldNames[i+2])
		}
		*p = v
	}
	return nil
}

func parseIPv4(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, errors.New("is not an IPv4 address")
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return netip.Addr{}, errors.New("is not an IPv4 address (the table covers IPv4 only)")
	}
	return ip, nil
}
