package aggregator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// This file is an independent, deliberately naive implementation of the
// metric definitions (docs/METRICS.md): events kept per window, grouping
// keys as strings, distinct users as sets, quantiles from sorted values. The
// engine must agree with it on random streams.

type refKey struct {
	ws   int64
	src  schemas.Source
	set  int
	dims string
}

type refVal struct {
	m     map[string]*float64
	quant map[string]bool // metric names that are histogram quantiles
}

func fp(v float64) *float64 { return &v }

func refRate(num, den float64) *float64 {
	if den == 0 {
		return nil
	}
	return fp(num / den)
}

// nearestRank is the definition: value at rank ⌈p·n⌉ of the sorted values.
func nearestRank(vals []float64, p float64) *float64 {
	if len(vals) == 0 {
		return nil
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	r := int(math.Ceil(p*float64(len(s)) - 1e-9))
	return fp(s[max(r, 1)-1])
}

func mean(vals []float64) *float64 {
	if len(vals) == 0 {
		return nil
	}
	t := 0.0
	for _, v := range vals {
		t += v
	}
	return fp(t / float64(len(vals)))
}

func (r *refVal) hist(name string, vals []float64) {
	for _, q := range []struct {
		s string
		p float64
	}{{"_p50", 0.5}, {"_p90", 0.9}, {"_p99", 0.99}} {
		r.m[name+q.s] = nearestRank(vals, q.p)
		r.quant[name+q.s] = true
	}
	r.m[name+"_avg"] = mean(vals)
}

func dimVal(e *schemas.Event, name string) string {
	f, _ := schemas.ParseField(name)
	if v := e.Get(f); v != "" {
		return v
	}
	return "unknown"
}

func dimsOf(e *schemas.Event, set []string) string {
	var parts []string
	for _, d := range set {
		parts = append(parts, d+"="+dimVal(e, d))
	}
	return strings.Join(parts, ",")
}

type refResult struct {
	rows map[refKey]*refVal
	late map[lateKey]uint64
}

// reference aggregates one partition's events (in offset order) naively.
// end is the event time the partition is advanced to before closing all.
func reference(cfg Config, events []schemas.Event, end int64) refResult {
	res := refResult{rows: map[refKey]*refVal{}, late: map[lateKey]uint64{}}
	var L int64
	if len(events) > 0 {
		L = cfg.Lateness.Of(events[0].Type.Source()).Milliseconds()
	}
	maxTS := int64(math.MinInt64)
	byWin := map[int64][]*schemas.Event{}
	for i := range events {
		e := &events[i]
		ws := route.WindowStart(e.TS)
		if maxTS != math.MinInt64 && ws+60_000 <= maxTS-L {
			res.late[lateKey{ws, route.Index(e.Type.Source())}]++
			continue
		}
		byWin[ws] = append(byWin[ws], e)
		// The clock: ts, but not later than recv_ts when there is one.
		c := e.TS
		if e.RecvTS > 0 {
			c = min(c, e.RecvTS)
		}
		maxTS = max(maxTS, c)
	}
	if maxTS == math.MinInt64 {
		return res
	}
	maxTS = max(maxTS, end)
	first := int64(math.MaxInt64)
	for ws := range byWin {
		first = min(first, ws)
	}
	sets := [][][]string{cfg.GroupingSets.Client, cfg.GroupingSets.CDN, cfg.GroupingSets.Origin}
	for ws, evs := range byWin {
		for si, src := range route.Sources {
			for g, set := range sets[si] {
				groups := map[string][]*schemas.Event{}
				for _, e := range evs {
					if e.Type.Source() == src {
						k := dimsOf(e, set)
						groups[k] = append(groups[k], e)
					}
				}
				for k, es := range groups {
					var v *refVal
					switch src {
					case schemas.SourceClient:
						v = refClient(es)
					case schemas.SourceCDN:
						v = refCDN(es)
					default:
						v = refOrigin(es)
					}
					res.rows[refKey{ws, src, g, k}] = v
				}
			}
		}
	}
	// no_data: every minute from the first window to the one holding the
	// end, for origin keys seen in the N windows before and silent in it.
	N := int64(cfg.OriginNoDataMinutes)
	for ws := first; ws <= route.WindowStart(maxTS); ws += 60_000 {
		for g, set := range cfg.GroupingSets.Origin {
			seen := map[string]bool{}
			for p := ws - N*60_000; p < ws; p += 60_000 {
				for _, e := range byWin[p] {
					if e.Type.Source() == schemas.SourceOrigin {
						seen[dimsOf(e, set)] = true
					}
				}
			}
			for k := range seen {
				key := refKey{ws, schemas.SourceOrigin, g, k}
				if _, ok := res.rows[key]; !ok {
					v := &refVal{m: map[string]*float64{"no_data": fp(1)}, quant: map[string]bool{}}
					for _, n := range []string{"samples", "fps_avg", "fps_min", "bitrate_kbps_avg", "bitrate_kbps_min", "rtt_ms_avg"} {
						v.m[n] = nil
					}
					res.rows[key] = v
				}
			}
		}
	}
	return res
}

func refClient(es []*schemas.Event) *refVal {
	v := &refVal{m: map[string]*float64{}, quant: map[string]bool{}}
	users, stut, video, audio := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	var stalls, stallMS, samples, stalled, plays, playsOK, ff, fast, vbs, vbn, abs, abn float64
	var errs, dns, hits, pushes, pushesOK, pends, pdrops, relays, rfail float64
	var pull, first, push, relay []float64
	for _, e := range es {
		if e.Type.PullSide() {
			users[e.UserID] = true
		}
		switch e.Type {
		case schemas.TypeStall:
			if e.DurationMS >= 2000 {
				stalls++
				stallMS += float64(e.DurationMS)
				stut[e.UserID] = true
				if e.Media == "video" {
					video[e.UserID] = true
				}
				if e.Media == "audio" {
					audio[e.UserID] = true
				}
			}
		case schemas.TypeHeartbeat:
			samples++
			if e.Stalled {
				stalled++
			}
			if e.Has(schemas.PropVideoBufferMS) {
				vbs += float64(e.VideoBufferMS)
				vbn++
			}
			if e.Has(schemas.PropAudioBufferMS) {
				abs += float64(e.AudioBufferMS)
				abn++
			}
		case schemas.TypePlayStart:
			plays++
			if e.OK {
				playsOK++
				pull = append(pull, float64(e.ConnectMS))
			}
		case schemas.TypeFirstFrame:
			ff++
			first = append(first, float64(e.FirstFrameMS))
			if e.FirstFrameMS <= 1000 {
				fast++
			}
		case schemas.TypePlayEnd:
			if e.Reason == "error" {
				errs++
			}
		case schemas.TypeDNS:
			dns++
			if e.CacheHit {
				hits++
			}
		case schemas.TypePushStart:
			pushes++
			if e.OK {
				pushesOK++
				push = append(push, float64(e.ConnectMS))
			}
		case schemas.TypePushEnd:
			pends++
			if e.Dropped {
				pdrops++
			}
		case schemas.TypeRelay:
			relays++
			if e.OK {
				relay = append(relay, float64(e.DurationMS))
			} else {
				rfail++
			}
		}
	}
	u, s := float64(len(users)), float64(len(stut))
	m := v.m
	m["users"], m["stutter_users"] = fp(u), fp(s)
	m["stutter_users_video"], m["stutter_users_audio"] = fp(float64(len(video))), fp(float64(len(audio)))
	m["stutter_rate_uv"], m["zero_stutter_rate"] = refRate(s, u), refRate(u-s, u)
	m["stalls"], m["stall_ms"], m["samples"], m["stalled_samples"] = fp(stalls), fp(stallMS), fp(samples), fp(stalled)
	m["stutter_rate_pv"] = refRate(stalled, samples)
	m["plays"], m["plays_ok"], m["pull_connect_rate"] = fp(plays), fp(playsOK), refRate(playsOK, plays)
	v.hist("pull_connect_ms", pull)
	m["first_frames"] = fp(ff)
	v.hist("first_frame_ms", first)
	m["fast_open_rate"] = refRate(fast, ff)
	m["video_buffer_ms_avg"], m["audio_buffer_ms_avg"] = refRate(vbs, vbn), refRate(abs, abn)
	m["play_errors"], m["dns_lookups"], m["dns_hit_rate"] = fp(errs), fp(dns), refRate(hits, dns)
	m["pushes"], m["pushes_ok"], m["push_connect_rate"] = fp(pushes), fp(pushesOK), refRate(pushesOK, pushes)
	v.hist("push_connect_ms", push)
	m["push_ends"], m["push_drops"], m["push_drop_rate"] = fp(pends), fp(pdrops), refRate(pdrops, pends)
	m["relays"], m["relays_failed"], m["relay_fail_rate"] = fp(relays), fp(rfail), refRate(rfail, relays)
	v.hist("relay_ms", relay)
	return v
}

func refCDN(es []*schemas.Event) *refVal {
	v := &refVal{m: map[string]*float64{}, quant: map[string]bool{}}
	var n, b, e4, e5 float64
	var ttfb []float64
	for _, e := range es {
		n++
		b += float64(e.Bytes)
		if e.Status/100 == 4 {
			e4++
		}
		if e.Status/100 == 5 {
			e5++
		}
		ttfb = append(ttfb, float64(e.TTFBMS))
	}
	m := v.m
	m["requests"], m["bytes"], m["bandwidth_mbps"] = fp(n), fp(b), fp(b*8/60/1e6)
	m["errors_4xx"], m["errors_4xx_rate"], m["errors_5xx"], m["errors_5xx_rate"] = fp(e4), refRate(e4, n), fp(e5), refRate(e5, n)
	v.hist("ttfb_ms", ttfb)
	return v
}

func refOrigin(es []*schemas.Event) *refVal {
	v := &refVal{m: map[string]*float64{}, quant: map[string]bool{}}
	var fps, br, rtt []float64
	for _, e := range es {
		fps = append(fps, e.FPS)
		br = append(br, e.BitrateKbps)
		rtt = append(rtt, e.RTTMS)
	}
	m := v.m
	m["no_data"], m["samples"] = fp(0), fp(float64(len(es)))
	m["fps_avg"], m["fps_min"] = mean(fps), fp(slices.Min(fps))
	m["bitrate_kbps_avg"], m["bitrate_kbps_min"] = mean(br), fp(slices.Min(br))
	m["rtt_ms_avg"] = mean(rtt)
	return v
}

// rowsToRef converts engine rows to the reference's shape.
func rowsToRef(t *testing.T, rows []Row) map[refKey]map[string]*float64 {
	t.Helper()
	out := map[refKey]map[string]*float64{}
	for i := range rows {
		r := &rows[i]
		var parts []string
		for _, d := range r.Dims {
			parts = append(parts, d.Name+"="+d.Value)
		}
		k := refKey{r.WindowStart, r.Source, r.Set, strings.Join(parts, ",")}
		if _, dup := out[k]; dup {
			t.Fatalf("duplicate row %+v", k)
		}
		m := map[string]*float64{}
		for _, x := range r.Metrics(nil) {
			if x.Valid {
				m[x.Name] = fp(x.Value)
			} else {
				m[x.Name] = nil
			}
		}
		out[k] = m
	}
	return out
}

func compareToRef(t *testing.T, got map[refKey]map[string]*float64, want refResult) {
	t.Helper()
	var keys []refKey
	for k := range want.rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	bad := 0
	for _, k := range keys {
		w := want.rows[k]
		g, ok := got[k]
		if !ok {
			t.Errorf("missing row %+v", k)
			bad++
			continue
		}
		for name, wv := range w.m {
			gv, ok := g[name]
			if !ok {
				t.Errorf("row %+v: metric %s missing", k, name)
				bad++
				continue
			}
			switch {
			case wv == nil && gv == nil:
			case wv == nil || gv == nil:
				t.Errorf("row %+v: %s = %v, want %v", k, name, deref(gv), deref(wv))
				bad++
			case w.quant[name]:
				if relErr(*gv, *wv) > 0.01+1e-9 {
					t.Errorf("row %+v: %s = %v, want %v within 1%%", k, name, *gv, *wv)
					bad++
				}
			default:
				if relErr(*gv, *wv) > 1e-9 {
					t.Errorf("row %+v: %s = %v, want %v", k, name, *gv, *wv)
					bad++
				}
			}
		}
		if len(g) != len(w.m) {
			t.Errorf("row %+v: %d metrics, want %d", k, len(g), len(w.m))
			bad++
		}
		if bad > 20 {
			t.Fatal("too many differences")
		}
	}
	for k := range got {
		if _, ok := want.rows[k]; !ok {
			t.Errorf("unexpected row %+v", k)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return "null"
	}
	return *p
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// runEngine feeds events to one partition with random Snapshot and Drain
// calls in between (neither may change the result), then advances to end and
// closes all windows. With batch, the events go in by AddBatch, in chunks of
// random length.
func runEngine(t *testing.T, plan *Plan, src schemas.Source, events []schemas.Event, end int64, rng *rand.Rand, batch bool) ([]Row, map[lateKey]uint64) {
	t.Helper()
	p := NewPartition(plan, PartitionID{Topic: "t", Partition: 3}, src)
	var rows []Row
	late := map[lateKey]uint64{}
	take := func(b Batch) {
		for _, r := range b.Final {
			if !r.Final || r.Partition.Partition != 3 {
				t.Fatalf("final row not final or wrong partition: %+v", r)
			}
		}
		rows = append(rows, b.Final...)
		for _, l := range b.Late {
			late[lateKey{l.WindowStart, route.Index(l.Source)}] = l.Count
		}
	}
	offsets := make([]int64, len(events))
	res := make([]Result, len(events))
	for i := range offsets {
		offsets[i] = int64(i)
	}
	for i := 0; i < len(events); i++ {
		if batch {
			n := min(len(events)-i, 1+rng.IntN(100))
			p.AddBatch(offsets[i:i+n], events[i:i+n], res[i:i+n])
			i += n - 1
		} else {
			p.Add(int64(i), &events[i])
		}
		if rng.IntN(500) == 0 {
			for _, r := range p.Snapshot() {
				if r.Final {
					t.Fatal("snapshot row marked final")
				}
			}
		}
		if rng.IntN(300) == 0 || p.Pending() && rng.IntN(2) == 0 {
			take(p.Drain())
		}
	}
	p.Advance(end)
	p.CloseAll()
	take(p.Drain())
	if len(p.Snapshot()) != 0 {
		t.Fatal("rows left after CloseAll")
	}
	return rows, late
}

func TestEngineMatchesReferenceModel(t *testing.T) {
	cases := []struct {
		name string
		gen  genOptions
		cfg  func(*Config)
	}{
		{"client-mostly", genOptions{seed: 1, users: 300, streams: 20, eventsPerMin: 900, lateFrac: 0.05, maxLagMS: 200_000,
			switchFrac: 0.05, missingFrac: 0.05, cdnFrac: 0.1, originFrac: 0.01, originStreams: 6}, func(c *Config) { c.Lateness = AllLateness(2 * time.Minute) }},
		// The production defaults (client 10m, cdn 30m, origin 10m): late
		// events only past those.
		{"default-lateness", genOptions{seed: 6, users: 300, streams: 20, eventsPerMin: 300, lateFrac: 0.05, maxLagMS: 35 * 60_000,
			switchFrac: 0.05, missingFrac: 0.05, cdnFrac: 0.2, originFrac: 0.05, originStreams: 6}, nil},
		// Clients whose clocks run up to 4 minutes fast, stamped with recv_ts
		// by ingest: they must not move the watermark past on-time windows.
		{"fast-clocks", genOptions{seed: 7, users: 200, streams: 10, eventsPerMin: 600, lateFrac: 0.05, maxLagMS: 100_000,
			switchFrac: 0.05, cdnFrac: 0.1, originFrac: 0.02, originStreams: 4, recvFrac: 0.9, fastFrac: 0.02, maxAheadMS: 240_000},
			func(c *Config) { c.Lateness = AllLateness(time.Minute) }},
		{"many-switches", genOptions{seed: 2, users: 40, streams: 5, eventsPerMin: 300, lateFrac: 0.2, maxLagMS: 150_000,
			switchFrac: 0.5, missingFrac: 0.2, cdnFrac: 0.2, originFrac: 0.05, originStreams: 4}, func(c *Config) { c.Lateness = AllLateness(30e9) }},
		{"sparse-origin", genOptions{seed: 3, users: 50, streams: 3, eventsPerMin: 40, lateFrac: 0.1, maxLagMS: 400_000,
			cdnFrac: 0.1, originFrac: 0.15, originStreams: 5}, func(c *Config) {
			c.OriginNoDataMinutes = 2
			c.GroupingSets.Origin = [][]string{{"stream_id", "line"}, {"stream_id"}, {}}
			c.GroupingSets.Client = [][]string{{"role", "media"}, {"city"}, {}}
		}},
		{"zero-lateness", genOptions{seed: 4, users: 100, streams: 10, eventsPerMin: 500, lateFrac: 0.1, maxLagMS: 90_000,
			switchFrac: 0.1, cdnFrac: 0.1, originFrac: 0.02, originStreams: 3}, func(c *Config) { c.Lateness = AllLateness(0) }},
		// Many streams, most seen in one window only: dimension values,
		// tuples and keys are freed and their ids reused all along.
		{"churn", genOptions{seed: 5, users: 200, streams: 3000, eventsPerMin: 700, lateFrac: 0.05, maxLagMS: 100_000,
			switchFrac: 0.5, missingFrac: 0.1, cdnFrac: 0.15, originFrac: 0.03, originStreams: 30}, func(c *Config) { c.Lateness = AllLateness(20e9) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			plan, err := NewPlan(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.gen.start = 1795435200000 // 2026-11-23T12:00:00Z
			g := newGenerator(c.gen)
			all := make([]schemas.Event, 8000)
			for i := range all {
				g.next(&all[i])
			}
			end := all[len(all)-1].TS + 4*60_000
			rng := rand.New(rand.NewPCG(c.gen.seed, 99))
			for si, src := range route.Sources {
				var evs []schemas.Event
				for _, e := range all {
					if e.Type.Source() == src {
						evs = append(evs, e)
					}
				}
				want := reference(cfg, evs, end)
				for _, batch := range []bool{false, true} {
					rows, late := runEngine(t, plan, src, evs, end, rng, batch)
					compareToRef(t, rowsToRef(t, rows), want)
					if len(late) != len(want.late) {
						t.Errorf("%s (batch %v): %d late windows, want %d", src, batch, len(late), len(want.late))
					}
					for k, n := range want.late {
						if late[k] != n {
							t.Errorf("%s (batch %v): late events of window %d = %d, want %d", src, batch, k.start, late[k], n)
						}
					}
				}
				if len(want.rows) == 0 && si == 0 {
					t.Fatal("generator produced no client rows")
				}
				t.Logf("%s: %d events, %d rows, %d late windows", src, len(evs), len(want.rows), len(want.late))
			}
		})
	}
}
