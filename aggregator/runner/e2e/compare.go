package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/schemas"
)

// RowKey identifies one output row: window (Unix s), source (client, cdn,
// origin, or late) and the grouping key as sorted name=value pairs.
type RowKey struct {
	Window int64
	Source string
	Dims   string
}

func (k RowKey) String() string {
	return fmt.Sprintf("%s %s {%s}", time.Unix(k.Window, 0).UTC().Format(time.RFC3339), k.Source, strings.ReplaceAll(k.Dims, "\x1f", ","))
}

// Rows maps each row to its metrics (nil = null; booleans as 0/1).
type Rows map[RowKey]map[string]*float64

func dimsKey(d map[string]string) string {
	kv := make([]string, 0, len(d))
	for k, v := range d {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, "\x1f")
}

// MaxWindow is the newest window of the rows (Unix s).
func (r Rows) MaxWindow() int64 {
	m := int64(math.MinInt64)
	for k := range r {
		m = max(m, k.Window)
	}
	return m
}

// Expected runs aggregator.RunOffline over the partitions as read from
// Kafka, one input file per partition (--partition-per-file: each with its
// own watermark, like the runner), and returns its rows. lateness is the
// runner's allowed lateness.
func Expected(ctx context.Context, parts []Partition, lateness aggregator.Lateness, dir string) (Rows, error) {
	var inputs []string
	for _, p := range parts {
		if len(p.Values) == 0 {
			continue
		}
		name := filepath.Join(dir, fmt.Sprintf("%s-%d.ndjson", strings.ReplaceAll(p.Topic, "/", "_"), p.Partition))
		f, err := os.Create(name)
		if err != nil {
			return nil, err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		for _, v := range p.Values {
			bw.Write(v)
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		inputs = append(inputs, name)
	}
	var out bytes.Buffer
	err := aggregator.RunOffline(ctx, aggregator.OfflineOptions{
		Inputs: inputs, Output: "-", PartitionPerFile: true, Lateness: &lateness,
		// Undecodable messages are dead-lettered by the runner, never
		// counted: skip them here too.
		SkipBad: true,
	}, &out)
	if err != nil {
		return nil, err
	}
	return ParseOffline(out.Bytes())
}

// ParseOffline parses RunOffline's NDJSON.
func ParseOffline(b []byte) (Rows, error) {
	rows := Rows{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r struct {
			WindowStart time.Time         `json:"window_start"`
			Source      string            `json:"source"`
			Dims        map[string]string `json:"dims"`
			Metrics     map[string]any    `json:"metrics"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, err
		}
		ms := map[string]*float64{}
		for k, v := range r.Metrics {
			switch v := v.(type) {
			case nil:
				ms[k] = nil
			case float64:
				ms[k] = &v
			case bool:
				f := 0.0
				if v {
					f = 1
				}
				ms[k] = &f
			}
		}
		rows[RowKey{r.WindowStart.Unix(), r.Source, dimsKey(r.Dims)}] = ms
	}
	return rows, sc.Err()
}

// ViewRows reads every row of the minute metric views (client, cdn,
// origin) and late_events_metrics; nonFinal counts rows not yet final.
func ViewRows(ctx context.Context, conn driver.Conn) (rows Rows, nonFinal int, err error) {
	rows = Rows{}
	for _, src := range []schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin} {
		names := aggregator.MetricNames(src)
		var q strings.Builder
		q.WriteString("SELECT toInt64(toUnixTimestamp(window_start)), dims, final")
		for _, n := range names {
			q.WriteString(", CAST(" + n + " AS Nullable(Float64))")
		}
		q.WriteString(" FROM " + src.String() + "_minute_metrics")
		rs, err := conn.Query(ctx, q.String())
		if err != nil {
			return nil, 0, fmt.Errorf("%s view: %w", src, err)
		}
		for rs.Next() {
			var ws int64
			var dims map[string]string
			var final uint8
			vals := make([]*float64, len(names))
			dst := []any{&ws, &dims, &final}
			for i := range vals {
				dst = append(dst, &vals[i])
			}
			if err := rs.Scan(dst...); err != nil {
				rs.Close()
				return nil, 0, err
			}
			if final == 0 {
				nonFinal++
			}
			ms := map[string]*float64{}
			for i, n := range names {
				ms[n] = vals[i]
			}
			rows[RowKey{ws, src.String(), dimsKey(dims)}] = ms
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, 0, err
		}
	}
	rs, err := conn.Query(ctx, "SELECT toInt64(toUnixTimestamp(window_start)), source, toFloat64(late_events) FROM late_events_metrics")
	if err != nil {
		return nil, 0, fmt.Errorf("late view: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var ws int64
		var src string
		var n float64
		if err := rs.Scan(&ws, &src, &n); err != nil {
			return nil, 0, err
		}
		rows[RowKey{ws, "late", dimsKey(map[string]string{"source": src})}] = map[string]*float64{"late_events": &n}
	}
	return rows, nonFinal, rs.Err()
}

// Compare reports the differences between got (views) and want (offline),
// at most limit of them. Rows of got after want's newest window must be
// origin no_data rows (a stream the runner, whose input never ends, saw
// stop: the offline input ended instead). Counts must be equal; other
// values within a relative 1e-9 (float sums in another order, the SQL
// power function).
func Compare(got, want Rows, limit int) []string {
	var diffs []string
	add := func(format string, args ...any) {
		if len(diffs) < limit {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	maxW := want.MaxWindow()
	keys := make([]RowKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b RowKey) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		w := want[k]
		g, ok := got[k]
		if !ok {
			add("missing row %s", k)
			continue
		}
		noData := w["no_data"] != nil && *w["no_data"] == 1
		names := make([]string, 0, len(w))
		for n := range w {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if noData && n != "no_data" {
				continue
			}
			if !sameValue(g[n], w[n]) {
				add("row %s metric %s: got %s, want %s", k, n, show(g[n]), show(w[n]))
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; ok {
			continue
		}
		if k.Window > maxW && k.Source == "origin" && g["no_data"] != nil && *g["no_data"] == 1 {
			continue
		}
		add("unexpected row %s", k)
	}
	return diffs
}

func show(v *float64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}

func sameValue(a, b *float64) bool {
	switch {
	case a == nil || b == nil:
		return a == nil && b == nil
	case *a == *b:
		return true
	case *a == math.Trunc(*a) && *b == math.Trunc(*b) && math.Abs(*b) < 1e15:
		return false // counts are exact
	}
	return math.Abs(*a-*b) <= 1e-9*math.Max(math.Abs(*a), math.Abs(*b))
}
