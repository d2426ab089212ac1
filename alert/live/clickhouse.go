package live

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/query"
)

// Tables read and written (migrations 0003 and 0006).
const (
	tableState       = "alert_state"
	tableHistory     = "alert_history"
	tableCheckpoints = "aggregator_checkpoints"
)

// CHStore keeps the state and the history in ClickHouse; every value is a
// bound parameter.
type CHStore struct {
	conn driver.Conn
	// name is the evaluator's row in alert_state (alert.leader.group_id).
	name string
}

// NewCHStore returns the store of evaluator name on conn.
func NewCHStore(conn driver.Conn, name string) *CHStore { return &CHStore{conn: conn, name: name} }

func bind(ctx context.Context, p clickhouse.Parameters) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithParameters(p))
}

// LoadState reads the newest state row of the evaluator.
func (s *CHStore) LoadState(ctx context.Context) (*State, error) {
	var raw string
	var n uint64
	q := "SELECT argMax(state, version), count() FROM " + tableState + " WHERE evaluator = {name:String}"
	if err := s.conn.QueryRow(bind(ctx, clickhouse.Parameters{"name": s.name}), q).Scan(&raw, &n); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", tableState, err)
	}
	if n == 0 {
		return nil, nil
	}
	var st State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("%s of evaluator %s is not valid JSON: %w", tableState, s.name, err)
	}
	return &st, nil
}

// SaveState writes a new state row. Each save takes the next version
// (State.Saves), so the newest always wins, across restarts and leaders.
func (s *CHStore) SaveState(ctx context.Context, st *State) error {
	st.Saves++
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	// A native batch, not a bound parameter: ClickHouse reads a
	// parameter's value in its escaped text format, which would turn the
	// JSON's "\n" (a diagnosis of several causes) into a newline.
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+tableState+" (evaluator, version, state)", driver.WithReleaseConnection())
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tableState, err)
	}
	if err := batch.Append(s.name, st.Saves, string(b)); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("cannot insert into %s: %w", tableState, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tableState, err)
	}
	return nil
}

// WriteHistory inserts rows into alert_history.
func (s *CHStore) WriteHistory(ctx context.Context, rows []HistoryRow) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+tableHistory+
		" (at, rule, fingerprint, labels, state, value, users, action, annotations, diagnosis, version, retracted)", driver.WithReleaseConnection())
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tableHistory, err)
	}
	for _, r := range rows {
		var retracted uint8
		if r.Retracted {
			retracted = 1
		}
		if err := b.Append(r.At.UTC(), r.Rule, r.Fingerprint, r.Labels.Map(), r.State, r.Value, r.Users, r.Action,
			r.Annotations, r.Diagnosis, r.Version, retracted); err != nil {
			_ = b.Abort()
			return fmt.Errorf("cannot insert into %s: %w", tableHistory, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tableHistory, err)
	}
	return nil
}

// HistoryChange is one change of GET /api/v1/alerts?from=&to=: alert.Change
// fields plus annotations and action.
type HistoryChange struct {
	At          time.Time         `json:"at"`
	Rule        string            `json:"rule"`
	Fingerprint string            `json:"fingerprint"`
	Labels      alert.Labels      `json:"labels"`
	State       string            `json:"state"`
	Value       *float64          `json:"value"`
	Users       *int64            `json:"users"`
	Annotations map[string]string `json:"annotations"`
	Action      string            `json:"action"`
}

// History reads the changes in [from, to) (of rule, when not empty) that
// stand: the newest version of each row, not retracted. At most limit.
func (s *CHStore) History(ctx context.Context, from, to time.Time, rule string, limit int) ([]HistoryChange, error) {
	q := "SELECT at, rule, fingerprint, labels, state, value, users, annotations, action FROM " + tableHistory +
		" FINAL WHERE retracted = 0 AND at >= {from:DateTime('UTC')} AND at < {to:DateTime('UTC')}"
	p := clickhouse.Parameters{"from": from.UTC().Format(time.DateTime), "to": to.UTC().Format(time.DateTime), "limit": fmt.Sprint(limit)}
	if rule != "" {
		q += " AND rule = {rule:String}"
		p["rule"] = rule
	}
	q += " ORDER BY at, rule, fingerprint LIMIT {limit:UInt64}"
	rows, err := s.conn.Query(bind(ctx, p), q)
	if err != nil {
		return nil, fmt.Errorf("cannot query %s: %w", tableHistory, err)
	}
	defer rows.Close()
	out := []HistoryChange{}
	for rows.Next() {
		c := HistoryChange{Labels: alert.Labels{}}
		var labels map[string]string
		if err := rows.Scan(&c.At, &c.Rule, &c.Fingerprint, &labels, &c.State, &c.Value, &c.Users, &c.Annotations, &c.Action); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", tableHistory, err)
		}
		c.At = c.At.UTC()
		// The table keeps labels as a map; they come back sorted by name.
		names := make([]string, 0, len(labels))
		for k := range labels {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			c.Labels = append(c.Labels, alert.Label{Name: k, Value: labels[k]})
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CHWatermarks reads the aggregators' checkpoints (migration 0003): per
// partition the newest state's clock (max_ts, the newest event time) and
// closed_through (every window ending at or before it is final).
type CHWatermarks struct {
	conn   driver.Conn
	group  string
	topics map[string]string // source → topic
}

// NewCHWatermarks reads the checkpoints of aggregator group group for the
// sources' topics.
func NewCHWatermarks(conn driver.Conn, group string, topics config.Topics) *CHWatermarks {
	return &CHWatermarks{conn: conn, group: group, topics: map[string]string{"client": topics.Client, "cdn": topics.CDN, "origin": topics.Origin}}
}

// Progress is, per source, the minimum over its partitions: a minute is
// complete when every partition's clock has passed its end, final when
// every partition has closed it. Partitions that never saw an event (no
// clock) hold nothing back.
func (w *CHWatermarks) Progress(ctx context.Context, sources []string) (map[string]Progress, error) {
	var topics []string
	bySource := map[string]string{}
	for _, s := range sources {
		if t, ok := w.topics[s]; ok {
			topics = append(topics, t)
			bySource[t] = s
		}
	}
	q := "SELECT topic, kafka_partition, argMax(state, version) FROM " + tableCheckpoints +
		" WHERE group_id = {group:String} AND topic IN {topics:Array(String)} GROUP BY topic, kafka_partition"
	// Array parameters are written in ClickHouse's literal syntax.
	p := clickhouse.Parameters{"group": w.group, "topics": toCHArray(topics)}
	rows, err := w.conn.Query(bind(ctx, p), q)
	if err != nil {
		return nil, fmt.Errorf("cannot query %s: %w", tableCheckpoints, err)
	}
	defer rows.Close()
	out := map[string]Progress{}
	for rows.Next() {
		var topic, state string
		var part uint32
		if err := rows.Scan(&topic, &part, &state); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", tableCheckpoints, err)
		}
		var cp aggregator.Checkpoint
		if err := json.Unmarshal([]byte(state), &cp); err != nil {
			return nil, fmt.Errorf("checkpoint of %s/%d is not valid JSON: %w", topic, part, err)
		}
		if cp.MaxTS == math.MinInt64 {
			continue
		}
		src := bySource[topic]
		c, f := time.UnixMilli(cp.MaxTS).UTC(), time.UnixMilli(max(cp.ClosedThrough, 0)).UTC()
		if prev, ok := out[src]; ok {
			if prev.Complete.Before(c) {
				c = prev.Complete
			}
			if prev.Final.Before(f) {
				f = prev.Final
			}
		}
		out[src] = Progress{Complete: c, Final: f}
	}
	return out, rows.Err()
}

// toCHArray writes strings as a ClickHouse array literal for a bound
// Array(String) parameter, quotes and backslashes escaped.
func toCHArray(ss []string) string {
	b := []byte{'['}
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\'')
		for _, r := range []byte(s) {
			if r == '\'' || r == '\\' {
				b = append(b, '\\')
			}
			b = append(b, r)
		}
		b = append(b, '\'')
	}
	return string(append(b, ']'))
}

// QuerierRows reads minute rows through the query library (Querier.MinuteRows).
type QuerierRows struct{ Q *query.Querier }

// Rows implements RowSource.
func (r QuerierRows) Rows(ctx context.Context, source string, set query.GroupingSet, metrics []string, from, to time.Time, filter alert.Labels) ([]alert.Row, bool, error) {
	req := query.RowsRequest{Source: source, Set: set.Name, Metrics: metrics, From: from, To: to}
	for _, f := range filter {
		req.Filters = append(req.Filters, query.Filter{Dim: f.Name, Value: f.Value})
	}
	mrs, err := r.Q.MinuteRows(ctx, req)
	if err != nil {
		return nil, false, err
	}
	out := make([]alert.Row, len(mrs))
	final := true
	for i, m := range mrs {
		row := alert.Row{Minute: m.Minute, Source: source, Dims: make(alert.Labels, len(set.Dims)), Metrics: make(map[string]alert.Value, len(metrics))}
		for j, d := range set.Dims {
			row.Dims[j] = alert.Label{Name: d, Value: m.Dims[d]}
		}
		for j, name := range metrics {
			if v := m.Values[j]; v != nil {
				row.Metrics[name] = alert.Value{V: *v, Valid: true}
			} else {
				row.Metrics[name] = alert.Value{}
			}
		}
		out[i] = row
		final = final && m.Final
	}
	return out, final, nil
}
