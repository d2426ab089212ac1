package migrate

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	errEmptyIdent = errors.New("must not be empty")
	errLongIdent  = fmt.Errorf("must be at most %d characters", maxIdentLen)
	errBadIdent   = errors.New("must match ^[A-Za-z_][A-Za-z0-9_]*$ (letters, digits and _, not starting with a digit)")

	// ErrDirty is wrapped by every error that reports a dirty database.
	ErrDirty = errors.New("database is dirty")
)

// DirtyError reports that a migration started and did not finish: ClickHouse
// DDL is not transactional, so the database may hold part of its changes.
// Nothing runs until an operator has looked and run `migrate force`.
type DirtyError struct {
	Database  string
	Version   int64
	File      string
	Direction string // "up" or "down"
	State     string // "started" (process died) or "failed"
	Cause     string // the recorded error, if any
	At        time.Time
	// Previous is the version below Version (0 if none): the target of
	// `force` when the migration's changes are undone.
	Previous int64
}

func (e *DirtyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database %s is dirty: migration %d (%s) %s", e.Database, e.Version, e.File, e.Direction)
	if e.State == stateFailed {
		fmt.Fprintf(&b, " failed at %s", e.At.UTC().Format(time.RFC3339))
		if e.Cause != "" {
			fmt.Fprintf(&b, " (%s)", e.Cause)
		}
	} else {
		fmt.Fprintf(&b, " started at %s and never finished (the process stopped)", e.At.UTC().Format(time.RFC3339))
	}
	b.WriteString("; ClickHouse DDL is not transactional, so the statements before the failing one stay applied. ")
	b.WriteString("Fix the cause, then ")
	if e.Direction == dirUp {
		fmt.Fprintf(&b, "either re-run it (its statements are idempotent): `qoscope migrate force %d` then `qoscope migrate up`; ", e.Previous)
		fmt.Fprintf(&b, "or complete it by hand and run `qoscope migrate force %d`; ", e.Version)
		fmt.Fprintf(&b, "or drop what it created by hand and run `qoscope migrate force %d`", e.Previous)
	} else {
		fmt.Fprintf(&b, "either re-run it (its statements are idempotent): `qoscope migrate force %d` then `qoscope migrate down`; ", e.Version)
		fmt.Fprintf(&b, "or finish dropping by hand and run `qoscope migrate force %d`", e.Previous)
	}
	return b.String()
}

func (e *DirtyError) Unwrap() error { return ErrDirty }
