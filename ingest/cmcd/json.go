package cmcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// SplitJSON splits a body in CTA-5004's JSON transmission mode (CMCD v1,
// section 2: the payload as a JSON object, keys as members) into its
// payloads: the body is one object, or an array of objects. The elements
// are returned as sent, for ParseJSON and for dead letters. An error means
// the body is not JSON at all.
func SplitJSON(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, &Error{Reason: "empty CMCD JSON body"}
	}
	if body[0] != '[' {
		if !json.Valid(body) {
			return nil, &Error{Reason: "CMCD JSON body is not valid JSON (want an object or an array of objects)"}
		}
		return []json.RawMessage{body}, nil
	}
	var out []json.RawMessage
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, &Error{Reason: "CMCD JSON body is not valid JSON (want an object or an array of objects): " + jsonErr(err)}
	}
	if len(out) == 0 {
		return nil, &Error{Reason: "empty CMCD JSON array"}
	}
	return out, nil
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error() + " at byte " + strconv.FormatInt(se.Offset, 10)
	}
	return err.Error()
}

// ParseJSON decodes one CMCD payload sent as a JSON object: each member is
// a CMCD key; strings carry String and Token values (`"ot":"v"`), numbers
// Integer and Decimal values, true/false Booleans, and an array of those a
// v2 inner list (without object-type parameters, which JSON mode cannot
// express). Keys, types, duplicates and sender rules are checked as in
// ParseValue.
func ParseJSON(obj []byte) (Data, error) {
	d := Data{Version: 1}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Data{}, &Error{Reason: "want a JSON object of CMCD keys"}
	}
	n := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Data{}, &Error{Reason: "invalid JSON: " + jsonErr(err)}
		}
		key := t.(string) // object keys are always strings
		if p := (sfParser{s: key}); !validKey(&p) {
			return Data{}, &Error{Key: key, Reason: "not a CMCD key (lowercase letter or '*' first, then a-z 0-9 _ - . *)"}
		}
		it, cerr := jsonItem(dec, key)
		if cerr != nil {
			return Data{}, cerr
		}
		if err := d.setFrom(key, &it, noHeader); err != nil {
			return Data{}, err
		}
		n++
	}
	if _, err := dec.Token(); err != nil {
		return Data{}, &Error{Reason: "invalid JSON: " + jsonErr(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Data{}, &Error{Reason: "want one JSON object"}
	}
	if n == 0 {
		d.violate(RuleEmptyPayload, "")
	}
	return d, d.check()
}

// validKey reports whether p.s is exactly one RFC 8941 key.
func validKey(p *sfParser) bool {
	_, ok := p.key()
	return ok && p.i == len(p.s)
}

// tokenKeys are the keys whose values are Tokens on the wire; JSON has only
// strings for them.
func tokenKey(key string) bool {
	switch key {
	case "ot", "sf", "st", "sta", "e":
		return true
	}
	return false
}

func jsonItem(dec *json.Decoder, key string) (item, *Error) {
	t, err := dec.Token()
	if err != nil {
		return item{}, &Error{Key: key, Reason: "invalid JSON: " + jsonErr(err)}
	}
	if t == json.Delim('[') {
		it := item{kind: itemList}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return item{}, &Error{Key: key, Reason: "invalid JSON: " + jsonErr(err)}
			}
			e, cerr := jsonScalar(t, key)
			if cerr != nil {
				return item{}, cerr
			}
			it.list = append(it.list, e)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return item{}, &Error{Key: key, Reason: "invalid JSON: " + jsonErr(err)}
		}
		return it, nil
	}
	return jsonScalar(t, key)
}

func jsonScalar(t json.Token, key string) (item, *Error) {
	switch v := t.(type) {
	case string:
		if tokenKey(key) {
			return item{kind: itemToken, s: v}, nil
		}
		return item{kind: itemString, s: v}, nil
	case bool:
		return item{kind: itemBool, b: v}, nil
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			digits := strings.TrimPrefix(s, "-")
			if len(digits) > 15 {
				return item{}, &Error{Key: key, Reason: "integer with more than 15 digits"}
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return item{}, &Error{Key: key, Reason: "invalid number"}
			}
			return item{kind: itemInt, i: n}, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return item{}, &Error{Key: key, Reason: "invalid number"}
		}
		return item{kind: itemDec, f: f}, nil
	case nil:
		// CTA-5004: a key whose value is unknown is omitted, never sent empty.
		return item{}, &Error{Key: key, Reason: "must not be null (omit a key whose value is unknown)"}
	}
	return item{}, &Error{Key: key, Reason: "must be a string, number, boolean or an array of them, not a JSON object"}
}
