package alert

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// OfflineOptions configures RunOffline (`qoscope alert eval`).
type OfflineOptions struct {
	// Rules is the validated rules file.
	Rules *Rules
	// Inputs are NDJSON files of `qoscope aggregate --output` rows, plain or
	// gzip; "-" is stdin (at most once). Rows of all inputs are evaluated
	// together, minute by minute.
	Inputs []string
	// Output is the file to write, "-" (the default) for stdout.
	Output string
}

// RunOffline reads the rows, evaluates every minute from the first to the
// last in order and writes one NDJSON line per state change, sorted by at,
// rule, fingerprint (docs/ALERTS.md, "Offline mode").
func RunOffline(opts OfflineOptions, stdin io.Reader, stdout io.Writer) error {
	if len(opts.Inputs) == 0 {
		return fmt.Errorf("input: at least one input file is required")
	}
	stdinSeen := false
	var rows []Row
	for _, in := range opts.Inputs {
		if in == "-" {
			if stdinSeen {
				return fmt.Errorf("input: stdin (-) given more than once")
			}
			stdinSeen = true
		}
		rs, err := ReadRows(in, stdin)
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
	}
	changes, err := EvaluateRows(opts.Rules, rows)
	if err != nil {
		return err
	}
	w := stdout
	var f *os.File
	if opts.Output != "" && opts.Output != "-" {
		if f, err = os.Create(opts.Output); err != nil {
			return fmt.Errorf("cannot create output: %w", err)
		}
		w = f
	}
	bw := bufio.NewWriter(w)
	err = WriteChanges(bw, changes)
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(opts.Output)
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write output: %w", err)
	}
	return nil
}

// WriteChanges writes one JSON object per change and line.
func WriteChanges(w io.Writer, changes []Change) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range changes {
		if err := enc.Encode(&changes[i]); err != nil {
			return err
		}
	}
	return nil
}
