package alert

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/gen"
)

// The demo's vendor-degradation scenario (cdn-b × guangdong × telecom
// degrades from minute 3 to minute 7), generated, aggregated offline and
// evaluated with the example rules: the example stutter rule fires for that
// group and no other, and a total stutter alert pending at minute 3 names it
// first. Generated data, so the assertions are about which group, not
// numbers; the numbers are checked on hand-made rows in the other tests.
func TestVendorDegradationScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and aggregates 10 minutes of demo traffic (about 2 s)")
	}
	o := gen.DefaultOptions()
	o.Mode = gen.ModeFast
	o.Progress = "none"
	o.Log.Level = "warn"
	o.Scenario = "vendor-degradation"
	o.Output = filepath.Join(t.TempDir(), "events.ndjson")
	if err := gen.Run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	res, err := aggregator.AggregateOffline(context.Background(), aggregator.OfflineOptions{Inputs: []string{o.Output}, Config: new(aggregator.DefaultConfig())})
	if err != nil {
		t.Fatal(err)
	}
	rows := FromAggregator(res.Rows)

	rs, err := LoadRules("../deploy/alerts/rules.yaml", catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	changes, err := EvaluateRows(rs, rows)
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string][]string{}
	for _, c := range changes {
		if c.State == StateFiring {
			var key []string
			for _, d := range []string{"vendor", "province", "isp"} {
				if v, ok := c.Labels.Get(d); ok {
					key = append(key, v)
				}
			}
			fired[c.Rule] = append(fired[c.Rule], strings.Join(key, " "))
		}
	}
	if got := strings.Join(fired["stutter-uv-high"], ","); got != "cdn-b guangdong telecom" {
		t.Errorf("stutter-uv-high fired for %v, want cdn-b guangdong telecom only", got)
	}
	if got := strings.Join(fired["stutter-uv-region-high"], ","); got != "guangdong telecom" {
		t.Errorf("stutter-uv-region-high fired for %v, want guangdong telecom only", got)
	}
	// No other example rule fires on the demo's traffic: the push rules'
	// floors and the thresholds sit above its noise.
	for rule, keys := range fired {
		if rule != "stutter-uv-high" && rule != "stutter-uv-region-high" {
			t.Errorf("%s fired for %v", rule, keys)
		}
	}

	total := parse(t, `
- name: total
  source: client
  metric: stutter_rate_uv
  above: 0.03
  severity: warning
`).Rules[0]
	start := gen.DefaultStart // fast mode starts there when Options.Start is zero
	for m := 3; m <= 5; m++ {
		dg, err := Diagnose(total, Labels{}, start.Add(3*time.Minute), start.Add(time.Duration(m)*time.Minute), rows)
		if err != nil {
			t.Fatal(err)
		}
		if len(dg.Causes) == 0 || !strings.HasPrefix(dg.Causes[0].String(), "cdn-b × guangdong × telecom:") {
			t.Errorf("minute %d: causes %v, want cdn-b × guangdong × telecom first", m, dg.Causes)
		}
	}
}
