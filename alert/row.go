package alert

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/ndjsonfile"
)

// Row is one minute of one group of a source: a row of `qoscope aggregate
// --output` (aggregator/README.md, "Offline mode"), or of the minute views.
type Row struct {
	Minute time.Time // the window's start, UTC, a whole minute
	Source string    // client, cdn or origin
	Dims   Labels    // the grouping set's dimensions and their values, in the set's order
	// Metrics by catalogue name; a null metric (an empty denominator) is
	// present with Valid false.
	Metrics map[string]Value
}

// Value is a metric value that may be null.
type Value struct {
	V     float64
	Valid bool
}

// Label is one name=value pair.
type Label struct {
	Name, Value string
}

// Labels keep their order: dimensions in the grouping set's order, then
// severity, then the rule's labels (the order on-call reads them in).
type Labels []Label

// Get returns the value of name and whether it is there.
func (ls Labels) Get(name string) (string, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// Map returns the labels as a map.
func (ls Labels) Map() map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return m
}

// MarshalJSON writes an object with the labels in their order.
func (ls Labels) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(l.Name) // a string always marshals
		v, _ := json.Marshal(l.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of strings keeping the keys' order.
func (ls *Labels) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("labels: not an object")
	}
	*ls = Labels{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("labels.%s: %w", kt, err)
		}
		*ls = append(*ls, Label{Name: kt.(string), Value: v})
	}
	_, err := dec.Token()
	return err
}

// wireRow is a row as `qoscope aggregate` prints it.
type wireRow struct {
	WindowStart string          `json:"window_start"`
	Source      string          `json:"source"`
	Dims        Labels          `json:"dims"`
	Metrics     json.RawMessage `json:"metrics"`
}

// ReadRows reads the NDJSON rows of `qoscope aggregate --output` from a
// file (plain or gzip, detected by content; "-" is stdin). Late-event rows
// (source "late") carry no group's metrics and are skipped. A line that is
// not a row stops the read with `FILE:LINE: reason`.
func ReadRows(name string, stdin io.Reader) ([]Row, error) {
	br, closeIn, err := ndjsonfile.Open(name, stdin)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	return parseRows(name, br)
}

func parseRows(name string, r io.Reader) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	var rows []Row
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		row, skip, err := parseRow(b)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if !skip {
			rows = append(rows, row)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return rows, nil
}

var rowSources = []string{"client", "cdn", "origin"}

func parseRow(b []byte) (Row, bool, error) {
	var w wireRow
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Row{}, false, fmt.Errorf("not a row: %w", err)
	}
	if w.Source == "late" {
		return Row{}, true, nil
	}
	if !slices.Contains(rowSources, w.Source) {
		return Row{}, false, fmt.Errorf("field source: %q is not client, cdn, origin or late", w.Source)
	}
	t, err := time.Parse(time.RFC3339, w.WindowStart)
	if err != nil {
		return Row{}, false, fmt.Errorf("field window_start: %q is not an RFC 3339 time", w.WindowStart)
	}
	if t.Truncate(time.Minute) != t {
		return Row{}, false, fmt.Errorf("field window_start: %q is not the start of a minute", w.WindowStart)
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Metrics, &raw); err != nil || raw == nil {
		return Row{}, false, fmt.Errorf("field metrics: not an object of numbers")
	}
	row := Row{Minute: t.UTC(), Source: w.Source, Dims: w.Dims, Metrics: make(map[string]Value, len(raw))}
	for k, v := range raw {
		switch x := v.(type) {
		case nil:
			row.Metrics[k] = Value{}
		case float64:
			row.Metrics[k] = Value{V: x, Valid: true}
		case bool: // origin no_data
			row.Metrics[k] = Value{V: map[bool]float64{false: 0, true: 1}[x], Valid: true}
		default:
			return Row{}, false, fmt.Errorf("field metrics.%s: not a number, boolean or null", k)
		}
	}
	if row.Dims == nil {
		return Row{}, false, fmt.Errorf("field dims: required ({} for the total)")
	}
	return row, false, nil
}

// dimsKey identifies a row's grouping set: its dimension names sorted.
func dimsKey(ls Labels) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Name
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// FromAggregator converts the aggregator's rows (the offline result or a
// runner's final rows, summed over partitions) into rows for the evaluator.
func FromAggregator(in []aggregator.Row) []Row {
	out := make([]Row, 0, len(in))
	var ms []aggregator.Metric
	for i := range in {
		r := &in[i]
		row := Row{Minute: time.UnixMilli(r.WindowStart).UTC(), Source: r.Source.String(), Dims: make(Labels, len(r.Dims))}
		for j, d := range r.Dims {
			row.Dims[j] = Label{d.Name, d.Value}
		}
		ms = r.Metrics(ms[:0])
		row.Metrics = make(map[string]Value, len(ms))
		for _, m := range ms {
			row.Metrics[m.Name] = Value{V: m.Value, Valid: m.Valid}
		}
		out = append(out, row)
	}
	return out
}
