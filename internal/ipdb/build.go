package ipdb

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Stats describes a build. The "coarsened" counters are ranges that lost
// detail because a bit field was full; they are reported, never hidden.
type Stats struct {
	Ranges           int // rows added
	UnknownRanges    int // rows without a country (left unknown)
	Blocks           int // /24 blocks with a known location
	PartialBlocks    int // /24 blocks split between rows, resolved by the majority rule
	Codes            int // distinct codes in the table
	Countries        int // distinct countries, "cn" included
	OtherISP         int // mainland rows whose carrier is not one of ISPNames, coded "other"
	CoarsenedCity    int // mainland rows whose city did not fit the 31 city slots of its province
	CoarsenedDetail  int // non-mainland rows whose (province, city, isp) did not fit the 127 slots of the country
	CoarsenedCountry int // rows of countries beyond the 250 country slots, coded country "other"
}

// Builder turns ranges into a Table. Add every row, then call Build once.
type Builder struct {
	source string
	unit   string // what Range.Line counts, for errors: "line" (default), "segment" for an xdb
	rows   []row
	stats  Stats
}

type rowKind uint8

const (
	kindUnknown rowKind = iota
	kindDomestic
	kindOther
)

type row struct {
	first, last uint32
	line        int
	kind        rowKind
	prov        *provinceInfo // kindDomestic
	isp         int           // kindDomestic
	domainKey   string        // kindOther: "cn", "hongkong", ... or the country
	loc         Location      // normalized names
	code        Code
}

// NewBuilder returns a builder; source is stored in the table file as a
// description of the data (e.g. "ip2region 2026-08" or "synthetic").
func NewBuilder(source string) *Builder { return &Builder{source: source} }

// at names row number n in errors: "line 12", or "segment 12" for an xdb.
func (b *Builder) at(n int) string {
	if b.unit == "" {
		return fmt.Sprintf("line %d", n)
	}
	return fmt.Sprintf("%s %d", b.unit, n)
}

// Add normalizes the names of one row. Errors name the row's line.
//
// Normalization: the country "cn" (also "china", "中国") or a Hong Kong,
// Macau or Taiwan country code/name becomes "cn" with the canonical province;
// mainland province names and aliases (e.g. "广东省", "Guangdong") become the
// canonical pinyin, and an unrecognized province of "cn" is an error (its
// code bits would be wrong). Mainland carriers become one of ISPNames, with
// unlisted ones coded "other". Other countries' names are kept as written,
// except that ASCII country codes are lowercased.
func (b *Builder) Add(r Range) error {
	if !r.First.Is4() || !r.Last.Is4() || r.Last.Less(r.First) {
		return fmt.Errorf("%s: not an IPv4 range: %s-%s", b.at(r.Line), r.First, r.Last)
	}
	b.stats.Ranges++
	f4, l4 := r.First.As4(), r.Last.As4()
	rw := row{
		first: uint32(f4[0])<<24 | uint32(f4[1])<<16 | uint32(f4[2])<<8 | uint32(f4[3]),
		last:  uint32(l4[0])<<24 | uint32(l4[1])<<16 | uint32(l4[2])<<8 | uint32(l4[3]),
		line:  r.Line,
	}
	country := normalizeKey(r.Country)
	if c, ok := countryAliases[country]; ok {
		country = c
	}
	province := r.Province
	if p := lookupProvince(country); country != "" && p != nil && p.region < 0 {
		// "hk", "香港", ...: a special domain of country cn.
		country, province = countryChina, p.name
	}
	switch {
	case country == "":
		// Only ip2region's private and reserved rows get here (the CSV
		// format requires a country); they stay unknown, and are counted.
		rw.kind = kindUnknown
		b.stats.UnknownRanges++
	case country == countryChina:
		rw.loc.Country = countryChina
		rw.loc.City = r.City
		p := lookupProvince(province)
		switch {
		case province == "":
			rw.kind, rw.domainKey = kindOther, countryChina
			rw.loc.ISP = canonicalISP(r.ISP)
		case p == nil:
			return fmt.Errorf("%s: unknown province %q for country cn (want a name from ipdb.Provinces, e.g. guangdong, or its Chinese name)", b.at(r.Line), province)
		case p.region < 0:
			rw.kind, rw.domainKey = kindOther, p.name
			rw.loc.Province = p.name
			rw.loc.ISP = canonicalISP(r.ISP)
		default:
			rw.kind, rw.prov = kindDomestic, p
			rw.loc.Province = p.name
			rw.isp = lookupISP(r.ISP)
			if rw.isp == ISPOther && normalizeKey(r.ISP) != "other" {
				b.stats.OtherISP++
			}
			rw.loc.ISP = ISPNames[rw.isp]
		}
	default:
		rw.kind, rw.domainKey = kindOther, lowerASCII(country, r.Country)
		rw.loc = Location{Country: rw.domainKey, Province: r.Province, City: r.City, ISP: r.ISP}
	}
	b.rows = append(b.rows, rw)
	return nil
}

// canonicalISP names a carrier of HK/MO/TW or province-less cn rows: listed
// carriers get their canonical name, others keep theirs.
func canonicalISP(s string) string {
	if n := lookupISP(s); n != ISPOther || normalizeKey(s) == "other" {
		return ISPNames[n]
	}
	return s
}

// lowerASCII returns the trimmed original lowercased when it is plain ASCII
// (an ISO code such as "US"), and the trimmed original otherwise, so names in
// other scripts stay as written.
func lowerASCII(key, orig string) string {
	orig = strings.TrimSpace(orig)
	for i := 0; i < len(key); i++ {
		if key[i] >= 0x80 {
			return orig
		}
	}
	return strings.ToLower(orig)
}

// Build checks that no two rows overlap (the error names both lines), assigns
// codes and fills the table.
//
// Ranges need not be aligned to /24s. A /24 covered whole by one row takes
// that row's location. A /24 that rows cover only in part takes the location
// covering the most of its 256 addresses (summed over rows with the same
// location); a tie goes to the location covering the lowest address.
// Uncovered addresses do not compete, so a lone /25 names its whole /24.
func (b *Builder) Build() (*Table, Stats, error) {
	rows := b.rows
	slices.SortStableFunc(rows, func(x, y row) int { return cmp.Compare(x.first, y.first) })
	for i := 1; i < len(rows); i++ {
		if p, r := rows[i-1], rows[i]; r.first <= p.last {
			// Report the later line of the two so the message reads in file order.
			a, z := p, r
			if a.line > z.line {
				a, z = z, a
			}
			return nil, b.stats, fmt.Errorf("%s: range %s-%s overlaps %s (%s-%s)",
				b.at(z.line), addr(z.first), addr(z.last), b.at(a.line), addr(a.first), addr(a.last))
		}
	}
	dict := b.assignCodes(rows)

	codes := allocCodes()
	used := make(map[Code]bool, len(dict))
	fillBlocks(codes, rows, &b.stats, used)

	entries := make([]entry, 0, len(used))
	for c := range used {
		entries = append(entries, entry{code: c, loc: dict[c]})
	}
	slices.SortFunc(entries, func(x, y entry) int { return cmp.Compare(x.code, y.code) })
	t, err := newTable(codes, entries, b.source, false)
	if err != nil {
		return nil, b.stats, err
	}
	b.stats.Codes = len(entries)
	countries := map[string]bool{}
	for _, e := range entries {
		countries[e.loc.Country] = true
	}
	b.stats.Countries = len(countries)
	return t, b.stats, nil
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ranked returns the keys of w by weight, largest first, ties by key, so the
// biggest names get the limited slots and the order is deterministic.
func ranked[K cmp.Ordered](w map[K]uint64) []K {
	keys := make([]K, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y K) int {
		if c := cmp.Compare(w[y], w[x]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	return keys
}

type tuple struct{ province, city, isp string }

func (t tuple) less(u tuple) int {
	return cmp.Or(cmp.Compare(t.province, u.province), cmp.Compare(t.city, u.city), cmp.Compare(t.isp, u.isp))
}

// assignCodes sets rows[i].code and returns the names of every code.
func (b *Builder) assignCodes(rows []row) map[Code]Location {
	size := func(r *row) uint64 { return uint64(r.last-r.first) + 1 }

	// Mainland: cities of each province ranked by size into slots 1..31.
	cityWeight := map[*provinceInfo]map[string]uint64{}
	// Elsewhere: countries ranked into domains, tuples into localities.
	countryWeight := map[string]uint64{}
	tupleWeight := map[string]map[tuple]uint64{}
	for i := range rows {
		r := &rows[i]
		switch r.kind {
		case kindDomestic:
			if r.loc.City != "" {
				m := cityWeight[r.prov]
				if m == nil {
					m = map[string]uint64{}
					cityWeight[r.prov] = m
				}
				m[r.loc.City] += size(r)
			}
		case kindOther:
			if fixedDomain(r.domainKey) == 0 {
				countryWeight[r.domainKey] += size(r)
			}
			m := tupleWeight[r.domainKey]
			if m == nil {
				m = map[tuple]uint64{}
				tupleWeight[r.domainKey] = m
			}
			if tp := tupleOf(r); tp != (tuple{}) {
				m[tp] += size(r)
			}
		}
	}
	citySlot := map[*provinceInfo]map[string]int{}
	for p, w := range cityWeight {
		m := map[string]int{}
		for i, c := range ranked(w) {
			if i < 31 {
				m[c] = i + 1
			}
		}
		citySlot[p] = m
	}
	domainOf := map[string]int{
		countryChina: domainCNNoProv, provinceHongKong: domainHongKong,
		provinceMacau: domainMacau, provinceTaiwan: domainTaiwan,
	}
	for i, c := range ranked(countryWeight) {
		if d := firstFreeDomain + i; d < maxDomain {
			domainOf[c] = d
		} else {
			domainOf[c] = maxDomain
		}
	}
	localityOf := map[string]map[tuple]int{}
	for dk, w := range tupleWeight {
		m := map[tuple]int{}
		if domainOf[dk] != maxDomain {
			keys := make([]tuple, 0, len(w))
			for k := range w {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(x, y tuple) int {
				return cmp.Or(cmp.Compare(w[y], w[x]), x.less(y))
			})
			for i, k := range keys {
				if i < 127 {
					m[k] = i + 1
				}
			}
		}
		localityOf[dk] = m
	}

	dict := map[Code]Location{}
	for i := range rows {
		r := &rows[i]
		switch r.kind {
		case kindDomestic:
			slot := 0
			if r.loc.City != "" {
				var ok bool
				if slot, ok = citySlot[r.prov][r.loc.City]; !ok {
					b.stats.CoarsenedCity++
					r.loc.City = ""
				}
			}
			r.code = domesticCode(r.prov.region, r.prov.index, slot, r.isp)
		case kindOther:
			d := domainOf[r.domainKey]
			loc := 0
			tp := tupleOf(r)
			switch {
			case d == maxDomain:
				b.stats.CoarsenedCountry++
				r.loc = Location{Country: countryOverflow}
			case tp != tuple{}:
				var ok bool
				if loc, ok = localityOf[r.domainKey][tp]; !ok {
					b.stats.CoarsenedDetail++
					r.loc = Location{Country: r.loc.Country, Province: fixedProvince(d)}
				}
			}
			r.code = otherCode(d, loc)
		default:
			continue
		}
		dict[r.code] = r.loc
	}
	return dict
}

// tupleOf is what tells the localities of a domain apart. The province of
// Hong Kong, Macau and Taiwan is implied by their domain.
func tupleOf(r *row) tuple {
	if fixedDomain(r.domainKey) != 0 {
		return tuple{"", r.loc.City, r.loc.ISP}
	}
	return tuple{r.loc.Province, r.loc.City, r.loc.ISP}
}

func fixedDomain(key string) int {
	switch key {
	case countryChina:
		return domainCNNoProv
	case provinceHongKong:
		return domainHongKong
	case provinceMacau:
		return domainMacau
	case provinceTaiwan:
		return domainTaiwan
	}
	return 0
}

// fixedProvince is the province every code of a fixed domain carries.
func fixedProvince(domain int) string {
	switch domain {
	case domainHongKong:
		return provinceHongKong
	case domainMacau:
		return provinceMacau
	case domainTaiwan:
		return provinceTaiwan
	}
	return ""
}

// fillBlocks writes each row's code into the /24 blocks it covers. A block
// covered whole by a row gets that row's code. A block that rows cover only in
// part (ranges smaller than a /24, or not aligned to one) gets the code that
// covers the most of its 256 addresses, summed over the rows of that code;
// ties go to the code that covers the lowest address of the block. Uncovered
// addresses and rows of unknown location do not vote, so a lone /25 still
// names its block.
func fillBlocks(codes *[Blocks]Code, rows []row, st *Stats, used map[Code]bool) {
	type vote struct {
		code Code
		n    uint32
	}
	var (
		pending bool
		pblk    uint32
		votes   []vote
	)
	flush := func() {
		if !pending {
			return
		}
		best := 0
		for i := range votes {
			if votes[i].n > votes[best].n {
				best = i
			}
		}
		codes[pblk] = votes[best].code
		used[votes[best].code] = true
		st.PartialBlocks++
		st.Blocks++
		pending, votes = false, votes[:0]
	}
	addVote := func(blk uint32, c Code, n uint32) {
		if pending && blk != pblk {
			flush()
		}
		pending, pblk = true, blk
		for i := range votes {
			if votes[i].code == c {
				votes[i].n += n
				return
			}
		}
		votes = append(votes, vote{c, n})
	}
	for i := range rows {
		r := &rows[i]
		if r.kind == kindUnknown {
			continue
		}
		fb, lb := r.first>>8, r.last>>8
		for blk := fb; ; blk++ {
			lo, hi := max(r.first, blk<<8), min(r.last, blk<<8|255)
			if n := hi - lo + 1; n == 256 {
				flush() // blocks come in address order: an earlier partial block is complete
				codes[blk] = r.code
				used[r.code] = true
				st.Blocks++
			} else {
				addVote(blk, r.code, n)
			}
			if blk == lb {
				break
			}
		}
	}
	flush()
}

// BuildFrom parses a range file and builds its table.
func BuildFrom(r io.Reader, f Format, source string) (*Table, Stats, error) {
	b := NewBuilder(source)
	if f == FormatXDB {
		b.unit = "segment"
	}
	if err := scanRanges(r, f, b.Add); err != nil {
		return nil, b.stats, err
	}
	return b.Build()
}

// BuildOptions are the inputs of `qoscope ipdb build`.
type BuildOptions struct {
	// Input is the range file; "-" reads standard input. Required.
	Input string
	// Format of Input. Default: FormatCSV.
	Format Format
	// Output is the table file to write (atomically). Required.
	Output string
	// Source describes the data in the file. Default: the base name of Input.
	Source string
	// Uncompressed writes the raw 32 MiB array (mapped by Open) instead of zstd.
	Uncompressed bool
}

func (o *BuildOptions) validate() error {
	switch {
	case o.Input == "":
		return errors.New("ipdb build: an input range file is required")
	case o.Output == "":
		return errors.New("ipdb build: an output table file is required")
	case o.Format != FormatCSV && o.Format != FormatIP2Region && o.Format != FormatXDB:
		return fmt.Errorf("ipdb build: unknown format %d", o.Format)
	case len(o.Source) > maxSourceLen:
		return fmt.Errorf("ipdb build: source is longer than %d bytes", maxSourceLen)
	}
	return nil
}

// BuildFile reads opts.Input, builds the table and writes opts.Output.
func BuildFile(opts BuildOptions) (Stats, error) {
	if err := opts.validate(); err != nil {
		return Stats{}, err
	}
	in := io.Reader(os.Stdin)
	if opts.Input != "-" {
		f, err := os.Open(opts.Input)
		if err != nil {
			return Stats{}, fmt.Errorf("cannot open range file: %w", err)
		}
		defer f.Close()
		in = f
	}
	source := opts.Source
	if source == "" {
		source = filepath.Base(opts.Input)
	}
	t, st, err := BuildFrom(bufio.NewReaderSize(in, 1<<20), opts.Format, source)
	if err != nil {
		return st, fmt.Errorf("%s: %w", opts.Input, err)
	}
	return st, t.WriteFile(opts.Output, !opts.Uncompressed)
}
