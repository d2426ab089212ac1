package score

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"
)

// gzipCopy writes src gzipped into dir, to read a .gz input like a real run.
func gzipCopy(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src)+".gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// The scenario of testdata/offline (at 12:05, half-life 1m, threshold 10
// users, trend over 2 minutes, quality weight 0.5), computed by hand:
//
// Quality (12:04 only; the open 12:05 row and the non-{vendor,province,isp}
// rows are not read):
//
//	cdn-a gd/telecom: 20 users, 1000 ms, stutter 0.1 → 100 − 10 = 90, province_isp
//	cdn-a bj/unicom:  5 users < 10; bj 5; north 5 → country: 25 users,
//	                  (20·1000 + 5·5000)/25 = 1800 ms → 80, stutter 2/25 → −8 = 72
//	cdn-b gd/telecom: 20 users, 3000 ms → 50, failures 0.1 → −10 = 40, province_isp
//	cdn-b bj/unicom:  country = its gd rows: 40
//	cdn-c: no rows: none, quality null, 50 used in the score
//
// Bandwidth (12:03, 12:04; a two-point line read at 12:05):
//
//	cdn-a gd 60, 80 → 100; bj 20, 20 → 20: pool current 100, predicted 120
//	cdn-b gd 10, 5 → 0: current 5, predicted 0
//	cdn-z gd 10, 10 → 10 (no contract: demand only)
//	demand gd/telecom 100 + 0 + 10 = 110, bj/unicom 20
//
// Scores: cdn-a load 120 ≥ 100: 0.5·80/200 + 0.5·q → gd 0.65, bj 0.56
// cdn-b load 5 < 10: 1 + 0.5·(5/10 + 95/100)/2 + 0.5·0.4 = 1.5625
// cdn-c load 0 ≥ 0: 0.5·30/30 + 0.5·0.5 = 0.75
//
// Ratios: gd by 0.65 : 1.5625 : 0.75 (sum 2.9625), bj (cdn-b blacklisted)
// by 0.56 : 0.75 (sum 1.31). cdn-c would carry 110·0.75/2.9625 +
// 20·0.75/1.31 = 39.3 > 30: scaled by f = 30/39.3 in both regions, and the
// rest of each region goes to the others by their scores.
func TestOfflineScenario(t *testing.T) {
	dir := t.TempDir()
	cdnGz := gzipCopy(t, "testdata/offline/cdn.ndjson", dir)
	out := filepath.Join(dir, "table.json")
	var logBuf bytes.Buffer
	err := Run(context.Background(), Options{
		Config:    "testdata/offline/scores.yaml",
		Inputs:    []string{"testdata/offline/client.ndjson", cdnGz},
		At:        time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC),
		Blacklist: "testdata/offline/blacklist.yaml",
		Output:    out,
	}, nil, zerolog.New(&logBuf))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The document's key order is the one the scheduler contract shows.
	if !bytes.HasPrefix(raw, []byte(`{"at":"2026-11-20T12:05:00Z","data_until":"2026-11-20T12:05:00Z","regions":[{"province":"beijing","isp":"unicom","demand_mbps":20,"overloaded":false,"vendors":[{"vendor":"cdn-a","level":"country","quality":72,"bandwidth_mbps":100,"predicted_mbps":120,"guaranteed_mbps":100,"max_mbps":200,"score":0.56`)) {
		t.Fatalf("document starts differently:\n%s", raw)
	}
	if !bytes.HasSuffix(raw, []byte("}\n")) || bytes.Count(raw, []byte("\n")) != 1 {
		t.Fatalf("want one JSON line, got %q", raw)
	}
	var got Table
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}

	cGd0, cBj0 := 0.75/2.9625, 0.75/1.31
	f := 30 / (110*cGd0 + 20*cBj0)
	cGd, cBj := cGd0*f, cBj0*f
	aGd, bGd := (1-cGd)*0.65/(0.65+1.5625), (1-cGd)*1.5625/(0.65+1.5625)
	q := func(v float64) *float64 { return &v }
	reason := "5xx storm"
	want := []Region{
		{Province: "beijing", ISP: "unicom", DemandMbps: 20, Vendors: []VendorScore{
			{Vendor: "cdn-a", Level: LevelCountry, Quality: q(72), BandwidthMbps: 100, PredictedMbps: 120, GuaranteedMbps: 100, MaxMbps: 200, Score: 0.56, Ratio: 1 - cBj},
			{Vendor: "cdn-b", Level: LevelCountry, Quality: q(40), BandwidthMbps: 5, PredictedMbps: 0, GuaranteedMbps: 10, MaxMbps: 100, Score: 1.5625, Ratio: 0, Blacklisted: true, Reason: &reason},
			{Vendor: "cdn-c", Level: LevelNone, MaxMbps: 30, Score: 0.75, Ratio: cBj},
		}},
		{Province: "guangdong", ISP: "telecom", DemandMbps: 110, Vendors: []VendorScore{
			{Vendor: "cdn-a", Level: LevelProvinceISP, Quality: q(90), BandwidthMbps: 100, PredictedMbps: 120, GuaranteedMbps: 100, MaxMbps: 200, Score: 0.65, Ratio: aGd},
			{Vendor: "cdn-b", Level: LevelProvinceISP, Quality: q(40), BandwidthMbps: 5, PredictedMbps: 0, GuaranteedMbps: 10, MaxMbps: 100, Score: 1.5625, Ratio: bGd},
			{Vendor: "cdn-c", Level: LevelNone, MaxMbps: 30, Score: 0.75, Ratio: cGd},
		}},
	}
	if len(got.Regions) != len(want) {
		t.Fatalf("got %d regions, want %d", len(got.Regions), len(want))
	}
	for i, w := range want {
		g := got.Regions[i]
		if g.Province != w.Province || g.ISP != w.ISP || !near(g.DemandMbps, w.DemandMbps) || g.Overloaded {
			t.Errorf("region %d: got %s/%s demand %v overloaded %v, want %s/%s demand %v", i, g.Province, g.ISP, g.DemandMbps, g.Overloaded, w.Province, w.ISP, w.DemandMbps)
		}
		for j, wv := range w.Vendors {
			gv := g.Vendors[j]
			if gv.Vendor != wv.Vendor || gv.Level != wv.Level || (gv.Quality == nil) != (wv.Quality == nil) ||
				gv.Quality != nil && !near(*gv.Quality, *wv.Quality) ||
				!near(gv.BandwidthMbps, wv.BandwidthMbps) || !near(gv.PredictedMbps, wv.PredictedMbps) ||
				gv.GuaranteedMbps != wv.GuaranteedMbps || gv.MaxMbps != wv.MaxMbps ||
				!near(gv.Score, wv.Score) || !near(gv.Ratio, wv.Ratio) || gv.Blacklisted != wv.Blacklisted ||
				(gv.Reason == nil) != (wv.Reason == nil) || gv.Reason != nil && *gv.Reason != *wv.Reason {
				t.Errorf("%s/%s %s:\n got %+v\nwant %+v", w.Province, w.ISP, wv.Vendor, gv, wv)
			}
		}
	}
	// cdn-c is exactly at its maximum over both regions.
	if load := 110*cGd + 20*cBj; !near(load, 30) {
		t.Errorf("hand check: cdn-c load %v", load)
	}
	if !strings.Contains(logBuf.String(), "vendor cdn-z has rows but no contract") {
		t.Errorf("the uncontracted vendor should be logged: %s", logBuf.String())
	}
}

func TestOfflineErrors(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 5, 0, 0, time.UTC)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ndjson")
	os.WriteFile(bad, []byte(`{"window_start":"2026-11-20T12:04:00Z","source":"cdn","dims":{},"metrics":{}}`+"\n"+
		`{"window_start":"2026-11-20T12:04:00Z","source":"cdn","dims":{"vendor":"a","province":"p","isp":"i"},"metrics":{"requests":1}}`+"\n"), 0o644)
	notJSON := filepath.Join(dir, "x.ndjson")
	os.WriteFile(notJSON, []byte("\n{oops\n"), 0o644)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Config: "testdata/offline/scores.yaml", Inputs: []string{bad}, At: at}, "bad.ndjson:2: field metrics.bandwidth_mbps: required in a cdn row"},
		{Options{Config: "testdata/offline/scores.yaml", Inputs: []string{notJSON}, At: at}, "x.ndjson:2: not a row"},
		{Options{Config: "testdata/offline/scores.yaml", Inputs: []string{bad}, At: at.Add(30 * time.Second)}, "must be a minute boundary"},
		{Options{Config: "testdata/offline/scores.yaml", At: at}, "at least one --input is required"},
		{Options{Config: "testdata/offline/scores.yaml", Inputs: []string{bad}}, "--at is required"},
		{Options{Config: "testdata/offline/scores.yaml", Inputs: []string{bad}, At: at, Blacklist: "testdata/offline/client.ndjson"}, "blacklist file testdata/offline/client.ndjson"},
	} {
		err := Run(context.Background(), tc.opts, &bytes.Buffer{}, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}
