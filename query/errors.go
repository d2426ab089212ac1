package query

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ValidationError is a request the library refuses before any SQL is run:
// a name not in the catalogue, a value out of its limits. Param names the
// request parameter (as the HTTP API spells it: metric, source, group_by,
// filter, from, to, step, by, at, sort, order, limit, min_users, days), so
// the API can answer 400 with it.
type ValidationError struct {
	Param  string
	Value  string // the offending value, shortened; never part of SQL
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Param, e.Reason)
	}
	return fmt.Sprintf("%s %q: %s", e.Param, e.Value, e.Reason)
}

// IsValidation reports whether err is (or wraps) a *ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// maxEcho bounds how much of a refused value an error repeats.
const maxEcho = 64

func invalid(param, value, reason string) *ValidationError {
	if len(value) > maxEcho {
		cut := maxEcho
		for cut > 0 && !utf8.RuneStart(value[cut]) {
			cut--
		}
		value = value[:cut] + "…"
	}
	return &ValidationError{Param: param, Value: value, Reason: reason}
}
