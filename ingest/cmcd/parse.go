package cmcd

import (
	"bytes"
	"net/http"
	"net/url"
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
	// qoscope's events (e.g. "ltc", "pt"), in order.
	Unmapped []string

	has uint32
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
// CMCD-Status headers (each possibly repeated) into one payload. A key may
// appear in any of the four headers; when it appears twice the last one
// wins, as RFC 8941 prescribes for a dictionary.
func ParseHeaders(h http.Header) (Data, error) {
	d := Data{Version: 1}
	found := false
	for _, name := range HeaderNames {
		for _, v := range h.Values(name) {
			found = true
			if err := parseDict(v, &d); err != nil {
				return Data{}, err
			}
		}
	}
	if !found {
		return Data{}, &Error{Reason: "no CMCD-Object, CMCD-Request, CMCD-Session or CMCD-Status header"}
	}
	return d, d.check()
}

// ParseValue decodes one CMCD payload: comma-separated key=value members
// (an RFC 8941 dictionary) with strings quoted, tokens bare, booleans as a
// bare key (true) or ?0/?1, and v2 inner lists in parentheses.
func ParseValue(s string) (Data, error) {
	d := Data{Version: 1}
	if err := parseDict(s, &d); err != nil {
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

// check applies the rules that span keys.
func (d *Data) check() error {
	if d.Version != 1 && d.Version != 2 {
		return &Error{Key: "v", Reason: "unsupported CMCD version " + strconv.Itoa(d.Version) + " (want 1 or 2)"}
	}
	return nil
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

func parseDict(s string, d *Data) error {
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
		if err := d.set(k, &it); err != nil {
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

func (d *Data) set(key string, it *item) error {
	var err *Error
	k := numKeys
	for i, n := range keyNames {
		if n == key {
			k = Key(i)
			break
		}
	}
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
			d.Unmapped = append(d.Unmapped, key)
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
