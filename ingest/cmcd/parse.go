package cmcd

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UserIDKey is qoscope's custom CMCD key for the viewer's user id. CMCD
// custom keys must contain a hyphen; a reverse-DNS prefix keeps them apart
// from future standard keys.
const UserIDKey = "com.qoscope-uid"

// Custom keys that fill client dimensions (see README.md).
const (
	PlatformKey = "com.qoscope-platform"
	VersionKey  = "com.qoscope-version"
	QualityKey  = "com.qoscope-quality"
	RoleKey     = "com.qoscope-role"
	NodeKey     = "com.qoscope-node"
	VendorKey   = "com.qoscope-vendor"
)

// HeaderNames are the four CMCD request headers.
var HeaderNames = [...]string{"CMCD-Object", "CMCD-Request", "CMCD-Session", "CMCD-Status"}

// Error is a CMCD payload qoscope cannot use: the key at fault ("" for the
// payload as a whole), why, and for ParseBody the 1-based line.
type Error struct {
	Line   int
	Key    string
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cmcd")
	if e.Line > 0 {
		b.WriteString(" line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(" key ")
		b.WriteString(strconv.Quote(e.Key))
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Rule names a CMCD sender rule (CTA-5004, RFC 8941) that a payload broke
// but that qoscope tolerates, keeping the data; README.md says why for
// each. Ingest counts them in qoscope_ingest_cmcd_violations_total{rule}.
type Rule string

const (
	// RuleDuplicateKey: a key twice in one payload (one dictionary, or two
	// CMCD-* headers, or one JSON object).
	RuleDuplicateKey Rule = "duplicate_key"
	// RuleWrongHeader: a reserved key in another CMCD-* header than the
	// one CTA-5004 Table 1 assigns it.
	RuleWrongHeader Rule = "wrong_header"
	// RuleEmptyHeader: a CMCD-* header with no member (RFC 8941: an empty
	// dictionary is sent by omitting the field).
	RuleEmptyHeader Rule = "empty_header"
	// RuleEmptyPayload: a CMCD query parameter with no member.
	RuleEmptyPayload Rule = "empty_payload"
	// RuleUnroundedBL, ...: a value CTA-5004 asks to round to the nearest
	// 100 ms or 100 kbps is not a multiple of 100.
	RuleUnroundedBL  Rule = "unrounded_bl"
	RuleUnroundedMTP Rule = "unrounded_mtp"
	RuleUnroundedDL  Rule = "unrounded_dl"
	RuleUnroundedRTP Rule = "unrounded_rtp"
	// RuleNorNotEncoded: a v1 nor value that is not URL-encoded.
	RuleNorNotEncoded Rule = "nor_not_encoded"
	// RuleNorAbsolute: a nor value that is not a relative path (it has a
	// scheme, a host or a leading '/').
	RuleNorAbsolute Rule = "nor_absolute"
	// RuleMixedTransmission: one request carried CMCD in more than one
	// transmission mode (query, headers, body); ingest reports it.
	RuleMixedTransmission Rule = "mixed_transmission"
)

// Rules lists every Rule, e.g. to initialise metric series.
func Rules() []Rule {
	return []Rule{RuleDuplicateKey, RuleWrongHeader, RuleEmptyHeader, RuleEmptyPayload, RuleUnroundedBL,
		RuleUnroundedMTP, RuleUnroundedDL, RuleUnroundedRTP, RuleNorNotEncoded, RuleNorAbsolute, RuleMixedTransmission}
}

// Violation is one broken sender rule and the key at fault ("" for the
// payload, the header name for RuleEmptyHeader).
type Violation struct {
	Rule Rule
	Key  string
}

// Value is one number of a CMCD key that may be reported per object type:
// a v1 scalar (`bl=3000`, OT "") or an element of a v2 inner list
// (`bl=(3000;v 2800;a)`, OT "v" and "a"; OT "" when the element has no
// object-type parameter).
type Value struct {
	N  int64
	OT string
}

// Key identifies a CMCD key that Data holds in a typed field.
type Key uint8

const (
	KeyBR Key = iota
	KeyBL
	KeyBS
	KeyBSD
	KeyCDN
	KeyCID
	KeyD
	KeyDL
	KeyEC
	KeyMSD
	KeyMTP
	KeyNOR
	KeyNRR
	KeyOT
	KeyPR
	KeyRTP
	KeySF
	KeySID
	KeyST
	KeySTA
	KeySU
	KeyTB
	KeyTS
	KeyV
	numKeys
)

var keyNames = [numKeys]string{"br", "bl", "bs", "bsd", "cdn", "cid", "d", "dl", "ec", "msd", "mtp",
	"nor", "nrr", "ot", "pr", "rtp", "sf", "sid", "st", "sta", "su", "tb", "ts", "v"}

func (k Key) String() string {
	if k < numKeys {
		return keyNames[k]
	}
	return "unknown"
}

// Custom is a custom (hyphenated) key and its value as text.
type Custom struct {
	Key, Value string
}

// Data is one CMCD payload: the union of the query parameter or of the four
// headers. Absent keys are zero; Has tells absent from zero.
type Data struct {
	Version             int     // v (1 when absent)
	SessionID           string  // sid
	ContentID           string  // cid
	CDN                 string  // cdn (v2)
	ObjectType          string  // ot: m a v av i c tt k o
	StreamingFormat     string  // sf: d h e s o
	StreamType          string  // st: v l ll
	State               string  // sta (v2): s p k r a w e f q d
	Bitrate             []Value // br, kbps
	BufferLength        []Value // bl, ms
	TopBitrate          []Value // tb, kbps
	Throughput          []Value // mtp, kbps
	StarvationDurations []Value // bsd (v2), ms, one per buffer-empty period
	Duration            int64   // d, ms
	Deadline            int64   // dl, ms
	RequestedThroughput int64   // rtp, kbps
	MediaStartDelay     int64   // msd (v2), ms
	Timestamp           int64   // ts (v2), Unix ms
	PlaybackRate        float64 // pr
	NextObjects         []string
	NextRange           string   // nrr
	ErrorCodes          []string // ec (v2)
	Startup             bool     // su
	Starved             bool     // bs
	Custom              []Custom // hyphenated keys, in order
	// Unmapped lists the standard keys that were valid but have no place in
	// qoscope's events (e.g. "ltc", "pt"), in order, each once.
	Unmapped []string
	// URL is the v2 url key (the object whose response an rr event
	// reports); it is also listed in Unmapped. A StreamSource may read the
	// stream_id from its path.
	URL string
	// Violations are the sender rules this payload broke that qoscope
	// tolerates (README.md, "Sender-rule violations"): the data is kept,
	// the violation is reported for counting.
	Violations []Violation

	has  uint32
	home uint32 // keys whose value came from their own CMCD-* header
}

// Has reports whether the payload carried key k.
func (d *Data) Has(k Key) bool { return d.has&(1<<k) != 0 }

// CustomValue returns the value of a custom key.
func (d *Data) CustomValue(key string) (string, bool) {
	for _, c := range d.Custom {
		if c.Key == key {
			return c.Value, true
		}
	}
	return "", false
}

// Parse decodes the CMCD query parameter of a URL's raw query string
// (r.URL.RawQuery, with or without the leading '?'): the value of the
// parameter named CMCD, URL-decoded, is a CMCD payload as in ParseValue.
func Parse(query string) (Data, error) {
	query = strings.TrimPrefix(query, "?")
	var raw string
	found := false
	for query != "" {
		var part string
		part, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != "CMCD" {
			continue
		}
		if found {
			return Data{}, &Error{Reason: "more than one CMCD query parameter"}
		}
		raw, found = v, true
	}
	if !found {
		return Data{}, &Error{Reason: "no CMCD query parameter"}
	}
	s, err := url.QueryUnescape(raw)
	if err != nil {
		return Data{}, &Error{Reason: "CMCD query parameter is not URL-encoded correctly"}
	}
	return ParseValue(s)
}

// ParseHeaders decodes the CMCD-Object, CMCD-Request, CMCD-Session and
// CMCD-Status headers (each possibly repeated) into one payload.
//
// A key may arrive in any of the four headers. Within one header (its
// lines joined in wire order) a repeated key takes the last value, as
// RFC 8941 prescribes for a dictionary. Across headers net/http keeps no
// wire order, so a key sent twice takes the value from the header
// CTA-5004 assigns it (Table 1); a key with no assigned header (custom
// keys, event-only keys) takes the last value in HeaderNames' order. A
// repeated key, a reserved key in another header than its own and an empty
// header are reported in Data.Violations.
func ParseHeaders(h http.Header) (Data, error) {
	d := Data{Version: 1}
	found := false
	for i, name := range HeaderNames {
		for _, v := range h.Values(name) {
			found = true
			if strings.Trim(v, " \t") == "" {
				d.violate(RuleEmptyHeader, name)
				continue
			}
			if err := parseDict(v, &d, i); err != nil {
				return Data{}, err
			}
		}
	}
	if !found {
		return Data{}, &Error{Reason: "no CMCD-Object, CMCD-Request, CMCD-Session or CMCD-Status header"}
	}
	d.home = 0 // only needed while parsing; Data stays comparable
	return d, d.check()
}

// ParseValue decodes one CMCD payload: comma-separated key=value members
// (an RFC 8941 dictionary) with strings quoted, tokens bare, booleans as a
// bare key (true) or ?0/?1, and v2 inner lists in parentheses.
func ParseValue(s string) (Data, error) {
	d := Data{Version: 1}
	if strings.Trim(s, " \t") == "" {
		d.violate(RuleEmptyPayload, "")
	}
	if err := parseDict(s, &d, noHeader); err != nil {
		return Data{}, err
	}
	return d, d.check()
}

// ParseBody decodes a CMCD v2 event-mode body (application/cmcd): one
// payload per line; blank lines are skipped. An error names its line.
func ParseBody(body []byte) ([]Data, error) {
	var out []Data
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		d, err := ParseValue(string(line))
		if err != nil {
			e := err.(*Error)
			e.Line = n
			return nil, e
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, &Error{Reason: "empty CMCD body"}
	}
	return out, nil
}

// check applies the rules that span keys, and the sender rules on values
// that qoscope tolerates (reported as violations).
func (d *Data) check() error {
	if d.Version != 1 && d.Version != 2 {
		return &Error{Key: "v", Reason: "unsupported CMCD version " + strconv.Itoa(d.Version) + " (want 1 or 2)"}
	}
	// CTA-5004 buckets these to 100 ms / 100 kbps to shrink the
	// fingerprinting surface. qoscope keeps the value as sent: it is the
	// player's own measurement, and rounding it here would not undo the
	// exposure.
	for _, r := range [...]struct {
		vals []Value
		rule Rule
		key  string
	}{{d.BufferLength, RuleUnroundedBL, "bl"}, {d.Throughput, RuleUnroundedMTP, "mtp"}} {
		for _, v := range r.vals {
			if v.N%100 != 0 {
				d.violate(r.rule, r.key)
				break
			}
		}
	}
	if d.Has(KeyDL) && d.Deadline%100 != 0 {
		d.violate(RuleUnroundedDL, "dl")
	}
	if d.Has(KeyRTP) && d.RequestedThroughput%100 != 0 {
		d.violate(RuleUnroundedRTP, "rtp")
	}
	for _, n := range d.NextObjects {
		// v1: "This string MUST be URLEncoded" (as encodeURIComponent does:
		// '/' is %2F); whether it is relative is a property of the decoded
		// form, which isAbsoluteRef reads through the escapes.
		if d.Version == 1 && !uriComponentEncoded(n) {
			d.violate(RuleNorNotEncoded, "nor")
		}
		if isAbsoluteRef(n) {
			d.violate(RuleNorAbsolute, "nor")
		}
	}
	return nil
}

// uriComponentEncoded reports whether s uses only what encodeURIComponent
// leaves unescaped, plus well-formed %XX escapes.
func uriComponentEncoded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c) || isDigit(c) || strings.IndexByte("-_.!~*'()", c) >= 0:
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }

// isAbsoluteRef reports whether a nor value is not the relative-path
// reference CTA-5004 asks for (RFC 3986 section 4.2): it has a scheme, an
// authority (//host) or an absolute path (/...). '/' and ':' may arrive
// percent-encoded (v1), so %2F and %3A count as them; it allocates nothing
// (the query benchmark).
func isAbsoluteRef(s string) bool {
	at := func(i int, c byte) (bool, int) { // is s[i:] c, raw or %-encoded
		if i < len(s) && s[i] == c {
			return true, 1
		}
		if i+2 < len(s) && s[i] == '%' && strings.EqualFold(s[i+1:i+3], hexOf(c)) {
			return true, 3
		}
		return false, 0
	}
	if ok, _ := at(0, '/'); ok {
		return true
	}
	for i := 0; i < len(s); {
		if ok, _ := at(i, ':'); ok {
			return i > 0
		}
		c := s[i]
		if !(isAlpha(c) || (i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'))) {
			return false
		}
		i++
	}
	return false
}

func hexOf(c byte) string {
	switch c {
	case '/':
		return "2f"
	case ':':
		return "3a"
	}
	return ""
}

// ---- RFC 8941 dictionary parsing ----

type itemKind uint8

const (
	itemInt itemKind = iota + 1
	itemDec
	itemString
	itemToken
	itemBool
	itemBytes
	itemList
)

type param struct {
	key string
	val item
}

type item struct {
	kind   itemKind
	i      int64
	f      float64
	s      string // string or token or byte sequence
	b      bool
	list   []item
	params []param
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) errAt(key, reason string) *Error {
	return &Error{Key: key, Reason: reason + " at byte " + strconv.Itoa(p.i)}
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) key() (string, bool) {
	start := p.i
	if p.i >= len(p.s) || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", false
	}
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

// noHeader is parseDict's header index for a payload that is not a header.
const noHeader = -1

// parseDict decodes one RFC 8941 dictionary into d; hdr is the index in
// HeaderNames of the header it came from, or noHeader.
func parseDict(s string, d *Data, hdr int) error {
	p := sfParser{s: s}
	p.skipSP()
	if p.i == len(s) {
		return nil
	}
	for {
		k, ok := p.key()
		if !ok {
			return p.errAt("", "want a key (lowercase letter or '*' first)")
		}
		var it item
		if p.i < len(s) && s[p.i] == '=' {
			p.i++
			var err *Error
			if p.i < len(s) && s[p.i] == '(' {
				it, err = p.innerList(k)
			} else {
				it, err = p.item(k)
			}
			if err != nil {
				return err
			}
		} else {
			it = item{kind: itemBool, b: true}
			ps, err := p.params(k)
			if err != nil {
				return err
			}
			it.params = ps
		}
		if err := d.setFrom(k, &it, hdr); err != nil {
			return err
		}
		p.skipOWS()
		if p.i == len(s) {
			return nil
		}
		if s[p.i] != ',' {
			return p.errAt(k, "want ',' between keys")
		}
		p.i++
		p.skipOWS()
		if p.i == len(s) {
			return p.errAt("", "trailing ','")
		}
	}
}

func (p *sfParser) innerList(key string) (item, *Error) {
	p.i++ // '('
	it := item{kind: itemList}
	for {
		p.skipSP()
		if p.i >= len(p.s) {
			return it, p.errAt(key, "unterminated inner list")
		}
		if p.s[p.i] == ')' {
			p.i++
			ps, err := p.params(key)
			it.params = ps
			return it, err
		}
		e, err := p.item(key)
		if err != nil {
			return it, err
		}
		it.list = append(it.list, e)
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != ')' {
			return it, p.errAt(key, "want ' ' or ')' in inner list")
		}
	}
}

func (p *sfParser) item(key string) (item, *Error) {
	it, err := p.bareItem(key)
	if err != nil {
		return it, err
	}
	it.params, err = p.params(key)
	return it, err
}

func (p *sfParser) params(key string) ([]param, *Error) {
	var ps []param
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		k, ok := p.key()
		if !ok {
			return nil, p.errAt(key, "want a parameter name after ';'")
		}
		v := item{kind: itemBool, b: true}
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			var err *Error
			if v, err = p.bareItem(key); err != nil {
				return nil, err
			}
		}
		ps = append(ps, param{k, v})
	}
	return ps, nil
}

func (p *sfParser) bareItem(key string) (item, *Error) {
	if p.i >= len(p.s) {
		return item{}, p.errAt(key, "missing value")
	}
	switch c := p.s[p.i]; {
	case c == '-' || isDigit(c):
		return p.number(key)
	case c == '"':
		return p.str(key)
	case c == '%' && p.i+1 < len(p.s) && p.s[p.i+1] == '"':
		return p.displayString(key)
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return item{kind: itemBool, b: p.s[p.i-1] == '1'}, nil
		}
		return item{}, p.errAt(key, "invalid boolean, want ?0 or ?1")
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return item{}, p.errAt(key, "unterminated byte sequence")
		}
		s := p.s[p.i+1 : p.i+1+end]
		for j := 0; j < len(s); j++ {
			if !(isAlpha(s[j]) || isDigit(s[j]) || s[j] == '+' || s[j] == '/' || s[j] == '=') {
				return item{}, p.errAt(key, "invalid byte sequence")
			}
		}
		p.i += end + 2
		return item{kind: itemBytes, s: s}, nil
	case isAlpha(c) || c == '*':
		start := p.i
		p.i++
		for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return item{kind: itemToken, s: p.s[start:p.i]}, nil
	}
	return item{}, p.errAt(key, "invalid value")
}

func (p *sfParser) number(key string) (item, *Error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	intDigits := 0
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
		intDigits++
	}
	if intDigits == 0 {
		return item{}, p.errAt(key, "invalid number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		if intDigits > 12 {
			return item{}, p.errAt(key, "decimal with more than 12 integer digits")
		}
		p.i++
		frac := 0
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
			frac++
		}
		if frac == 0 || frac > 3 {
			return item{}, p.errAt(key, "decimal needs 1 to 3 fraction digits")
		}
		f, _ := strconv.ParseFloat(p.s[start:p.i], 64)
		return item{kind: itemDec, f: f}, nil
	}
	if intDigits > 15 {
		return item{}, p.errAt(key, "integer with more than 15 digits")
	}
	n, _ := strconv.ParseInt(p.s[start:p.i], 10, 64)
	return item{kind: itemInt, i: n}, nil
}

func (p *sfParser) str(key string) (item, *Error) {
	p.i++ // '"'
	start := p.i
	var b []byte // only when there are escapes
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			if b != nil {
				s = string(append(b, s...))
			}
			p.i++
			return item{kind: itemString, s: s}, nil
		case c == '\\':
			if p.i+1 >= len(p.s) || (p.s[p.i+1] != '"' && p.s[p.i+1] != '\\') {
				return item{}, p.errAt(key, `invalid escape in string (only \" and \\)`)
			}
			b = append(b, p.s[start:p.i]...)
			b = append(b, p.s[p.i+1])
			p.i += 2
			start = p.i
		case c < 0x20 || c > 0x7e:
			return item{}, p.errAt(key, "string holds a character outside printable ASCII")
		default:
			p.i++
		}
	}
	return item{}, p.errAt(key, "unterminated string")
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// displayString decodes an RFC 9651 display string, %"...", the structured
// field form of a Unicode string: '%' and '"' and every non-ASCII byte are
// percent-encoded with lowercase hex, and the result must be UTF-8.
func (p *sfParser) displayString(key string) (item, *Error) {
	p.i += 2 // %"
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(b) {
				return item{}, p.errAt(key, "display string is not UTF-8")
			}
			return item{kind: itemString, s: string(b)}, nil
		case c == '%':
			if p.i+2 >= len(p.s) {
				return item{}, p.errAt(key, "unterminated display string")
			}
			hi, ok1 := unhex(p.s[p.i+1])
			lo, ok2 := unhex(p.s[p.i+2])
			if !ok1 || !ok2 {
				return item{}, p.errAt(key, "invalid %-escape in display string (lowercase hex)")
			}
			b = append(b, hi<<4|lo)
			p.i += 3
		case c < 0x20 || c > 0x7e:
			return item{}, p.errAt(key, "string holds a character outside printable ASCII")
		default:
			b = append(b, c)
			p.i++
		}
	}
	return item{}, p.errAt(key, "unterminated display string")
}

// ---- assigning typed values ----

var (
	objectTypes  = []string{"m", "a", "v", "av", "i", "c", "tt", "k", "o"}
	formats      = []string{"d", "h", "e", "s", "o"}
	streamTypes  = []string{"v", "l", "ll"}
	playerStates = []string{"s", "p", "k", "r", "a", "w", "e", "f", "q", "d"}
)

// unmappedKeys are valid CMCD v2 keys qoscope has no event member for; their
// values are accepted without type checks.
var unmappedKeys = map[string]bool{
	"ab": true, "bg": true, "bsa": true, "bsda": true, "cen": true, "cmsdd": true, "cmsds": true,
	"cs": true, "dfa": true, "e": true, "h": true, "lab": true, "lb": true, "ltc": true, "nr": true,
	"pb": true, "pt": true, "rc": true, "smrt": true, "sn": true, "tab": true, "tbl": true, "tpb": true,
	"ttfb": true, "ttfbb": true, "ttlb": true, "url": true,
}

func typeErr(key, want string) *Error { return &Error{Key: key, Reason: "must be " + want} }

func (it *item) integer(key string) (int64, *Error) {
	if it.kind != itemInt {
		return 0, typeErr(key, "an integer")
	}
	if it.i < 0 {
		return 0, typeErr(key, "≥ 0")
	}
	return it.i, nil
}

func (it *item) str(key string, max int) (string, *Error) {
	if it.kind != itemString {
		return "", typeErr(key, "a quoted string")
	}
	if len(it.s) > max {
		return "", typeErr(key, "at most "+strconv.Itoa(max)+" characters")
	}
	return it.s, nil
}

func (it *item) token(key string, allowed []string) (string, *Error) {
	if it.kind == itemToken {
		for _, a := range allowed {
			if it.s == a {
				return a, nil
			}
		}
	}
	return "", typeErr(key, "one of "+strings.Join(allowed, ", "))
}

func (it *item) boolean(key string) (bool, *Error) {
	if it.kind != itemBool {
		return false, typeErr(key, "a boolean (bare key, ?0 or ?1)")
	}
	return it.b, nil
}

// values decodes a v1 integer or a v2 inner list of integers, each with an
// optional object-type parameter (`;v`).
func (it *item) values(key string) ([]Value, *Error) {
	one := func(e *item) (Value, *Error) {
		n, err := e.integer(key)
		if err != nil {
			if e.kind == itemInt {
				return Value{}, err
			}
			return Value{}, typeErr(key, "an integer or an inner list of integers")
		}
		v := Value{N: n}
		for _, p := range e.params {
			for _, ot := range objectTypes {
				if p.key == ot {
					v.OT = ot
				}
			}
		}
		return v, nil
	}
	if it.kind != itemList {
		v, err := one(it)
		if err != nil {
			return nil, err
		}
		return []Value{v}, nil
	}
	out := make([]Value, 0, len(it.list))
	for i := range it.list {
		v, err := one(&it.list[i])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (it *item) strings(key string, max int) ([]string, *Error) {
	if it.kind != itemList {
		s, err := it.str(key, max)
		if err != nil {
			return nil, typeErr(key, "a string or an inner list of strings")
		}
		return []string{s}, nil
	}
	out := make([]string, 0, len(it.list))
	for i := range it.list {
		s, err := it.list[i].str(key, max)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// text renders a custom key's value.
func (it *item) text() string {
	switch it.kind {
	case itemInt:
		return strconv.FormatInt(it.i, 10)
	case itemDec:
		return strconv.FormatFloat(it.f, 'f', -1, 64)
	case itemBool:
		return strconv.FormatBool(it.b)
	case itemList:
		parts := make([]string, len(it.list))
		for i := range it.list {
			parts[i] = it.list[i].text()
		}
		return strings.Join(parts, " ")
	}
	return it.s
}

// maxString bounds every string CMCD value (v2 allows cid and cdn up to 128
// characters; qoscope's members allow 256).
const maxString = 256

// setFrom assigns key from header hdr (an index in HeaderNames, or
// noHeader), applying the precedence rules of ParseHeaders and reporting
// duplicate keys and keys outside their own header.
func (d *Data) setFrom(key string, it *item, hdr int) error {
	k := lookupKey(key)
	homes := homeHeaders(key)
	atHome := hdr != noHeader && homes&(1<<hdr) != 0
	if hdr != noHeader && homes != 0 && !atHome {
		d.violate(RuleWrongHeader, key)
	}
	if d.seen(k, key) {
		d.violate(RuleDuplicateKey, key)
		if k < numKeys && d.home&(1<<k) != 0 && !atHome {
			// The value from the key's own header stands; this one is
			// still checked so that a bad value is reported, not ignored.
			var scratch Data
			return scratch.set(key, it)
		}
	}
	if err := d.set(key, it); err != nil {
		return err
	}
	if k < numKeys && atHome {
		d.home |= 1 << k
	}
	return nil
}

// seen reports whether the payload already holds key.
func (d *Data) seen(k Key, key string) bool {
	if k < numKeys {
		return d.Has(k)
	}
	if _, ok := d.CustomValue(key); ok {
		return true
	}
	return slices.Contains(d.Unmapped, key)
}

func (d *Data) violate(r Rule, key string) {
	d.Violations = append(d.Violations, Violation{Rule: r, Key: key})
}

func lookupKey(key string) Key {
	for i, n := range keyNames {
		if n == key {
			return Key(i)
		}
	}
	return numKeys
}

// Header indexes in HeaderNames.
const (
	hdrObject = iota
	hdrRequest
	hdrSession
	hdrStatus
)

// homeHeaders is the set of headers (bit i: HeaderNames[i]) CTA-5004
// Table 1 assigns a reserved key to, or 0 for custom keys and keys without
// one (event-mode keys such as ts, e, url). pr is CMCD-Session in v1 and
// CMCD-Status in v2; nrr is v1's.
func homeHeaders(key string) uint8 {
	switch key {
	case "ab", "br", "d", "lab", "lb", "ot", "tab", "tb", "tpb":
		return 1 << hdrObject
	case "bl", "cs", "dfa", "dl", "ltc", "mtp", "nor", "nrr", "pb", "sn", "sta", "su", "tbl":
		return 1 << hdrRequest
	case "cid", "msd", "sf", "sid", "st", "v":
		return 1 << hdrSession
	case "bg", "bs", "bsa", "bsd", "bsda", "ec", "nr", "pt", "rtp":
		return 1 << hdrStatus
	case "pr":
		return 1<<hdrSession | 1<<hdrStatus
	}
	return 0
}

func (d *Data) set(key string, it *item) error {
	var err *Error
	k := lookupKey(key)
	switch k {
	case KeyBR:
		d.Bitrate, err = it.values(key)
	case KeyBL:
		d.BufferLength, err = it.values(key)
	case KeyBS:
		d.Starved, err = it.boolean(key)
	case KeyBSD:
		d.StarvationDurations, err = it.values(key)
	case KeyCDN:
		d.CDN, err = it.str(key, 128)
	case KeyCID:
		d.ContentID, err = it.str(key, 128)
	case KeyD:
		d.Duration, err = it.integer(key)
	case KeyDL:
		d.Deadline, err = it.integer(key)
	case KeyEC:
		d.ErrorCodes, err = it.strings(key, maxString)
	case KeyMSD:
		d.MediaStartDelay, err = it.integer(key)
	case KeyMTP:
		d.Throughput, err = it.values(key)
	case KeyNOR:
		d.NextObjects, err = it.strings(key, 2048)
	case KeyNRR:
		d.NextRange, err = it.str(key, 64)
	case KeyOT:
		d.ObjectType, err = it.token(key, objectTypes)
	case KeyPR:
		switch it.kind {
		case itemDec:
			d.PlaybackRate = it.f
		case itemInt:
			d.PlaybackRate = float64(it.i)
		default:
			err = typeErr(key, "a decimal")
		}
		if err == nil && d.PlaybackRate < 0 {
			err = typeErr(key, "≥ 0")
		}
	case KeyRTP:
		d.RequestedThroughput, err = it.integer(key)
	case KeySF:
		d.StreamingFormat, err = it.token(key, formats)
	case KeySID:
		d.SessionID, err = it.str(key, 64)
	case KeyST:
		d.StreamType, err = it.token(key, streamTypes)
	case KeySTA:
		d.State, err = it.token(key, playerStates)
	case KeySU:
		d.Startup, err = it.boolean(key)
	case KeyTB:
		d.TopBitrate, err = it.values(key)
	case KeyTS:
		d.Timestamp, err = it.integer(key)
	case KeyV:
		var v int64
		if v, err = it.integer(key); err == nil {
			d.Version = int(v)
		}
	default:
		switch {
		case strings.IndexByte(key, '-') >= 0:
			v := it.text()
			if len(v) > maxString && utf8.RuneCountInString(v) > maxString {
				return typeErr(key, "at most "+strconv.Itoa(maxString)+" characters")
			}
			for i := range d.Custom {
				if d.Custom[i].Key == key {
					d.Custom[i].Value = v
					return nil
				}
			}
			d.Custom = append(d.Custom, Custom{Key: key, Value: v})
			return nil
		case unmappedKeys[key]:
			if key == "url" && it.kind == itemString {
				d.URL = it.s
			}
			if !slices.Contains(d.Unmapped, key) {
				d.Unmapped = append(d.Unmapped, key)
			}
			return nil
		}
		return &Error{Key: key, Reason: "unknown key (custom keys must contain a hyphen, e.g. com.example-name)"}
	}
	if err != nil {
		return err
	}
	d.has |= 1 << k
	return nil
}
