package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qoscope/qoscope/alert"
	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/query"
	"github.com/qoscope/qoscope/score"
)

// QueryOptions are the inputs of `qoscope query`: one endpoint, its
// parameters as the API spells them, where and how to ask.
type QueryOptions struct {
	// Endpoint is one of Endpoints.
	Endpoint string
	Params   url.Values
	// URL is the server's base URL, e.g. http://127.0.0.1:8090.
	URL   string
	Token string
	// JSON prints the answer as the API gave it instead of a table.
	JSON   bool
	Stdout io.Writer
	// Client defaults to one with a 30s timeout.
	Client *http.Client
}

// Endpoints of `qoscope query`.
var Endpoints = []string{"series", "breakdown", "streams", "history", "alerts", "scores"}

// Query asks the API and prints an aligned table (or the JSON). An error
// answer is returned as an error carrying the server's message.
func Query(ctx context.Context, o QueryOptions) error {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	u := strings.TrimRight(o.URL, "/") + "/api/v1/" + o.Endpoint
	if len(o.Params) > 0 {
		u += "?" + o.Params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("bad --url: %w", err)
	}
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the query API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("cannot read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if o.JSON {
		_, err := o.Stdout.Write(body)
		return err
	}
	tw := tabwriter.NewWriter(o.Stdout, 0, 0, 2, ' ', 0)
	switch o.Endpoint {
	case "series":
		err = seriesTable(tw, body)
	case "breakdown":
		err = breakdownTable(tw, body)
	case "streams":
		err = streamsTable(tw, body)
	case "history":
		err = historyTable(tw, body)
	case "alerts":
		err = alertsTable(tw, body)
	case "scores":
		err = scoresTable(tw, body)
	default:
		return fmt.Errorf("unknown endpoint %q; valid: %s", o.Endpoint, strings.Join(Endpoints, ", "))
	}
	if err != nil {
		return fmt.Errorf("cannot decode the answer: %w", err)
	}
	return tw.Flush()
}

func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4g", *v)
}

func state(final bool) string {
	if final {
		return "final"
	}
	return "provisional"
}

func seriesTable(w io.Writer, body []byte) error {
	var s query.Series
	if err := json.Unmarshal(body, &s); err != nil {
		return err
	}
	// A rate's column of what it is over: 100 % of 1 is not 100 % of 2,000.
	over := ""
	if s.NUnit != "" {
		over = "\tof (" + s.NUnit + ")"
	}
	fmt.Fprintf(w, "time\t%s%s (%s)%s\tstate\n", dimHeader(s.GroupBy), s.Name, s.Unit, over)
	for _, g := range s.Groups {
		for _, p := range g.Points {
			n := ""
			if s.NUnit != "" {
				n = "\t" + num(p.N)
			}
			fmt.Fprintf(w, "%s\t%s%s%s\t%s\n", p.Time.Format("2006-01-02 15:04"), dimCells(s.GroupBy, g.Dims), num(p.Value), n, state(p.Final))
		}
	}
	return nil
}

func dimHeader(dims []string) string {
	var b strings.Builder
	for _, d := range dims {
		b.WriteString(d + "\t")
	}
	return b.String()
}

func dimCells(dims []string, vals map[string]string) string {
	var b strings.Builder
	for _, d := range dims {
		b.WriteString(vals[d] + "\t")
	}
	return b.String()
}

func breakdownTable(w io.Writer, body []byte) error {
	var b query.Breakdown
	if err := json.Unmarshal(body, &b); err != nil {
		return err
	}
	var extra []string
	if len(b.Rows) > 0 {
		for k := range b.Rows[0].Extra {
			extra = append(extra, k)
		}
		sort.Strings(extra)
	}
	fmt.Fprintf(w, "# %s at %s\n", b.Metric, b.At.Format("2006-01-02 15:04"))
	fmt.Fprintf(w, "%s%s\t%s\t%sstate\n", dimHeader(b.By), b.Metric, b.Volume, dimHeader(extra))
	for _, r := range b.Rows {
		fmt.Fprintf(w, "%s%s\t%s\t", dimCells(b.By, r.Dims), num(r.Value), num(r.Volume))
		for _, e := range extra {
			fmt.Fprintf(w, "%s\t", num(r.Extra[e]))
		}
		fmt.Fprintf(w, "%s\n", state(r.Final))
	}
	return nil
}

func streamsTable(w io.Writer, body []byte) error {
	var s query.Streams
	if err := json.Unmarshal(body, &s); err != nil {
		return err
	}
	fmt.Fprintf(w, "# upstream at %s\n", s.At.Format("2006-01-02 15:04"))
	fmt.Fprintln(w, "stream\tline\tquality\tfps\tfps min\tkbit/s\tkbit/s min\trtt ms\tstatus\tstate")
	for _, c := range s.Cards {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.StreamID, c.Line, c.Quality, num(c.FPS), num(c.FPSMin),
			num(c.BitrateKbps), num(c.BitrateKbpsMin), num(c.RTTMS), c.Status, state(c.Final))
	}
	return nil
}

// historyTable prints one row per column of the day-by-day table and one
// column per day, each "value (day-over-day %)".
func historyTable(w io.Writer, body []byte) error {
	var h query.History
	if err := json.Unmarshal(body, &h); err != nil {
		return err
	}
	fmt.Fprint(w, "metric\tunit")
	for _, d := range h.Days {
		mark := ""
		if !d.Final {
			mark = "*"
		}
		fmt.Fprintf(w, "\t%s%s", d.Day.Format("01-02"), mark)
	}
	fmt.Fprintln(w)
	for _, c := range h.Columns {
		fmt.Fprintf(w, "%s\t%s", c.Key, c.Unit)
		for _, d := range h.Days {
			cell := d.Cells[c.Key]
			s := num(cell.Value)
			if cell.DoD != nil {
				s += fmt.Sprintf(" (%+.1f%%)", *cell.DoD*100)
			}
			fmt.Fprintf(w, "\t%s", s)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "(* partial day; in brackets: change on the day before)")
	return nil
}

// labelCells prints an alert's labels but its name and severity (which
// have their columns) as name=value, in the alert's order.
func labelCells(ls alert.Labels) string {
	var parts []string
	for _, l := range ls {
		if l.Name != "alertname" && l.Name != "severity" {
			parts = append(parts, l.Name+"="+l.Value)
		}
	}
	return strings.Join(parts, " ")
}

func count(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}

// alertsTable prints the active alerts (most severe state first, as the
// API orders them) with their diagnosis under each, or the history's
// changes when the answer is one (from/to given).
func alertsTable(w io.Writer, body []byte) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return err
	}
	if _, ok := probe["changes"]; ok {
		var h alertlive.HistoryAnswer
		if err := json.Unmarshal(body, &h); err != nil {
			return err
		}
		fmt.Fprintln(w, "minute\tstate\trule\tlabels\tvalue\tusers")
		for _, c := range h.Changes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.At.Format("2006-01-02 15:04"), c.State, c.Rule, labelCells(c.Labels), num(c.Value), count(c.Users))
		}
		return nil
	}
	var a alertlive.ActiveAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return err
	}
	if a.At == nil {
		fmt.Fprintln(w, "# no minute evaluated yet")
		return nil
	}
	fmt.Fprintf(w, "# %d active after minute %s\n", len(a.Alerts), a.At.Format("2006-01-02 15:04"))
	if len(a.Alerts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "state\tseverity\trule\tlabels\tsince\tvalue\tusers\taction")
	for _, x := range a.Alerts {
		since := x.ActiveAt
		if x.FiredAt != nil {
			since = *x.FiredAt
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.State, x.Severity, x.Rule, labelCells(x.Labels), since.Format("15:04"), num(x.Value), count(x.Users), x.Action)
		for _, c := range x.Diagnosis {
			// Not a cell (no tab): the cause's own line under its alert.
			fmt.Fprintf(w, "  cause: %s\n", c.Text)
		}
	}
	return nil
}

// scoresTable prints one line per region and vendor: what a scheduler
// splits the region's traffic by, and why a vendor gets nothing.
func scoresTable(w io.Writer, body []byte) error {
	var t score.Table
	if err := json.Unmarshal(body, &t); err != nil {
		return err
	}
	until := "no data"
	if t.DataUntil != nil {
		until = "data until " + t.DataUntil.Format("15:04")
	}
	fmt.Fprintf(w, "# scores at %s (%s), %d region(s)\n", t.At.Format("2006-01-02 15:04"), until, len(t.Regions))
	fmt.Fprintln(w, "province\tisp\tdemand Mbit/s\tvendor\tratio\tscore\tquality\tlevel\tMbit/s\tpredicted\tnote")
	for _, r := range t.Regions {
		for _, v := range r.Vendors {
			var note []string
			if r.Overloaded {
				note = append(note, "overloaded")
			}
			if v.Blacklisted {
				note = append(note, "blacklisted")
			}
			if v.Reason != nil {
				note = append(note, *v.Reason)
			}
			fmt.Fprintf(w, "%s\t%s\t%.0f\t%s\t%.1f%%\t%.1f\t%s\t%s\t%.0f\t%.0f\t%s\n", r.Province, r.ISP, r.DemandMbps, v.Vendor,
				v.Ratio*100, v.Score, num(v.Quality), v.Level, v.BandwidthMbps, v.PredictedMbps, strings.Join(note, "; "))
		}
	}
	return nil
}
