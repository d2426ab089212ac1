// Package chraw is the benchmark peer "raw events into a ClickHouse
// MergeTree, the same one-minute metrics computed by SQL": one row per event
// in a typed table, loaded either as JSONEachRow over HTTP (the canonical
// Kafka bytes, parsed by the server) or by native batch inserts of typed
// columns (parsed by the client with schemas.ParseLine), then one SQL query
// per source computes every metric of docs/METRICS.md for every default grouping
// set with GROUPING SETS, exactly (uniqExact for users, nearest-rank
// quantiles on the sorted values).
package chraw

import (
	"fmt"
	"regexp"
	"strings"
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// CheckIdent refuses anything but a plain identifier: table and database
// names are the only names put into SQL that do not come from a whitelist.
func CheckIdent(what, s string) error {
	if !identRE.MatchString(s) {
		return fmt.Errorf("%s %q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)", what, s)
	}
	return nil
}

// Column is one column of the raw events table.
type Column struct {
	Name, Type string
}

// typeEnum lists the event types in schemas.Type order, so that the Enum8
// value of a type equals its schemas.Type number and `type <= 'dns'`
// selects exactly the client types (ORDER BY keeps each source together).
const typeEnum = "Enum8('play_start' = 1, 'first_frame' = 2, 'stall' = 3, 'heartbeat' = 4, 'play_end' = 5, " +
	"'push_start' = 6, 'push_end' = 7, 'relay' = 8, 'dns' = 9, 'cdn_request' = 10, 'origin_stats' = 11)"

// Columns are every schemas.Event member, typed: dimensions are
// LowCardinality(String) (a missing one is ”), ids plain String,
// milliseconds UInt64 (the schema allows up to 2^53−1), times DateTime64(3).
// video_buffer_ms and audio_buffer_ms are Nullable because an absent buffer
// is not a zero (the means count only heartbeats that carry one). Unknown
// (Extra) members are not stored.
var Columns = []Column{
	{"v", "UInt8"},
	{"type", typeEnum},
	{"ts", "DateTime64(3, 'UTC')"},
	{"recv_ts", "DateTime64(3, 'UTC')"},
	{"user_id", "String"},
	{"session_id", "String"},
	{"stream_id", "LowCardinality(String)"},
	{"vendor", "LowCardinality(String)"},
	{"node", "LowCardinality(String)"},
	{"ip", "String"},
	{"country", "LowCardinality(String)"},
	{"province", "LowCardinality(String)"},
	{"city", "LowCardinality(String)"},
	{"isp", "LowCardinality(String)"},
	{"platform", "LowCardinality(String)"},
	{"client_version", "LowCardinality(String)"},
	{"quality", "LowCardinality(String)"},
	{"role", "LowCardinality(String)"},
	{"ok", "Bool"},
	{"connect_ms", "UInt64"},
	{"error", "LowCardinality(String)"},
	{"first_frame_ms", "UInt64"},
	{"duration_ms", "UInt64"},
	{"media", "LowCardinality(String)"},
	{"video_buffer_ms", "Nullable(UInt64)"},
	{"audio_buffer_ms", "Nullable(UInt64)"},
	{"bitrate_kbps", "Float64"},
	{"fps", "Float64"},
	{"stalled", "Bool"},
	{"reason", "LowCardinality(String)"},
	{"watch_ms", "UInt64"},
	{"dropped", "Bool"},
	{"cache_hit", "Bool"},
	{"status", "UInt16"},
	{"bytes", "UInt64"},
	{"ttfb_ms", "UInt64"},
	{"line", "LowCardinality(String)"},
	{"egress_isp", "LowCardinality(String)"},
	{"rtt_ms", "Float64"},
}

// columnList is "v, type, ts, ..." for INSERT statements.
func columnList() string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// CreateTableSQL is the DDL of the raw events table db.table. Rows are
// sorted by type then time, so each source's query reads a contiguous range;
// daily partitions are what a production table would use for retention.
func CreateTableSQL(db, table string) (string, error) {
	if err := CheckIdent("database", db); err != nil {
		return "", err
	}
	if err := CheckIdent("table", table); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS `%s`.`%s` (\n", db, table)
	for i, c := range Columns {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "    `%s` %s", c.Name, c.Type)
	}
	b.WriteString("\n) ENGINE = MergeTree\nPARTITION BY toDate(ts)\nORDER BY (type, ts)")
	return b.String(), nil
}
