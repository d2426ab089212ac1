package gen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/schemas"
)

// genFile runs a fast-mode generation into a file and returns its bytes.
func genFile(t testing.TB, mutate func(o *Options)) []byte {
	t.Helper()
	o := DefaultOptions()
	o.Mode = ModeFast
	o.Progress = "none"
	o.Log.Level = "warn"
	o.Output = filepath.Join(t.TempDir(), "events.ndjson")
	if mutate != nil {
		mutate(&o)
	}
	if err := Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := os.ReadFile(o.Output)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eachEvent decodes every line with the schema's own parser (any line it
// rejects fails the test) and calls fn with it; e is reused.
func eachEvent(t testing.TB, b []byte, fn func(i int, e *schemas.Event)) int {
	t.Helper()
	var e schemas.Event
	n := 0
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			t.Fatalf("line %d has no newline", n+1)
		}
		if err := schemas.ParseLine(b[:end], &e); err != nil {
			t.Fatalf("line %d does not parse: %v\n%s", n+1, err, b[:end])
		}
		fn(n, &e)
		n++
		b = b[end+1:]
	}
	return n
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestDeterministicBySeed(t *testing.T) {
	small := func(seed uint64) func(o *Options) {
		return func(o *Options) {
			o.Scenario = "vendor-degradation"
			o.Users = 400
			o.Duration = 4 * time.Minute
			o.Seed = seed
		}
	}
	a := genFile(t, small(7))
	b := genFile(t, small(7))
	c := genFile(t, small(8))
	if len(a) == 0 {
		t.Fatal("no events generated")
	}
	if sha(a) != sha(b) {
		t.Fatalf("same seed, different output: %s vs %s (%d vs %d bytes)", sha(a), sha(b), len(a), len(b))
	}
	if sha(a) == sha(c) {
		t.Fatal("different seeds gave identical output")
	}
	// A different start shifts every timestamp but nothing else.
	d := genFile(t, func(o *Options) { small(7)(o); o.Start = DefaultStart.Add(time.Hour) })
	var tsA, tsD []int64
	eachEvent(t, a, func(_ int, e *schemas.Event) { tsA = append(tsA, e.TS) })
	eachEvent(t, d, func(_ int, e *schemas.Event) { tsD = append(tsD, e.TS) })
	if len(tsA) != len(tsD) {
		t.Fatalf("start shift changed the event count: %d vs %d", len(tsA), len(tsD))
	}
	for i := range tsA {
		if tsD[i]-tsA[i] != time.Hour.Milliseconds() {
			t.Fatalf("event %d: ts %d vs %d, want exactly one hour apart", i, tsA[i], tsD[i])
		}
	}
	// Apart from ts, the bytes are the same: equal lengths line by line.
	if len(a) != len(d) {
		t.Fatalf("start shift changed the output size: %d vs %d bytes", len(a), len(d))
	}
}

func TestEveryEventParsesAndIsWellFormed(t *testing.T) {
	for _, name := range ScenarioNames() {
		t.Run(name, func(t *testing.T) {
			b := genFile(t, func(o *Options) { o.Scenario = name; o.Users = 300; o.Duration = 7 * time.Minute })
			seen := map[schemas.Type]int{}
			start := DefaultStart.UnixMilli()
			eachEvent(t, b, func(i int, e *schemas.Event) {
				seen[e.Type]++
				if e.TS < start || e.TS >= start+(7*time.Minute).Milliseconds() {
					t.Fatalf("event %d ts %d outside the simulated window", i, e.TS)
				}
				if e.Type.Source() == schemas.SourceClient && (e.Country != "cn" || e.Province == "" || e.ISP == "" || e.City == "") {
					t.Fatalf("client event without region: %+v", e)
				}
			})
			// Every type but push_end (drops are rare) appears in 7 minutes.
			for _, typ := range schemas.Types() {
				if seen[typ] == 0 && typ != schemas.TypePushEnd {
					t.Errorf("no %s events", typ)
				}
			}
		})
	}
}

func TestOutputDirSplitsBySource(t *testing.T) {
	dir := t.TempDir()
	whole := genFile(t, func(o *Options) { o.Users = 200; o.Duration = time.Minute })
	o := DefaultOptions()
	o.Mode, o.Progress, o.Log.Level = ModeFast, "none", "warn"
	o.Users, o.Duration = 200, time.Minute
	o.OutputDir = dir
	if err := Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, src := range []schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin} {
		b, err := os.ReadFile(filepath.Join(dir, src.String()+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		eachEvent(t, b, func(i int, e *schemas.Event) {
			if e.Type.Source() != src {
				t.Fatalf("%s.ndjson line %d is a %s event", src, i+1, e.Type)
			}
		})
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	want := strings.Split(strings.TrimSuffix(string(whole), "\n"), "\n")
	sort.Strings(lines)
	sort.Strings(want)
	if !slices.Equal(lines, want) {
		t.Fatalf("the three files hold %d lines, the single file %d (or different ones)", len(lines), len(want))
	}
}

// normalTail is P(X ≥ x) for a log-normal with this median and sigma.
func normalTail(x, median, sigma float64) float64 {
	return 0.5 * math.Erfc(math.Log(x/median)/sigma/math.Sqrt2)
}

func TestStallDurationShareMatchesScenario(t *testing.T) {
	// 2,000 users for 5 minutes of the baseline. Buffer-empty periods are
	// log-normal with median 1100 ms and sigma 0.8, so the share that
	// qualifies as a stall (≥ 2000 ms) is 1 − Φ(ln(2000/1100)/0.8) =
	// 1 − Φ(0.747) ≈ 0.227. With n periods the binomial standard error is
	// sqrt(p(1−p)/n) ≈ 0.011 at n = 1400; allow 4 of them. Periods still
	// running at the end are not reported (a slight bias to short ones),
	// which the band absorbs.
	b := genFile(t, func(o *Options) { o.Users = 2000; o.Duration = 5 * time.Minute })
	sc, err := LoadScenario(BaseScenario, "")
	if err != nil {
		t.Fatal(err)
	}
	p := normalTail(schemas.StallThresholdMS, sc.Playback.RebufferMS.Median, sc.Playback.RebufferMS.Sigma)
	if math.Abs(p-0.227) > 0.001 {
		t.Fatalf("baseline rebuffer distribution changed: P(≥2s) = %.4f; update this test's derivation", p)
	}
	var n, long int
	eachEvent(t, b, func(_ int, e *schemas.Event) {
		if e.Type == schemas.TypeStall {
			n++
			if e.IsStall() {
				long++
			}
		}
	})
	// 0.15 periods per playing user-minute × ~1,900 users × 5 min ≈ 1,400.
	if n < 1000 || n > 1900 {
		t.Fatalf("%d buffer-empty periods, want about 1,400", n)
	}
	share := float64(long) / float64(n)
	band := 4 * math.Sqrt(p*(1-p)/float64(n))
	t.Logf("%d of %d periods ≥ 2 s: %.4f (expected %.4f ± %.4f)", long, n, share, p, band)
	if math.Abs(share-p) > band {
		t.Fatalf("share of stalls ≥ 2 s is %.4f, want %.4f ± %.4f", share, p, band)
	}
}

type window struct{ stalls, heartbeats int }

func (w window) rate() float64 { return float64(w.stalls) / math.Max(1, float64(w.heartbeats)) }

func TestVendorDegradationIsLocalInTimeAndPlace(t *testing.T) {
	// vendor-degradation: cdn-b × guangdong × telecom from 3m to 7m. Stalls
	// (≥ 2 s) per heartbeat measure the stall rate per unit of watch time.
	// Inside the window the degraded group's rate is stall_rate_x 8 ×
	// P(≥2 s | median 1100×2.5 ms) / P(≥2 s | 1100 ms) = 8 × 0.655/0.227 ≈
	// 23 times its normal rate, so "more than 5×" leaves a wide margin; out
	// of the window it must be in line with everyone else's.
	b := genFile(t, func(o *Options) {
		o.Scenario = "vendor-degradation"
		o.Users = 3000
		o.Duration = 9 * time.Minute
	})
	start := DefaultStart.UnixMilli()
	during := func(ts int64) bool { return ts >= start+3*60000 && ts < start+7*60000 }
	warm := func(ts int64) bool { return ts >= start+60000 } // after the ramp
	var grpIn, grpOut, restIn, restOut window
	var ffIn, ffRest []int64
	var failIn, triesIn, failOut, triesOut int
	eachEvent(t, b, func(_ int, e *schemas.Event) {
		if !warm(e.TS) {
			return
		}
		grp := e.Vendor == "cdn-b" && e.Province == "guangdong" && e.ISP == "telecom"
		w := &restOut
		switch {
		case grp && during(e.TS):
			w = &grpIn
		case grp:
			w = &grpOut
		case during(e.TS):
			w = &restIn
		}
		switch e.Type {
		case schemas.TypeHeartbeat:
			w.heartbeats++
		case schemas.TypeStall:
			if e.IsStall() {
				w.stalls++
			}
		case schemas.TypeFirstFrame:
			if grp && during(e.TS) {
				ffIn = append(ffIn, e.FirstFrameMS)
			} else if !grp {
				ffRest = append(ffRest, e.FirstFrameMS)
			}
		case schemas.TypePlayStart:
			if grp && during(e.TS) {
				triesIn++
				if !e.OK {
					failIn++
				}
			} else if grp {
				triesOut++
				if !e.OK {
					failOut++
				}
			}
		}
	})
	t.Logf("group in %+v (%.4f), group out %+v (%.4f), rest in %+v (%.4f), rest out %+v (%.4f)",
		grpIn, grpIn.rate(), grpOut, grpOut.rate(), restIn, restIn.rate(), restOut, restOut.rate())
	if grpIn.heartbeats < 1000 || grpOut.heartbeats < 1000 {
		t.Fatalf("too few samples in the degraded group: %+v %+v", grpIn, grpOut)
	}
	if grpIn.rate() < 5*grpOut.rate() {
		t.Errorf("degraded group's stall rate during the incident %.4f is not 5× its rate outside %.4f", grpIn.rate(), grpOut.rate())
	}
	if grpIn.rate() < 5*restIn.rate() {
		t.Errorf("degraded group's stall rate %.4f is not 5× everyone else's %.4f during the incident", grpIn.rate(), restIn.rate())
	}
	if grpOut.rate() > 3*restOut.rate() {
		t.Errorf("degraded group's stall rate outside the incident %.4f is elevated vs the rest %.4f", grpOut.rate(), restOut.rate())
	}
	if restIn.rate() > 1.5*restOut.rate() {
		t.Errorf("the rest degraded during the incident too: %.4f vs %.4f", restIn.rate(), restOut.rate())
	}
	// first_frame_x 2.2 moves the group's median from ~735 ms (700 ×
	// cdn-b's 1.05) to ~1,600 ms; everyone else stays around 700-800 ms.
	slices.Sort(ffIn)
	slices.Sort(ffRest)
	if len(ffIn) < 10 || len(ffRest) < 100 {
		t.Fatalf("too few first frames: %d in the group, %d elsewhere", len(ffIn), len(ffRest))
	}
	if mi, mr := ffIn[len(ffIn)/2], ffRest[len(ffRest)/2]; float64(mi) < 1.6*float64(mr) {
		t.Errorf("first-frame median %d ms in the degraded group vs %d ms elsewhere: not slower", mi, mr)
	}
	// connect_fail_rate 0.25 during vs 0.008 normally.
	if fi := float64(failIn) / float64(triesIn); fi < 0.12 {
		t.Errorf("connect failure rate during the incident %.3f (%d/%d), want about 0.25", fi, failIn, triesIn)
	}
	if fo := float64(failOut) / float64(max(triesOut, 1)); fo > 0.06 {
		t.Errorf("connect failure rate outside the incident %.3f (%d/%d), want about 0.01", fo, failOut, triesOut)
	}
}

func TestOriginIncidents(t *testing.T) {
	start := DefaultStart.UnixMilli()
	min := func(m float64) int64 { return start + int64(m*60000) }
	t.Run("silent", func(t *testing.T) {
		// live-0002 reports nothing on either line in [2m, 5m).
		b := genFile(t, func(o *Options) { o.Scenario = "origin-silent"; o.Users = 200; o.Duration = 7 * time.Minute })
		var before, in, after, othersIn int
		eachEvent(t, b, func(_ int, e *schemas.Event) {
			if e.Type != schemas.TypeOriginStats {
				return
			}
			inWin := e.TS >= min(2) && e.TS < min(5)
			switch {
			case e.StreamID != "live-0002":
				if inWin {
					othersIn++
				}
			case inWin:
				in++
			case e.TS < min(2):
				before++
			default:
				after++
			}
		})
		if in != 0 {
			t.Errorf("live-0002 sent %d origin_stats while silent", in)
		}
		// 2 lines every 5 s: 48 per 2 minutes, minus the first seconds
		// before the host is live.
		if before < 30 || after < 30 {
			t.Errorf("live-0002 origin_stats before %d, after %d: want about 48 each", before, after)
		}
		if othersIn < 19*2*36*9/10 {
			t.Errorf("other rooms sent only %d origin_stats during the window", othersIn)
		}
	})
	t.Run("bitrate-drop", func(t *testing.T) {
		// live-0001 primary at 25% (±5% jitter) of 4500 kbps in [2m, 6m).
		b := genFile(t, func(o *Options) { o.Scenario = "origin-bitrate-drop"; o.Users = 200; o.Duration = 8 * time.Minute })
		var sums [2][2]float64 // [line][in window]
		var ns [2][2]int
		eachEvent(t, b, func(_ int, e *schemas.Event) {
			if e.Type != schemas.TypeOriginStats || e.StreamID != "live-0001" {
				return
			}
			li := 0
			if e.Line == "backup" {
				li = 1
			}
			w := 0
			if e.TS >= min(2) && e.TS < min(6) {
				w = 1
			}
			sums[li][w] += e.BitrateKbps
			ns[li][w]++
		})
		mean := func(l, w int) float64 { return sums[l][w] / float64(ns[l][w]) }
		if m := mean(0, 1); m < 0.25*4500*0.95 || m > 0.25*4500*1.05 {
			t.Errorf("primary bitrate during the drop %.0f kbps, want 1125 ± 5%%", m)
		}
		for _, lw := range [][2]int{{0, 0}, {1, 0}, {1, 1}} {
			if m := mean(lw[0], lw[1]); m < 4500*0.95 || m > 4500*1.05 {
				t.Errorf("line %d window %d bitrate %.0f kbps, want 4500 ± 5%%", lw[0], lw[1], m)
			}
		}
	})
	t.Run("push-failure-spike", func(t *testing.T) {
		// 40% of push connects fail in [3m, 6m) vs 1% otherwise; pushes drop
		// about once a minute there.
		b := genFile(t, func(o *Options) { o.Scenario = "push-failure-spike"; o.Users = 300; o.Duration = 7 * time.Minute })
		var triesIn, failIn, triesOut, failOut, dropsIn, dropsOut int
		eachEvent(t, b, func(_ int, e *schemas.Event) {
			in := e.TS >= min(3) && e.TS < min(6)
			switch e.Type {
			case schemas.TypePushStart:
				if in {
					triesIn++
					if !e.OK {
						failIn++
					}
				} else {
					triesOut++
					if !e.OK {
						failOut++
					}
				}
			case schemas.TypePushEnd:
				if in {
					dropsIn++
				} else {
					dropsOut++
				}
			}
		})
		t.Logf("push: in %d/%d failed, %d drops; out %d/%d failed, %d drops", failIn, triesIn, dropsIn, failOut, triesOut, dropsOut)
		if triesIn < 20 || float64(failIn)/float64(triesIn) < 0.25 {
			t.Errorf("push connect failures during the spike: %d of %d", failIn, triesIn)
		}
		if float64(failOut)/float64(triesOut) > 0.1 {
			t.Errorf("push connect failures outside the spike: %d of %d", failOut, triesOut)
		}
		if dropsIn < 5*max(dropsOut, 1) {
			t.Errorf("push drops %d during vs %d outside the spike", dropsIn, dropsOut)
		}
	})
}

func TestHeartbeatStalledMatchesStallEvents(t *testing.T) {
	b := genFile(t, func(o *Options) { o.Scenario = "vendor-degradation"; o.Users = 500; o.Duration = 6 * time.Minute })
	type span struct{ s, e int64 }
	type hbRec struct {
		TS      int64
		Stalled bool
	}
	stalls := map[string][]span{} // session → qualifying stalls
	hbs := map[string][]hbRec{}
	eachEvent(t, b, func(_ int, e *schemas.Event) {
		switch {
		case e.IsStall():
			stalls[e.SessionID] = append(stalls[e.SessionID], span{e.TS, e.TS + e.DurationMS})
		case e.Type == schemas.TypeHeartbeat:
			hbs[e.SessionID] = append(hbs[e.SessionID], hbRec{e.TS, e.Stalled})
		}
	})
	flagged, covered := 0, 0
	for sess, list := range hbs {
		prev := int64(math.MinInt64)
		for _, hb := range list {
			overlaps := false
			for _, st := range stalls[sess] {
				if st.s < hb.TS && st.e > prev {
					overlaps = true
				}
			}
			// A stall still running at the end of the run is not reported
			// yet, so only a flag without any reported stall is an error
			// when the run went on long enough to report it.
			if hb.Stalled && !overlaps && hb.TS < DefaultStart.UnixMilli()+5*60000 {
				t.Fatalf("session %s heartbeat at %d says stalled but no stall ≥ 2 s overlaps (%d, %d]", sess, hb.TS, prev, hb.TS)
			}
			if !hb.Stalled && overlaps {
				t.Fatalf("session %s heartbeat at %d misses a stall overlapping (%d, %d]", sess, hb.TS, prev, hb.TS)
			}
			if hb.Stalled {
				flagged++
			}
			if overlaps {
				covered++
			}
			prev = hb.TS
		}
	}
	if flagged < 100 {
		t.Fatalf("only %d stalled heartbeats", flagged)
	}
}

func TestEventsAreInEmissionOrder(t *testing.T) {
	// Lines come in the order a collector would receive them: ts never
	// runs ahead of the emission time, and stalls (reported when they end)
	// are the only events that arrive much later than their ts.
	b := genFile(t, func(o *Options) { o.Users = 300; o.Duration = 3 * time.Minute })
	var maxTS int64
	eachEvent(t, b, func(i int, e *schemas.Event) {
		lag := maxTS - e.TS
		limit := int64(6000) // a failed connect reports after its 5 s timeout
		if e.Type == schemas.TypeStall {
			limit = 60_000 + 1000
		}
		if lag > limit {
			t.Fatalf("event %d (%s) at %d arrives %d ms after a later event", i, e.Type, e.TS, lag)
		}
		maxTS = max(maxTS, e.TS)
	})
}

func mustTable(t testing.TB) IPTable {
	t.Helper()
	tb, err := ipdb.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// Co-hosts leave the mic and join again (push_end not dropped, then a new
// push_start); hosts never end their push gracefully; and most ended
// pushes are not drops, so the push drop rate reads a few percent.
// Expected counts, from baseline.yaml: a co-host's cycle is the mean of
// cohost_mic_s (240·e^(0.6²/2) ≈ 287 s) plus that of cohost_off_s
// (120·e^(0.8²/2) ≈ 165 s), ≈ 452 s, so over 30 minutes ≈ 1800/452 ≈ 4.0
// leavings per co-host; drops are 0.2 per pusher-hour, ≈ 0.1 per pusher
// over the run.
func TestCohostsLeaveTheMic(t *testing.T) {
	b := genFile(t, func(o *Options) {
		o.Users = 400
		o.Duration = 30 * time.Minute
	})
	type pusher struct {
		role           string
		ups, leaves    int
		drops, lastEnd int
	}
	pushers := map[string]*pusher{}
	eachEvent(t, b, func(i int, e *schemas.Event) {
		if e.Type != schemas.TypePushStart && e.Type != schemas.TypePushEnd {
			return
		}
		p := pushers[e.UserID]
		if p == nil {
			p = &pusher{role: e.Role}
			pushers[e.UserID] = p
		}
		switch {
		case e.Type == schemas.TypePushStart:
			if e.OK {
				p.ups++
			}
		case e.Dropped:
			p.drops++
		default:
			p.leaves++
			if p.role != "cohost" {
				t.Errorf("line %d: a %s ended a push without a drop", i+1, p.role)
			}
		}
	})
	var cohosts, leaves, drops int
	for _, p := range pushers {
		if p.role == "cohost" {
			cohosts++
		}
		leaves += p.leaves
		drops += p.drops
		// Every ended push was up: ends never outnumber successful starts.
		if p.leaves+p.drops > p.ups {
			t.Errorf("a %s ended %d pushes after %d successful starts", p.role, p.leaves+p.drops, p.ups)
		}
	}
	if cohosts == 0 {
		t.Fatal("no co-hosts in the baseline")
	}
	want := float64(cohosts) * 1800 / 452
	if f := float64(leaves); f < want/2 || f > want*2 {
		t.Errorf("%d co-hosts left the mic %d times, want about %.0f", cohosts, leaves, want)
	}
	if share := float64(drops) / float64(drops+leaves); share > 0.15 {
		t.Errorf("%d of %d ended pushes are drops (%.0f %%), want a few percent", drops, drops+leaves, 100*share)
	}
	t.Logf("%d pushers (%d co-hosts): %d left the mic, %d drops", len(pushers), cohosts, leaves, drops)
}
