package chraw

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/bench/peers/compare"
	"github.com/qoscope/qoscope/bench/peers/events"
	"github.com/qoscope/qoscope/gen"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/testenv"
)

const goldenDir = "../../../aggregator/testdata/golden"

// loaders returns the loaders the server supports: native always, HTTP
// when the environment names the HTTP interface.
func loaders(env *testenv.ClickHouseEnv) []string {
	if env.HTTP == "" {
		return []string{LoaderNative}
	}
	return []string{LoaderNative, LoaderHTTP}
}

// TestGoldenCases runs the SQL peer on the aggregator's hand-written golden
// event files and checks its rows against their hand-computed expected rows
// (testdata/golden/README.md rules: omitted metrics are 0 or null, 1e-9 for
// rates and means, 1 % for quantiles), in the same order.
//
// The "late" case is left out on purpose: this peer has no watermark and
// counts every event in its window however late it arrived, so it differs
// from qoscope exactly on the events qoscope counts as late. Generated
// files have none (stalls, the latest events, lag < 61 s < 2 min).
func TestGoldenCases(t *testing.T) {
	env := testenv.ClickHouse(t)
	for _, name := range []string{"client", "push_cdn", "origin"} {
		dir := filepath.Join(goldenDir, name)
		f, err := events.Read(filepath.Join(dir, "events.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "config.yaml")
		if _, err := os.Stat(cfgPath); err != nil {
			cfgPath = ""
		}
		cfg, err := aggregator.LoadConfig(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		want, err := compare.ReadFile(filepath.Join(dir, "expected.jsonc"))
		if err != nil {
			t.Fatal(err)
		}
		for _, loader := range loaders(env) {
			t.Run(name+"/"+loader, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				res, err := Run(ctx, Options{
					DSN: env.DSN, HTTPURL: env.HTTP, Loader: loader, Table: "raw_" + name + "_" + loader,
					GroupingSets: cfg.GroupingSets, OriginNoDataMinutes: cfg.OriginNoDataMinutes,
				}, f)
				if err != nil {
					t.Fatal(err)
				}
				rep := compare.Compare(want, res.Rows, compare.Options{WantOmitsDefaults: true})
				if !rep.OK() {
					t.Fatalf("%s", rep.Summary(40))
				}
				if len(res.Rows) != len(want) {
					t.Fatalf("%d rows, want %d", len(res.Rows), len(want))
				}
				for i := range want {
					if res.Rows[i].Key() != want[i].Key() {
						t.Fatalf("row %d is %s, want %s (output order)", i, res.Rows[i].Key(), want[i].Key())
					}
				}
				if res.Load.Events != int64(f.Len()) || res.Load.Wall <= 0 {
					t.Fatalf("load step %+v", res.Load)
				}
			})
		}
	}
}

// TestAgreesWithOfflineAggregator generates a few minutes of traffic with
// incidents (failed pushes and a silent origin, for push rates and no_data
// rows), runs qoscope's offline aggregation and this peer on the same
// events, and requires every row and metric to agree (exact counts, 1e-9
// rates and means, 1 % quantiles).
func TestAgreesWithOfflineAggregator(t *testing.T) {
	env := testenv.ClickHouse(t)
	for _, scenario := range []string{"push-failure-spike", "origin-silent"} {
		t.Run(scenario, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.ndjson")
			o := gen.DefaultOptions()
			o.Mode, o.Progress, o.Log.Level = gen.ModeFast, "none", "warn"
			o.Scenario, o.Users, o.Duration, o.Output = scenario, 150, 8*time.Minute, path
			if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := aggregator.RunOffline(context.Background(), aggregator.OfflineOptions{Inputs: []string{path}, Output: "-"}, &out); err != nil {
				t.Fatal(err)
			}
			want, err := compare.ReadRows(&out)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), `"source":"late"`) {
				t.Fatal("the generated file has late events; this peer has no lateness")
			}
			f, err := events.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := Run(ctx, Options{DSN: env.DSN, HTTPURL: env.HTTP, Table: "raw_gen"}, f)
			if err != nil {
				t.Fatal(err)
			}
			rep := compare.Compare(want, res.Rows, compare.Options{})
			if !rep.OK() {
				t.Fatalf("%s", rep.Summary(40))
			}
			var noData int
			for _, r := range want {
				if m, ok := r.Metric("no_data"); ok && m.Value == 1 {
					noData++
				}
			}
			t.Logf("%d events, %s; %d no_data rows", f.Len(), rep.Summary(0), noData)
		})
	}
}

// TestClientWindowQuery checks the one-window client query (what the
// chkafka peer's paced freshness runs per window) against qoscope's
// offline rows of that window only, for every window of a generated file.
func TestClientWindowQuery(t *testing.T) {
	env := testenv.ClickHouse(t)
	path := filepath.Join(t.TempDir(), "events.ndjson")
	o := gen.DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = gen.ModeFast, "none", "warn"
	o.Users, o.Duration, o.Output = 150, 4*time.Minute, path
	if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := aggregator.RunOffline(context.Background(), aggregator.OfflineOptions{Inputs: []string{path}, Output: "-"}, &out); err != nil {
		t.Fatal(err)
	}
	all, err := compare.ReadRows(&out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := events.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Run loads the table (and checks the full queries); the window queries
	// read it afterwards.
	if _, err := Run(ctx, Options{DSN: env.DSN, Table: "raw_window", KeepTable: true}, f); err != nil {
		t.Fatal(err)
	}
	conn, err := chconn.Open(ctx, env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	db, err := chconn.Database(env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS `"+db+"`.raw_window SYNC") })
	byWindow := map[int64][]compare.Row{}
	for _, r := range all {
		if r.Source == "client" {
			byWindow[r.WindowStart.UnixMilli()] = append(byWindow[r.WindowStart.UnixMilli()], r)
		}
	}
	if len(byWindow) < 4 {
		t.Fatalf("%d client windows in 4 minutes", len(byWindow))
	}
	gs := aggregator.DefaultGroupingSets()
	for w, want := range byWindow {
		q, err := ClientWindowQuery(db, "raw_window", gs.Client, w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadQuery(ctx, conn, q)
		if err != nil {
			t.Fatal(err)
		}
		SortRows(got, gs)
		if rep := compare.Compare(want, got, compare.Options{}); !rep.OK() || len(got) != len(want) {
			t.Fatalf("window %s: %d rows, want %d; %s", time.UnixMilli(w).UTC(), len(got), len(want), rep.Summary(20))
		}
	}
}
