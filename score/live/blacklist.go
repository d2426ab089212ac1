package live

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/score"
)

// The sources of a blacklist entry (docs/SCORES.md, "Blacklist").
const (
	SourceFile     = "file"
	SourceOperator = "operator"
	SourceAlert    = "alert"
)

// Entry is one source's blacklist entry, as GET /api/v1/blacklist lists it.
// A vendor may be blacklisted in a region by several sources at once; the
// snapshot applies their union.
type Entry struct {
	Vendor   string `json:"vendor"`
	Province string `json:"province"`
	ISP      string `json:"isp"`
	Source   string `json:"source"`
	Reason   string `json:"reason"`
	// By is the operator's token name, alert:<rule>, or file.
	By string `json:"by"`
	// Since is when the entry began (the operator's switch, the alert's
	// firing minute, the file's load).
	Since time.Time `json:"since"`
	// Until is when an alert entry ends (resolved + hold time); nil while
	// the alert fires and for the other sources.
	Until *time.Time `json:"until"`
	// Applied says whether the current snapshot blacklists the vendor there;
	// Note says why not (the last eligible vendor of the region, no rows
	// for the region, no contract).
	Applied bool    `json:"applied"`
	Note    *string `json:"note"`
	// refused: the region's last eligible vendor, kept (score.Build).
	refused bool
}

type entryKey struct{ Vendor, Province, ISP string }

func (e *Entry) key() entryKey { return entryKey{e.Vendor, e.Province, e.ISP} }

// AlertChange is one row of alert_history (FINAL, retracted = 0) of a rule
// with action blacklist.
type AlertChange struct {
	Rule        string
	Fingerprint string
	Labels      map[string]string
	State       string // pending | firing | inactive | resolved
	At          time.Time
}

// alertEntries turns the changes of blacklist rules into entries for the
// snapshot of minute at: an alert whose newest change up to at is firing
// blacklists its labels' vendor × province × isp; one that left firing at
// R still does while at < R + hold. Changes after at are ignored (another
// server's newer evaluation). Alerts without the three labels cannot name
// a region: they are returned as warnings.
func alertEntries(changes []AlertChange, at time.Time, hold time.Duration) ([]Entry, []string) {
	byFP := map[string][]AlertChange{}
	for _, c := range changes {
		if c.At.After(at) {
			continue
		}
		byFP[c.Fingerprint] = append(byFP[c.Fingerprint], c)
	}
	var out []Entry
	var warns []string
	for _, fp := range sortedKeys(byFP) {
		cs := byFP[fp]
		slices.SortStableFunc(cs, func(a, b AlertChange) int { return a.At.Compare(b.At) })
		var firing bool
		var since, left time.Time
		for _, c := range cs {
			switch {
			case c.State == "firing" && !firing:
				firing, since = true, c.At
			case c.State != "firing" && firing:
				firing, left = false, c.At
			}
		}
		last := cs[len(cs)-1]
		var until *time.Time
		if !firing {
			if since.IsZero() || !at.Before(left.Add(hold)) {
				continue
			}
			u := left.Add(hold)
			until = &u
		}
		v, p, i := last.Labels["vendor"], last.Labels["province"], last.Labels["isp"]
		if v == "" || p == "" || i == "" {
			warns = append(warns, fmt.Sprintf("alert %s (%s) has action blacklist but not the labels vendor, province and isp: it blacklists nothing", last.Rule, fp))
			continue
		}
		reason := fmt.Sprintf("alert %s firing since %s", last.Rule, since.Format(time.RFC3339))
		if until != nil {
			reason = fmt.Sprintf("alert %s fired from %s to %s, held until %s", last.Rule, since.Format(time.RFC3339), left.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		out = append(out, Entry{Vendor: v, Province: p, ISP: i, Source: SourceAlert, Reason: reason,
			By: "alert:" + last.Rule, Since: since, Until: until})
	}
	return out, warns
}

// sourceRank orders the sources in a merged reason.
var sourceRank = map[string]int{SourceFile: 0, SourceOperator: 1, SourceAlert: 2}

func entryLess(a, b Entry) int {
	return cmp.Or(cmp.Compare(a.Province, b.Province), cmp.Compare(a.ISP, b.ISP), cmp.Compare(a.Vendor, b.Vendor),
		cmp.Compare(sourceRank[a.Source], sourceRank[b.Source]), cmp.Compare(a.By, b.By))
}

// merge is the effective blacklist: one score entry per vendor × region,
// its reason the sources' reasons joined in file, operator, alert order.
func merge(entries []Entry) score.Blacklist {
	es := slices.Clone(entries)
	slices.SortFunc(es, entryLess)
	var bl score.Blacklist
	var reasons []string
	for i, e := range es {
		r := e.Reason
		switch e.Source {
		case SourceOperator:
			r = "operator " + e.By + ": " + e.Reason
		case SourceFile:
			r = "file: " + e.Reason
		}
		reasons = append(reasons, r)
		if i+1 < len(es) && es[i+1].key() == e.key() {
			continue
		}
		bl = append(bl, score.BlacklistEntry{Vendor: e.Vendor, Province: e.Province, ISP: e.ISP, Reason: strings.Join(reasons, "; ")})
		reasons = reasons[:0]
	}
	return bl
}

// judge fills Applied and Note of each entry from the table built with
// them.
func judge(entries []Entry, t *score.Table, c *score.Contracts) {
	regions := map[entryKey]*score.VendorScore{}
	rows := map[entryKey]bool{}
	for i := range t.Regions {
		r := &t.Regions[i]
		rows[entryKey{"", r.Province, r.ISP}] = true
		for j := range r.Vendors {
			v := &r.Vendors[j]
			regions[entryKey{v.Vendor, r.Province, r.ISP}] = v
		}
	}
	for i := range entries {
		e := &entries[i]
		e.Applied, e.Note, e.refused = false, nil, false
		var note string
		switch v := regions[e.key()]; {
		case !hasContract(c, e.Vendor):
			note = "vendor " + e.Vendor + " has no contract in the scores file"
		case !rows[entryKey{"", e.Province, e.ISP}]:
			note = "no rows for " + e.Province + "/" + e.ISP + " in the lookback: nothing to apply"
		case v != nil && v.Blacklisted:
			e.Applied = true
			continue
		case v != nil && v.Reason != nil:
			note, e.refused = *v.Reason, true
		default:
			note = "not applied"
		}
		e.Note = &note
	}
}

func hasContract(c *score.Contracts, vendor string) bool {
	_, ok := c.Vendors[vendor]
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// auditDiff compares the judged entries of a snapshot with what the audit
// last said and returns the rows to write (all stamped with the snapshot's
// minute at) and the new state. Alert and file entries are switched on and
// off here; operator entries by the admin handler, so only their verdicts
// (refused, applied) are written here.
func auditDiff(prev map[auditKey]auditState, entries []Entry, at time.Time) ([]Change, map[auditKey]auditState) {
	next := make(map[auditKey]auditState, len(entries))
	var rows []Change
	row := func(e *Entry, action, detail string) {
		rows = append(rows, Change{At: at, Vendor: e.Vendor, Province: e.Province, ISP: e.ISP, Source: e.Source,
			Action: action, Reason: e.Reason, By: e.By, Detail: detail})
	}
	for i := range entries {
		e := &entries[i]
		k := auditKey{e.Vendor, e.Province, e.ISP, e.Source, e.By}
		p := prev[k]
		if e.Source != SourceOperator && !p.present {
			row(e, ActionOn, "")
		}
		switch {
		case e.refused && !p.refused:
			row(e, ActionRefused, *e.Note)
		case !e.refused && p.refused:
			row(e, ActionApplied, "")
		}
		next[k] = auditState{present: true, refused: e.refused}
	}
	for _, k := range sortedAuditKeys(prev) {
		p := prev[k]
		if _, ok := next[k]; ok || !p.present || k.Source == SourceOperator {
			continue
		}
		e := Entry{Vendor: k.Vendor, Province: k.Province, ISP: k.ISP, Source: k.Source, By: k.By}
		row(&e, ActionOff, "")
	}
	return rows, next
}

func sortedAuditKeys(m map[auditKey]auditState) []auditKey {
	out := make([]auditKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b auditKey) int {
		return cmp.Or(cmp.Compare(a.Province, b.Province), cmp.Compare(a.ISP, b.ISP), cmp.Compare(a.Vendor, b.Vendor),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.By, b.By))
	})
	return out
}
