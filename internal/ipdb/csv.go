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
	// its repository): `start|end|country|province|city|isp[|iso-3166 code]`,
	// where "0" means unknown. When the ISO code is present it is used as the
	// country. Rows without a country (private and reserved space) are kept
	// as unknown.
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

func scanIP2Region(r io.Reader, fn func(Range) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	line := 0
	var fields []string
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields = append(fields[:0], strings.Split(text, "|")...)
		if len(fields) == 7 {
			useISOCode(fields[2:])
			fields = fields[:6]
		}
		rg, err := parseRow(fields, line, "0")
		if err != nil {
			return err
		}
		if err := fn(rg); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than 64 KiB", line+1)
		}
		return fmt.Errorf("cannot read ip2region source: %w", err)
	}
	return nil
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
	var rg Range
	rg.Line = line
	var err error
	if rg.First, err = parseIPv4(rec[0]); err != nil {
		return Range{}, fmt.Errorf("line %d: start %q %v", line, rec[0], err)
	}
	if rg.Last, err = parseIPv4(rec[1]); err != nil {
		return Range{}, fmt.Errorf("line %d: end %q %v", line, rec[1], err)
	}
	if rg.Last.Less(rg.First) {
		return Range{}, fmt.Errorf("line %d: start %s is after end %s", line, rg.First, rg.Last)
	}
	if err := setNames(&rg.Location, rec[2:], unknown); err != nil {
		return Range{}, fmt.Errorf("line %d: %w", line, err)
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
