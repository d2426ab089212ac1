package chraw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/qoscope/qoscope/schemas"
)

// DefaultBatchRows is the rows per INSERT of both loaders: what a pipeline
// that batches events before ClickHouse would send.
const DefaultBatchRows = 100_000

// columns holds one batch as typed column slices, in Columns order, so the
// native insert appends whole columns (no per-row []any).
type columns struct {
	v                                                     []uint8
	typ                                                   []int8
	ts, recvTS                                            []int64
	userID, sessionID, streamID, vendor, node, ip         []string
	country, province, city, isp, platform, clientVersion []string
	quality, role                                         []string
	ok                                                    []bool
	connectMS                                             []uint64
	errMsg                                                []string
	firstFrameMS, durationMS                              []uint64
	media                                                 []string
	videoBuf, audioBuf                                    []*uint64
	bitrate, fps                                          []float64
	stalled                                               []bool
	reason                                                []string
	watchMS                                               []uint64
	dropped, cacheHit                                     []bool
	status                                                []uint16
	bytes, ttfbMS                                         []uint64
	line, egressISP                                       []string
	rttMS                                                 []float64
	// bufs backs the Nullable pointers of one batch.
	bufs []uint64
}

func u64(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

// add appends one event. Keeping its strings is safe: ParseLine decodes
// every event's strings into a buffer of its own.
func (c *columns) add(e *schemas.Event) {
	c.v = append(c.v, uint8(e.V))
	c.typ = append(c.typ, int8(e.Type))
	c.ts = append(c.ts, e.TS)
	c.recvTS = append(c.recvTS, e.RecvTS)
	c.userID = append(c.userID, e.UserID)
	c.sessionID = append(c.sessionID, e.SessionID)
	c.streamID = append(c.streamID, e.StreamID)
	c.vendor = append(c.vendor, e.Vendor)
	c.node = append(c.node, e.Node)
	c.ip = append(c.ip, e.IP)
	c.country = append(c.country, e.Country)
	c.province = append(c.province, e.Province)
	c.city = append(c.city, e.City)
	c.isp = append(c.isp, e.ISP)
	c.platform = append(c.platform, e.Platform)
	c.clientVersion = append(c.clientVersion, e.ClientVersion)
	c.quality = append(c.quality, e.Quality)
	c.role = append(c.role, e.Role)
	c.ok = append(c.ok, e.OK)
	c.connectMS = append(c.connectMS, u64(e.ConnectMS))
	c.errMsg = append(c.errMsg, e.Error)
	c.firstFrameMS = append(c.firstFrameMS, u64(e.FirstFrameMS))
	c.durationMS = append(c.durationMS, u64(e.DurationMS))
	c.media = append(c.media, e.Media)
	c.videoBuf = append(c.videoBuf, c.opt(e, schemas.PropVideoBufferMS, e.VideoBufferMS))
	c.audioBuf = append(c.audioBuf, c.opt(e, schemas.PropAudioBufferMS, e.AudioBufferMS))
	c.bitrate = append(c.bitrate, e.BitrateKbps)
	c.fps = append(c.fps, e.FPS)
	c.stalled = append(c.stalled, e.Stalled)
	c.reason = append(c.reason, e.Reason)
	c.watchMS = append(c.watchMS, u64(e.WatchMS))
	c.dropped = append(c.dropped, e.Dropped)
	c.cacheHit = append(c.cacheHit, e.CacheHit)
	c.status = append(c.status, uint16(e.Status))
	c.bytes = append(c.bytes, u64(e.Bytes))
	c.ttfbMS = append(c.ttfbMS, u64(e.TTFBMS))
	c.line = append(c.line, e.Line)
	c.egressISP = append(c.egressISP, e.EgressISP)
	c.rttMS = append(c.rttMS, e.RTTMS)
}

// opt returns a pointer to v when e carries member p, nil otherwise (NULL).
// bufs is preallocated for two values per event, so it never moves and the
// pointers stay valid.
func (c *columns) opt(e *schemas.Event, p schemas.Prop, v int64) *uint64 {
	if !e.Has(p) {
		return nil
	}
	c.bufs = append(c.bufs, u64(v))
	return &c.bufs[len(c.bufs)-1]
}

// slices returns the column slices in Columns order.
func (c *columns) slices() []any {
	return []any{c.v, c.typ, c.ts, c.recvTS, c.userID, c.sessionID, c.streamID, c.vendor, c.node, c.ip,
		c.country, c.province, c.city, c.isp, c.platform, c.clientVersion, c.quality, c.role,
		c.ok, c.connectMS, c.errMsg, c.firstFrameMS, c.durationMS, c.media, c.videoBuf, c.audioBuf,
		c.bitrate, c.fps, c.stalled, c.reason, c.watchMS, c.dropped, c.cacheHit, c.status, c.bytes,
		c.ttfbMS, c.line, c.egressISP, c.rttMS}
}

// reset empties c with room for n events, so a batch never regrows a column.
func (c *columns) reset(n int) {
	u8 := func() []uint8 { return make([]uint8, 0, n) }
	i64 := func() []int64 { return make([]int64, 0, n) }
	u64 := func() []uint64 { return make([]uint64, 0, n) }
	str := func() []string { return make([]string, 0, n) }
	bl := func() []bool { return make([]bool, 0, n) }
	f64 := func() []float64 { return make([]float64, 0, n) }
	*c = columns{
		v: u8(), typ: make([]int8, 0, n), ts: i64(), recvTS: i64(),
		userID: str(), sessionID: str(), streamID: str(), vendor: str(), node: str(), ip: str(),
		country: str(), province: str(), city: str(), isp: str(), platform: str(), clientVersion: str(),
		quality: str(), role: str(), ok: bl(), connectMS: u64(), errMsg: str(), firstFrameMS: u64(),
		durationMS: u64(), media: str(), videoBuf: make([]*uint64, 0, n), audioBuf: make([]*uint64, 0, n),
		bitrate: f64(), fps: f64(), stalled: bl(), reason: str(), watchMS: u64(), dropped: bl(),
		cacheHit: bl(), status: make([]uint16, 0, n), bytes: u64(), ttfbMS: u64(), line: str(),
		egressISP: str(), rttMS: f64(), bufs: make([]uint64, 0, 2*n),
	}
}

// LineSource yields canonical NDJSON lines (events.File satisfies it).
type LineSource interface {
	Len() int
	Line(i int) []byte
}

// LoadNative parses every line with schemas.ParseLine and inserts the
// events into db.table with clickhouse-go's native batch insert, one batch
// of typed columns per batchRows events. ctx may carry query options (e.g.
// a ProfileEvents callback).
func LoadNative(ctx context.Context, conn driver.Conn, db, table string, src LineSource, batchRows int) error {
	if err := CheckIdent("database", db); err != nil {
		return err
	}
	if err := CheckIdent("table", table); err != nil {
		return err
	}
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	insert := fmt.Sprintf("INSERT INTO `%s`.`%s` (%s)", db, table, columnList())
	var cols columns
	var e schemas.Event
	n := src.Len()
	for start := 0; start < n; start += batchRows {
		end := min(start+batchRows, n)
		cols.reset(end - start)
		for i := start; i < end; i++ {
			if err := schemas.ParseLine(src.Line(i), &e); err != nil {
				return fmt.Errorf("event %d: %w", i+1, err)
			}
			cols.add(&e)
		}
		batch, err := conn.PrepareBatch(ctx, insert)
		if err != nil {
			return fmt.Errorf("cannot prepare insert into %s.%s: %w", db, table, err)
		}
		for i, col := range cols.slices() {
			if err := batch.Column(i).Append(col); err != nil {
				batch.Abort()
				return fmt.Errorf("cannot append column %s: %w", Columns[i].Name, err)
			}
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("cannot insert into %s.%s: %w", db, table, err)
		}
	}
	return nil
}

// HTTPLoader inserts canonical NDJSON over ClickHouse's HTTP interface as
// `INSERT ... FORMAT JSONEachRow`: the server parses the bytes that sit in
// Kafka, the client only frames batches.
type HTTPLoader struct {
	// URL is the HTTP interface, e.g. http://127.0.0.1:8123.
	URL string
	// User, Password for HTTP basic auth (optional).
	User, Password string
	Client         *http.Client
}

// Load sends src in batches of batchRows lines, one INSERT each, and
// returns the query ids it used (for system.query_log).
func (l *HTTPLoader) Load(ctx context.Context, db, table string, src LineSource, batchRows int, queryIDPrefix string) ([]string, error) {
	if err := CheckIdent("database", db); err != nil {
		return nil, err
	}
	if err := CheckIdent("table", table); err != nil {
		return nil, err
	}
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	client := l.Client
	if client == nil {
		client = http.DefaultClient
	}
	var ids []string
	var body bytes.Buffer
	n := src.Len()
	for start, b := 0, 0; start < n; start, b = start+batchRows, b+1 {
		end := min(start+batchRows, n)
		body.Reset()
		for i := start; i < end; i++ {
			body.Write(src.Line(i))
			body.WriteByte('\n')
		}
		id := fmt.Sprintf("%s-%d", queryIDPrefix, b)
		if err := l.post(ctx, client, db, table, id, &body); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (l *HTTPLoader) post(ctx context.Context, client *http.Client, db, table, queryID string, body io.Reader) error {
	q := url.Values{}
	q.Set("query", fmt.Sprintf("INSERT INTO `%s`.`%s` FORMAT JSONEachRow", db, table))
	q.Set("query_id", queryID)
	// Unknown members (Extra) are skipped; ts/recv_ts are Unix ms integers.
	q.Set("input_format_skip_unknown_fields", "1")
	q.Set("date_time_input_format", "basic")
	q.Set("wait_end_of_query", "1")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(l.URL, "/")+"/?"+q.Encode(), body)
	if err != nil {
		return fmt.Errorf("cannot build insert request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if l.User != "" {
		req.SetBasicAuth(l.User, l.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot insert into %s.%s over http: %w", db, table, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot insert into %s.%s over http: status %d: %s", db, table, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
