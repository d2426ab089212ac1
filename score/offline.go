package score

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/ndjsonfile"
)

// Options are `qoscope scores`' flags (offline mode, docs/SCORES.md).
type Options struct {
	Config    string   // scores file
	Inputs    []string // row files written by `qoscope aggregate --output`; "-" is stdin
	At        time.Time
	Blacklist string // optional blacklist file
	Output    string // "-" or a file
}

// maxRowLine bounds one row line; aggregator rows are a few hundred bytes.
const maxRowLine = 1 << 20

// Run reads the rows and prints the table for minute opts.At as one JSON
// line. Warnings (refused blacklist entries, vendors without a contract)
// go to the log.
func Run(ctx context.Context, opts Options, stdout io.Writer, log zerolog.Logger) error {
	if opts.Config == "" {
		return errors.New("--config is required")
	}
	if len(opts.Inputs) == 0 {
		return errors.New("at least one --input is required")
	}
	if opts.At.IsZero() {
		return errors.New("--at is required")
	}
	if !opts.At.Truncate(time.Minute).Equal(opts.At) {
		return fmt.Errorf("--at %s: must be a minute boundary", opts.At.Format(time.RFC3339Nano))
	}
	c, err := LoadContracts(opts.Config)
	if err != nil {
		return err
	}
	var bl Blacklist
	if opts.Blacklist != "" {
		if bl, err = LoadBlacklist(opts.Blacklist, c); err != nil {
			return err
		}
	}
	var in Input
	for _, name := range opts.Inputs {
		if err := readRowsFile(ctx, name, &in); err != nil {
			return err
		}
	}
	t := Build(&in, c, opts.At.UTC(), bl)
	for _, w := range t.Warnings {
		log.Warn().Str("warning", w).Msg("scores")
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("cannot encode the table: %w", err)
	}
	b = append(b, '\n')
	if opts.Output == "" || opts.Output == "-" {
		if _, err := stdout.Write(b); err != nil {
			return fmt.Errorf("cannot write the table: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(opts.Output, b, 0o644); err != nil {
		return fmt.Errorf("cannot write the table: %w", err)
	}
	return nil
}

func readRowsFile(ctx context.Context, name string, in *Input) error {
	br, closeIn, err := ndjsonfile.Open(name, os.Stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	return ReadRows(ctx, br, name, in)
}

// rowLine is one line of `qoscope aggregate --output` (aggregator/README.md
// "Offline mode").
type rowLine struct {
	WindowStart *time.Time                 `json:"window_start"`
	Source      string                     `json:"source"`
	Dims        map[string]string          `json:"dims"`
	Metrics     map[string]json.RawMessage `json:"metrics"`
}

// ReadRows appends the {vendor, province, isp} client and CDN rows of r to
// in; other grouping sets, origin and late rows are skipped. A line that is
// not such a row stops the read with NAME:LINE and the reason.
func ReadRows(ctx context.Context, r io.Reader, name string, in *Input) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), maxRowLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		if lineNo&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := addRow(line, in); err != nil {
			return fmt.Errorf("%s:%d: %w", name, lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: cannot read: %w", name, lineNo+1, err)
	}
	return nil
}

func addRow(line []byte, in *Input) error {
	var l rowLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return fmt.Errorf("not a row: %w", err)
	}
	if l.WindowStart == nil {
		return errors.New("field window_start: required")
	}
	if l.Source != "client" && l.Source != "cdn" {
		return nil
	}
	vendor, okV := l.Dims["vendor"]
	province, okP := l.Dims["province"]
	isp, okI := l.Dims["isp"]
	if len(l.Dims) != 3 || !okV || !okP || !okI {
		return nil // another grouping set
	}
	m := l.Window()
	metric := func(key string) (float64, error) {
		v, ok := l.Metrics[key]
		if !ok {
			return 0, fmt.Errorf("field metrics.%s: required in a %s row", key, l.Source)
		}
		var f *float64
		if err := json.Unmarshal(v, &f); err != nil {
			return 0, fmt.Errorf("field metrics.%s: not a number: %s", key, v)
		}
		if f == nil {
			return 0, nil // null: empty denominator
		}
		if *f < 0 {
			return 0, fmt.Errorf("field metrics.%s: %g is negative", key, *f)
		}
		return *f, nil
	}
	var err error
	get := func(key string) float64 {
		v, e := metric(key)
		if err == nil {
			err = e
		}
		return v
	}
	switch l.Source {
	case "client":
		r := ClientRow{Minute: m, Vendor: vendor, Province: province, ISP: isp,
			Users: get("users"), StutterUsers: get("stutter_users"),
			Plays: get("plays"), PlaysOK: get("plays_ok"), FirstFrames: get("first_frames")}
		r.FirstFrameMSSum = get("first_frame_ms_avg") * r.FirstFrames
		if err != nil {
			return err
		}
		in.Client = append(in.Client, r)
	case "cdn":
		r := CDNRow{Minute: m, Vendor: vendor, Province: province, ISP: isp, BandwidthMbps: get("bandwidth_mbps")}
		if err != nil {
			return err
		}
		in.CDN = append(in.CDN, r)
	}
	return nil
}

// Window is the row's minute in UTC.
func (l *rowLine) Window() time.Time { return l.WindowStart.UTC() }
