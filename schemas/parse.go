package schemas

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// FieldError is why a line was rejected: the member at fault and the reason.
// Field is "" when the line as a whole is bad (not JSON, not an object).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + e.Field + ": " + e.Reason
}

// ParseLine resets e, decodes the single JSON object in line into it and
// validates it against the rules of README.md. It returns a *FieldError for
// bad input. It accepts AppendJSON's output and round-trips it exactly.
//
// The decoded strings share one freshly allocated buffer (never line), so e
// may outlive line; a retained string keeps that event's buffer alive, so
// clone a string you keep for long (strings.Clone) if memory matters.
// e.Extra reuses its capacity and is only valid until e is reused.
func ParseLine(line []byte, e *Event) error {
	e.Reset()
	if len(line) > math.MaxInt32 {
		return &FieldError{Reason: "line longer than 2 GiB"}
	}
	p := lineParser{b: line}
	if err := p.scan(e); err != nil {
		e.Extra = e.Extra[:0]
		return err
	}
	if err := p.decode(e); err != nil {
		e.Extra = e.Extra[:0]
		return err
	}
	return nil
}

type valKind uint8

const (
	vAbsent valKind = iota
	vString
	vNumber
	vTrue
	vFalse
	vNull
	vObject
	vArray
)

const (
	fEscaped uint8 = 1 << iota // a string holds backslash escapes
	fFrac                      // a number has a fraction or an exponent
)

// span is a raw value in the line; strings include their quotes.
type span struct {
	start, end int32
	kind       valKind
	flags      uint8
}

type lineParser struct {
	b    []byte
	seen PropSet
	vals [numProps]span
	// Names of unknown members so far, for duplicate detection; they alias
	// the line and never outlive ParseLine.
	nUnknown int
	unknown  [8]string
	more     map[string]struct{}
}

func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func syntaxErr(field string, at int, reason string) *FieldError {
	return &FieldError{Field: strings.Clone(field), Reason: "invalid JSON at byte " + strconv.Itoa(at) + ": " + reason}
}

// expected describes what was found where something else was wanted.
func expected(b []byte, i int, want string) string {
	if i >= len(b) {
		return "unexpected end of input, want " + want
	}
	if c := b[i]; c >= utf8.RuneSelf {
		return "unexpected byte 0x" + strconv.FormatUint(uint64(c), 16) + ", want " + want
	}
	return "unexpected " + strconv.QuoteRune(rune(b[i])) + ", want " + want
}

// scan checks the syntax of the whole line, records the spans of known
// members and copies unknown members to e.Extra.
func (p *lineParser) scan(e *Event) error {
	b := p.b
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return &FieldError{Reason: "not a JSON object"}
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return syntaxErr("", i, expected(b, i, "a member name in double quotes"))
			}
			ks := i + 1
			// Member names are short and plain: scan them inline, and fall
			// back to the full string scanner for anything else.
			ke := ks
			for ke < len(b) && strPlain[b[ke]] {
				ke++
			}
			var kf uint8
			if ke >= len(b) || b[ke] != '"' {
				var reason string
				if ke, kf, reason = scanString(b, ks); reason != "" {
					return syntaxErr("", ke, reason)
				}
			}
			i = skipWS(b, ke+1)
			if i >= len(b) || b[i] != ':' {
				return syntaxErr(p.keyName(ks, ke, kf), i, expected(b, i, "':' after the member name"))
			}
			vs := skipWS(b, i+1)
			ve, k, vf, reason := scanValue(b, vs, 0)
			if reason != "" {
				return syntaxErr(p.keyName(ks, ke, kf), ve, reason)
			}
			if err := p.member(e, ks, ke, kf, span{int32(vs), int32(ve), k, vf}); err != nil {
				return err
			}
			i = skipWS(b, ve)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return syntaxErr("", i, expected(b, i, "',' or '}' after a member"))
		}
	}
	if i = skipWS(b, i); i != len(b) {
		return syntaxErr("", i, "unexpected data after the object")
	}
	return nil
}

// keyName is the decoded member name; it aliases the line unless escaped.
func (p *lineParser) keyName(ks, ke int, kf uint8) string {
	if kf&fEscaped != 0 {
		return string(appendUnescaped(nil, p.b[ks:ke]))
	}
	return bstr(p.b[ks:ke])
}

func (p *lineParser) member(e *Event, ks, ke int, kf uint8, v span) error {
	name := p.keyName(ks, ke, kf)
	if prop := lookupProp(name); prop < numProps {
		if p.seen.Has(prop) {
			return &FieldError{Field: prop.String(), Reason: "duplicate key"}
		}
		p.seen = p.seen.With(prop)
		p.vals[prop] = v
		return nil
	}
	if p.dupUnknown(name) {
		return &FieldError{Field: strings.Clone(name), Reason: "duplicate key"}
	}
	if len(e.Extra) > 0 {
		e.Extra = append(e.Extra, ',')
	}
	e.Extra = append(e.Extra, p.b[ks-1:ke+1]...)
	e.Extra = append(e.Extra, ':')
	e.Extra = append(e.Extra, p.b[v.start:v.end]...)
	return nil
}

// dupUnknown records name and reports whether it was seen before. A few
// unknown members are compared linearly; many go to a map so that a line
// with thousands of them stays linear.
func (p *lineParser) dupUnknown(name string) bool {
	if p.nUnknown < len(p.unknown) {
		for _, n := range p.unknown[:p.nUnknown] {
			if n == name {
				return true
			}
		}
		p.unknown[p.nUnknown] = name
		p.nUnknown++
		return false
	}
	if p.more == nil {
		p.more = make(map[string]struct{}, 2*len(p.unknown))
		for _, n := range p.unknown {
			p.more[n] = struct{}{}
		}
	}
	if _, ok := p.more[name]; ok {
		return true
	}
	p.more[name] = struct{}{}
	return false
}

// strPlain marks bytes that need no attention inside a string.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// strSpecial is non-zero when one of the 8 bytes in x is a quote, a
// backslash, a control character or not ASCII: the usual SWAR tests for a
// zero byte and for a byte below n (valid for n ≤ 128).
func strSpecial(x uint64) uint64 {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return ((x - lsb*0x20) & ^x & msb) | ((q - lsb) & ^q & msb) | ((bs - lsb) & ^bs & msb) | (x & msb)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanString scans a string body starting after its opening quote and
// returns the index of the closing quote, or the error position and reason.
func scanString(b []byte, i int) (int, uint8, string) {
	var flags uint8
	for {
		for i+8 <= len(b) && strSpecial(binary.LittleEndian.Uint64(b[i:])) == 0 {
			i += 8
		}
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, flags, "unterminated string"
		}
		switch c := b[i]; {
		case c == '"':
			return i, flags, ""
		case c == '\\':
			flags |= fEscaped
			if i+1 >= len(b) {
				return i + 1, flags, "unterminated string"
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, flags, `invalid \u escape in string`
				}
				// A surrogate must come as a high-low pair: a lone one is
				// no character (I-JSON, RFC 7493 §2.1), and decoding it to
				// U+FFFD would silently change the value.
				switch r := hex4(b[i+2:]); {
				case r >= 0xdc00 && r <= 0xdfff:
					return i, flags, loneSurrogate(b[i : i+6])
				case r >= 0xd800 && r <= 0xdbff:
					if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' || !isHex(b[i+8]) || !isHex(b[i+9]) || !isHex(b[i+10]) || !isHex(b[i+11]) {
						return i, flags, loneSurrogate(b[i : i+6])
					}
					if r2 := hex4(b[i+8:]); r2 < 0xdc00 || r2 > 0xdfff {
						return i, flags, loneSurrogate(b[i : i+6])
					}
					i += 12
					continue
				}
				i += 6
			default:
				return i, flags, "invalid escape " + strconv.Quote(string(b[i:i+2])) + " in string"
			}
		case c < 0x20:
			return i, flags, "control character " + strconv.QuoteRune(rune(c)) + " in string (escape it)"
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, flags, "invalid UTF-8 in string"
			}
			i += size
		}
	}
}

func loneSurrogate(esc []byte) string {
	return "lone surrogate " + string(esc) + " in string (a character outside the BMP is escaped as a high-low pair, e.g. \\ud83d\\ude00)"
}

func scanDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// scanNumber scans a JSON number (RFC 8259 grammar).
func scanNumber(b []byte, i int) (int, uint8, string) {
	var flags uint8
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = scanDigits(b, i+1)
	default:
		return i, 0, "invalid number"
	}
	if i < len(b) && b[i] == '.' {
		flags |= fFrac
		j := scanDigits(b, i+1)
		if j == i+1 {
			return j, 0, "invalid number: no digits after '.'"
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		flags |= fFrac
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := scanDigits(b, i)
		if j == i {
			return j, 0, "invalid number: no digits in exponent"
		}
		i = j
	}
	return i, flags, ""
}

func scanLiteral(b []byte, i int, lit string, k valKind) (int, valKind, uint8, string) {
	if len(b)-i >= len(lit) && bstr(b[i:i+len(lit)]) == lit {
		return i + len(lit), k, 0, ""
	}
	return i, 0, 0, "invalid literal, want " + lit
}

// scanValue scans any JSON value at b[i:] and returns the index after it.
func scanValue(b []byte, i, depth int) (int, valKind, uint8, string) {
	if i >= len(b) {
		return i, 0, 0, "unexpected end of input, want a value"
	}
	switch c := b[i]; {
	case c == '"':
		end, flags, reason := scanString(b, i+1)
		if reason != "" {
			return end, 0, 0, reason
		}
		return end + 1, vString, flags, ""
	case c == '-' || (c >= '0' && c <= '9'):
		end, flags, reason := scanNumber(b, i)
		return end, vNumber, flags, reason
	case c == 't':
		return scanLiteral(b, i, "true", vTrue)
	case c == 'f':
		return scanLiteral(b, i, "false", vFalse)
	case c == 'n':
		return scanLiteral(b, i, "null", vNull)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, 0, 0, "nested deeper than " + strconv.Itoa(maxDepth) + " levels"
		}
		if c == '{' {
			end, reason := scanObject(b, i+1, depth+1)
			return end, vObject, 0, reason
		}
		end, reason := scanArray(b, i+1, depth+1)
		return end, vArray, 0, reason
	}
	return i, 0, 0, expected(b, i, "a value")
}

// scanObject scans a nested object after its '{'. Duplicate names inside
// nested values are not checked: such values are kept verbatim.
func scanObject(b []byte, i, depth int) (int, string) {
	i = skipWS(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1, ""
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, expected(b, i, "a member name in double quotes")
		}
		end, _, reason := scanString(b, i+1)
		if reason != "" {
			return end, reason
		}
		i = skipWS(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return i, expected(b, i, "':' after the member name")
		}
		i, _, _, reason = scanValue(b, skipWS(b, i+1), depth)
		if reason != "" {
			return i, reason
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, ""
		}
		return i, expected(b, i, "',' or '}'")
	}
}

func scanArray(b []byte, i, depth int) (int, string) {
	i = skipWS(b, i)
	if i < len(b) && b[i] == ']' {
		return i + 1, ""
	}
	for {
		var reason string
		i, _, _, reason = scanValue(b, i, depth)
		if reason != "" {
			return i, reason
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return i + 1, ""
		}
		return i, expected(b, i, "',' or ']'")
	}
}

// appendUnescaped appends the decoded form of a scanned string body.
// scanString has refused lone surrogates; should one reach here anyway it
// becomes U+FFFD, as encoding/json does.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		c := raw[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Reasons, kept in one place because tests and docs quote them.
const (
	reasonRequired  = "required"
	reasonString    = "must be a string"
	reasonInteger   = "must be an integer"
	reasonNumber    = "must be a number"
	reasonBoolean   = "must be a boolean"
	reasonNotEmpty  = "must not be empty"
	reasonNegative  = "must be ≥ 0"
	reasonIP        = "must be an IP address (IPv4 or IPv6, no zone)"
	reasonTime      = "must be an RFC 3339 time with a zone (e.g. 2026-11-23T12:00:00.250Z) or Unix milliseconds"
	reasonSeconds   = "looks like Unix seconds, want milliseconds"
	reasonMicros    = "too large: looks like Unix micro- or nanoseconds, want milliseconds"
	reasonTooEarly  = "must be after 1973-03-03T09:46:40Z"
	reasonFinite    = "out of range"
	reasonTimeInt   = "must be whole Unix milliseconds"
	reasonID        = "must be a string of 16 hexadecimal digits, not all zero"
	maxQuotedReason = 64
)

func kindReason(s *propSpec) string {
	switch s.kind {
	case kString, kIP:
		return reasonString
	case kEnum:
		return "must be one of " + strings.Join(s.enum, ", ")
	case kInt, kVersion:
		return reasonInteger
	case kFloat:
		return reasonNumber
	case kBool:
		return reasonBoolean
	case kTime:
		return reasonTime
	case kID:
		return reasonID
	}
	return reasonString
}

// decodeInt decodes a scanned number that must be an integer. Values beyond
// int64 are clamped so that range checks still name the right bound.
func decodeInt(b []byte, flags uint8) (int64, bool) {
	if flags&fFrac == 0 {
		neg := b[0] == '-'
		d := b
		if neg {
			d = b[1:]
		}
		if len(d) > 18 {
			if neg {
				return math.MinInt64, true
			}
			return math.MaxInt64, true
		}
		var n int64
		for _, c := range d {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, true
	}
	f, err := strconv.ParseFloat(bstr(b), 64)
	if f != math.Trunc(f) || (err != nil && f == 0) {
		return 0, false
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, true
	case f <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(f), true
}

func (p *lineParser) raw(v span) []byte { return p.b[v.start:v.end] }

// strBody is a string value without its quotes, decoded into scratch when
// it holds escapes.
func (p *lineParser) strBody(v span, scratch []byte) []byte {
	body := p.b[v.start+1 : v.end-1]
	if v.flags&fEscaped != 0 {
		return appendUnescaped(scratch[:0], body)
	}
	return body
}

func quoteForReason(s []byte) string {
	if len(s) > maxQuotedReason {
		s = s[:maxQuotedReason]
		for len(s) > 0 && !utf8.Valid(s) {
			s = s[:len(s)-1]
		}
		return strconv.Quote(string(s)) + "…"
	}
	return strconv.Quote(string(s))
}

func (p *lineParser) decode(e *Event) error {
	// "v" and "type" first: without them nothing else can be judged.
	v := p.vals[PropV]
	switch {
	case !p.seen.Has(PropV) || v.kind == vNull:
		return &FieldError{Field: "v", Reason: reasonRequired}
	case v.kind != vNumber:
		return &FieldError{Field: "v", Reason: reasonInteger}
	}
	n, ok := decodeInt(p.raw(v), v.flags)
	if !ok {
		return &FieldError{Field: "v", Reason: reasonInteger}
	}
	if n != Version {
		return &FieldError{Field: "v", Reason: "unsupported version " + strconv.FormatInt(n, 10)}
	}
	e.V = Version

	v = p.vals[PropType]
	switch {
	case !p.seen.Has(PropType) || v.kind == vNull:
		return &FieldError{Field: "type", Reason: reasonRequired}
	case v.kind != vString:
		return &FieldError{Field: "type", Reason: reasonString}
	}
	var scratch [32]byte
	name := p.strBody(v, scratch[:])
	t, ok := ParseType(bstr(name))
	if !ok {
		return &FieldError{Field: "type", Reason: "unknown type " + quoteForReason(name)}
	}
	e.Type = t
	e.Present = setOf(PropV, PropType)

	// One allocation holds every string value of the event.
	need := 0
	for m := p.seen &^ setOf(PropV, PropType, PropTS, PropRecvTS); m != 0; m &= m - 1 {
		prop := Prop(bits.TrailingZeros64(uint64(m)))
		if v := p.vals[prop]; v.kind == vString {
			if k := propSpecs[prop].kind; k == kString || k == kIP {
				need += int(v.end-v.start) - 2
			}
		}
	}
	var arena []byte
	if need > 0 {
		arena = make([]byte, 0, need)
	}

	// Visit, in table order, the members present and those that may be
	// required; "ok" precedes the members it makes required.
	tm := &typeMasks[t]
	for m := (p.seen | tm.required | tm.ifOK) &^ setOf(PropV, PropType); m != 0; m &= m - 1 {
		prop := Prop(bits.TrailingZeros64(uint64(m)))
		s := &propSpecs[prop]
		v := p.vals[prop]
		if v.kind == vAbsent || v.kind == vNull {
			if requiredFor(t, prop, e.OK) {
				if v.kind == vNull {
					return &FieldError{Field: s.name, Reason: kindReason(s)}
				}
				return &FieldError{Field: s.name, Reason: reasonRequired}
			}
			continue
		}
		if reason := p.decodeProp(e, t, prop, s, v, &arena); reason != "" {
			return &FieldError{Field: s.name, Reason: reason}
		}
		e.Present = e.Present.With(prop)
	}
	return nil
}

func (p *lineParser) decodeProp(e *Event, t Type, prop Prop, s *propSpec, v span, arena *[]byte) string {
	switch s.kind {
	case kTime:
		ms, reason := p.decodeTime(v)
		if reason != "" {
			return reason
		}
		*s.i64(e) = ms
	case kString, kIP:
		if v.kind != vString {
			return reasonString
		}
		start := len(*arena)
		*arena = appendBody(*arena, p.b[v.start+1:v.end-1], v.flags)
		b := (*arena)[start:]
		if len(b) > s.maxLen && utf8.RuneCount(b) > s.maxLen {
			if s.kind == kIP {
				return reasonIP
			}
			return "must be at most " + strconv.Itoa(s.maxLen) + " characters"
		}
		if len(b) == 0 {
			if requiredFor(t, prop, e.OK) {
				return reasonNotEmpty
			}
			*s.str(e) = ""
			return ""
		}
		str := unsafe.String(&b[0], len(b))
		if s.kind == kIP && !isIPv4(b) {
			a, err := netip.ParseAddr(str)
			if err != nil || a.Zone() != "" {
				return reasonIP
			}
		}
		*s.str(e) = str
	case kEnum:
		if v.kind != vString {
			return kindReason(s)
		}
		var scratch [32]byte
		body := p.strBody(v, scratch[:])
		for _, val := range s.enum {
			if bstr(body) == val {
				*s.str(e) = val
				return ""
			}
		}
		return kindReason(s)
	case kInt:
		if v.kind != vNumber {
			return reasonInteger
		}
		n, ok := decodeInt(p.raw(v), v.flags)
		if !ok {
			return reasonInteger
		}
		if n < s.min || n > s.max {
			switch {
			case s.min != 0:
				return "must be between " + strconv.FormatInt(s.min, 10) + " and " + strconv.FormatInt(s.max, 10)
			case n < 0:
				return reasonNegative
			}
			return aboveMax(p.raw(v), strconv.FormatInt(s.max, 10))
		}
		if s.intp != nil {
			*s.intp(e) = int(n)
		} else {
			*s.i64(e) = n
		}
	case kFloat:
		if v.kind != vNumber {
			return reasonNumber
		}
		f, ok := parseFloatExact(p.raw(v))
		if !ok {
			var err error
			f, err = strconv.ParseFloat(bstr(p.raw(v)), 64)
			if err != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
				return reasonFinite
			}
		}
		if f < 0 {
			return reasonNegative
		}
		if f > s.fmax {
			return aboveMax(p.raw(v), strconv.FormatFloat(s.fmax, 'g', -1, 64))
		}
		*s.f64(e) = f
	case kID:
		if v.kind != vString {
			return reasonID
		}
		var scratch [32]byte
		body := p.strBody(v, scratch[:])
		if len(body) != 16 {
			return reasonID
		}
		var id uint64
		for _, c := range body {
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			default:
				return reasonID
			}
			id = id<<4 | uint64(d)
		}
		if id == 0 {
			return reasonID
		}
		*s.u64(e) = id
	case kBool:
		switch v.kind {
		case vTrue:
			*s.bl(e) = true
		case vFalse:
			*s.bl(e) = false
		default:
			return reasonBoolean
		}
	}
	return ""
}

// CheckRanges applies ParseLine's range checks to the numbers of an Event
// built in code rather than parsed (CMCD mapping): a value AppendJSON would
// write must parse back, or the record would be refused downstream after
// ingest answered 2xx. It checks every present or non-zero integer and
// float member and returns the first failure.
func CheckRanges(e *Event) *FieldError {
	for p := PropRecvTS; p < numProps; p++ {
		s := &propSpecs[p]
		if !e.Present.Has(p) && isZero(e, p) {
			continue
		}
		switch {
		case s.kind == kInt:
			var n int64
			if s.intp != nil {
				n = int64(*s.intp(e))
			} else {
				n = *s.i64(e)
			}
			switch {
			case n >= s.min && n <= s.max:
			case s.min != 0:
				return &FieldError{Field: s.name, Reason: "must be between " + strconv.FormatInt(s.min, 10) + " and " + strconv.FormatInt(s.max, 10)}
			case n < 0:
				return &FieldError{Field: s.name, Reason: reasonNegative}
			default:
				return &FieldError{Field: s.name, Reason: aboveMax([]byte(strconv.FormatInt(n, 10)), strconv.FormatInt(s.max, 10))}
			}
		case s.kind == kFloat:
			f := *s.f64(e)
			switch {
			case math.IsNaN(f) || math.IsInf(f, 0):
				return &FieldError{Field: s.name, Reason: reasonFinite}
			case f < 0:
				return &FieldError{Field: s.name, Reason: reasonNegative}
			case f > s.fmax:
				return &FieldError{Field: s.name, Reason: aboveMax([]byte(strconv.FormatFloat(f, 'g', -1, 64)), strconv.FormatFloat(s.fmax, 'g', -1, 64))}
			}
		}
	}
	return nil
}

// aboveMax is the reason for a number over its plausible maximum; the
// number is quoted as sent (cut to 32 characters), since an integer beyond
// int64 has no other faithful form.
func aboveMax(raw []byte, max string) string {
	num := string(raw)
	if len(num) > 32 {
		num = num[:32] + "…"
	}
	return num + " is above the maximum " + max
}

func appendBody(dst, body []byte, flags uint8) []byte {
	if flags&fEscaped != 0 {
		return appendUnescaped(dst, body)
	}
	return append(dst, body...)
}

func (p *lineParser) decodeTime(v span) (int64, string) {
	switch v.kind {
	case vNumber:
		ms, ok := decodeInt(p.raw(v), v.flags)
		switch {
		case !ok:
			return 0, reasonTimeInt
		case ms < 0:
			return 0, reasonTooEarly
		case ms < MinTS:
			return 0, reasonSeconds
		case ms > MaxTS:
			return 0, reasonMicros
		}
		return ms, ""
	case vString:
		var scratch [64]byte
		ms, reason := parseRFC3339(p.strBody(v, scratch[:]))
		if reason != "" {
			return 0, reason
		}
		if ms < MinTS {
			return 0, reasonTooEarly
		}
		return ms, ""
	}
	return 0, reasonTime
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloatExact decodes the common plain decimals ("2800", "29.97")
// without strconv: when the digits fit in 2^53 and at most 22 of them
// follow the point, mantissa / 10^k is exact division of exact operands
// and so correctly rounded, the same result as strconv.ParseFloat. It
// reports false for anything else (exponents, long mantissas).
func parseFloatExact(b []byte) (float64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var mant uint64
	frac, nd := 0, 0
	seenDot := false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if nd++; nd > 19 {
				return 0, false
			}
			mant = mant*10 + uint64(c-'0')
			if seenDot {
				frac++
			}
		case c == '.':
			seenDot = true
		default:
			return 0, false
		}
	}
	if mant > 1<<53 || frac >= len(pow10) {
		return 0, false
	}
	f := float64(mant) / pow10[frac]
	if neg {
		f = -f
	}
	return f, true
}

// isIPv4 reports whether b is a dotted-quad IPv4 address as netip accepts
// it (four decimal fields ≤ 255, no leading zeros); anything else is left
// to netip.ParseAddr.
func isIPv4(b []byte) bool {
	field, digits, dots := 0, 0, 0
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && field == 0 {
				return false // leading zero
			}
			field = field*10 + int(c-'0')
			digits++
			if field > 255 {
				return false
			}
		case c == '.' && digits > 0 && i < len(b)-1:
			dots++
			field, digits = 0, 0
		default:
			return false
		}
	}
	return dots == 3 && digits > 0
}
