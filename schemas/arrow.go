package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Arrow schemas of raw events, one per source, generated from propSpecs:
// the columns are the members used by the source's types, in wire order.
// A column is non-nullable when every type of the source requires the
// member; otherwise an absent member is null (see Event.Has).

var arrowTimestamp = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

func arrowType(p Prop) arrow.DataType {
	s := &propSpecs[p]
	switch s.kind {
	case kVersion:
		return arrow.PrimitiveTypes.Int32
	case kType, kString, kEnum, kIP:
		return arrow.BinaryTypes.String
	case kTime:
		return arrowTimestamp
	case kInt:
		if s.intp != nil {
			return arrow.PrimitiveTypes.Int32
		}
		return arrow.PrimitiveTypes.Int64
	case kFloat:
		return arrow.PrimitiveTypes.Float64
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	case kID:
		return arrow.PrimitiveTypes.Uint64
	}
	panic("schemas: no Arrow type for " + p.String())
}

// sourceProps returns the members used by src's types, in wire order, and
// those every type of src requires.
func sourceProps(src Source) (props []Prop, always PropSet) {
	var used PropSet
	always = ^PropSet(0)
	for _, t := range Types() {
		if t.Source() == src {
			used |= typeMasks[t].used
			always &= typeMasks[t].required
		}
	}
	// sent_at is consumed by ingest and never reaches a Kafka record.
	used &^= setOf(PropSentAt)
	for p := Prop(0); p < numProps; p++ {
		if used.Has(p) {
			props = append(props, p)
		}
	}
	return props, always
}

// ArrowSchema is the Arrow schema of src's event records; nil for an
// unknown source. Field metadata "description" documents each column.
func ArrowSchema(src Source) *arrow.Schema {
	if src < SourceClient || src > SourceOrigin {
		return nil
	}
	props, always := sourceProps(src)
	fields := make([]arrow.Field, len(props))
	for i, p := range props {
		fields[i] = arrow.Field{
			Name:     p.String(),
			Type:     arrowType(p),
			Nullable: !always.Has(p),
			Metadata: arrow.NewMetadata([]string{"description"}, []string{propSpecs[p].doc}),
		}
	}
	md := arrow.NewMetadata([]string{"source"}, []string{src.String()})
	return arrow.NewSchema(fields, &md)
}

// ArrowBuilder accumulates events of one source into Arrow record batches
// of ArrowSchema(src). It is not safe for concurrent use.
type ArrowBuilder struct {
	src   Source
	props []Prop
	b     *array.RecordBuilder
}

// NewArrowBuilder returns a builder for src's events; Release it when done.
func NewArrowBuilder(mem memory.Allocator, src Source) (*ArrowBuilder, error) {
	sc := ArrowSchema(src)
	if sc == nil {
		return nil, fmt.Errorf("no Arrow schema for source %s", src)
	}
	props, _ := sourceProps(src)
	return &ArrowBuilder{src: src, props: props, b: array.NewRecordBuilder(mem, sc)}, nil
}

// Append adds one event; it must be of the builder's source.
func (ab *ArrowBuilder) Append(e *Event) error {
	if s := e.Type.Source(); s != ab.src {
		return fmt.Errorf("cannot append a %s event (%s) to a %s record", s, e.Type, ab.src)
	}
	for i, p := range ab.props {
		fb := ab.b.Field(i)
		s := &propSpecs[p]
		if ab.b.Schema().Field(i).Nullable && !e.Present.Has(p) && isZero(e, p) {
			fb.AppendNull()
			continue
		}
		switch fb := fb.(type) {
		case *array.StringBuilder:
			if p == PropType {
				fb.Append(e.Type.String())
			} else {
				fb.Append(*s.str(e))
			}
		case *array.TimestampBuilder:
			fb.Append(arrow.Timestamp(*s.i64(e)))
		case *array.Int64Builder:
			fb.Append(*s.i64(e))
		case *array.Int32Builder:
			v := *s.intp(e)
			if p == PropV && v == 0 {
				v = Version // as AppendJSON writes it
			}
			fb.Append(int32(v))
		case *array.Float64Builder:
			fb.Append(*s.f64(e))
		case *array.BooleanBuilder:
			fb.Append(*s.bl(e))
		case *array.Uint64Builder:
			fb.Append(*s.u64(e))
		}
	}
	return nil
}

// NewRecordBatch returns the events appended since the last call as a
// record batch and resets the builder. The caller releases the batch.
func (ab *ArrowBuilder) NewRecordBatch() arrow.RecordBatch { return ab.b.NewRecordBatch() }

// Release frees the builder's buffers.
func (ab *ArrowBuilder) Release() { ab.b.Release() }
