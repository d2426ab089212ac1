package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// Inserter writes one table's Arrow record to ClickHouse. It returns nil
// only when the server acknowledged every row.
type Inserter interface {
	Insert(ctx context.Context, tr TableRecord) error
	Mode() string
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// quoteIdent back-quotes a name that identRe accepted: table and column
// names are the package's own constants, the database comes from the DSN
// and is checked once in newInserter.
func quoteIdent(s string) string { return "`" + s + "`" }

func insertSQL(db string, spec *tableSpec) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(quoteIdent(db))
	b.WriteByte('.')
	b.WriteString(quoteIdent(spec.name))
	b.WriteString(" (")
	for i, c := range spec.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c))
	}
	b.WriteByte(')')
	return b.String()
}

// NativeInserter appends the record's columns to a clickhouse-go batch
// (native protocol): fixed-width columns are passed as the Arrow buffers'
// own slices, strings and maps as views of the Arrow arrays, so no row is
// ever a []any.
type NativeInserter struct {
	conn driver.Conn
	db   string
}

// NewNativeInserter inserts into database db through conn.
func NewNativeInserter(conn driver.Conn, db string) (*NativeInserter, error) {
	if !identRe.MatchString(db) {
		return nil, fmt.Errorf("clickhouse database name %q: only letters, digits and _ are supported", db)
	}
	return &NativeInserter{conn: conn, db: db}, nil
}

// Mode implements Inserter.
func (n *NativeInserter) Mode() string { return InsertNative }

// Insert implements Inserter.
func (n *NativeInserter) Insert(ctx context.Context, tr TableRecord) error {
	batch, err := n.conn.PrepareBatch(ctx, insertSQL(n.db, tr.spec), driver.WithReleaseConnection())
	if err != nil {
		return fmt.Errorf("cannot prepare insert into %s: %w", tr.spec.name, err)
	}
	rec := tr.Record
	for i := range int(rec.NumCols()) {
		v, err := nativeColumn(rec.Column(i))
		if err == nil {
			err = batch.Column(i).Append(v)
		}
		if err != nil {
			_ = batch.Abort()
			return fmt.Errorf("cannot insert into %s: column %s: %w", tr.spec.name, tr.spec.cols[i], err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tr.spec.name, err)
	}
	return nil
}

// nativeColumn converts an Arrow array into a column value clickhouse-go's
// Append takes.
func nativeColumn(a arrow.Array) (any, error) {
	switch a := a.(type) {
	case *array.Uint64:
		return a.Uint64Values(), nil
	case *array.Uint32:
		return a.Uint32Values(), nil
	case *array.Uint8:
		return a.Uint8Values(), nil
	case *array.Float64:
		return a.Float64Values(), nil
	case *array.Timestamp:
		ts := a.TimestampValues()
		out := make([]int64, len(ts))
		for i, t := range ts {
			out[i] = int64(t)
		}
		return out, nil
	case *array.String:
		out := make([]string, a.Len())
		for i := range out {
			out[i] = a.Value(i)
		}
		return out, nil
	case *array.Map:
		offs := a.Offsets()
		out := make([]column.IterableOrderedMap, a.Len())
		switch keys := a.Keys().(type) {
		case *array.Int32:
			kv, iv := keys.Int32Values(), a.Items().(*array.Uint64).Uint64Values()
			views := make([]histView, a.Len())
			for i := range views {
				views[i] = histView{keys: kv[offs[i]:offs[i+1]], vals: iv[offs[i]:offs[i+1]]}
				out[i] = &views[i]
			}
		case *array.String:
			items := a.Items().(*array.String)
			views := make([]dimsView, a.Len())
			for i := range views {
				views[i] = dimsView{keys: keys, vals: items, from: int(offs[i]), to: int(offs[i+1])}
				out[i] = &views[i]
			}
		default:
			return nil, fmt.Errorf("unsupported map key type %s", keys.DataType())
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported arrow type %s", a.DataType())
}

// histView presents one histogram map of an Arrow array to clickhouse-go.
type histView struct {
	keys []int32
	vals []uint64
	i    int
}

func (h *histView) Put(any, any)                 {}
func (h *histView) Iterator() column.MapIterator { h.i = -1; return h }
func (h *histView) Next() bool                   { h.i++; return h.i < len(h.keys) }
func (h *histView) Key() any                     { return h.keys[h.i] }
func (h *histView) Value() any                   { return h.vals[h.i] }

// dimsView presents one dims map of an Arrow array to clickhouse-go.
type dimsView struct {
	keys, vals *array.String
	from, to   int
	i          int
}

func (d *dimsView) Put(any, any)                 {}
func (d *dimsView) Iterator() column.MapIterator { d.i = d.from - 1; return d }
func (d *dimsView) Next() bool                   { d.i++; return d.i < d.to }
func (d *dimsView) Key() any                     { return d.keys.Value(d.i) }
func (d *dimsView) Value() any                   { return d.vals.Value(d.i) }

// ArrowHTTPInserter posts the record as an Arrow IPC stream to
// ClickHouse's HTTP interface: INSERT INTO db.t (cols) FORMAT ArrowStream.
// The server reads the Arrow buffers directly.
type ArrowHTTPInserter struct {
	client   *http.Client
	base     string // http[s]://host:port
	db       string
	user     string
	password string
	// Settings are sent with every insert as query parameters (ClickHouse
	// settings); nil for none. Set before the first Insert.
	Settings url.Values
	bufs     sync.Pool
}

// NewArrowHTTPInserter inserts into database db at base (http[s]://host:port).
func NewArrowHTTPInserter(client *http.Client, base, db, user, password string) (*ArrowHTTPInserter, error) {
	if !identRe.MatchString(db) {
		return nil, fmt.Errorf("clickhouse database name %q: only letters, digits and _ are supported", db)
	}
	if client == nil {
		client = &http.Client{}
	}
	return &ArrowHTTPInserter{client: client, base: strings.TrimRight(base, "/"), db: db, user: user, password: password,
		bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}, nil
}

// Mode implements Inserter.
func (h *ArrowHTTPInserter) Mode() string { return InsertArrowHTTP }

// Insert implements Inserter.
func (h *ArrowHTTPInserter) Insert(ctx context.Context, tr TableRecord) error {
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.bufs.Put(buf)
	w := ipc.NewWriter(buf, ipc.WithSchema(tr.Record.Schema()))
	if err := w.Write(tr.Record); err != nil {
		return fmt.Errorf("cannot encode arrow for %s: %w", tr.spec.name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("cannot encode arrow for %s: %w", tr.spec.name, err)
	}
	q := url.Values{}
	for k, v := range h.Settings {
		q[k] = v
	}
	q.Set("query", insertSQL(h.db, tr.spec)+" FORMAT ArrowStream")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/?"+q.Encode(), bytes.NewReader(buf.Bytes()))
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tr.spec.name, err)
	}
	req.Header.Set("Content-Type", "application/vnd.apache.arrow.stream")
	if h.user != "" {
		req.Header.Set("X-ClickHouse-User", h.user)
	}
	if h.password != "" {
		req.Header.Set("X-ClickHouse-Key", h.password)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot insert into %s: %w", tr.spec.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	code, _ := strconv.Atoi(resp.Header.Get("X-ClickHouse-Exception-Code"))
	return fmt.Errorf("cannot insert into %s: %w", tr.spec.name, &HTTPError{Status: resp.StatusCode, Code: int32(code), Message: firstLine(string(msg))})
}

// HTTPError is a ClickHouse HTTP interface failure.
type HTTPError struct {
	Status  int
	Code    int32 // ClickHouse error code, 0 if none was given
	Message string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("clickhouse http %d (code %d): %s", e.Status, e.Code, e.Message)
}

// firstLine keeps an error message short: ClickHouse appends stack traces,
// and parse errors may quote input.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.TrimSpace(s)
}

// httpDSN is a clickhouse-go DSN for the HTTP interface at base.
func httpDSN(base, user, password, db string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	u.Path = "/" + db
	return u.String()
}

// withSettings adds ClickHouse settings to a clickhouse-go DSN (its
// unknown query parameters are sent as settings with every query).
func withSettings(dsn string, settings url.Values) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("clickhouse.dsn: not a URL") // never echo a DSN: it may hold a password
	}
	q := u.Query()
	for k, v := range settings {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dsnAuth returns the user, password and database of a clickhouse-go DSN.
func dsnAuth(dsn string) (user, password, db string, err error) {
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return "", "", "", fmt.Errorf("cannot parse clickhouse.dsn (value not shown)")
	}
	return o.Auth.Username, o.Auth.Password, o.Auth.Database, nil
}
