package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/bench/peers/measure"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/devinfra"
	"github.com/qoscope/qoscope/notify"
)

// The alerts step (bench/README.md, "Alerts"): what on-call feels, from
// a minute's end to the webhook request at a receiver, at demo scale.
const (
	// alertsGoalP99Sec is docs/ALERTS.md's "Speed" goal.
	alertsGoalP99Sec = 5.0
	// alertsDatabase is the step's own ClickHouse database, dropped at
	// start (and at the end unless --keep-work), so the evaluator starts
	// with no saved state and the history read back is this run's.
	alertsDatabase = "qoscope_bench_alerts"
	// alertsTail is how long the step keeps listening after the last
	// measured minute's end: a notification later than that is counted
	// missing (the history says it was due).
	alertsTail = 45 * time.Second
)

// Paths of the step's webhook receiver.
const (
	alertPathDirect = "direct" // qoscope's webhook receiver, signed
	alertPathAM     = "alertmanager"
)

// AlertsResult is the alerts step: `qoscope all-in-one --demo` in its own
// process with rules that change state most minutes, delivering each
// change to a webhook in this process directly and through a real
// Alertmanager, both measured in the same run.
type AlertsResult struct {
	Users    int    `json:"users"`
	Scenario string `json:"scenario"`
	// DurationS is the live traffic measured; Minutes the minutes
	// evaluated in it (From, To: the first and last).
	DurationS float64   `json:"duration_s"`
	TailS     float64   `json:"tail_s"`
	Minutes   int       `json:"minutes"`
	From      time.Time `json:"from,omitzero"`
	To        time.Time `json:"to,omitzero"`
	// Rules is the rules file the evaluator ran.
	Rules string `json:"rules"`
	// Config is the all-in-one configuration (secrets replaced).
	Config       string `json:"config"`
	Command      string `json:"command"`
	Alertmanager string `json:"alertmanager"`
	// Paths: the direct webhook, then the same alerts through
	// Alertmanager.
	Paths []*AlertPath `json:"paths"`
	// Evaluation is minute end → the evaluator's first write of the
	// minute's decisions (alert_history.written_at), over the minutes with
	// a change.
	Evaluation Latency `json:"evaluation"`
	// LagMetric is serve's qoscope_alert_evaluation_lag_seconds at the end
	// (minute end → end of its first evaluation, every minute).
	LagMetric *HistogramSummary `json:"lag_metric,omitempty"`
	// PipelineCPUSec is the all-in-one process's CPU (ingest, aggregator,
	// serve, evaluator, delivery, the demo's generator) over the measured
	// time; AlertmanagerCPUSec Alertmanager's.
	PipelineCPUSec     float64 `json:"pipeline_cpu_s"`
	AlertmanagerCPUSec float64 `json:"alertmanager_cpu_s"`
	// Load average (1 min), sampled every 10 s while measuring.
	LoadMin  float64  `json:"load_min"`
	LoadMean float64  `json:"load_mean"`
	LoadMax  float64  `json:"load_max"`
	GoalP99S float64  `json:"goal_p99_s"`
	Notes    []string `json:"notes,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// AlertPath is one delivery path's notifications.
type AlertPath struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Requests: webhook requests received; BadSignature those whose
	// signature did not verify (direct path only; they count nothing).
	Requests     int `json:"requests"`
	BadSignature int `json:"bad_signature"`
	// Changes: alert changes (firing or resolved, one alert at one
	// minute) received in the measured minutes, first arrival of each;
	// Repeats further arrivals of one; Expected the changes
	// alert_history holds for those minutes; Missing those expected and
	// never received; Unexpected those received and not in the history.
	Changes    int `json:"changes"`
	Firing     int `json:"firing"`
	Resolved   int `json:"resolved"`
	Repeats    int `json:"repeats"`
	Expected   int `json:"expected"`
	Missing    int `json:"missing"`
	Unexpected int `json:"unexpected"`
	// Latency is minute end → arrival; Delivery the evaluator's write of
	// the decision → arrival.
	Latency  Latency `json:"latency"`
	Delivery Latency `json:"delivery"`
}

// Latency summarises a set of durations in seconds (nearest rank).
type Latency struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_s"`
	P50  float64 `json:"p50_s"`
	P90  float64 `json:"p90_s"`
	P99  float64 `json:"p99_s"`
	Max  float64 `json:"max_s"`
	Mean float64 `json:"mean_s"`
}

// HistogramSummary is a Prometheus histogram read from /metrics.
type HistogramSummary struct {
	Count float64 `json:"count"`
	Sum   float64 `json:"sum"`
	Mean  float64 `json:"mean"`
	// P99Bound is the upper bound of the bucket holding the 99th
	// percentile (+Inf: beyond the last bucket).
	P99Bound float64 `json:"p99_bucket_bound"`
	// Buckets are the cumulative counts by upper bound, ascending.
	Buckets []HistogramBucket `json:"-"`
}

// HistogramBucket is one cumulative bucket.
type HistogramBucket struct{ LE, N float64 }

// summarizeBuckets fills Mean and P99Bound from Count, Sum and Buckets.
func (h *HistogramSummary) summarizeBuckets() {
	h.Mean, h.P99Bound = 0, 0
	if h.Count <= 0 {
		return
	}
	h.Mean = h.Sum / h.Count
	h.P99Bound = math.Inf(1)
	for _, b := range h.Buckets {
		if b.N >= 0.99*h.Count {
			h.P99Bound = b.LE
			return
		}
	}
}

// since is the histogram of the observations after before (a scrape of
// the same histogram taken earlier; nil: all of h).
func (h *HistogramSummary) since(before *HistogramSummary) *HistogramSummary {
	if before == nil {
		return h
	}
	d := &HistogramSummary{Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
	for _, b := range h.Buckets {
		n := b.N
		for _, a := range before.Buckets {
			if a.LE == b.LE {
				n -= a.N
			}
		}
		d.Buckets = append(d.Buckets, HistogramBucket{b.LE, n})
	}
	d.summarizeBuckets()
	return d
}

// summarize returns the nearest-rank summary of xs (seconds).
func summarize(xs []float64) Latency {
	if len(xs) == 0 {
		return Latency{}
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Latency{N: len(s), Min: s[0], P50: rank(0.5), P90: rank(0.9), P99: rank(0.99), Max: s[len(s)-1], Mean: sum / float64(len(s))}
}

// arrival is one webhook request as received.
type arrival struct {
	path string
	at   time.Time
	msg  notify.WebhookMessage
}

// alertChange identifies one notified change: the alert (its labels,
// alertname included: Alertmanager's webhook carries its own
// fingerprints, not qoscope's), its status and the minute evaluated.
type alertChange struct {
	labels string
	status string
	minute time.Time
}

// labelKey writes labels sorted by name: the alert's identity on both
// paths.
func labelKey(l map[string]string) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range l {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strconv.Quote(l[k]) + ",")
	}
	return b.String()
}

// evaluatedMinute is the minute whose evaluation a notified alert
// reports: a firing alert's startsAt is the minute it fired, a resolved
// one's endsAt the minute evaluated (docs/ALERTS.md, "Live":
// notifications). Both paths carry them unchanged: the webhook from
// notify.Alert, Alertmanager from the alerts qoscope posts to it. false
// when the field is missing.
func evaluatedMinute(a notify.WebhookAlert) (time.Time, bool) {
	t := a.StartsAt
	if a.Status == notify.StatusResolved {
		t = a.EndsAt
	}
	if t.IsZero() || t.Year() < 2000 {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// minuteLatency is what on-call feels: the arrival of the notification
// minus the end of the minute evaluated.
func minuteLatency(minute, arrived time.Time) time.Duration {
	return arrived.Sub(minute.Add(time.Minute))
}

// historyChange is one alert_history decision: the change, and when the
// evaluator first wrote it.
type historyChange struct {
	change  alertChange
	written time.Time
}

// tallyPath counts one path's arrivals against the history, over the
// minutes in [from, to] (minute starts).
func tallyPath(p *AlertPath, arrivals []arrival, history []historyChange, from, to time.Time) {
	written := map[alertChange]time.Time{}
	for _, h := range history {
		if !h.change.minute.Before(from) && !h.change.minute.After(to) {
			written[h.change] = h.written
		}
	}
	p.Expected = len(written)
	seen := map[alertChange]bool{}
	var lat, del []float64
	for _, a := range arrivals {
		if a.path != p.Name {
			continue
		}
		p.Requests++
		for _, al := range a.msg.Alerts {
			m, ok := evaluatedMinute(al)
			if !ok || m.Before(from) || m.After(to) {
				continue
			}
			c := alertChange{labels: labelKey(al.Labels), status: al.Status, minute: m}
			if seen[c] {
				p.Repeats++
				continue
			}
			seen[c] = true
			p.Changes++
			if al.Status == notify.StatusResolved {
				p.Resolved++
			} else {
				p.Firing++
			}
			lat = append(lat, minuteLatency(m, a.at).Seconds())
			if w, ok := written[c]; ok {
				del = append(del, a.at.Sub(w).Seconds())
			} else {
				p.Unexpected++
			}
		}
	}
	for c := range written {
		if !seen[c] {
			p.Missing++
		}
	}
	p.Latency, p.Delivery = summarize(lat), summarize(del)
}

// alertReceiver is the step's on-call end: it timestamps each request on
// arrival, checks the direct path's signature and keeps the payloads.
type alertReceiver struct {
	secret []byte
	mu     sync.Mutex
	got    []arrival
	bad    map[string]int
	srv    *http.Server
	url    string
}

func startAlertReceiver(secret []byte) (*alertReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the webhook receiver: %w", err)
	}
	r := &alertReceiver{secret: secret, bad: map[string]int{}, url: "http://" + ln.Addr().String()}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *alertReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	path := strings.Trim(req.URL.Path, "/")
	body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20))
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	if path == alertPathDirect && !notify.Verify(r.secret, body, req.Header.Get(notify.SignatureHeader)) {
		r.mu.Lock()
		r.bad[path]++
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m notify.WebhookMessage
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "not a webhook message: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, arrival{path: path, at: at, msg: m})
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *alertReceiver) arrivals() ([]arrival, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	bad := map[string]int{}
	for k, v := range r.bad {
		bad[k] = v
	}
	return slices.Clone(r.got), bad
}

// alertsRules are rules whose condition flips with the demo traffic's
// natural noise: thresholds at the median of per-group values of the
// baseline scenario at 2,000 users (measured offline on `qoscope gen
// --scenario baseline --users 2000 --duration 12m` + `qoscope
// aggregate`), for: 0 and keep_firing_for: 0, so about half the groups
// change state each minute (≈ 14 a minute over the 31 provinces, ≈ 9 over
// the 20 streams). No mean (_avg) metric: the live evaluator asks the
// query library for its numerator column (first_frame_ms_sum), which is
// not a catalogue name, and every minute fails.
const alertsRules = `# bench/harness/alerts.go: rules that change state most minutes (thresholds
# at the median of the baseline scenario's per-group values, 2,000 users).
- name: bench-first-frame-p50
  source: client
  metric: first_frame_ms_p50
  group_by: [province]
  above: 713
  min_users: 10
  severity: warning
  labels: {team: bench}
  annotations: {summary: "first frame p50 {{ .Value }} ms in {{ .Labels.province }}"}
- name: bench-stutter-stream
  source: client
  metric: stutter_rate_uv
  group_by: [stream_id]
  above: 0.0286
  min_users: 10
  severity: warning
  labels: {team: bench}
  annotations: {summary: "stutter {{ .Value | pct }} on {{ .Labels.stream_id }}"}
`

// alertsConfig is the all-in-one configuration of the step: the demo's
// (embedded Kafka, generated traffic, serve in process) with the baseline
// scenario, no history backfill, and two receivers of every alert: the
// direct webhook and Alertmanager. Both group per alert ("..."; the
// Alertmanager route too) with a group_wait of 1 s, so each change is sent
// at once.
func alertsConfig(o *Options, ingestAddr, serveAddr, token, rules, hook, secret, amURL string) string {
	return fmt.Sprintf(`log: {level: warn}
ingest:
  listen: %q
all_in_one:
  embedded_kafka: {enabled: true}
  serve: {enabled: true}
  demo: {enabled: true, scenario: baseline, users: %d, seed: %d, history: 0s, report_every: 1m}
serve:
  listen: %q
  tokens:
    - {name: bench, token: %q, scopes: [read, metrics]}
alert:
  rules: %q
  external_url: "http://%s"
  notify:
    receivers:
      - name: %s
        type: webhook
        url: "%s/%s"
        secret: %q
        group_by: ["..."]
        group_wait: 1s
        group_interval: 1s
        repeat_interval: 24h
      - name: %s
        type: alertmanager
        url: %q
        resend_interval: 1m
`, ingestAddr, o.AlertsUsers, o.Seed, serveAddr, token, rules, serveAddr, alertPathDirect, hook, alertPathDirect, secret, "am", amURL)
}

// runAlerts runs the alerts step.
func runAlerts(ctx context.Context, o *Options, work string, logf func(string, ...any)) *AlertsResult {
	res := &AlertsResult{Users: o.AlertsUsers, Scenario: "baseline", DurationS: o.AlertsDuration.Seconds(), TailS: alertsTail.Seconds(),
		Rules: alertsRules, GoalP99S: alertsGoalP99Sec}
	fail := func(err error) *AlertsResult { res.Error = err.Error(); return res }

	bin, err := buildBinary(ctx, o.RepoDir, work, "qoscope", "./cmd/qoscope")
	if err != nil {
		return fail(err)
	}
	cache, err := devinfra.DefaultCacheDir(os.Getenv)
	if err != nil {
		return fail(err)
	}
	logf("  alertmanager %s (go install once, cached in %s)", devinfra.AlertmanagerVersion, cache)
	amBin, err := devinfra.InstallAlertmanager(ctx, cache, "", zerolog.Nop())
	if err != nil {
		return fail(err)
	}
	res.Alertmanager = devinfra.AlertmanagerVersion

	secret, err := randomHex(24)
	if err != nil {
		return fail(err)
	}
	token, err := randomHex(24)
	if err != nil {
		return fail(err)
	}
	recv, err := startAlertReceiver([]byte(secret))
	if err != nil {
		return fail(err)
	}
	defer recv.srv.Close()
	am, err := devinfra.StartAlertmanager(ctx, devinfra.AlertmanagerOptions{Binary: amBin, Dir: filepath.Join(work, "alertmanager"),
		WebhookURL: recv.url + "/" + alertPathAM, GroupBy: []string{"..."}, GroupWait: time.Second, GroupInterval: time.Second, RepeatInterval: 24 * time.Hour})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = am.Stop(context.Background()) }()

	dsn, dropDB, err := freshDatabase(ctx, o, alertsDatabase, logf)
	if err != nil {
		return fail(err)
	}
	defer dropDB()

	rulesPath := filepath.Join(work, "alert-rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(alertsRules), 0o644); err != nil {
		return fail(err)
	}
	ingestAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	serveAddr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	cfg := alertsConfig(o, ingestAddr, serveAddr, token, rulesPath, recv.url, secret, am.URL)
	res.Config = strings.NewReplacer(secret, "<secret>", token, "<token>").Replace(cfg)
	proc, err := startDemo(ctx, bin, work, "alerts", cfg, dsn, serveAddr)
	if err != nil {
		return fail(err)
	}
	defer proc.stop()
	res.Command = "qoscope all-in-one --demo --config alerts.yaml (QOSCOPE_CLICKHOUSE_DSN: database " + alertsDatabase + ")"
	base := "http://" + serveAddr
	// The demo's live traffic starts at the next whole minute after its
	// components started (internal/allinone), at the latest the one after
	// serve answered ready: the first minute measured.
	liveFrom := time.Now().Truncate(time.Minute).Add(time.Minute)
	logf("  qoscope all-in-one (pid %d) ready; live traffic from %s UTC, measured for %s (+%s for the last minute's notifications)",
		proc.cmd.Process.Pid, liveFrom.UTC().Format(time.TimeOnly), o.AlertsDuration, alertsTail)

	lastMinute := liveFrom.Add(o.AlertsDuration - time.Minute) // minute start of the last one measured
	end := lastMinute.Add(time.Minute + alertsTail)
	if !sleepUntil(ctx, liveFrom, proc.done) {
		return fail(fmt.Errorf("qoscope all-in-one stopped before the traffic started (log %s)", proc.logPath))
	}
	// The lag histogram before the first measured minute's evaluation:
	// the minutes before the traffic are left out by the difference.
	lag0, lagErr := scrapeLag(ctx, base+"/metrics", token)
	cpu0, _ := measure.ProcCPU(proc.cmd.Process.Pid)
	am0, _ := measure.ProcCPU(am.PID)
	var loads []float64
	for now := time.Now(); now.Before(end); now = time.Now() {
		loads = append(loads, loadAvg())
		next := now.Add(10 * time.Second)
		if next.After(end) {
			next = end
		}
		if !sleepUntil(ctx, next, proc.done) {
			return fail(fmt.Errorf("qoscope all-in-one stopped while measuring (log %s)", proc.logPath))
		}
		if now.Second() < 10 {
			got, _ := recv.arrivals()
			logf("  %s UTC: %d webhook requests so far, load %s", now.UTC().Format(time.TimeOnly), len(got), num(loads[len(loads)-1]))
		}
	}
	cpu1, _ := measure.ProcCPU(proc.cmd.Process.Pid)
	am1, _ := measure.ProcCPU(am.PID)
	res.PipelineCPUSec, res.AlertmanagerCPUSec = (cpu1 - cpu0).Seconds(), (am1 - am0).Seconds()
	ls := summarize(loads)
	res.LoadMin, res.LoadMean, res.LoadMax = ls.Min, ls.Mean, ls.Max

	lag1, err := scrapeLag(ctx, base+"/metrics", token)
	if err == nil {
		err = lagErr
	}
	if err != nil {
		res.Notes = append(res.Notes, "cannot read qoscope_alert_evaluation_lag_seconds: "+err.Error())
	} else {
		res.LagMetric = lag1.since(lag0)
	}
	history, err := readAlertHistory(ctx, dsn)
	if err != nil {
		return fail(err)
	}
	arrivals, bad := recv.arrivals()
	// The minutes measured: from the first the evaluator decided (at or
	// after the traffic's start) to the last whole one.
	from := lastMinute
	for _, h := range history {
		if !h.change.minute.Before(liveFrom) && h.change.minute.Before(from) {
			from = h.change.minute
		}
	}
	res.From, res.To = from, lastMinute
	res.Minutes = int(lastMinute.Sub(from)/time.Minute) + 1
	var evals []float64
	evalSeen := map[time.Time]bool{}
	for _, h := range history {
		m := h.change.minute
		if m.Before(from) || m.After(lastMinute) || evalSeen[m] {
			continue
		}
		evalSeen[m] = true
		first := h.written
		for _, g := range history {
			if g.change.minute.Equal(m) && g.written.Before(first) {
				first = g.written
			}
		}
		evals = append(evals, minuteLatency(m, first).Seconds())
	}
	res.Evaluation = summarize(evals)
	for _, p := range []*AlertPath{
		{Name: alertPathDirect, Description: "qoscope → webhook receiver (Alertmanager v4 payload, HMAC-SHA256 signed, verified)"},
		{Name: alertPathAM, Description: "qoscope → Alertmanager " + devinfra.AlertmanagerVersion + " (POST /api/v2/alerts) → its webhook receiver"},
	} {
		tallyPath(p, arrivals, history, from, lastMinute)
		p.BadSignature = bad[p.Name]
		res.Paths = append(res.Paths, p)
	}
	return res
}

// readAlertHistory reads the changes that notify (firing, resolved) and
// when the evaluator first wrote each (its first version: a re-evaluation
// at finality writes a later one).
func readAlertHistory(ctx context.Context, dsn string) ([]historyChange, error) {
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, `SELECT at, rule, any(labels), state, min(written_at), argMax(retracted, version)
		FROM alert_history WHERE state IN ('firing', 'resolved')
		GROUP BY at, rule, fingerprint, state ORDER BY at`)
	if err != nil {
		return nil, fmt.Errorf("cannot read alert_history: %w", err)
	}
	defer rows.Close()
	var out []historyChange
	for rows.Next() {
		var (
			at, written time.Time
			rule, state string
			labels      map[string]string
			retracted   uint8
		)
		if err := rows.Scan(&at, &rule, &labels, &state, &written, &retracted); err != nil {
			return nil, fmt.Errorf("cannot read alert_history: %w", err)
		}
		if retracted != 0 {
			continue
		}
		l := map[string]string{"alertname": rule}
		for k, v := range labels {
			l[k] = v
		}
		out = append(out, historyChange{change: alertChange{labels: labelKey(l), status: state, minute: at.UTC()}, written: written})
	}
	return out, rows.Err()
}

// scrapeLag reads qoscope_alert_evaluation_lag_seconds from /metrics.
func scrapeLag(ctx context.Context, url, token string) (*HistogramSummary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseHistogram(resp.Body, "qoscope_alert_evaluation_lag_seconds")
}

// parseHistogram reads histogram name (no labels) from the Prometheus
// text format: its _sum, _count and the bucket of its 99th percentile.
func parseHistogram(r io.Reader, name string) (*HistogramSummary, error) {
	h := &HistogramSummary{}
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name+"_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %q: %w", name, line[i+1:], err)
		}
		key := line[:i]
		switch {
		case key == name+"_sum":
			h.Sum, found = v, true
		case key == name+"_count":
			h.Count, found = v, true
		case strings.HasPrefix(key, name+`_bucket{le="`):
			le := strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`)
			b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			if err != nil {
				return nil, fmt.Errorf("%s: bucket %q: %w", name, le, err)
			}
			h.Buckets = append(h.Buckets, HistogramBucket{b, v})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("no %s in the metrics", name)
	}
	sort.Slice(h.Buckets, func(i, j int) bool { return h.Buckets[i].LE < h.Buckets[j].LE })
	h.summarizeBuckets()
	return h, nil
}

// envWithout returns env without the variables named.
func envWithout(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			out = append(out, kv)
		}
	}
	return out
}

// waitReady polls url until it answers 200, the process ends or timeout.
func waitReady(ctx context.Context, url string, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", timeout)
		}
	}
}

// sleepUntil waits until t; false if the process ended or ctx did.
func sleepUntil(ctx context.Context, t time.Time, done <-chan struct{}) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-done:
		return false
	case <-ctx.Done():
		return false
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot generate a secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// alertsMicro is the evaluation's CPU per minute: 1,000 rules over a
// 100k-user minute as the live loop steps it, and over demo-shaped rows
// (alert/bench_test.go; cpu-ns/op is the process CPU per minute).
var alertsMicro = GoBench{Package: "./alert", Bench: "^(BenchmarkStep|BenchmarkLiveStep100kUsers)$", CPU: "1",
	Why: "one minute of 1,000 rules: BenchmarkLiveStep100kUsers over the 2,877 rows of a 100,000-user minute (8 grouping sets) from the saved state with yesterday's baseline, as the live loop steps it; BenchmarkStep over 404 demo-shaped rows"}

// renderAlerts renders the alerts step (bench/README.md, "Alerts").
func renderAlerts(m *md, r *Results) {
	a := r.Alerts
	if a == nil {
		return
	}
	m.p("## Alerts: a minute's end → the webhook at on-call's receiver")
	m.p("")
	m.p("Reproduce: `go run ./bench/cmd/qoscope-bench --steps alerts --report bench/REPORT-alerts.md` (needs ClickHouse: `eval \"$(qoscope infra env)\"`; flags `--alerts-duration`, `--alerts-users`). Goal (docs/ALERTS.md, \"Speed\"): p99 ≤ %g s from a minute's end (wall clock) to the webhook request at a receiver, at demo scale.", a.GoalP99S)
	m.p("")
	if a.Error != "" {
		m.p("**Not completed**: %s", cell(a.Error))
		m.p("")
		return
	}
	m.p("- **Pipeline**: `%s`, in its own process: embedded Kafka, ingest, aggregator (flush every 5 s), ClickHouse (this run's, database `%s`, fresh), serve with the live evaluator and delivery; the demo's generator sends %s simulated viewers of the `%s` scenario in real time. %d minutes measured (%s – %s UTC), %s s of tail for the last minute's notifications.",
		a.Command, alertsDatabase, group(strconv.Itoa(a.Users)), a.Scenario, a.Minutes, a.From.UTC().Format("15:04"), a.To.UTC().Add(time.Minute).Format("15:04"), num(a.TailS))
	m.p("- **Rules** that change state most minutes: two rules, `for: 0`, `keep_firing_for: 0`, thresholds at the median of the baseline traffic's per-group values (first-frame p50 per province, stutter rate per stream), so about half the groups change each minute. Each change is one notification on each path.")
	m.p("- **Paths, same alerts, same run**: the evaluator hands every change to delivery, which sends it (1) to a webhook receiver in the harness (`type: webhook`, `group_by: [\"...\"]`, `group_wait: 1s`; the signature of every request verified) and (2) to Alertmanager %s (`type: alertmanager`; its route `group_by: ['...']`, `group_wait: 1s`, `group_interval: 1s`) whose webhook posts to the same receiver.", a.Alertmanager)
	m.p("- **Why the paths differ**: qoscope posts to Alertmanager as soon as the evaluator hands the alerts over, and Alertmanager sends a new group at once when its alert started more than `group_wait` ago (a firing alert's `startsAt` is its minute's start); qoscope's own webhook route does the same for a new group, and sends a change to an existing group when its `group_interval` (1 s) ends, as Alertmanager does (the send loop wakes when a group falls due). Both paths share the evaluation: minute end → the aggregator's next flush (every 5 s) that moves every partition's clock past the minute → the evaluator, woken by that flush (one process: all-in-one; `qoscope serve` alone checks every `alert.evaluation.interval`, 1 s) → the minute's rows read and decided.")
	m.p("- **Latency** of a change = its request's arrival − the end of the minute evaluated (a firing alert's `startsAt` is the minute it fired, a resolved one's `endsAt` the minute evaluated: both carried unchanged by both payloads). The first arrival of each change counts; the expected changes are `alert_history`'s (firing and resolved, not retracted) for the measured minutes. **Evaluation** = minute end → the evaluator's first write of the minute's decisions (`alert_history.written_at`); **delivery** = that write → arrival. Percentiles are nearest-rank.")
	m.p("- **Load**: load average (1 min) over the measurement %s min / %s mean / %s max on %d cores; the all-in-one process used %s CPU-s (%s CPU-s a minute: generator, ingest, aggregator, serve), Alertmanager %s CPU-s.",
		num(a.LoadMin), num(a.LoadMean), num(a.LoadMax), r.Environment.Cores, num(a.PipelineCPUSec), num(a.PipelineCPUSec/max(1, a.DurationS/60+a.TailS/60)), num(a.AlertmanagerCPUSec))
	m.p("")
	var rows [][]string
	for _, p := range a.Paths {
		l := p.Latency
		rows = append(rows, []string{p.Name, strconv.Itoa(p.Changes), fmt.Sprintf("%d / %d", p.Firing, p.Resolved), strconv.Itoa(p.Expected), strconv.Itoa(p.Missing),
			num(l.P50), num(l.P90), num(l.P99), num(l.Max), num(p.Delivery.P50), num(p.Delivery.P99), strconv.Itoa(p.BadSignature), p.Description})
	}
	m.table([]string{"path", "changes", "firing / resolved", "expected", "missing", "p50 s", "p90 s", "p99 s", "max s", "delivery p50 s", "delivery p99 s", "bad signatures", "how"}, rows)
	e := a.Evaluation
	m.p("Evaluation (minute end → decisions written), over the %d minutes with a change: p50 %s s, p90 %s s, p99 %s s, max %s s.", e.N, num(e.P50), num(e.P90), num(e.P99), num(e.Max))
	if h := a.LagMetric; h != nil {
		m.p("serve's `qoscope_alert_evaluation_lag_seconds` (minute end → end of its first evaluation, every minute; the difference of two scrapes, at the traffic's start and at the end): %s minutes, mean %s s, p99 in the bucket ≤ %s s.", num(h.Count), num(h.Mean), num(h.P99Bound))
	}
	m.p("")
	var cpu [][]string
	for _, b := range r.Micro {
		if b.Package != "alert" {
			continue
		}
		rows := map[string]string{"BenchmarkStep": "404 (demo-shaped)", "BenchmarkLiveStep100kUsers": "2,877 (100k users, 8 grouping sets)"}[b.Name]
		cpu = append(cpu, []string{b.Name, num(b.Median["cpu-ns/op"] / 1e6), num(b.Median["ns/op"] / 1e6), rows, num(b.Median["allocs/op"]), strconv.FormatInt(b.Iterations[0], 10)})
	}
	if len(cpu) > 0 {
		m.p("Evaluation CPU per minute, 1,000 rules (`go test -run '^$' -bench '%s' -cpu 1 ./alert`; CPU = the process's, GC included):", alertsMicro.Bench)
		m.p("")
		m.table([]string{"benchmark", "CPU ms / minute", "wall ms / minute", "rows", "allocs / minute", "minutes run"}, cpu)
	}
	for _, n := range a.Notes {
		m.p("- note: %s", n)
	}
}
