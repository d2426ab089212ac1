// Package query is the read side of qoscope: typed reads of the ClickHouse
// views created by migrations/, with SQL built from whitelisted names and
// bound parameters only. The war-room wall, alert rules and scheduler scores
// build on it; today it serves the demo's minute summary.
package query

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MinuteTotal is the whole-platform line of one client minute.
type MinuteTotal struct {
	Window          time.Time
	Final           bool // every partial row of the window is final
	Users           uint64
	StutterRateUV   *float64 // nil when there were no users
	FirstFrameP90MS *float64 // nil when there were no first frames
	PullConnectRate *float64 // nil when there were no play attempts
}

// KeyMinute is one grouping key's line of one client minute.
type KeyMinute struct {
	Dims          map[string]string
	Users         uint64
	StutterRateUV *float64
}

// Reader runs the read queries.
type Reader struct {
	conn driver.Conn
}

// NewReader wraps an open connection whose database holds the qoscope views.
func NewReader(conn driver.Conn) *Reader { return &Reader{conn: conn} }

// ClientTotals returns the total rows of the client minutes in [from, to),
// oldest first.
func (r *Reader) ClientTotals(ctx context.Context, from, to time.Time) ([]MinuteTotal, error) {
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"from": from.UTC().Format(time.DateTime),
		"to":   to.UTC().Format(time.DateTime),
	}))
	rows, err := r.conn.Query(ctx, `
		SELECT window_start, final, users, stutter_rate_uv, first_frame_ms_p90, pull_connect_rate
		FROM client_minute_metrics
		WHERE grouping = ''
		  AND window_start >= {from:DateTime('UTC')} AND window_start < {to:DateTime('UTC')}
		ORDER BY window_start`)
	if err != nil {
		return nil, fmt.Errorf("cannot query client_minute_metrics: %w", err)
	}
	defer rows.Close()
	var out []MinuteTotal
	for rows.Next() {
		var m MinuteTotal
		var final uint8
		if err := rows.Scan(&m.Window, &final, &m.Users, &m.StutterRateUV, &m.FirstFrameP90MS, &m.PullConnectRate); err != nil {
			return nil, fmt.Errorf("cannot read client_minute_metrics: %w", err)
		}
		m.Final = final == 1
		out = append(out, m)
	}
	return out, rows.Err()
}

// WorstKeys returns the keys of one client grouping set in one minute with at
// least minUsers users, worst user stutter rate first. grouping is a
// grouping-set name such as "province,isp"; it is bound, never formatted in.
func (r *Reader) WorstKeys(ctx context.Context, window time.Time, grouping string, minUsers uint64, limit int) ([]KeyMinute, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
		"window":    window.UTC().Format(time.DateTime),
		"grouping":  grouping,
		"min_users": fmt.Sprint(minUsers),
		"limit":     fmt.Sprint(limit),
	}))
	rows, err := r.conn.Query(ctx, `
		SELECT dims, users, stutter_rate_uv
		FROM client_minute_metrics
		WHERE grouping = {grouping:String}
		  AND window_start = {window:DateTime('UTC')}
		  AND users >= {min_users:UInt64}
		ORDER BY stutter_rate_uv DESC, users DESC, dims_key
		LIMIT {limit:UInt32}`)
	if err != nil {
		return nil, fmt.Errorf("cannot query client_minute_metrics: %w", err)
	}
	defer rows.Close()
	var out []KeyMinute
	for rows.Next() {
		var k KeyMinute
		if err := rows.Scan(&k.Dims, &k.Users, &k.StutterRateUV); err != nil {
			return nil, fmt.Errorf("cannot read client_minute_metrics: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
