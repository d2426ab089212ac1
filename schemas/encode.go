package schemas

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// memberPrefix[p] is `,"name":`, precomputed.
var memberPrefix = func() (m [numProps]string) {
	for p := range numProps {
		m[p] = `,"` + propSpecs[p].name + `":`
	}
	return m
}()

// AppendJSON appends the canonical encoding of e to dst: "v", "type", "ts"
// (Unix ms), then every other member in table order that is required for
// the type, present in e.Present, or non-zero ("recv_ts" once ingest has
// stamped it), then the members of e.Extra verbatim. ParseLine decodes the
// result into an equal Event.
//
// e.Extra must hold JSON members as ParseLine leaves them. A string that is
// not valid UTF-8 is written with U+FFFD in place of the bad bytes; a NaN
// or infinite float is written as null.
func AppendJSON(dst []byte, e *Event) []byte {
	v := e.V
	if v == 0 {
		v = Version
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(v), 10)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, e.Type.String()...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, e.TS, 10)
	t := e.Type
	if t >= numTypes {
		t = TypeUnknown
	}
	req := typeMasks[t].required
	if e.OK {
		req |= typeMasks[t].ifOK
	}
	emit := req | e.Present
	for p := PropRecvTS; p < numProps; p++ {
		if !emit.Has(p) && isZero(e, p) {
			continue
		}
		dst = append(dst, memberPrefix[p]...)
		s := &propSpecs[p]
		switch {
		case s.str != nil:
			dst = appendString(dst, *s.str(e))
		case s.i64 != nil:
			dst = strconv.AppendInt(dst, *s.i64(e), 10)
		case s.intp != nil:
			dst = strconv.AppendInt(dst, int64(*s.intp(e)), 10)
		case s.f64 != nil:
			dst = appendFloat(dst, *s.f64(e))
		case s.bl != nil:
			dst = strconv.AppendBool(dst, *s.bl(e))
		case s.u64 != nil:
			dst = AppendEID(dst, *s.u64(e))
		}
	}
	if len(e.Extra) > 0 {
		dst = append(dst, ',')
		dst = append(dst, e.Extra...)
	}
	return append(dst, '}')
}

// AppendEID appends id as a JSON string of 16 lowercase hexadecimal digits
// (the wire form of "eid": a JSON number would lose bits above 2^53).
func AppendEID(dst []byte, id uint64) []byte {
	dst = append(dst, '"')
	for sh := 60; sh >= 0; sh -= 4 {
		dst = append(dst, hexDigits[id>>uint(sh)&0xf])
	}
	return append(dst, '"')
}

// appendFloat writes the shortest representation that parses back to f,
// in plain notation unless the exponent makes it unwieldy (as encoding/json).
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, 64)
}

// strSafe marks ASCII bytes written as they are inside a JSON string.
var strSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if strSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
