package runner

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoscope/qoscope/aggregator"
)

// Both insert modes store the same table contents, and the minute tables
// hold exactly what the rows say (sums of every raw column).
func TestInsertModesStoreTheSameRows(t *testing.T) {
	events := genEvents(t, 300, 4*time.Minute)
	final, prov, late := partitionRows(t, events)
	if len(prov) == 0 || len(final) == 0 {
		t.Fatalf("%d provisional, %d final rows: the test would prove less", len(prov), len(final))
	}
	sums := map[string]uint64{}
	for _, r := range final {
		switch {
		case r.Client != nil:
			sums["client_users"] += r.Client.Users
			sums["client_samples"] += r.Client.Samples
			sums["client_ff"] += r.Client.FirstFrameMS.Count()
		case r.CDN != nil:
			sums["cdn_bytes"] += r.CDN.Bytes
		case r.Origin != nil:
			sums["origin_samples"] += r.Origin.Samples
		}
	}
	checksum := map[string][3]uint64{}
	for _, mode := range []string{InsertNative, InsertArrowHTTP} {
		e := newInsertEnv(t)
		if e.ins[mode] == nil {
			continue
		}
		e.insert(t, mode, prov, nil)
		if n := e.count(t, "SELECT count() FROM client_minute FINAL WHERE final = 0"); n == 0 {
			t.Errorf("%s: provisional rows missing", mode)
		}
		e.insert(t, mode, final, late)
		if n := e.count(t, "SELECT count() FROM client_minute FINAL WHERE final = 0"); n != 0 {
			t.Errorf("%s: %d provisional rows survive their final rows", mode, n)
		}
		got := map[string]uint64{
			"client_users":   e.count(t, "SELECT sum(users) FROM client_minute FINAL"),
			"client_samples": e.count(t, "SELECT sum(samples) FROM client_minute FINAL"),
			"client_ff":      e.count(t, "SELECT sum(arraySum(mapValues(first_frame_ms_hist))) FROM client_minute FINAL"),
			"cdn_bytes":      e.count(t, "SELECT sum(bytes) FROM cdn_minute FINAL"),
			"origin_samples": e.count(t, "SELECT sum(samples) FROM origin_minute FINAL"),
		}
		for k, want := range sums {
			if got[k] != want {
				t.Errorf("%s: %s = %d, want %d", mode, k, got[k], want)
			}
		}
		var cs [3]uint64
		for i, tbl := range []string{"client_minute", "cdn_minute", "origin_minute"} {
			cs[i] = e.count(t, "SELECT groupBitXor(cityHash64(*)) FROM (SELECT * EXCEPT (written_at) FROM "+tbl+" FINAL)")
		}
		checksum[mode] = cs
		if n := e.count(t, "SELECT count() FROM late_events"); n != uint64(len(late)) {
			t.Errorf("%s: %d late rows, want %d", mode, n, len(late))
		}
	}
	if len(checksum) == 2 && checksum[InsertNative] != checksum[InsertArrowHTTP] {
		t.Errorf("table checksums differ: native %x, arrow_http %x", checksum[InsertNative], checksum[InsertArrowHTTP])
	}
}

// A replay re-inserts rows already written: the same final rows (same
// version), and provisional rows older than the final ones. Through the
// views nothing is counted twice, and a stale provisional row never
// replaces a final one; after a merge the tables hold one row per key.
func TestReplayedRowsReplaceNotAdd(t *testing.T) {
	events := genEvents(t, 200, 3*time.Minute)
	final, prov, late := partitionRows(t, events)
	e := newInsertEnv(t)
	mode := InsertNative
	if e.ins[InsertArrowHTTP] != nil {
		mode = InsertArrowHTTP
	}
	const q = `SELECT sum(users) + sum(stutter_users) + sum(samples) + sum(stalls) + sum(first_frames), count(), countIf(final = 0),
		(SELECT sum(requests) + sum(bytes) FROM cdn_minute_metrics), (SELECT sum(samples) FROM origin_minute_metrics),
		(SELECT sum(late_events) FROM late_events_metrics) FROM client_minute_metrics`
	read := func() [6]uint64 {
		var v [6]uint64
		if err := e.ch.Conn.QueryRow(t.Context(), q).Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]); err != nil {
			t.Fatal(err)
		}
		return v
	}
	var want [6]uint64
	keys := map[string]bool{}
	for _, r := range final {
		switch {
		case r.Client != nil:
			c := r.Client
			want[0] += c.Users + c.StutterUsers + c.Samples + c.Stalls + c.FirstFrames
			keys[rowKeyString(&r)] = true
		case r.CDN != nil:
			want[3] += r.CDN.Requests + r.CDN.Bytes
		case r.Origin != nil:
			want[4] += r.Origin.Samples
		}
	}
	want[1] = uint64(len(keys))
	for _, l := range late {
		want[5] += l.Count
	}

	e.insert(t, mode, prov, nil)
	e.insert(t, mode, final, late)
	once := read()
	if once != want {
		t.Fatalf("after one insert: %v, want %v", once, want)
	}
	e.insert(t, mode, final, late)
	e.insert(t, mode, prov, nil) // older provisional rows arrive again
	e.insert(t, mode, final, late)
	if got := read(); got != want {
		t.Fatalf("after re-inserting: %v, want %v", got, want)
	}
	for _, tbl := range []string{"client_minute", "cdn_minute", "origin_minute", "late_events"} {
		if err := e.ch.Conn.Exec(t.Context(), "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count(t, "SELECT count() FROM client_minute"); n != uint64(countSource(final, "client")) {
		t.Errorf("after merging, client_minute holds %d rows, want one per key: %d", n, countSource(final, "client"))
	}
}

func countSource(rows []aggregator.Row, src string) int {
	n := 0
	for _, r := range rows {
		if r.Source.String() == src {
			n++
		}
	}
	return n
}

func rowKeyString(r *aggregator.Row) string {
	s := fmt.Sprint(r.WindowStart, r.Grouping)
	for _, d := range r.Dims {
		s += "\x1f" + d.Value
	}
	return s
}

// On a cluster the runner sends distributed_foreground_insert with every
// insert: over HTTP as a query parameter, natively as a DSN parameter
// (which clickhouse-go sends as a setting). Credentials stay where they were.
func TestInsertSettingsReachTheServer(t *testing.T) {
	var got url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query()
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	h, err := NewArrowHTTPInserter(srv.Client(), srv.URL, "qoscope", "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	h.Settings = url.Values{"distributed_foreground_insert": {"1"}}
	final, _, late := partitionRows(t, genEvents(t, 50, time.Minute))
	recs := BuildRecords(memory.NewGoAllocator(), final, late, 1<<20)
	defer func() {
		for _, r := range recs {
			r.Record.Release()
		}
	}()
	if err := h.Insert(t.Context(), recs[0]); err != nil {
		t.Fatal(err)
	}
	if got.Get("distributed_foreground_insert") != "1" || !strings.HasPrefix(got.Get("query"), "INSERT INTO `qoscope`.") {
		t.Errorf("query parameters %v", got)
	}

	dsn, err := withSettings("clickhouse://u:p%40ss@h:9000/db?dial_timeout=5s", url.Values{"distributed_foreground_insert": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(opts.Settings["distributed_foreground_insert"]) != "1" || opts.Auth.Password != "p@ss" || opts.Auth.Database != "db" || opts.DialTimeout != 5*time.Second {
		t.Errorf("parsed %s: settings %v, auth %+v, dial timeout %v", dsn, opts.Settings, opts.Auth, opts.DialTimeout)
	}
}
