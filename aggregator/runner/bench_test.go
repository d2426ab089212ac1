package runner

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoscope/qoscope/aggregator"
)

var benchRows struct {
	once  sync.Once
	final []aggregator.Row
	late  []aggregator.LateRow
}

// benchFinal returns the final rows of 5,000 generated users over 3
// minutes with the default grouping sets (about 3,000 rows per minute).
func benchFinal(b *testing.B) ([]aggregator.Row, []aggregator.LateRow) {
	benchRows.once.Do(func() {
		benchRows.final, _, benchRows.late = partitionRows(b, genEvents(b, 5000, 3*time.Minute))
	})
	return benchRows.final, benchRows.late
}

func recordBytes(recs []TableRecord) int64 {
	var n int64
	for _, r := range recs {
		for _, c := range r.Record.Columns() {
			for _, buf := range c.Data().Buffers() {
				if buf != nil {
					n += int64(buf.Len())
				}
			}
			for _, ch := range c.Data().Children() {
				for _, buf := range ch.Buffers() {
					if buf != nil {
						n += int64(buf.Len())
					}
				}
			}
		}
	}
	return n
}

// BenchmarkBuildRecords: aggregator rows → Arrow records of the minute
// tables (bytes = Arrow buffer bytes).
func BenchmarkBuildRecords(b *testing.B) {
	final, late := benchFinal(b)
	mem := memory.NewGoAllocator()
	recs := BuildRecords(mem, final, late, 1<<30)
	b.SetBytes(recordBytes(recs))
	for _, r := range recs {
		r.Record.Release()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		recs := BuildRecords(mem, final, late, 1<<30)
		for _, r := range recs {
			r.Record.Release()
		}
	}
	b.ReportMetric(float64(len(final))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkInsert compares the insert modes on the same Arrow records
// (real ClickHouse): rows/s and Arrow bytes/s, one insert per table.
func BenchmarkInsert(b *testing.B) {
	final, late := benchFinal(b)
	e := newInsertEnv(b)
	mem := memory.NewGoAllocator()
	recs := BuildRecords(mem, final, late, 1<<30)
	defer func() {
		for _, r := range recs {
			r.Record.Release()
		}
	}()
	for _, mode := range []string{InsertNative, InsertArrowHTTP} {
		ins := e.ins[mode]
		if ins == nil {
			continue
		}
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(recordBytes(recs))
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range recs {
					if err := ins.Insert(context.Background(), r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(final)+len(late))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
