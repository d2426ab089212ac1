package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/steer"
)

// Steering load test goals (docs/STEERING.md "Speed").
const (
	steerGoalRPS   = 25_000
	steerGoalP99Ms = 2.0
)

// SteerResult is the steering step: `qoscope steer --scores-file` under
// wrk in another process, beside the same load on a static-JSON net/http
// server (the peer: HTTP alone).
type SteerResult struct {
	// Table: regions × vendors of the scores file; Addresses the client
	// addresses the script spreads requests over (X-Forwarded-For from
	// 127.0.0.1, a trusted proxy), Foreign those outside the IP table.
	Regions   int `json:"regions"`
	Vendors   int `json:"vendors"`
	Addresses int `json:"addresses"`
	Foreign   int `json:"foreign_addresses"`
	// Server GOMAXPROCS, wrk threads, duration of each run.
	ServerProcs int     `json:"server_gomaxprocs"`
	WrkThreads  int     `json:"wrk_threads"`
	DurationS   float64 `json:"duration_s"`
	Wrk         string  `json:"wrk"`
	// Runs: for each connection count, qoscope then the peer.
	Runs    []*SteerLoad `json:"runs"`
	GoalRPS float64      `json:"goal_rps"`
	GoalP99 float64      `json:"goal_p99_ms"`
	Error   string       `json:"error,omitempty"`
}

// SteerLoad is one wrk run against one server.
type SteerLoad struct {
	Server      string  `json:"server"` // "qoscope" or "static"
	Connections int     `json:"connections"`
	Requests    int64   `json:"requests"`
	RPS         float64 `json:"requests_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P75Ms       float64 `json:"p75_ms"`
	P90Ms       float64 `json:"p90_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// Non2xx and SocketErrors are failures wrk counted.
	Non2xx       int64 `json:"non_2xx"`
	SocketErrors int64 `json:"socket_errors"`
	// ServerCPUSec is the server process's CPU over the run; CPUUsPerReq
	// that per request.
	ServerCPUSec float64 `json:"server_cpu_s"`
	CPUUsPerReq  float64 `json:"server_cpu_us_per_request"`
	Command      string  `json:"command"`
	Error        string  `json:"error,omitempty"`
}

// runSteer runs the steering step (bench/README.md, "Steering").
func runSteer(ctx context.Context, o *Options, work string, logf func(string, ...any)) *SteerResult {
	res := &SteerResult{ServerProcs: o.SteerProcs, WrkThreads: o.SteerWrkThreads, DurationS: o.SteerDuration.Seconds(),
		GoalRPS: steerGoalRPS, GoalP99: steerGoalP99Ms}
	fail := func(err error) *SteerResult { res.Error = err.Error(); return res }
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return fail(fmt.Errorf("wrk not found (Debian: apt-get install wrk): %w", err))
	}
	if out, err := exec.CommandContext(ctx, wrk, "--version").CombinedOutput(); len(out) > 0 {
		res.Wrk, _, _ = strings.Cut(string(out), "\n")
		res.Wrk = strings.TrimSpace(strings.Split(res.Wrk, " Copyright")[0])
		_ = err // wrk --version exits 1
	}

	bins := map[string]string{"qoscope": "./cmd/qoscope", "staticjson": "./bench/peers/staticjson"}
	for name, pkg := range bins {
		bin, err := buildBinary(ctx, o.RepoDir, work, name, pkg)
		if err != nil {
			return fail(err)
		}
		bins[name] = bin
	}

	table := steer.SyntheticTable(1, o.Now().UTC().Truncate(time.Minute))
	res.Regions, res.Vendors = len(table.Regions), len(table.Regions[0].Vendors)
	scores := filepath.Join(work, "steer-scores.json")
	b, err := json.Marshal(table)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(scores, b, 0o644); err != nil {
		return fail(err)
	}
	// The peer's body: a real manifest of that table.
	snap := steer.Compile(table, nil)
	body, _ := snap.AppendManifest(nil, &steer.Request{Kind: steer.HLS, TTL: 300, Session: "0123456789abcdef",
		Province: table.Regions[0].Province, ISP: table.Regions[0].ISP})
	bodyFile := filepath.Join(work, "steer-static.json")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		return fail(err)
	}
	cfg := filepath.Join(work, "steer.yaml")
	if err := os.WriteFile(cfg, []byte("log: {level: warn}\nsteer:\n  trusted_proxies: [127.0.0.1]\n"), 0o644); err != nil {
		return fail(err)
	}
	script := filepath.Join(work, "steer.lua")
	nAddr, nForeign, err := writeSteerScript(script)
	if err != nil {
		return fail(err)
	}
	res.Addresses, res.Foreign = nAddr, nForeign

	for _, conns := range o.SteerConnections {
		for _, server := range []string{"qoscope", "static"} {
			addr, err := freeAddr()
			if err != nil {
				return fail(err)
			}
			var cmd *exec.Cmd
			if server == "qoscope" {
				cmd = exec.Command(bins["qoscope"], "steer", "--config", cfg, "--scores-file", scores, "--listen", addr)
			} else {
				cmd = exec.Command(bins["staticjson"], "-listen", addr, "-body", bodyFile)
			}
			l := &SteerLoad{Server: server, Connections: conns}
			res.Runs = append(res.Runs, l)
			logf("  %s, %d connections", server, conns)
			if err := loadOnce(ctx, o, cmd, addr, wrk, script, l, filepath.Join(work, "steer-"+server+".log")); err != nil {
				l.Error = err.Error()
				logf("  %s: %v", server, err)
				continue
			}
			logf("    %s req/s, p50 %s ms, p99 %s ms, max %s ms, %s µs CPU/request, %d non-2xx, %d socket errors",
				num(l.RPS), num(l.P50Ms), num(l.P99Ms), num(l.MaxMs), num(l.CPUUsPerReq), l.Non2xx, l.SocketErrors)
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
		}
	}
	return res
}

// loadOnce starts cmd (a server on addr), warms it, runs wrk against it
// and stops it.
func loadOnce(ctx context.Context, o *Options, cmd *exec.Cmd, addr, wrk, script string, l *SteerLoad, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(o.SteerProcs))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	base := "http://" + addr
	probe := base + "/steer/hls?session=probe"
	for i := 0; ; i++ {
		resp, err := http.Get(probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 300 {
			return fmt.Errorf("%s not answering 200 after 30 s (log %s)", cmd.Path, logPath)
		}
		select {
		case err := <-done:
			return fmt.Errorf("%s exited: %v (log %s)", cmd.Path, err, logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
	args := []string{"-t", strconv.Itoa(o.SteerWrkThreads), "-c", strconv.Itoa(l.Connections), "--latency", "-s", script}
	// Warm-up: connections, the compiled table, the pool.
	if out, err := exec.CommandContext(ctx, wrk, append(args, "-d", "2s", base+"/")...).CombinedOutput(); err != nil {
		return fmt.Errorf("wrk warm-up: %w: %s", err, out)
	}
	cpu0, err := measure.ProcCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	full := append(args, "-d", fmt.Sprintf("%ds", int(o.SteerDuration.Seconds())), base+"/")
	l.Command = "wrk " + strings.Join(full, " ")
	out, err := exec.CommandContext(ctx, wrk, full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("wrk: %w: %s", err, out)
	}
	cpu1, err := measure.ProcCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	if err := parseWrk(string(out), l); err != nil {
		return fmt.Errorf("%w:\n%s", err, out)
	}
	l.ServerCPUSec = (cpu1 - cpu0).Seconds()
	if l.Requests > 0 {
		l.CPUUsPerReq = l.ServerCPUSec * 1e6 / float64(l.Requests)
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeSteerScript writes wrk's Lua script: 8,192 requests prepared at
// start (so the script costs wrk nothing per request), half HLS, half DASH,
// each with its own session, an X-Forwarded-For address drawn over the
// synthetic IP table's blocks (every province and carrier, plus foreign
// and unknown blocks: the country order) and, one request in ten, province
// and isp query parameters as a RELOAD-URI repeats them.
func writeSteerScript(path string) (addrs, foreign int, err error) {
	g, err := ipdb.Default()
	if err != nil {
		return 0, 0, err
	}
	var list []string
	for _, bl := range g.Ranges() {
		a := bl.First.As4()
		a[3] = 7
		list = append(list, netip.AddrFrom4(a).String())
		if bl.Province == "" || bl.Country != "cn" {
			foreign++
		}
	}
	// Addresses in no block at all.
	for i := range 16 {
		list = append(list, fmt.Sprintf("192.0.2.%d", 1+i))
		foreign++
	}
	var sb strings.Builder
	sb.WriteString("-- generated by bench/harness/steer.go\nlocal addrs = {\n")
	for _, a := range list {
		fmt.Fprintf(&sb, "  %q,\n", a)
	}
	sb.WriteString(`}
local reqs = {}
local n = 0
init = function(args)
  math.randomseed(7 + #reqs)
  for i = 1, 8192 do
    local kind = "hls"
    if i % 2 == 0 then kind = "dash" end
    local path = "/steer/" .. kind .. "?session=" .. string.format("%08x%06x", math.random(0, 0x7fffffff), i)
    if i % 10 == 0 then path = path .. "&province=guangdong&isp=telecom" end
    reqs[i] = wrk.format("GET", path, { ["X-Forwarded-For"] = addrs[math.random(#addrs)] })
  end
end
request = function()
  n = n % 8192 + 1
  return reqs[n]
end
`)
	return len(list), foreign, os.WriteFile(path, []byte(sb.String()), 0o644)
}

var (
	wrkLatLine = regexp.MustCompile(`^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkMax     = regexp.MustCompile(`^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)`)
	wrkReqs    = regexp.MustCompile(`^\s*(\d+) requests in`)
	wrkRPS     = regexp.MustCompile(`^Requests/sec:\s+([\d.]+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSock    = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrkMs(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return f / 1000
	case "s":
		return f * 1000
	}
	return f
}

// parseWrk reads wrk --latency output into l.
func parseWrk(out string, l *SteerLoad) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := wrkLatLine.FindStringSubmatch(line); m != nil {
			v := wrkMs(m[2], m[3])
			switch m[1] {
			case "50":
				l.P50Ms = v
			case "75":
				l.P75Ms = v
			case "90":
				l.P90Ms = v
			case "99":
				l.P99Ms = v
			}
		} else if m := wrkMax.FindStringSubmatch(line); m != nil {
			l.MaxMs = wrkMs(m[1], m[2])
		} else if m := wrkReqs.FindStringSubmatch(line); m != nil {
			l.Requests, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := wrkRPS.FindStringSubmatch(line); m != nil {
			l.RPS, _ = strconv.ParseFloat(m[1], 64)
		} else if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			l.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := wrkSock.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				l.SocketErrors += n
			}
		}
	}
	if l.RPS == 0 || l.P99Ms == 0 {
		return fmt.Errorf("cannot read requests/s and the 99th percentile from wrk's output")
	}
	return nil
}

// defaultSteerProcs is the steering server's GOMAXPROCS: all cores (wrk
// shares them).
func defaultSteerProcs() int { return runtime.NumCPU() }

// steerMicro are the steering core's Go benchmarks, run by the steer step.
var steerMicro = GoBench{Package: "./steer", Bench: "^(BenchmarkAppendManifest|BenchmarkHandler)$",
	Why: "steering: region lookup + weighted draw + manifest (pure core), and the whole handler (client address → IP table → draw → manifest → headers), no network"}
