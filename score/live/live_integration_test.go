package live

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/query"
)

// The integration scenario on real ClickHouse and Kafka. Settings make
// every number hand-computable: half_life 1s (a minute-old row weighs
// 2^-60, nothing), lookback 2m, trend over 2 minutes, min_users 1.
//
// Healthy minute, every vendor × region: 100 users, 100 plays all ok, 100
// first frames of 1000 ms (quality 100), 375,000,000 bytes = 50 Mbit/s.
// Each pool (cdn-a, cdn-b: guaranteed 100, max 200) holds 2 × 50 = 100,
// flat: L = 100 = G, so score = 0.5·(200−100)/200 + 0.5·q = 0.25 + 0.5·q/100:
// 0.75 for both, ratios 0.5 / 0.5.
//
// Degraded minute (cdn-a in guangdong/telecom only): first frames of
// 3000 ms, 20 stutter users: quality = 100·(5000−3000)/4000 − 100·0.2 = 30;
// score 0.25 + 0.15 = 0.40 against cdn-b's 0.75: ratios 0.40/1.15 and
// 0.75/1.15 there; beijing/unicom stays 0.5 / 0.5.
const integrationContracts = `settings:
  half_life: 1s
  lookback: 2m
  min_users: 1
  trend_minutes: 2
vendors:
  cdn-a: {guaranteed_mbps: 100, max_mbps: 200}
  cdn-b: {guaranteed_mbps: 100, max_mbps: 200}
`

func TestLiveScoresOnClickHouseAndKafka(t *testing.T) {
	env := testenv.ClickHouse(t)
	kenv := testenv.Kafka(t, testenv.WithTopics())
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) {
		t.Helper()
		if err := env.Conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
	}
	minute := func(h, m int) time.Time { return time.Date(2026, 11, 20, h, m, 0, 0, time.UTC) }
	// rows inserts one minute of every vendor × region; degraded makes
	// cdn-a in guangdong/telecom slow and stuttering.
	rows := func(m time.Time, degraded bool) {
		var cl, cd []string
		ws := m.Format(time.DateTime)
		for _, r := range regions {
			for _, v := range []string{"cdn-a", "cdn-b"} {
				dims := fmt.Sprintf("map('vendor','%s','province','%s','isp','%s')", v, r[0], r[1])
				ff, stutter := 1000, 0
				if degraded && v == "cdn-a" && r[0] == "guangdong" {
					ff, stutter = 3000, 20
				}
				cl = append(cl, fmt.Sprintf("('%s','vendor,province,isp',%s,'c',0,1,1,100,%d,100,100,100,%d,map(1,100))", ws, dims, stutter, 100*ff))
				cd = append(cd, fmt.Sprintf("('%s','vendor,province,isp',%s,'d',0,1,1,1000,375000000)", ws, dims))
			}
		}
		exec(`INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			users, stutter_users, plays, plays_ok, first_frames, first_frame_ms_sum, first_frame_ms_hist) VALUES ` + strings.Join(cl, ","))
		exec(`INSERT INTO cdn_minute (window_start, grouping, dims, topic, kafka_partition, version, final, requests, bytes) VALUES ` + strings.Join(cd, ","))
	}

	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Config = filepath.Join(dir, "scores.yaml")
	if err := os.WriteFile(cfg.Config, []byte(integrationContracts), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Kafka = kenv.Config()
	cfg.KafkaTopic = kenv.ReserveTopic("scores")
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	s, err := New(cfg, Deps{Rows: query.NewQuerier(env.Conn, query.NewCatalog(plan), query.Options{}),
		Store: NewStore(env.Conn), Logger: zerolog.New(zerolog.NewTestWriter(t)), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.pub.Close()
	tokens, err := httpx.NewStore([]httpx.TokenConfig{{Name: "wall", Token: readToken, Scopes: []string{"read"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httpx.NewRouter()
	s.Mount(r, httpx.NewAuth(tokens, "test"))
	f := &fixture{s: s, h: r}

	// step rebuilds at 10 s past minute m and checks the JSON and the
	// Arrow answers against want ("province/isp vendor" → ratio) and the
	// quality of cdn-a in guangdong/telecom.
	step := func(name string, m time.Time, want map[string]float64, quality float64, blacklisted bool) {
		t.Helper()
		clk.set(m.Add(10 * time.Second))
		if err := s.Rebuild(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		a := f.do("GET", "/api/v1/scores", readToken, nil, "")
		tb := decodeTable(t, a.body)
		if a.code != 200 || !tb.At.Equal(m) || tb.DataUntil == nil || !tb.DataUntil.Equal(m) || a.h.Get("X-Data-Until") != m.Format(time.RFC3339) {
			t.Fatalf("%s: %d %s", name, a.code, a.body)
		}
		got := ratios(tb)
		for k, w := range want {
			if math.Abs(got[k]-w) > 1e-9 {
				t.Errorf("%s: json ratio of %s = %v, want %v", name, k, got[k], w)
			}
		}
		gd := tb.Regions[1].Vendors[0]
		if tb.Regions[1].Province != "guangdong" || gd.Vendor != "cdn-a" || gd.Quality == nil || math.Abs(*gd.Quality-quality) > 1e-9 || gd.Blacklisted != blacklisted {
			t.Errorf("%s: guangdong cdn-a %+v (quality %v), want quality %v blacklisted %v", name, gd, gd.Quality, quality, blacklisted)
		}
		ar := f.do("GET", "/api/v1/scores", readToken, map[string]string{"Accept": ctArrow}, "")
		arows := decodeArrow(t, ar.body)
		if len(arows) != 4 {
			t.Fatalf("%s: arrow rows %+v", name, arows)
		}
		for _, x := range arows {
			k := x.province + "/" + x.isp + " " + x.vendor
			if math.Abs(x.ratio-want[k]) > 1e-9 || !x.at.Equal(m) {
				t.Errorf("%s: arrow %s ratio %v at %v, want %v", name, k, x.ratio, x.at, want[k])
			}
			if k == "guangdong/telecom cdn-a" && (x.blacklisted != blacklisted || x.quality == nil || math.Abs(*x.quality-quality) > 1e-9) {
				t.Errorf("%s: arrow %+v", name, x)
			}
		}
	}

	for m := minute(12, 0); m.Before(minute(12, 5)); m = m.Add(time.Minute) {
		rows(m, false)
	}
	step("healthy", minute(12, 5), even, 100, false)

	// cdn-a degrades in guangdong/telecom during 12:05: at the next
	// rebuild its quality (30) and ratio drop there only.
	rows(minute(12, 5), true)
	degraded := map[string]float64{
		"guangdong/telecom cdn-a": 0.40 / 1.15, "guangdong/telecom cdn-b": 0.75 / 1.15,
		"beijing/unicom cdn-a": 0.5, "beijing/unicom cdn-b": 0.5,
	}
	step("degraded", minute(12, 6), degraded, 30, false)

	// The blacklist rule fires for that key at 12:06. Noise that must not
	// count: a retracted firing row for beijing, and a firing rule without
	// action blacklist for beijing.
	exec(`INSERT INTO alert_history (at, rule, fingerprint, labels, state, action, version, retracted) VALUES
		('2026-11-20 12:06:00', 'cdn_degraded', 'fp1', map('vendor','cdn-a','province','guangdong','isp','telecom','severity','page'), 'firing', 'blacklist', 1, 0),
		('2026-11-20 12:06:00', 'cdn_degraded', 'fp2', map('vendor','cdn-a','province','beijing','isp','unicom'), 'firing', 'blacklist', 1, 1),
		('2026-11-20 12:06:00', 'cdn_slow', 'fp3', map('vendor','cdn-b','province','beijing','isp','unicom'), 'firing', '', 1, 0)`)
	rows(minute(12, 6), true)
	step("alert firing", minute(12, 7), aOutOfGuangdong, 30, true)

	// Recovered from 12:07, the alert resolves at 12:08; hold 10m: out
	// until 12:18.
	exec(`INSERT INTO alert_history (at, rule, fingerprint, labels, state, action, version) VALUES
		('2026-11-20 12:08:00', 'cdn_degraded', 'fp1', map('vendor','cdn-a','province','guangdong','isp','telecom','severity','page'), 'resolved', 'blacklist', 1)`)
	for m := minute(12, 7); m.Before(minute(12, 18)); m = m.Add(time.Minute) {
		rows(m, false)
	}
	step("held", minute(12, 17), aOutOfGuangdong, 100, true)
	step("back", minute(12, 18), even, 100, false)

	// The audit says when the alert's entry went on and off.
	var audit []string
	for _, c := range mustChanges(t, s) {
		audit = append(audit, c.At.Format("15:04")+" "+c.Source+" "+c.Action+" "+c.Vendor+" "+c.Province+"/"+c.ISP+" "+c.By)
	}
	wantAudit := []string{"12:18 alert off cdn-a guangdong/telecom alert:cdn_degraded", "12:07 alert on cdn-a guangdong/telecom alert:cdn_degraded"}
	if strings.Join(audit, "|") != strings.Join(wantAudit, "|") {
		t.Errorf("audit %q, want %q", audit, wantAudit)
	}

	// The compacted topic: the newest record of each region is its
	// current document.
	cl := kenv.Client()
	res, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: cfg.KafkaTopic, ConfigNames: []string{"cleanup.policy"}}}})
	if err != nil || len(res.Resources) != 1 || len(res.Resources[0].ConfigEntries) != 1 || res.Resources[0].ConfigEntries[0].ConfigValue != "compact" {
		t.Errorf("topic config: %+v %v", res, err)
	}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: kenv.Brokers, Topic: cfg.KafkaTopic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer rd.Close()
	last, err := kafka.DialLeader(ctx, "tcp", kenv.Brokers[0], cfg.KafkaTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	end, err := last.ReadLastOffset()
	last.Close()
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string][]byte{}
	keys := 0
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for off := int64(0); off < end; off++ {
		msg, err := rd.ReadMessage(rctx)
		if err != nil {
			t.Fatal(err)
		}
		latest[string(msg.Key)] = msg.Value
		keys++
	}
	// guangdong/telecom at 12:05, 12:06, 12:07, 12:17 (quality back to
	// 100 while still held) and 12:18; beijing/unicom, unchanged, at 12:05
	// and again at 12:17 (kafka_refresh, 10m).
	if keys != 7 {
		t.Errorf("%d records, want 7", keys)
	}
	for key, at := range map[string]string{"guangdong/telecom": "12:18", "beijing/unicom": "12:17"} {
		p, i, _ := strings.Cut(key, "/")
		var got, want struct {
			At      time.Time         `json:"at"`
			Regions []json.RawMessage `json:"regions"`
		}
		cur := f.do("GET", "/api/v1/scores?province="+p+"&isp="+i, readToken, nil, "").body
		if err := json.Unmarshal(latest[key], &got); err != nil || json.Unmarshal(cur, &want) != nil {
			t.Fatalf("topic %s: %s (%v)", key, latest[key], err)
		}
		if got.At.Format("15:04") != at || len(got.Regions) != 1 || string(got.Regions[0]) != string(want.Regions[0]) {
			t.Errorf("topic %s: %s, want the region of %s at %s", key, latest[key], cur, at)
		}
	}
}

func mustChanges(t *testing.T, s *Scores) []Change {
	t.Helper()
	cs, err := s.store.Changes(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
