package runner

import (
	"fmt"
	"math"
	"reflect"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/aggregator/hist"
	"github.com/qoscope/qoscope/schemas"
)

// This file turns aggregator rows into Arrow records whose columns are the
// minute tables' columns (migrations/0001_minute_tables.sql). The value
// columns come from the `col` tags of aggregator.ClientRaw, CDNRaw and
// OriginRaw, read once by reflection into (name, kind, offset) triples; a
// row is then appended with plain loads at those offsets, no reflection and
// no per-row interface values.

// Table names written by the runner.
const (
	tableClient      = "client_minute"
	tableCDN         = "cdn_minute"
	tableOrigin      = "origin_minute"
	tableLate        = "late_events"
	tableCheckpoints = "aggregator_checkpoints"
)

type valueKind uint8

const (
	kindU64 valueKind = iota
	kindF64
	kindBool
	kindHist // two columns: <name>_sum UInt64 and <name>_hist Map(Int32, UInt64)
)

// valueField is one raw accumulator field.
type valueField struct {
	name string
	kind valueKind
	off  uintptr
}

func valueFields(raw any) []valueField {
	t := reflect.TypeOf(raw)
	var out []valueField
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("col")
		if name == "" {
			continue
		}
		vf := valueField{name: name, off: f.Offset}
		switch {
		case f.Type == reflect.TypeOf(hist.Histogram{}):
			vf.kind = kindHist
		case f.Type.Kind() == reflect.Uint64:
			vf.kind = kindU64
		case f.Type.Kind() == reflect.Float64:
			vf.kind = kindF64
		case f.Type.Kind() == reflect.Bool:
			vf.kind = kindBool
		default:
			panic(fmt.Sprintf("runner: %s.%s has no column type", t.Name(), f.Name))
		}
		out = append(out, vf)
	}
	return out
}

// histType is Map(Int32, UInt64): bucket index -> count.
var histType = func() *arrow.MapType {
	m := arrow.MapOf(arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint64)
	m.SetItemNullable(false)
	return m
}()

var dimsType = func() *arrow.MapType {
	m := arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)
	m.SetItemNullable(false)
	return m
}()

var windowType = &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}

// tableSpec is the Arrow layout of one table.
type tableSpec struct {
	name   string
	source schemas.Source // for minute tables
	schema *arrow.Schema
	cols   []string // column names, schema order
	fields []valueField
}

func field(name string, t arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: t}
}

// minuteKeyFields are the key columns every minute table starts with;
// dims_key is MATERIALIZED and written_at DEFAULT, so neither is sent.
var minuteKeyFields = []arrow.Field{
	field("window_start", windowType),
	field("grouping", arrow.BinaryTypes.String),
	field("dims", dimsType),
	field("topic", arrow.BinaryTypes.String),
	field("kafka_partition", arrow.PrimitiveTypes.Uint32),
	field("version", arrow.PrimitiveTypes.Uint64),
	field("final", arrow.PrimitiveTypes.Uint8),
}

func newMinuteSpec(name string, src schemas.Source, raw any) *tableSpec {
	s := &tableSpec{name: name, source: src, fields: valueFields(raw)}
	fs := append([]arrow.Field(nil), minuteKeyFields...)
	for _, f := range s.fields {
		switch f.kind {
		case kindU64:
			fs = append(fs, field(f.name, arrow.PrimitiveTypes.Uint64))
		case kindF64:
			fs = append(fs, field(f.name, arrow.PrimitiveTypes.Float64))
		case kindBool:
			fs = append(fs, field(f.name, arrow.PrimitiveTypes.Uint8))
		case kindHist:
			fs = append(fs, field(f.name+"_sum", arrow.PrimitiveTypes.Uint64), field(f.name+"_hist", histType))
		}
	}
	s.schema = arrow.NewSchema(fs, nil)
	for _, f := range fs {
		s.cols = append(s.cols, f.Name)
	}
	return s
}

var (
	clientSpec = newMinuteSpec(tableClient, schemas.SourceClient, aggregator.ClientRaw{})
	cdnSpec    = newMinuteSpec(tableCDN, schemas.SourceCDN, aggregator.CDNRaw{})
	originSpec = newMinuteSpec(tableOrigin, schemas.SourceOrigin, aggregator.OriginRaw{})
	lateSpec   = func() *tableSpec {
		fs := []arrow.Field{
			field("window_start", windowType),
			field("source", arrow.BinaryTypes.String),
			field("topic", arrow.BinaryTypes.String),
			field("kafka_partition", arrow.PrimitiveTypes.Uint32),
			field("count", arrow.PrimitiveTypes.Uint64),
			field("version", arrow.PrimitiveTypes.Uint64),
		}
		s := &tableSpec{name: tableLate, schema: arrow.NewSchema(fs, nil)}
		for _, f := range fs {
			s.cols = append(s.cols, f.Name)
		}
		return s
	}()
)

// specFor returns the minute table of a source.
func specFor(s schemas.Source) *tableSpec {
	switch s {
	case schemas.SourceClient:
		return clientSpec
	case schemas.SourceCDN:
		return cdnSpec
	case schemas.SourceOrigin:
		return originSpec
	}
	return nil
}

// minuteBuilder appends rows of one minute table to an Arrow record.
type minuteBuilder struct {
	spec *tableSpec
	b    *array.RecordBuilder
	n    int

	window  *array.TimestampBuilder
	group   *array.StringBuilder
	dims    *array.MapBuilder
	dimKey  *array.StringBuilder
	dimVal  *array.StringBuilder
	topic   *array.StringBuilder
	part    *array.Uint32Builder
	version *array.Uint64Builder
	final   *array.Uint8Builder
	values  []func(base unsafe.Pointer)
}

func newMinuteBuilder(mem memory.Allocator, spec *tableSpec) *minuteBuilder {
	rb := array.NewRecordBuilder(mem, spec.schema)
	m := &minuteBuilder{
		spec:    spec,
		b:       rb,
		window:  rb.Field(0).(*array.TimestampBuilder),
		group:   rb.Field(1).(*array.StringBuilder),
		dims:    rb.Field(2).(*array.MapBuilder),
		topic:   rb.Field(3).(*array.StringBuilder),
		part:    rb.Field(4).(*array.Uint32Builder),
		version: rb.Field(5).(*array.Uint64Builder),
		final:   rb.Field(6).(*array.Uint8Builder),
	}
	m.dimKey = m.dims.KeyBuilder().(*array.StringBuilder)
	m.dimVal = m.dims.ItemBuilder().(*array.StringBuilder)
	col := len(minuteKeyFields)
	for _, f := range spec.fields {
		off := f.off
		switch f.kind {
		case kindU64:
			b := rb.Field(col).(*array.Uint64Builder)
			m.values = append(m.values, func(p unsafe.Pointer) { b.Append(*(*uint64)(unsafe.Add(p, off))) })
		case kindF64:
			b := rb.Field(col).(*array.Float64Builder)
			m.values = append(m.values, func(p unsafe.Pointer) { b.Append(*(*float64)(unsafe.Add(p, off))) })
		case kindBool:
			b := rb.Field(col).(*array.Uint8Builder)
			m.values = append(m.values, func(p unsafe.Pointer) {
				var v uint8
				if *(*bool)(unsafe.Add(p, off)) {
					v = 1
				}
				b.Append(v)
			})
		case kindHist:
			sum := rb.Field(col).(*array.Uint64Builder)
			col++
			mb := rb.Field(col).(*array.MapBuilder)
			kb := mb.KeyBuilder().(*array.Int32Builder)
			ib := mb.ItemBuilder().(*array.Uint64Builder)
			add := func(i int32, n uint64) {
				kb.Append(i)
				ib.Append(n)
			}
			m.values = append(m.values, func(p unsafe.Pointer) {
				h := (*hist.Histogram)(unsafe.Add(p, off))
				// Values are integer milliseconds, so the float sum is exact
				// below 2^53 ms.
				sum.Append(uint64(math.Round(h.Sum())))
				mb.Append(true)
				h.Buckets(add)
			})
		}
		col++
	}
	return m
}

// append adds r, whose Source must match the builder's table.
func (m *minuteBuilder) append(r *aggregator.Row) {
	var base unsafe.Pointer
	switch m.spec.source {
	case schemas.SourceClient:
		base = unsafe.Pointer(r.Client)
	case schemas.SourceCDN:
		base = unsafe.Pointer(r.CDN)
	case schemas.SourceOrigin:
		base = unsafe.Pointer(r.Origin)
	}
	if base == nil {
		panic("runner: row without accumulator for " + m.spec.name)
	}
	m.window.Append(arrow.Timestamp(r.WindowStart / 1000))
	m.group.Append(r.Grouping)
	m.dims.Append(true)
	for _, d := range r.Dims {
		m.dimKey.Append(d.Name)
		m.dimVal.Append(d.Value)
	}
	m.topic.Append(r.Partition.Topic)
	m.part.Append(uint32(r.Partition.Partition))
	m.version.Append(r.Version)
	if r.Final {
		m.final.Append(1)
	} else {
		m.final.Append(0)
	}
	for _, f := range m.values {
		f(base)
	}
	m.n++
}

// record returns the rows appended so far and resets the builder. The
// caller releases the record.
func (m *minuteBuilder) record() arrow.RecordBatch {
	m.n = 0
	return m.b.NewRecordBatch()
}

func (m *minuteBuilder) release() { m.b.Release() }

// lateBuilder appends late_events rows.
type lateBuilder struct {
	b       *array.RecordBuilder
	n       int
	window  *array.TimestampBuilder
	source  *array.StringBuilder
	topic   *array.StringBuilder
	part    *array.Uint32Builder
	count   *array.Uint64Builder
	version *array.Uint64Builder
}

func newLateBuilder(mem memory.Allocator) *lateBuilder {
	rb := array.NewRecordBuilder(mem, lateSpec.schema)
	return &lateBuilder{
		b:       rb,
		window:  rb.Field(0).(*array.TimestampBuilder),
		source:  rb.Field(1).(*array.StringBuilder),
		topic:   rb.Field(2).(*array.StringBuilder),
		part:    rb.Field(3).(*array.Uint32Builder),
		count:   rb.Field(4).(*array.Uint64Builder),
		version: rb.Field(5).(*array.Uint64Builder),
	}
}

func (l *lateBuilder) append(r *aggregator.LateRow) {
	l.window.Append(arrow.Timestamp(r.WindowStart / 1000))
	l.source.Append(r.Source.String())
	l.topic.Append(r.Partition.Topic)
	l.part.Append(uint32(r.Partition.Partition))
	l.count.Append(r.Count)
	l.version.Append(r.Version)
	l.n++
}

func (l *lateBuilder) record() arrow.RecordBatch {
	l.n = 0
	return l.b.NewRecordBatch()
}

func (l *lateBuilder) release() { l.b.Release() }

// BuildRecords turns rows and late rows into one Arrow record per table
// (tables without rows are left out), at most maxRows rows per record.
// The caller releases the records.
func BuildRecords(mem memory.Allocator, rows []aggregator.Row, late []aggregator.LateRow, maxRows int) []TableRecord {
	var out []TableRecord
	for _, spec := range []*tableSpec{clientSpec, cdnSpec, originSpec} {
		var mb *minuteBuilder
		for i := range rows {
			r := &rows[i]
			if r.Source != spec.source {
				continue
			}
			if mb == nil {
				mb = newMinuteBuilder(mem, spec)
			}
			mb.append(r)
			if mb.n >= maxRows {
				out = append(out, TableRecord{spec, mb.record()})
			}
		}
		if mb != nil {
			if mb.n > 0 {
				out = append(out, TableRecord{spec, mb.record()})
			}
			mb.release()
		}
	}
	if len(late) > 0 {
		lb := newLateBuilder(mem)
		for i := range late {
			lb.append(&late[i])
			if lb.n >= maxRows {
				out = append(out, TableRecord{lateSpec, lb.record()})
			}
		}
		if lb.n > 0 {
			out = append(out, TableRecord{lateSpec, lb.record()})
		}
		lb.release()
	}
	return out
}

// TableRecord is one table's Arrow record.
type TableRecord struct {
	spec   *tableSpec
	Record arrow.RecordBatch
}

// Table is the destination table's name.
func (t TableRecord) Table() string { return t.spec.name }
