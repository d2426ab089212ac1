// Package compare reads and writes rows in qoscope's offline format
// (`qoscope aggregate --output`) and compares two sets of rows for the same
// events metric by metric, with per-kind tolerances. Peers of the benchmark
// emit their results as these rows so that every peer is checked against
// qoscope before its speed is compared.
package compare

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Row is one (window, source, grouping key) row:
// {"window_start":"2026-11-23T12:00:00Z","source":"client","dims":{...},"metrics":{...}}.
// Dims and Metrics keep their order (the offline format's order is part of
// its contract; comparisons ignore it).
type Row struct {
	WindowStart time.Time // UTC, a whole minute
	Source      string    // client, cdn, origin (or late)
	Dims        []Dim
	Metrics     []Metric
}

// Dim is one dimension of a grouping key.
type Dim struct{ Name, Value string }

// Metric is one named value. Null is JSON null (an empty denominator, a
// quantile of nothing); Bool marks a boolean (no_data), Value 0 or 1.
type Metric struct {
	Name  string
	Value float64
	Null  bool
	Bool  bool
}

// Num returns a non-null numeric metric.
func Num(name string, v float64) Metric { return Metric{Name: name, Value: v} }

// Null returns a null metric.
func Null(name string) Metric { return Metric{Name: name, Null: true} }

// Flag returns a boolean metric.
func Flag(name string, v bool) Metric {
	m := Metric{Name: name, Bool: true}
	if v {
		m.Value = 1
	}
	return m
}

// Metric returns the metric called name.
func (r *Row) Metric(name string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Key identifies the row's (window, source, grouping key) independently of
// the order of its dims: "2026-11-23T12:00:00Z client isp=telecom,province=guangdong".
func (r *Row) Key() string {
	d := make([]string, len(r.Dims))
	for i, x := range r.Dims {
		d[i] = x.Name + "=" + x.Value
	}
	sortStrings(d)
	return r.WindowStart.UTC().Format(time.RFC3339) + " " + r.Source + " " + strings.Join(d, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// AppendJSON appends the row as one line of the offline format (without
// the newline): integers without exponent, other numbers in the shortest
// form that parses back to the same float64, null for null metrics.
func (r *Row) AppendJSON(b []byte) []byte {
	b = append(b, `{"window_start":"`...)
	b = r.WindowStart.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","source":`...)
	b = strconv.AppendQuote(b, r.Source)
	b = append(b, `,"dims":{`...)
	for i, d := range r.Dims {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, d.Name)
		b = append(b, ':')
		b = appendString(b, d.Value)
	}
	b = append(b, `},"metrics":{`...)
	for i, m := range r.Metrics {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, m.Name)
		b = append(b, ':')
		b = appendValue(b, m)
	}
	return append(b, "}}"...)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func appendValue(b []byte, m Metric) []byte {
	switch {
	case m.Null:
		return append(b, "null"...)
	case m.Bool:
		return strconv.AppendBool(b, m.Value != 0)
	case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
		// JSON has no NaN or infinity; a peer producing one is wrong and
		// the comparison must say so rather than fail to parse.
		return strconv.AppendQuote(b, strconv.FormatFloat(m.Value, 'g', -1, 64))
	case m.Value == math.Trunc(m.Value) && math.Abs(m.Value) < 1e15:
		return strconv.AppendFloat(b, m.Value, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, m.Value, 'g', -1, 64)
}

// WriteRows writes rows as NDJSON.
func WriteRows(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	var buf []byte
	for i := range rows {
		buf = rows[i].AppendJSON(buf[:0])
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("cannot write rows: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write rows: %w", err)
	}
	return nil
}

// WriteFile writes rows to path as NDJSON.
func WriteFile(path string, rows []Row) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	if err := WriteRows(f, rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadRows reads a stream of row objects: NDJSON, or objects spread over
// several lines with `//` comments between them (the hand-written golden
// files, expected.jsonc). Dims and metrics keep the file's order.
func ReadRows(r io.Reader) ([]Row, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("cannot read rows: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(StripComments(b)))
	dec.UseNumber()
	var rows []Row
	for {
		var raw struct {
			WindowStart string          `json:"window_start"`
			Source      string          `json:"source"`
			Dims        json.RawMessage `json:"dims"`
			Metrics     json.RawMessage `json:"metrics"`
		}
		err := dec.Decode(&raw)
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", len(rows)+1, err)
		}
		row, err := decodeRow(raw.WindowStart, raw.Source, raw.Dims, raw.Metrics)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", len(rows)+1, err)
		}
		rows = append(rows, row)
	}
}

// ReadFile reads the rows of one file (see ReadRows).
func ReadFile(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer f.Close()
	rows, err := ReadRows(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rows, nil
}

func decodeRow(ws, source string, dims, metrics json.RawMessage) (Row, error) {
	t, err := time.Parse(time.RFC3339, ws)
	if err != nil {
		return Row{}, fmt.Errorf("window_start: %w", err)
	}
	row := Row{WindowStart: t.UTC(), Source: source}
	if source == "" {
		return Row{}, fmt.Errorf("source: missing")
	}
	err = eachMember(dims, func(name string, dec *json.Decoder) error {
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("dims.%s: %w", name, err)
		}
		row.Dims = append(row.Dims, Dim{name, v})
		return nil
	})
	if err != nil {
		return Row{}, err
	}
	err = eachMember(metrics, func(name string, dec *json.Decoder) error {
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("metrics.%s: %w", name, err)
		}
		m := Metric{Name: name}
		switch x := v.(type) {
		case nil:
			m.Null = true
		case bool:
			m = Flag(name, x)
		case json.Number:
			f, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				return fmt.Errorf("metrics.%s: %w", name, err)
			}
			m.Value = f
		case string:
			// "NaN", "+Inf" as written by AppendJSON.
			f, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return fmt.Errorf("metrics.%s: %q is not a number", name, x)
			}
			m.Value = f
		default:
			return fmt.Errorf("metrics.%s: unexpected %T", name, v)
		}
		row.Metrics = append(row.Metrics, m)
		return nil
	})
	return row, err
}

// eachMember calls fn for each member of a JSON object in order; fn must
// decode exactly the member's value from dec.
func eachMember(obj json.RawMessage, fn func(name string, dec *json.Decoder) error) error {
	if len(obj) == 0 || string(obj) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("want an object, got %v", tok)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if err := fn(name, dec); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// StripComments removes `//` comments outside JSON strings.
func StripComments(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}
