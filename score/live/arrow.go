package live

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoscope/qoscope/score"
)

var arrowTS = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// ArrowSchema is the Arrow IPC stream's schema (docs/SCORES.md, "Arrow"):
// one row per region × vendor, the JSON document flattened, regions and
// vendors in the document's order. data_until is null when no row was
// usable, quality when the level is none, reason when the vendor has none.
var ArrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "at", Type: arrowTS},
	{Name: "data_until", Type: arrowTS, Nullable: true},
	{Name: "province", Type: arrow.BinaryTypes.String},
	{Name: "isp", Type: arrow.BinaryTypes.String},
	{Name: "demand_mbps", Type: arrow.PrimitiveTypes.Float64},
	{Name: "overloaded", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "vendor", Type: arrow.BinaryTypes.String},
	{Name: "level", Type: arrow.BinaryTypes.String},
	{Name: "quality", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "bandwidth_mbps", Type: arrow.PrimitiveTypes.Float64},
	{Name: "predicted_mbps", Type: arrow.PrimitiveTypes.Float64},
	{Name: "guaranteed_mbps", Type: arrow.PrimitiveTypes.Float64},
	{Name: "max_mbps", Type: arrow.PrimitiveTypes.Float64},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	{Name: "ratio", Type: arrow.PrimitiveTypes.Float64},
	{Name: "blacklisted", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "reason", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// encodeArrow writes t as one record batch of an IPC stream (an empty
// table is the schema alone plus an empty batch).
func encodeArrow(t *score.Table) ([]byte, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, ArrowSchema)
	defer b.Release()
	at := arrow.Timestamp(t.At.UnixMilli())
	for _, r := range t.Regions {
		for _, v := range r.Vendors {
			b.Field(0).(*array.TimestampBuilder).Append(at)
			if t.DataUntil != nil {
				b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(t.DataUntil.UnixMilli()))
			} else {
				b.Field(1).AppendNull()
			}
			b.Field(2).(*array.StringBuilder).Append(r.Province)
			b.Field(3).(*array.StringBuilder).Append(r.ISP)
			b.Field(4).(*array.Float64Builder).Append(r.DemandMbps)
			b.Field(5).(*array.BooleanBuilder).Append(r.Overloaded)
			b.Field(6).(*array.StringBuilder).Append(v.Vendor)
			b.Field(7).(*array.StringBuilder).Append(string(v.Level))
			if v.Quality != nil {
				b.Field(8).(*array.Float64Builder).Append(*v.Quality)
			} else {
				b.Field(8).AppendNull()
			}
			for i, f := range []float64{v.BandwidthMbps, v.PredictedMbps, v.GuaranteedMbps, v.MaxMbps, v.Score, v.Ratio} {
				b.Field(9 + i).(*array.Float64Builder).Append(f)
			}
			b.Field(15).(*array.BooleanBuilder).Append(v.Blacklisted)
			if v.Reason != nil {
				b.Field(16).(*array.StringBuilder).Append(*v.Reason)
			} else {
				b.Field(16).AppendNull()
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(ArrowSchema))
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("cannot encode the scores table as arrow: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("cannot encode the scores table as arrow: %w", err)
	}
	return buf.Bytes(), nil
}
