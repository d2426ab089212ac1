package runner

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
)

// insertEnv is a migrated test database with both inserters.
type insertEnv struct {
	ch   *testenv.ClickHouseEnv
	ins  map[string]Inserter
	mem  memory.Allocator
	plan *aggregator.Plan
}

func newInsertEnv(t testing.TB) *insertEnv {
	t.Helper()
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: ch.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	e := &insertEnv{ch: ch, ins: map[string]Inserter{}, mem: memory.NewGoAllocator()}
	n, err := NewNativeInserter(ch.Conn, ch.Database)
	if err != nil {
		t.Fatal(err)
	}
	e.ins[InsertNative] = n
	if ch.HTTP != "" {
		user, pass, _, err := dsnAuth(ch.DSN)
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewArrowHTTPInserter(&http.Client{}, ch.HTTP, ch.Database, user, pass)
		if err != nil {
			t.Fatal(err)
		}
		e.ins[InsertArrowHTTP] = h
	} else if testenv.Required() {
		t.Fatalf("%s is required to test %s", testenv.EnvClickHouseHTTP, InsertArrowHTTP)
	}
	return e
}

func (e *insertEnv) insert(t testing.TB, mode string, rows []aggregator.Row, late []aggregator.LateRow) {
	t.Helper()
	recs := BuildRecords(e.mem, rows, late, 1<<20)
	defer func() {
		for _, r := range recs {
			r.Record.Release()
		}
	}()
	for _, r := range recs {
		if err := e.ins[mode].Insert(context.Background(), r); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
}

func (e *insertEnv) count(t testing.TB, q string) uint64 {
	t.Helper()
	var n uint64
	if err := e.ch.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
