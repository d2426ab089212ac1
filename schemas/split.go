package schemas

import (
	"bytes"
	"strconv"
)

// BodyError reports a request body whose framing is broken, so that its
// events cannot be told apart (a JSON array without its closing bracket, an
// empty array element, data after the array). Line is the 1-based element
// being read, Offset the byte offset in the body.
type BodyError struct {
	Line   int
	Offset int
	Reason string
}

func (e *BodyError) Error() string {
	return "JSON array element " + strconv.Itoa(e.Line) + " (byte " + strconv.Itoa(e.Offset) + "): " + e.Reason
}

// Split calls yield for every event of a request body, with its 1-based
// line number, and stops early when yield returns false. raw aliases body.
//
// The body is a JSON array when its first non-blank byte (after an optional
// UTF-8 byte order mark) is '['; each element is then one event and its line
// number is its 1-based index. Elements are delimited by tracking strings and
// brackets only, so a malformed element is still yielded on its own and
// ParseLine reports what is wrong with it; Split returns a *BodyError only
// when the delimiters themselves are broken, after yielding the elements
// before the break.
//
// Otherwise the body is NDJSON: one event per '\n'-terminated line (a final
// line without '\n' counts), line numbers are physical line numbers, blank
// lines are skipped, and surrounding blanks (including the '\r' of CRLF) are
// trimmed. NDJSON framing cannot be broken, so the error is always nil.
func Split(body []byte, yield func(line int, raw []byte) bool) error {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if i := skipWS(body, 0); i < len(body) && body[i] == '[' {
		return splitArray(body, i+1, yield)
	}
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if line = trimBlank(line); len(line) > 0 && !yield(n, line) {
			return nil
		}
	}
	return nil
}

func trimBlank(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isWS(b[i]) {
		i++
	}
	for j > i && isWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

func splitArray(body []byte, i int, yield func(int, []byte) bool) error {
	i = skipWS(body, i)
	if i < len(body) && body[i] == ']' {
		return arrayEnd(body, i+1, 1)
	}
	for n := 1; ; n++ {
		start := i
		depth := 0
	element:
		for {
			if i >= len(body) {
				return &BodyError{Line: n, Offset: i, Reason: "unexpected end of body, want ',' or ']'"}
			}
			switch body[i] {
			case '"':
				i++
				for i < len(body) && body[i] != '"' {
					if body[i] == '\\' {
						i++
					}
					i++
				}
				if i >= len(body) {
					return &BodyError{Line: n, Offset: len(body), Reason: "unterminated string"}
				}
			case '{', '[':
				depth++
			case '}':
				if depth == 0 {
					return &BodyError{Line: n, Offset: i, Reason: "unexpected '}'"}
				}
				depth--
			case ']':
				if depth == 0 {
					break element
				}
				depth--
			case ',':
				if depth == 0 {
					break element
				}
			}
			i++
		}
		raw := trimBlank(body[start:i])
		if len(raw) == 0 {
			return &BodyError{Line: n, Offset: i, Reason: "empty element"}
		}
		if !yield(n, raw) {
			return nil
		}
		if body[i] == ']' {
			return arrayEnd(body, i+1, n)
		}
		i = skipWS(body, i+1)
	}
}

func arrayEnd(body []byte, i, n int) error {
	if j := skipWS(body, i); j != len(body) {
		return &BodyError{Line: n, Offset: j, Reason: "unexpected data after the closing ']'"}
	}
	return nil
}
