package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qoscope/qoscope/deploy"
)

// The scores step (docs/SCORES.md, "Speed of the live service"): GET
// /api/v1/scores of a live `qoscope all-in-one --demo` at an open-loop
// rate, per kind of request, beside a net/http server answering the same
// bytes under the same load.
const (
	scoresGoalP99Ms = 2.0
	scoresRate      = 1000
	scoresDuration  = 20 * time.Second
	scoresWarmup    = 2 * time.Second
	// scoresClients is the pool of keep-alive connections the generator
	// sends from: enough that a request waits for one only when the
	// server stalls (at 1,000/s and sub-millisecond answers one or two
	// are busy).
	scoresClients = 16
	// scoresDatabase is the step's own ClickHouse database, dropped at
	// start, as the alerts step's.
	scoresDatabase = "qoscope_bench_scores"
	scoresCTArrow  = "application/vnd.apache.arrow.stream"
)

// scoresKind is one kind of request of the scheduler.
type scoresKind struct {
	Name   string
	Query  string            // after /api/v1/scores
	Header map[string]string // besides Authorization
}

var scoresKinds = []scoresKind{
	{"one region, JSON", "?province=guangdong&isp=telecom", nil},
	{"one region, Arrow", "?province=guangdong&isp=telecom", map[string]string{"Accept": scoresCTArrow}},
	{"whole table, gzip", "", map[string]string{"Accept-Encoding": "gzip"}},
	{"whole table, JSON", "", nil},
}

// The scores step's setups: where qoscope's answers come from.
const (
	// ScoresSetupReplica: `qoscope serve` alone on the demo's tables, the
	// pipeline stopped.
	ScoresSetupReplica = "serve replica"
	// ScoresSetupAllInOne: `qoscope all-in-one --demo` with its live
	// traffic, pipeline and serve in one process on the same two cores as
	// ClickHouse and the generator.
	ScoresSetupAllInOne = "all-in-one, live traffic"
)

// ScoresResult is the scores step.
type ScoresResult struct {
	Command        string  `json:"command"`
	Config         string  `json:"config"`
	ReplicaCommand string  `json:"replica_command"`
	ReplicaConfig  string  `json:"replica_config"`
	Regions        int     `json:"regions"`
	Rate           float64 `json:"rate_per_s"`
	DurationS      float64 `json:"duration_s"`
	Clients        int     `json:"clients"`
	// Runs: for each kind, qoscope then the peer.
	Runs    []*ScoresLoad `json:"runs"`
	GoalP99 float64       `json:"goal_p99_ms"`
	// Load average (1 min) before the first run and after the last.
	LoadStart float64 `json:"load_start"`
	// ... after the all-in-one runs, before the replica's, and after them.
	LoadAllInOne float64  `json:"load_all_in_one"`
	LoadReplica  float64  `json:"load_replica"`
	LoadEnd      float64  `json:"load_end"`
	Notes        []string `json:"notes,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// ScoresLoad is one open-loop run of one kind against one server.
type ScoresLoad struct {
	Setup  string `json:"setup"`  // ScoresSetupReplica or ScoresSetupAllInOne
	Server string `json:"server"` // "qoscope" or "static"
	Kind   string `json:"kind"`
	// Bytes is the answer's body as sent (compressed when gzip).
	Bytes    int     `json:"bytes"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// LateMs is the most a request started after its scheduled time
	// (every client busy, or the generator itself late).
	LateMs float64 `json:"late_max_ms"`
	Error  string  `json:"error,omitempty"`
}

// loadClock is the generator's time: the real one, or a test's.
type loadClock interface {
	Now() time.Time
	// SleepUntil returns at t (at once if t is past); false if ctx ended.
	SleepUntil(ctx context.Context, t time.Time) bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) SleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// openLoopResult is what openLoop measured.
type openLoopResult struct {
	Requests, Errors int
	FirstErr         error
	Latency          Latency // seconds, successful requests
	LateMax          time.Duration
}

// openLoop sends rate requests a second for dur from clients concurrent
// senders. Request i is due at start + i/rate whatever happened before
// it (open loop). A sender takes the next due request, waits for its time
// and sends it. When a sender took the request only after it was due
// (every sender was busy: the server is stalling), its latency is counted
// from when it was due, so a stall shows in every request due meanwhile
// (no coordinated omission). When a sender was waiting for it, latency
// counts from when it went out: Go wakes a goroutine sleeping on a timer
// up to a millisecond late when the process is otherwise idle (the
// netpoller waits in whole milliseconds), which is the generator's delay,
// not the server's.
func openLoop(ctx context.Context, clk loadClock, rate float64, dur time.Duration, clients int, send func(context.Context) error) openLoopResult {
	n := int(rate * dur.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := clk.Now()
	lat := make([]float64, n)
	ok := make([]bool, n)
	late := make([]time.Duration, n)
	var next atomic.Int64
	var mu sync.Mutex
	var res openLoopResult
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				behind := clk.Now().After(due)
				if !clk.SleepUntil(ctx, due) {
					return
				}
				sent := clk.Now()
				late[i] = sent.Sub(due)
				from := sent
				if behind {
					from = due
				}
				err := send(ctx)
				lat[i] = clk.Now().Sub(from).Seconds()
				mu.Lock()
				res.Requests++
				if err != nil {
					res.Errors++
					if res.FirstErr == nil {
						res.FirstErr = err
					}
				} else {
					ok[i] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var good []float64
	for i := range n {
		if ok[i] {
			good = append(good, lat[i])
		}
		res.LateMax = max(res.LateMax, late[i])
	}
	res.Latency = summarize(good)
	return res
}

// scoresClient is an HTTP client of keep-alive connections that leaves
// Accept-Encoding to the request (DisableCompression: Go's transport would
// otherwise ask for gzip on every request and unpack it).
func scoresClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableCompression: true, MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}}
}

// scoresSender returns a send function for openLoop: GET url with the
// headers, body read to the end, 200 required.
func scoresSender(c *http.Client, url string, h map[string]string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return err
	}
}

// scoresAnswer is one kind's answer as qoscope sent it: the peer's body.
type scoresAnswer struct {
	body                []byte
	contentType, encode string
	// The peer's header values.
	ctype, cencode []string
}

// fetchScores GETs one kind once.
func fetchScores(ctx context.Context, c *http.Client, url string, h map[string]string) (scoresAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return scoresAnswer{}, err
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return scoresAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return scoresAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return scoresAnswer{}, fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, b)
	}
	return scoresAnswer{body: b, contentType: resp.Header.Get("Content-Type"), encode: resp.Header.Get("Content-Encoding")}, nil
}

// waitScores polls the whole table until it answers 200 with at least
// one region; it returns their number.
func waitScores(ctx context.Context, c *http.Client, url, token string, done <-chan struct{}, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	last := errors.New("no answer yet")
	for {
		a, err := fetchScores(ctx, c, url, map[string]string{"Authorization": "Bearer " + token})
		if err == nil {
			var t struct {
				Regions []json.RawMessage `json:"regions"`
			}
			if err = json.Unmarshal(a.body, &t); err == nil && len(t.Regions) > 0 {
				return len(t.Regions), nil
			}
			if err == nil {
				err = errors.New("no region yet")
			}
		}
		last = err
		select {
		case <-done:
			return 0, errors.New("exited before the scores answered")
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no scores with a region after %s: %w", timeout, last)
		}
	}
}

// scoresConfig is the demo's configuration (serve in process; the demo
// wires the scores contracts itself, internal/allinone/readside.go) with
// the step's addresses and a read token.
func scoresConfig(o *Options, ingestAddr, serveAddr, token string) string {
	return fmt.Sprintf(`log: {level: warn}
ingest:
  listen: %q
all_in_one:
  embedded_kafka: {enabled: true}
  serve: {enabled: true}
  demo: {enabled: true, scenario: baseline, seed: %d}
serve:
  listen: %q
  tokens:
    - {name: bench, token: %q, scopes: [read]}
`, ingestAddr, o.Seed, serveAddr, token)
}

// runScores runs the scores step.
func runScores(ctx context.Context, o *Options, work string, logf func(string, ...any)) *ScoresResult {
	res := &ScoresResult{Rate: scoresRate, DurationS: scoresDuration.Seconds(), Clients: scoresClients, GoalP99: scoresGoalP99Ms}
	fail := func(err error) *ScoresResult { res.Error = err.Error(); return res }

	bin, err := buildBinary(ctx, o.RepoDir, work, "qoscope", "./cmd/qoscope")
	if err != nil {
		return fail(err)
	}
	token, err := randomHex(24)
	if err != nil {
		return fail(err)
	}
	dsn, dropDB, err := freshDatabase(ctx, o, scoresDatabase, logf)
	if err != nil {
		return fail(err)
	}
	defer dropDB()
	ingestAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	serveAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	cfg := scoresConfig(o, ingestAddr, serveAddr, token)
	res.Config = strings.ReplaceAll(cfg, token, "<token>")
	proc, err := startDemo(ctx, bin, work, "scores", cfg, dsn, serveAddr)
	if err != nil {
		return fail(err)
	}
	defer proc.stop()
	res.Command = "qoscope all-in-one --demo --config scores.yaml (QOSCOPE_CLICKHOUSE_DSN: database " + scoresDatabase + ")"
	base := "http://" + serveAddr
	client := scoresClient(scoresClients)
	res.Regions, err = waitScores(ctx, client, base+"/api/v1/scores", token, proc.done, 5*time.Minute)
	if err != nil {
		return fail(fmt.Errorf("%w (log %s)", err, proc.logPath))
	}
	logf("  qoscope all-in-one (pid %d): /api/v1/scores answers %d regions", proc.cmd.Process.Pid, res.Regions)

	// The peer: the bytes qoscope answered for each kind, with its
	// Content-Type and Content-Encoding, from a net/http server in this
	// process (HTTP alone, no lookup, no auth). Each setup sets the
	// answers its qoscope gave.
	var answers atomic.Pointer[[]scoresAnswer]
	mux := http.NewServeMux()
	for i := range scoresKinds {
		mux.HandleFunc(fmt.Sprintf("/kind/%d", i), func(w http.ResponseWriter, _ *http.Request) {
			a := (*answers.Load())[i]
			hd := w.Header()
			hd["Content-Type"] = a.ctype
			if a.cencode != nil {
				hd["Content-Encoding"] = a.cencode
			}
			_, _ = w.Write(a.body)
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("cannot listen for the peer: %w", err))
	}
	peer := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = peer.Serve(ln) }()
	defer peer.Close()
	peerBase := "http://" + ln.Addr().String()

	// measure runs every kind against base, then against the peer with
	// the bytes base answered.
	measure := func(setup, base string) error {
		got := make([]scoresAnswer, len(scoresKinds))
		for i, k := range scoresKinds {
			a, err := fetchScores(ctx, client, base+"/api/v1/scores"+k.Query, k.headers(token))
			if err != nil {
				return err
			}
			a.ctype = []string{a.contentType}
			if a.encode != "" {
				a.cencode = []string{a.encode}
			}
			got[i] = a
		}
		answers.Store(&got)
		for i, k := range scoresKinds {
			for _, server := range []string{"qoscope", "static"} {
				url := base + "/api/v1/scores" + k.Query
				if server == "static" {
					url = fmt.Sprintf("%s/kind/%d", peerBase, i)
				}
				l := &ScoresLoad{Setup: setup, Server: server, Kind: k.Name, Bytes: len(got[i].body)}
				res.Runs = append(res.Runs, l)
				c := scoresClient(scoresClients)
				send := scoresSender(c, url, k.headers(token))
				openLoop(ctx, realClock{}, scoresRate, scoresWarmup, scoresClients, send)
				r := openLoop(ctx, realClock{}, scoresRate, scoresDuration, scoresClients, send)
				c.CloseIdleConnections()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				l.Requests, l.Errors = r.Requests, r.Errors
				if r.FirstErr != nil {
					l.FirstErr = r.FirstErr.Error()
				}
				l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs = r.Latency.P50*1e3, r.Latency.P90*1e3, r.Latency.P99*1e3, r.Latency.Max*1e3
				l.LateMs = float64(r.LateMax) / 1e6
				logf("    %s, %s, %s (%d B): p50 %s ms, p90 %s ms, p99 %s ms, max %s ms, %d/%d errors",
					setup, server, k.Name, l.Bytes, num(l.P50Ms), num(l.P90Ms), num(l.P99Ms), num(l.MaxMs), l.Errors, l.Requests)
			}
		}
		return nil
	}

	res.LoadStart = loadAvg()
	if err := measure(ScoresSetupAllInOne, base); err != nil {
		return fail(err)
	}
	res.LoadAllInOne = loadAvg()

	// The replica: the demo stops (its tables stay) and `qoscope serve`
	// alone serves the scores from them, rebuilding each minute as the
	// live service does: the API's own latency, which is what a scheduler
	// behind a serve replica sees when the pipeline runs on other hosts.
	proc.stop()
	replicaAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	contracts := filepath.Join(work, "scores-contracts.yaml")
	if err := os.WriteFile(contracts, deploy.Scores, 0o600); err != nil {
		return fail(err)
	}
	rcfg := scoresReplicaConfig(replicaAddr, token, contracts)
	res.ReplicaConfig = strings.ReplaceAll(rcfg, token, "<token>")
	replica, err := startQoscope(ctx, bin, work, "scores", []string{"serve"}, rcfg, dsn, replicaAddr)
	if err != nil {
		return fail(err)
	}
	defer replica.stop()
	res.ReplicaCommand = "qoscope serve --config scores.yaml (QOSCOPE_CLICKHOUSE_DSN: database " + scoresDatabase + ")"
	rbase := "http://" + replicaAddr
	n, err := waitScores(ctx, client, rbase+"/api/v1/scores", token, replica.done, 2*time.Minute)
	if err != nil {
		return fail(fmt.Errorf("%w (log %s)", err, replica.logPath))
	}
	logf("  qoscope serve (pid %d): /api/v1/scores answers %d regions", replica.cmd.Process.Pid, n)
	res.LoadReplica = loadAvg()
	if err := measure(ScoresSetupReplica, rbase); err != nil {
		return fail(err)
	}
	res.LoadEnd = loadAvg()
	return res
}

// headers are the kind's request headers with the bearer token.
func (k scoresKind) headers(token string) map[string]string {
	h := map[string]string{"Authorization": "Bearer " + token}
	for hk, hv := range k.Header {
		h[hk] = hv
	}
	return h
}

// scoresReplicaConfig is `qoscope serve` with the scores on (the demo's
// contracts, no Kafka topic: no brokers) and a read token, logging at the
// default level, info (a successful scores request writes no line).
func scoresReplicaConfig(serveAddr, token, contracts string) string {
	return fmt.Sprintf(`serve:
  listen: %q
  tokens:
    - {name: bench, token: %q, scopes: [read]}
scores:
  config: %q
  kafka_topic: ""
`, serveAddr, token, contracts)
}

// run returns the scores run of server for kind in setup.
func (s *ScoresResult) run(setup, server, kind string) *ScoresLoad {
	if s == nil || s.Error != "" {
		return nil
	}
	for _, l := range s.Runs {
		if l.Setup == setup && l.Server == server && l.Kind == kind {
			return l
		}
	}
	return nil
}

// renderScores renders the scores step.
func renderScores(m *md, r *Results) {
	s := r.Scores
	if s == nil {
		return
	}
	m.p("## Scores: GET /api/v1/scores of the live service, open loop")
	m.p("")
	m.p("Reproduce: `go run ./bench/cmd/qoscope-bench --steps scores --report bench/REPORT-scores.md` (needs ClickHouse: `eval \"$(qoscope infra env)\"`). Goal (docs/SCORES.md, \"Speed of the live service\"): p99 ≤ %g ms at %s requests/s, per kind of request, judged on the serve replica (the API's own latency); the all-in-one rows say how close a laptop running everything comes.", s.GoalP99, num(s.Rate))
	m.p("")
	if s.Error != "" {
		m.p("**Not completed**: %s", cell(s.Error))
		m.p("")
		return
	}
	m.p("Two setups, one after the other:")
	m.p("")
	m.p("1. **%s**: `%s`: embedded Kafka, ingest, aggregator, serve with the scores the demo wires (deploy/config/scores.yaml) and the demo's generator (30 minutes of history, then live viewers), all in one process, on the same %d cores as ClickHouse and the load generator; %d regions in the table. What a laptop running everything sees.", ScoresSetupAllInOne, s.Command, r.Environment.Cores, s.Regions)
	m.p("2. **%s**: the demo stopped (its tables stay), then `%s` alone: the same contracts, rebuilding the snapshot from ClickHouse every minute as in production, logging at info, no Kafka. The API's own latency, what a scheduler sees from a serve replica when the pipeline runs on other hosts (docs/CLUSTER.md).", ScoresSetupReplica, s.ReplicaCommand)
	m.p("")
	m.p("- **Load**: the harness's open-loop generator, %s requests/s for %s s per kind (after %s s of warm-up), %d keep-alive connections; request i is due at start + i/rate; its latency counts from when it went out, or from when it was due if every connection was busy then (a stall shows in every request due meanwhile; the generator's own late timer wake-ups, up to 1 ms in Go, do not). Go's transport compression is off: Accept-Encoding is the request's own. Percentiles nearest-rank over the successful requests.", num(s.Rate), num(s.DurationS), num(scoresWarmup.Seconds()), s.Clients)
	m.p("- **Peer**: a net/http server in the harness answering, per kind, the exact bytes (and Content-Type, Content-Encoding) qoscope answered in that setup, no auth: HTTP alone, same load, right after qoscope's run. It shares the generator's process, qoscope runs in its own.")
	m.p("- Load average (1 min) on %d cores: %s before the first run, %s after the all-in-one runs, %s before the replica's, %s after the last.", r.Environment.Cores, num(s.LoadStart), num(s.LoadAllInOne), num(s.LoadReplica), num(s.LoadEnd))
	m.p("")
	var rows [][]string
	for _, l := range s.Runs {
		met := ""
		if l.Server == "qoscope" {
			met = "no"
			if l.Errors == 0 && l.P99Ms <= s.GoalP99 {
				met = "yes"
			}
		}
		ratio := ""
		if p := s.run(l.Setup, "static", l.Kind); l.Server == "qoscope" && p != nil && p.P99Ms > 0 {
			ratio = num(l.P99Ms / p.P99Ms)
		}
		rows = append(rows, []string{l.Setup, l.Kind, l.Server, group(fmt.Sprint(l.Bytes)), fmt.Sprint(l.Requests), fmt.Sprint(l.Errors),
			num(l.P50Ms), num(l.P90Ms), num(l.P99Ms), num(l.MaxMs), num(l.LateMs), ratio, met})
	}
	m.table([]string{"setup", "kind", "server", "answer bytes", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "latest start ms", "p99 / peer p99", "p99 ≤ goal"}, rows)
	for _, l := range s.Runs {
		if l.FirstErr != "" {
			m.p("- %s, %s, %s: first error: %s", l.Setup, l.Server, l.Kind, cell(l.FirstErr))
		}
	}
	for _, n := range s.Notes {
		m.p("- note: %s", n)
	}
}
