package live

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/internal/httpx"
)

// MaxHistoryRange bounds from–to of the history (the table keeps 400 days).
const MaxHistoryRange = 92 * 24 * time.Hour

// MaxHistoryChanges bounds the changes of one answer.
const MaxHistoryChanges = 10000

// ActiveAlert is one pending or firing alert of GET /api/v1/alerts.
type ActiveAlert struct {
	Rule        string            `json:"rule"`
	Fingerprint string            `json:"fingerprint"`
	Labels      alert.Labels      `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     *time.Time        `json:"fired_at"`
	Value       *float64          `json:"value"`
	Users       *int64            `json:"users"`
	Action      string            `json:"action"`
	Diagnosis   []Cause           `json:"diagnosis"`
}

// ActiveAnswer is the answer of GET /api/v1/alerts?state=active.
type ActiveAnswer struct {
	// At is the last minute evaluated, null before any.
	At     *time.Time    `json:"at"`
	Alerts []ActiveAlert `json:"alerts"`
}

// HistoryAnswer is the answer of GET /api/v1/alerts?from=&to=.
type HistoryAnswer struct {
	Changes []HistoryChange `json:"changes"`
}

var alertParams = []string{"state", "from", "to", "rule"}

// ServeAlerts is GET /api/v1/alerts (read scope; docs/API.md): without
// from/to (or with state=active) the alerts pending or firing after the
// last minute evaluated, from this instance's evaluator when it leads,
// else from the leader's saved state; with from and to the changes in
// [from, to) from alert_history (FINAL, retracted = 0), of one rule with
// rule=.
func (s *Service) ServeAlerts(w http.ResponseWriter, r *http.Request) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		badParam(w, "query", "malformed query string: "+err.Error())
		return
	}
	for k, vs := range v {
		if !slices.Contains(alertParams, k) {
			badParam(w, k, "unknown parameter; valid: "+strings.Join(alertParams, ", "))
			return
		}
		if len(vs) > 1 {
			badParam(w, k, "given more than once")
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if v.Has("from") || v.Has("to") {
		if v.Has("state") {
			badParam(w, "state", "not with from/to: the history lists every change")
			return
		}
		s.history(ctx, w, v)
		return
	}
	if st := v.Get("state"); v.Has("state") && st != "active" {
		badParam(w, "state", "valid: active (or from and to for the history)")
		return
	}
	if v.Has("rule") {
		badParam(w, "rule", "only with from and to")
		return
	}
	s.active(ctx, w)
}

func (s *Service) active(ctx context.Context, w http.ResponseWriter) {
	a, err := s.Active(ctx)
	if err != nil {
		s.log.Error().Err(err).Msg("GET /api/v1/alerts")
		httpx.WriteError(w, http.StatusInternalServerError, "cannot read the alert state")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a)
}

// Active is GET /api/v1/alerts?state=active's answer: the leader's
// alerts, or the saved state's on another instance.
func (s *Service) Active(ctx context.Context) (ActiveAnswer, error) {
	var st *State
	if s.ev != nil && s.IsLeader() {
		st = s.ev.Snapshot()
	}
	if st == nil {
		var err error
		if st, err = s.store.LoadState(ctx); err != nil {
			return ActiveAnswer{}, err
		}
	}
	return activeAnswer(st), nil
}

// activeAnswer lists the pending and firing alerts of st, by rule and
// fingerprint.
func activeAnswer(st *State) ActiveAnswer {
	out := ActiveAnswer{Alerts: []ActiveAlert{}}
	if st == nil {
		return out
	}
	cur := st.current()
	if !cur.Evaluated.IsZero() {
		at := cur.Evaluated
		out.At = &at
	}
	for _, a := range cur.Alerts {
		in := st.Info[a.Fingerprint]
		aa := ActiveAlert{Rule: a.Rule, Fingerprint: a.Fingerprint, Labels: a.Labels, Annotations: in.Annotations,
			State: a.State, Severity: in.Severity, ActiveAt: a.ActiveAt, Value: in.Value, Users: in.Users,
			Action: in.Action, Diagnosis: in.Diagnosis}
		if aa.Severity == "" {
			aa.Severity, _ = a.Labels.Get("severity")
		}
		if !a.FiredAt.IsZero() {
			f := a.FiredAt
			aa.FiredAt = &f
		}
		if aa.Annotations == nil {
			aa.Annotations = map[string]string{}
		}
		if aa.Diagnosis == nil {
			aa.Diagnosis = []Cause{}
		}
		out.Alerts = append(out.Alerts, aa)
	}
	return out
}

func (s *Service) history(ctx context.Context, w http.ResponseWriter, v url.Values) {
	var t [2]time.Time
	for i, k := range []string{"from", "to"} {
		if !v.Has(k) {
			badParam(w, k, "required with "+map[string]string{"from": "to", "to": "from"}[k])
			return
		}
		x, ok := parseTime(v.Get(k))
		if !ok {
			badParam(w, k, "want an RFC 3339 time (2026-11-23T12:00:00Z) or unix seconds, between 2000 and 2100")
			return
		}
		t[i] = x
	}
	if !t[0].Before(t[1]) {
		badParam(w, "to", "must be after from")
		return
	}
	if t[1].Sub(t[0]) > MaxHistoryRange {
		badParam(w, "to", "from–to is longer than "+MaxHistoryRange.String())
		return
	}
	rule := v.Get("rule")
	if v.Has("rule") && rule == "" {
		badParam(w, "rule", "empty")
		return
	}
	changes, err := s.store.History(ctx, t[0], t[1], rule, MaxHistoryChanges)
	if err != nil {
		s.log.Error().Err(err).Msg("GET /api/v1/alerts")
		httpx.WriteError(w, http.StatusInternalServerError, "cannot read the alert history")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, HistoryAnswer{Changes: changes})
}

// parseTime reads a time as the rest of the API does: RFC 3339 or Unix
// seconds, within 2000–2100.
func parseTime(s string) (time.Time, bool) {
	lo, hi := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	var t time.Time
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		t = time.Unix(n, 0).UTC()
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return t, false
	}
	return t.UTC(), !t.Before(lo) && t.Before(hi)
}

func badParam(w http.ResponseWriter, param, reason string) {
	httpx.WriteErrorWith(w, http.StatusBadRequest, param+": "+reason, map[string]any{"param": param})
}
