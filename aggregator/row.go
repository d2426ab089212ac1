package aggregator

import (
	"cmp"
	"slices"
	"strings"

	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// PartitionID names one input partition: a Kafka topic partition, or in the
// offline mode one source's stream of input lines.
type PartitionID struct {
	Topic     string
	Partition int32
}

// Dim is one dimension of a grouping key.
type Dim struct {
	Name, Value string
}

// Row is the partial aggregate of one (window, source, grouping key) on one
// partition: one row of client_minute, cdn_minute or origin_minute. Exactly
// one of Client, CDN, Origin is set, by Source.
type Row struct {
	Partition   PartitionID
	WindowStart int64 // Unix ms, a multiple of 60 000
	Source      schemas.Source
	Set         int    // index of the grouping set in Plan.GroupingSets(Source)
	Grouping    string // grouping set name, "" for the total
	Dims        []Dim  // in grouping set order; empty for the total
	Final       bool   // the window is closed; false for provisional rows
	Version     uint64 // ReplacingMergeTree version, see versionOf

	Client *ClientRaw
	CDN    *CDNRaw
	Origin *OriginRaw
}

// LateRow is the cumulative count of late events of one window and source on
// one partition: one row of late_events. Later rows for the same key carry a
// higher Version and a count that includes the earlier ones.
type LateRow struct {
	Partition   PartitionID
	WindowStart int64
	Source      schemas.Source
	Count       uint64
	Version     uint64
}

// versionOf is the ReplacingMergeTree version of a row built after the event
// at offset was applied: offsets only grow within a partition, and the final
// row of a window outranks every provisional one, even one built at the same
// offset (a window closed by Advance or CloseAll without a new event).
func versionOf(offset int64, final bool) uint64 {
	v := uint64(offset+1) << 1
	if final {
		v |= 1
	}
	return v
}

// Metrics derives the row's public metrics (appended to dst).
func (r *Row) Metrics(dst []Metric) []Metric {
	switch {
	case r.Client != nil:
		return ClientMetrics(dst, r.Client)
	case r.CDN != nil:
		return CDNMetrics(dst, r.CDN)
	case r.Origin != nil:
		return OriginMetrics(dst, r.Origin)
	}
	return dst
}

// CompareRows is the output order: window start, then source (client, cdn,
// origin), then grouping set in configured order, then the dimension values
// compared one by one in the set's order (byte-wise), then partition.
func CompareRows(a, b *Row) int {
	if c := cmp.Compare(a.WindowStart, b.WindowStart); c != 0 {
		return c
	}
	if c := cmp.Compare(route.Index(a.Source), route.Index(b.Source)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Set, b.Set); c != 0 {
		return c
	}
	for i := range min(len(a.Dims), len(b.Dims)) {
		if c := strings.Compare(a.Dims[i].Value, b.Dims[i].Value); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(len(a.Dims), len(b.Dims)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Partition.Topic, b.Partition.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition.Partition, b.Partition.Partition)
}

// SortRows sorts rows into output order.
func SortRows(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int { return CompareRows(&a, &b) })
}

// sameKey reports whether a and b are the same (window, source, grouping key).
func sameKey(a, b *Row) bool {
	if a.WindowStart != b.WindowStart || a.Source != b.Source || a.Set != b.Set || len(a.Dims) != len(b.Dims) {
		return false
	}
	for i := range a.Dims {
		if a.Dims[i].Value != b.Dims[i].Value {
			return false
		}
	}
	return true
}

// MergePartitions sums sorted rows of the same (window, source, grouping
// key) from different partitions into one row, the way the queries sum the
// minute tables. The result is sorted; Partition is cleared.
func MergePartitions(rows []Row) []Row {
	SortRows(rows)
	out := rows[:0]
	for i := range rows {
		r := rows[i]
		r.Partition = PartitionID{}
		if n := len(out); n > 0 && sameKey(&out[n-1], &r) {
			o := &out[n-1]
			switch {
			case o.Client != nil:
				o.Client.Merge(r.Client)
			case o.CDN != nil:
				o.CDN.Merge(r.CDN)
			case o.Origin != nil:
				o.Origin.Merge(r.Origin)
			}
			o.Final = o.Final && r.Final
			o.Version = max(o.Version, r.Version)
			continue
		}
		out = append(out, r)
	}
	return out
}
