package allinone

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/score"
)

// alertLines is the report's line of active alerts (GET
// /api/v1/alerts?state=active's answer): firing first, then pending.
func alertLines(a alertlive.ActiveAnswer) string {
	if a.At == nil {
		return "alerts: none evaluated yet\n"
	}
	var firing []alertlive.ActiveAlert
	pending := 0
	for _, x := range a.Alerts {
		if x.State == "firing" {
			firing = append(firing, x)
		} else {
			pending++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "alerts (through %s):", a.At.UTC().Format("15:04"))
	if len(firing) == 0 {
		b.WriteString(" none firing")
	}
	slices.SortStableFunc(firing, func(x, y alertlive.ActiveAlert) int { return strings.Compare(x.Rule, y.Rule) })
	for i, x := range firing {
		if i == 4 {
			fmt.Fprintf(&b, " … and %d more", len(firing)-i)
			break
		}
		var dims []string
		for _, l := range x.Labels {
			if l.Name == "severity" {
				break // the rule's own labels follow
			}
			dims = append(dims, l.Value)
		}
		key := strings.Join(dims, "×")
		if key == "" {
			key = "total"
		}
		since := x.ActiveAt
		if x.FiredAt != nil {
			since = *x.FiredAt
		}
		fmt.Fprintf(&b, "  FIRING %s %s since %s", x.Rule, key, since.UTC().Format("15:04"))
	}
	if pending > 0 {
		fmt.Fprintf(&b, "  (%d pending)", pending)
	}
	b.WriteString("\n")
	return b.String()
}

// scoreWatch remembers the last table the report showed, to print only
// what changed: a ratio moving by at least minMove, or a vendor going on
// or off a region's blacklist.
type scoreWatch struct {
	prev map[[3]string]score.VendorScore // province, isp, vendor
	at   time.Time
}

const minMove = 0.05

// lines describes the table t against the previous one: on the first call
// its size; afterwards the regions that changed most (at most 3).
func (w *scoreWatch) lines(t *score.Table) string {
	if t == nil {
		return "scores: no table yet\n"
	}
	cur := map[[3]string]score.VendorScore{}
	demand := map[[2]string]float64{}
	for _, r := range t.Regions {
		demand[[2]string{r.Province, r.ISP}] = r.DemandMbps
		for _, v := range r.Vendors {
			cur[[3]string{r.Province, r.ISP, v.Vendor}] = v
		}
	}
	defer func() { w.prev, w.at = cur, t.At }()
	if w.prev == nil {
		return fmt.Sprintf("scores: table for %s, %d regions (GET /api/v1/scores; changes are shown as they happen)\n", t.At.UTC().Format("15:04"), len(t.Regions))
	}
	type change struct {
		region string
		move   float64
		text   []string
	}
	var cs []change
	for _, r := range t.Regions {
		c := change{region: r.Province + "×" + r.ISP}
		changed := false
		for _, v := range r.Vendors {
			p, ok := w.prev[[3]string{r.Province, r.ISP, v.Vendor}]
			if !ok && !v.Blacklisted {
				// A region or vendor seen for the first time (its first
				// rows) is not a change of the split.
				c.text = append(c.text, fmt.Sprintf("%s %s", v.Vendor, pctRatio(v.Ratio)))
				continue
			}
			d := v.Ratio - p.Ratio
			c.move = max(c.move, math.Abs(d))
			txt := fmt.Sprintf("%s %s→%s", v.Vendor, pctRatio(p.Ratio), pctRatio(v.Ratio))
			if !ok {
				txt = fmt.Sprintf("%s new %s", v.Vendor, pctRatio(v.Ratio))
			}
			if v.Blacklisted && (!p.Blacklisted || !ok) {
				reason := ""
				if v.Reason != nil {
					reason = ": " + *v.Reason
				}
				txt += " (blacklisted" + reason + ")"
				changed, c.move = true, max(c.move, 1)
			} else if p.Blacklisted && !v.Blacklisted {
				txt += " (back from the blacklist)"
				changed, c.move = true, max(c.move, 1)
			}
			if math.Abs(d) >= minMove {
				changed = true
			}
			c.text = append(c.text, txt)
		}
		if changed {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		// Quality decays over minutes (docs/SCORES.md, half-life): before a
		// ratio moves, the largest quality move says where it is heading.
		q := ""
		if k, p, v, ok := w.largestQualityMove(cur, demand); ok {
			q = fmt.Sprintf("; largest quality move where the traffic is: %s×%s×%s %.0f→%.0f", k[2], k[0], k[1], p, v)
		}
		return fmt.Sprintf("scores: table for %s, no ratio moved %.0f points since %s%s\n", t.At.UTC().Format("15:04"), minMove*100, w.at.UTC().Format("15:04"), q)
	}
	slices.SortStableFunc(cs, func(a, b change) int {
		if a.move != b.move {
			if a.move > b.move {
				return -1
			}
			return 1
		}
		return strings.Compare(a.region, b.region)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "scores: table for %s, ratios changed since %s in %d region(s):\n", t.At.UTC().Format("15:04"), w.at.UTC().Format("15:04"), len(cs))
	for i, c := range cs {
		if i == 3 {
			fmt.Fprintf(&b, "  … and %d more\n", len(cs)-i)
			break
		}
		fmt.Fprintf(&b, "  %s: %s\n", c.region, strings.Join(c.text, ", "))
	}
	return b.String()
}

// largestQualityMove is the (province, isp, vendor) whose quality moved
// most since the previous table, when by at least one point, weighing each
// move by its region's demand: a small region's quality swings by ten
// points from one minute to the next on a few dozen users, and a move
// where the traffic is says more.
func (w *scoreWatch) largestQualityMove(cur map[[3]string]score.VendorScore, demand map[[2]string]float64) (key [3]string, from, to float64, ok bool) {
	best := 0.0
	for k, v := range cur {
		p, had := w.prev[k]
		if !had || v.Quality == nil || p.Quality == nil {
			continue
		}
		d := math.Abs(*v.Quality - *p.Quality)
		if d < 1 {
			continue
		}
		weighted := d * max(demand[[2]string{k[0], k[1]}], 1e-9)
		// Ties go to the first key in order, so the line is the same
		// every run.
		if !ok || weighted > best || weighted == best && keyLess(k, key) {
			best, key, from, to, ok = weighted, k, *p.Quality, *v.Quality, true
		}
	}
	return key, from, to, ok
}

func keyLess(a, b [3]string) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func pctRatio(r float64) string { return fmt.Sprintf("%.0f%%", r*100) }
