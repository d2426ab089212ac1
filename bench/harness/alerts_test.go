package harness

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/internal/appconfig"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Alertmanager's webhook writes a firing alert's endsAt as the zero time;
// qoscope's webhook leaves it zero too. The minute is startsAt for firing,
// endsAt for resolved.
func TestEvaluatedMinuteFromPayloads(t *testing.T) {
	am := `{"version":"4","status":"firing","alerts":[
	  {"status":"firing","labels":{"alertname":"r","province":"anhui"},"startsAt":"2026-12-06T12:03:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"ab12"},
	  {"status":"resolved","labels":{"alertname":"r","province":"hebei"},"startsAt":"2026-12-06T12:01:00Z","endsAt":"2026-12-06T12:05:00Z","fingerprint":"cd34"},
	  {"status":"resolved","labels":{"alertname":"r","province":"jilin"},"startsAt":"2026-12-06T12:01:00Z","endsAt":"0001-01-01T00:00:00Z"}]}`
	var m notify.WebhookMessage
	if err := json.Unmarshal([]byte(am), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-12-06T12:03:00Z", "2026-12-06T12:05:00Z", ""}
	for i, a := range m.Alerts {
		got, ok := evaluatedMinute(a)
		switch {
		case want[i] == "" && ok:
			t.Errorf("alert %d: minute %v from a resolved alert without endsAt", i, got)
		case want[i] != "" && (!ok || !got.Equal(mustTime(t, want[i]))):
			t.Errorf("alert %d: minute %v %v, want %s", i, got, ok, want[i])
		}
	}
	// 12:03's end is 12:04:00; arrival 12:04:02.5 is 2.5 s after it.
	if d := minuteLatency(mustTime(t, "2026-12-06T12:03:00Z"), mustTime(t, "2026-12-06T12:04:02.5Z")); d != 2500*time.Millisecond {
		t.Errorf("latency %v, want 2.5s", d)
	}
}

func TestSummarizeNearestRank(t *testing.T) {
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	got := summarize(xs)
	want := Latency{N: 100, Min: 1, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Three values: ranks ceil(1.5)=2, ceil(2.7)=3, ceil(2.97)=3.
	if got := summarize([]float64{3, 1, 2}); got.P50 != 2 || got.P90 != 3 || got.P99 != 3 || got.Min != 1 {
		t.Errorf("three values: %+v", got)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("empty: %+v", got)
	}
}

func webhookAlert(status, province, startsAt, endsAt string) notify.WebhookAlert {
	a := notify.WebhookAlert{Status: status, Labels: map[string]string{"alertname": "r", "province": province, "severity": "warning"}}
	if startsAt != "" {
		a.StartsAt, _ = time.Parse(time.RFC3339, startsAt)
	}
	if endsAt != "" {
		a.EndsAt, _ = time.Parse(time.RFC3339, endsAt)
	}
	return a
}

func TestTallyPath(t *testing.T) {
	from, to := mustTime(t, "2026-12-06T12:01:00Z"), mustTime(t, "2026-12-06T12:02:00Z")
	key := func(p string) string {
		return labelKey(map[string]string{"alertname": "r", "province": p, "severity": "warning"})
	}
	hist := []historyChange{
		// Before the measured minutes: ignored.
		{alertChange{key("anhui"), "firing", mustTime(t, "2026-12-06T12:00:00Z")}, mustTime(t, "2026-12-06T12:01:01Z")},
		{alertChange{key("anhui"), "resolved", from}, mustTime(t, "2026-12-06T12:02:01Z")},
		{alertChange{key("hebei"), "firing", from}, mustTime(t, "2026-12-06T12:02:01Z")},
		{alertChange{key("jilin"), "firing", to}, mustTime(t, "2026-12-06T12:03:02Z")}, // never received
	}
	msg := func(as ...notify.WebhookAlert) notify.WebhookMessage { return notify.WebhookMessage{Alerts: as} }
	arr := []arrival{
		{path: "direct", at: mustTime(t, "2026-12-06T12:02:03Z"), msg: msg(webhookAlert("resolved", "anhui", "2026-12-06T12:00:00Z", "2026-12-06T12:01:00Z"))},
		{path: "direct", at: mustTime(t, "2026-12-06T12:02:04Z"), msg: msg(webhookAlert("firing", "hebei", "2026-12-06T12:01:00Z", ""))},
		// The same change again (a repeat), and one of another path.
		{path: "direct", at: mustTime(t, "2026-12-06T12:02:30Z"), msg: msg(webhookAlert("firing", "hebei", "2026-12-06T12:01:00Z", ""))},
		{path: "alertmanager", at: mustTime(t, "2026-12-06T12:02:10Z"), msg: msg(webhookAlert("firing", "hebei", "2026-12-06T12:01:00Z", "0001-01-01T00:00:00Z"))},
		// Not in the history; and a minute after the last measured.
		{path: "direct", at: mustTime(t, "2026-12-06T12:03:05Z"), msg: msg(webhookAlert("firing", "hunan", "2026-12-06T12:02:00Z", ""),
			webhookAlert("firing", "hubei", "2026-12-06T12:03:00Z", ""))},
	}
	p := &AlertPath{Name: "direct"}
	tallyPath(p, arr, hist, from, to)
	if p.Requests != 4 || p.Changes != 3 || p.Firing != 2 || p.Resolved != 1 || p.Repeats != 1 || p.Expected != 3 || p.Missing != 1 || p.Unexpected != 1 {
		t.Fatalf("counts %+v", p)
	}
	// Latencies: anhui 12:02:03 − 12:02 = 3 s, hebei 12:02:04 − 12:02 = 4 s,
	// hunan 12:03:05 − 12:03 = 5 s. Delivery (known changes): anhui 2 s,
	// hebei 3 s.
	if l := p.Latency; l.N != 3 || l.Min != 3 || l.P50 != 4 || l.Max != 5 || l.Mean != 4 {
		t.Errorf("latency %+v", l)
	}
	if d := p.Delivery; d.N != 2 || d.Min != 2 || d.Max != 3 {
		t.Errorf("delivery %+v", d)
	}
	am := &AlertPath{Name: "alertmanager"}
	tallyPath(am, arr, hist, from, to)
	if am.Requests != 1 || am.Changes != 1 || am.Missing != 2 || am.Latency.Max != 10 {
		t.Errorf("alertmanager path %+v", am)
	}
}

const lagMetrics = `# HELP qoscope_alert_evaluation_lag_seconds From a minute's end (wall clock) to the end of its first evaluation.
# TYPE qoscope_alert_evaluation_lag_seconds histogram
qoscope_alert_evaluation_lag_seconds_bucket{le="0.5"} 0
qoscope_alert_evaluation_lag_seconds_bucket{le="1"} 10
qoscope_alert_evaluation_lag_seconds_bucket{le="2.5"} 60
qoscope_alert_evaluation_lag_seconds_bucket{le="5"} 99
qoscope_alert_evaluation_lag_seconds_bucket{le="10"} 100
qoscope_alert_evaluation_lag_seconds_bucket{le="+Inf"} 100
qoscope_alert_evaluation_lag_seconds_sum 250
qoscope_alert_evaluation_lag_seconds_count 100
qoscope_alert_evaluation_duration_seconds_sum 7
`

func TestParseHistogram(t *testing.T) {
	h, err := parseHistogram(strings.NewReader(lagMetrics), "qoscope_alert_evaluation_lag_seconds")
	if err != nil {
		t.Fatal(err)
	}
	// 99 of 100 are ≤ 5 s: the 99th percentile is in the 5 s bucket.
	if h.Count != 100 || h.Sum != 250 || h.Mean != 2.5 || h.P99Bound != 5 || len(h.Buckets) != 6 {
		t.Errorf("%+v", h)
	}
	// Beyond the last finite bucket.
	tailHeavy := strings.Replace(lagMetrics, `le="10"} 100`, `le="10"} 98`, 1)
	tailHeavy = strings.Replace(tailHeavy, `le="5"} 99`, `le="5"} 97`, 1)
	if h, err := parseHistogram(strings.NewReader(tailHeavy), "qoscope_alert_evaluation_lag_seconds"); err != nil || !math.IsInf(h.P99Bound, 1) {
		t.Errorf("tail beyond the buckets: %+v %v", h, err)
	}
	// Two scrapes: the 40 observations between them, 30 of them ≤ 5 s.
	before := strings.NewReplacer(`le="1"} 10`, `le="1"} 10`, `le="2.5"} 60`, `le="2.5"} 60`, `le="5"} 99`, `le="5"} 69`,
		`le="10"} 100`, `le="10"} 70`, `le="+Inf"} 100`, `le="+Inf"} 70`, `_sum 250`, `_sum 130`, `_count 100`, `_count 70`).Replace(lagMetrics)
	after := strings.NewReplacer(`le="5"} 99`, `le="5"} 99`, `le="10"} 100`, `le="10"} 110`, `le="+Inf"} 100`, `le="+Inf"} 110`,
		`_sum 250`, `_sum 330`, `_count 100`, `_count 110`).Replace(lagMetrics)
	h0, err0 := parseHistogram(strings.NewReader(before), "qoscope_alert_evaluation_lag_seconds")
	h1, err1 := parseHistogram(strings.NewReader(after), "qoscope_alert_evaluation_lag_seconds")
	if err0 != nil || err1 != nil {
		t.Fatal(err0, err1)
	}
	// 40 new: 30 in ≤ 5 s (99 − 69), 10 more in ≤ 10 s; sum 200.
	if d := h1.since(h0); d.Count != 40 || d.Sum != 200 || d.Mean != 5 || d.P99Bound != 10 {
		t.Errorf("difference %+v", d)
	}
	if _, err := parseHistogram(strings.NewReader("other_metric 1\n"), "qoscope_alert_evaluation_lag_seconds"); err == nil {
		t.Error("no error without the histogram")
	}
	if _, err := parseHistogram(strings.NewReader("qoscope_alert_evaluation_lag_seconds_sum x\n"), "qoscope_alert_evaluation_lag_seconds"); err == nil {
		t.Error("no error for a bad value")
	}
}

func TestAlertReceiverVerifiesSignatures(t *testing.T) {
	secret := []byte("s3cret")
	r := &alertReceiver{secret: secret, bad: map[string]int{}}
	body := []byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"r"},"startsAt":"2026-12-06T12:03:00Z"}]}`)
	post := func(path, sig string) int {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if sig != "" {
			req.Header.Set(notify.SignatureHeader, sig)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w.Code
	}
	if c := post("/direct", "sha256="+notify.Sign(secret, body)); c != http.StatusOK {
		t.Errorf("signed request: %d", c)
	}
	if c := post("/direct", "sha256="+notify.Sign([]byte("other"), body)); c != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", c)
	}
	if c := post("/direct", ""); c != http.StatusUnauthorized {
		t.Errorf("unsigned direct request: %d", c)
	}
	// Alertmanager does not sign its webhook.
	if c := post("/alertmanager", ""); c != http.StatusOK {
		t.Errorf("alertmanager request: %d", c)
	}
	got, bad := r.arrivals()
	if len(got) != 2 || got[0].path != "direct" || got[1].path != "alertmanager" || bad["direct"] != 2 || len(got[0].msg.Alerts) != 1 {
		t.Errorf("arrivals %+v, bad %v", got, bad)
	}
}

// The step's configuration and rules are what all-in-one and the rules
// parser accept.
func TestAlertsConfigLoads(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(alertsRules), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := alert.LoadRules(rules, query.NewCatalog(plan))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Rules {
		if r.For != 0 || r.KeepFiringFor != 0 {
			t.Errorf("rule %s: for %v, keep_firing_for %v; want 0 (a notification per change)", r.Name, r.For, r.KeepFiringFor)
		}
	}
	o := DefaultOptions()
	o.Seed = 1
	cfgPath := filepath.Join(dir, "alerts.yaml")
	cfg := alertsConfig(&o, "127.0.0.1:18080", "127.0.0.1:18090", "0123456789abcdef0123", rules, "http://127.0.0.1:18100", "sec", "http://127.0.0.1:18200")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The step runs the pipeline without the caller's broker (alerts.go
	// strips QOSCOPE_KAFKA_BROKERS from its environment); so does this
	// load, even under `go tool task test`, which sets it.
	t.Setenv("QOSCOPE_KAFKA_BROKERS", "")
	os.Unsetenv("QOSCOPE_KAFKA_BROKERS")
	c, err := appconfig.LoadAllInOne(cfgPath, true, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	if !c.Embedded() || c.Demo.Scenario != "baseline" || c.Demo.Users != 2000 || c.Demo.History != 0 || c.Listen != "127.0.0.1:18080" {
		t.Errorf("all_in_one %+v, listen %s", c.Section, c.Listen)
	}
	rc := c.Serve.Alert.Notify.Receivers
	if len(rc) != 2 || rc[0].URL != "http://127.0.0.1:18100/direct" || rc[0].GroupWait != time.Second || rc[0].GroupBy[0] != "..." ||
		rc[1].Type != "alertmanager" || rc[1].URL != "http://127.0.0.1:18200" {
		t.Errorf("receivers %+v", rc)
	}
}

func TestOptionsValidateAlerts(t *testing.T) {
	o := DefaultOptions()
	o.Steps = []string{StepAlerts}
	o.sizeDefaults()
	o.AlertsDuration = 90 * time.Second
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "--alerts-duration") || !strings.Contains(err.Error(), "--clickhouse-dsn") {
		t.Fatalf("got %v", err)
	}
	o.AlertsDuration, o.ClickHouseDSN = 6*time.Minute, "clickhouse://127.0.0.1:9000/qoscope"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
}
