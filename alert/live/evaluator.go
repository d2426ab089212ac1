// Package live is the live alert evaluator run inside `qoscope serve`
// (docs/ALERTS.md, "Live"): it evaluates each minute with the rules of
// package alert as soon as the aggregators' watermarks say the minute is
// complete, again when it is final, applies and logs the decisions a late
// change flips, persists its state in ClickHouse, hands the notifications
// to delivery (a Sink, notify.Dispatcher), and serves GET /api/v1/alerts.
// One serve instance evaluates at a time (internal/leader).
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/alert"
	"github.com/qoscope/qoscope/notify"
	"github.com/qoscope/qoscope/query"
)

// Deps are what an Evaluator works with.
type Deps struct {
	Watermarks Watermarks
	Rows       RowSource
	Store      Store
	Sink       Sink
	Logger     zerolog.Logger
	// Metrics, nil: none recorded (tests).
	Metrics *Metrics
	// Now is the clock (the lag metric, the first minute evaluated);
	// default time.Now.
	Now func() time.Time
}

// Evaluator is the live loop's state machine. Tick does the work the
// watermarks allow; Run calls it on a ticker while this instance leads.
type Evaluator struct {
	cfg   Config
	d     Deps
	log   zerolog.Logger
	rules atomic.Pointer[alert.Rules]

	mu sync.Mutex // guards st for the API's readers
	st *State     // nil until Begin
}

// NewEvaluator returns an evaluator of rules; Begin loads its state.
func NewEvaluator(cfg Config, rules *alert.Rules, d Deps) *Evaluator {
	if d.Now == nil {
		d.Now = time.Now
	}
	e := &Evaluator{cfg: cfg, d: d, log: d.Logger.With().Str("component", "alert").Logger()}
	e.rules.Store(rules)
	return e
}

// SetRules replaces the rules (a reload); they apply from the next minute
// evaluated, and to the re-evaluation of minutes not yet final.
func (e *Evaluator) SetRules(rs *alert.Rules) { e.rules.Store(rs) }

// Rules are the rules in use.
func (e *Evaluator) Rules() *alert.Rules { return e.rules.Load() }

// Snapshot returns a copy of the state, nil before Begin.
func (e *Evaluator) Snapshot() *State {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st == nil {
		return nil
	}
	return cloneState(e.st)
}

// Begin starts a term: it loads the saved state (the previous leader's or
// this instance's before a restart) and hands delivery what the last step
// had not handed over yet.
func (e *Evaluator) Begin(ctx context.Context) error {
	st, err := e.d.Store.LoadState(ctx)
	if err != nil {
		return err
	}
	if st == nil {
		st = &State{Version: StateVersion, Final: alert.State{Version: alert.StateVersion, Alerts: []alert.AlertState{}}}
		e.log.Info().Msg("no saved alert state: evaluating from the newest complete minute minus the rules' longest for")
	} else if st.Version != StateVersion {
		return fmt.Errorf("saved alert state has version %d; this build reads %d", st.Version, StateVersion)
	} else {
		cur := st.current()
		e.log.Info().Time("evaluated", cur.Evaluated).Time("final", st.Final.Evaluated).Int("alerts", len(cur.Alerts)).
			Int("outbox", len(st.Outbox)).Msg("alert state loaded")
	}
	if st.Info == nil {
		st.Info = map[string]Info{}
	}
	if st.Notified == nil {
		st.Notified = map[string]notify.Alert{}
	}
	e.set(st)
	return e.flushOutbox(ctx, cloneState(st))
}

func (e *Evaluator) set(st *State) {
	e.mu.Lock()
	e.st = st
	e.mu.Unlock()
	e.d.Metrics.alertsNow(st.current())
}

// flushOutbox hands the saved outbox to the Sink and saves the state
// without it.
func (e *Evaluator) flushOutbox(ctx context.Context, st *State) error {
	if len(st.Outbox) == 0 {
		return nil
	}
	// A term that ended must not send more: the next leader sends the
	// outbox it finds in the saved state.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.d.Sink.Submit(ctx, st.Outbox); err != nil {
		return fmt.Errorf("cannot hand %d alerts to delivery: %w", len(st.Outbox), err)
	}
	e.d.Metrics.notified(st.Outbox)
	st.Outbox = nil
	if err := e.save(ctx, st); err != nil {
		return err
	}
	e.set(st)
	return nil
}

func (e *Evaluator) save(ctx context.Context, st *State) error {
	if err := e.d.Store.SaveState(ctx, st); err != nil {
		return fmt.Errorf("cannot save alert state: %w", err)
	}
	return nil
}

// errNotFinal stops the finalisation at a minute whose rows are not all
// final yet although the watermarks say so (rows and checkpoints are
// separate inserts).
var errNotFinal = errors.New("rows not final yet")

// Tick does every step the watermarks allow, each minute in order: the
// minutes not yet final that became final (evaluated again when their
// rows changed), then the minutes that became complete. It returns the
// number of steps. Each step is saved, and its notifications handed to
// the Sink, before the next.
func (e *Evaluator) Tick(ctx context.Context) (int, error) {
	if e.st == nil {
		return 0, errors.New("alert evaluator: Tick before Begin")
	}
	if len(e.st.Outbox) > 0 {
		if err := e.flushOutbox(ctx, cloneState(e.st)); err != nil {
			return 0, err
		}
	}
	rs := e.Rules()
	sources := rs.Sources()
	if len(sources) == 0 {
		return 0, nil
	}
	prog, err := e.d.Watermarks.Progress(ctx, sources)
	if err != nil {
		return 0, err
	}
	lastComplete, lastFinal, ok := bounds(prog, sources)
	if !ok {
		return 0, nil
	}
	steps := 0
	for len(e.st.Minutes) > 0 && !e.st.Minutes[0].At.After(lastFinal) {
		err := e.finalize(ctx, rs)
		if errors.Is(err, errNotFinal) {
			break
		}
		if err != nil {
			return steps, err
		}
		steps++
	}
	// The first start (no saved state) looks back the longest `for`: a
	// condition that has held that long fires now, as it would have had an
	// evaluator run all along, rather than after another `for`.
	next := lastComplete.Add(-min(rs.LongestFor(), e.cfg.Evaluation.CatchUp))
	if cur := e.st.current(); !cur.Evaluated.IsZero() {
		next = cur.Evaluated.Add(time.Minute)
		if from := lastComplete.Add(-e.cfg.Evaluation.CatchUp); next.Before(from) {
			e.log.Warn().Time("from", next).Time("to", from).Msg("minutes missed beyond alert.evaluation.catch_up are not evaluated")
			next = from
		}
	}
	for t := next; !t.After(lastComplete); t = t.Add(time.Minute) {
		if err := e.evaluate(ctx, rs, t, !t.After(lastFinal)); err != nil {
			return steps, err
		}
		steps++
	}
	return steps, nil
}

// bounds are the last complete and the last final minute (their starts)
// over the sources the rules read; a source without checkpoints (no
// aggregator has written any of its partitions) does not hold the others
// back.
func bounds(prog map[string]Progress, sources []string) (complete, final time.Time, ok bool) {
	for _, s := range sources {
		p, has := prog[s]
		if !has || p.Complete.IsZero() {
			continue
		}
		c := p.Complete.UTC().Truncate(time.Minute).Add(-time.Minute)
		f := p.Final.UTC().Truncate(time.Minute).Add(-time.Minute)
		if !ok || c.Before(complete) {
			complete = c
		}
		if !ok || f.Before(final) {
			final = f
		}
		ok = true
	}
	return complete, final, ok
}

// input is one minute's rows: those of the grouping sets the rules read,
// and their compare baselines.
type input struct {
	rows, baseline []alert.Row
	hash           uint64
	final          bool
}

func (e *Evaluator) read(ctx context.Context, rs *alert.Rules, t time.Time) (input, error) {
	in := input{final: true}
	h := xxhash.New()
	for _, n := range rs.Needs() {
		rows, final, err := e.d.Rows.Rows(ctx, n.Source, n.Set, n.Metrics, t, t.Add(time.Minute), nil)
		if err != nil {
			return in, err
		}
		in.final = in.final && final
		in.rows = append(in.rows, rows...)
		hashRows(h, n.Source, n.Set.Name, rows)
		for _, off := range n.Offsets {
			b, _, err := e.d.Rows.Rows(ctx, n.Source, n.Set, n.Metrics, t.Add(-off), t.Add(-off+time.Minute), nil)
			if err != nil {
				return in, err
			}
			in.baseline = append(in.baseline, b...)
			hashRows(h, n.Source, n.Set.Name, b)
		}
	}
	in.hash = h.Sum64()
	return in, nil
}

// hashRows feeds the rows' content into h, metrics by name.
func hashRows(h *xxhash.Digest, source, set string, rows []alert.Row) {
	var buf [8]byte
	put := func(s string) { h.WriteString(s); h.Write([]byte{0xff}) }
	put(source)
	put(set)
	var names []string
	for i := range rows {
		r := &rows[i]
		put(r.Minute.UTC().Format(time.RFC3339))
		for _, d := range r.Dims {
			put(d.Name)
			put(d.Value)
		}
		names = names[:0]
		for k := range r.Metrics {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			v := r.Metrics[k]
			put(k)
			bits := math.Float64bits(v.V)
			if !v.Valid {
				bits = 0x7ff8dead // a null is not any number
			}
			for j := range buf {
				buf[j] = byte(bits >> (8 * j))
			}
			h.Write(buf[:])
		}
	}
}

// step evaluates minute t from the state before it.
func step(rs *alert.Rules, before alert.State, t time.Time, in input) (alert.State, []alert.Change, error) {
	ev, err := alert.NewEvaluator(rs, &before)
	if err != nil {
		return alert.State{}, nil, err
	}
	if err := ev.Baseline(in.baseline); err != nil {
		return alert.State{}, nil, err
	}
	cs, err := ev.Step(t, in.rows)
	if err != nil {
		return alert.State{}, nil, err
	}
	return ev.State(), cs, nil
}

// evaluate is the first evaluation of minute t, complete (and final when
// the watermarks say so and its rows agree).
func (e *Evaluator) evaluate(ctx context.Context, rs *alert.Rules, t time.Time, final bool) error {
	start := time.Now()
	in, err := e.read(ctx, rs, t)
	if err != nil {
		return err
	}
	st := cloneState(e.st)
	after, changes, err := step(rs, st.current(), t, in)
	if err != nil {
		return fmt.Errorf("cannot evaluate minute %s: %w", t.Format(time.RFC3339), err)
	}
	st.Seq++
	final = final && in.final && len(st.Minutes) == 0
	if final {
		st.Final = after
	} else {
		st.Minutes = append(st.Minutes, Minute{At: t, RowsHash: in.hash, Changes: changes, After: after})
	}
	if err := e.refreshInfo(ctx, rs, st, t, in.rows); err != nil {
		return err
	}
	hist := e.historyRows(rs, st, changes)
	kind := "complete"
	if final {
		kind = "final"
	}
	e.log.Debug().Time("minute", t).Str("kind", kind).Int("changes", len(changes)).Msg("minute evaluated")
	if err := e.commit(ctx, st, hist, true); err != nil {
		return err
	}
	e.d.Metrics.evaluated(kind, time.Since(start), e.d.Now().Sub(t.Add(time.Minute)))
	return nil
}

// finalize handles the oldest minute not yet final: when its final rows
// are those it was evaluated with, it only moves into Final; otherwise it
// and the minutes after it are evaluated again from the state before it,
// and every decision that changed is applied, written to the history
// (retracted rows for changes that no longer happen) and logged.
func (e *Evaluator) finalize(ctx context.Context, rs *alert.Rules) error {
	start := time.Now()
	st := cloneState(e.st)
	m := st.Minutes[0]
	in, err := e.read(ctx, rs, m.At)
	if err != nil {
		return err
	}
	if !in.final {
		return errNotFinal
	}
	if in.hash == m.RowsHash {
		st.Final, st.Minutes = m.After, st.Minutes[1:]
		if err := e.save(ctx, st); err != nil {
			return err
		}
		e.set(st)
		e.d.Metrics.evaluated("final", time.Since(start), e.d.Now().Sub(m.At.Add(time.Minute)))
		return nil
	}
	st.Seq++
	before := st.Final
	var hist []HistoryRow
	flipped := false
	for i := range st.Minutes {
		rec := &st.Minutes[i]
		cur := in
		if i > 0 {
			if cur, err = e.read(ctx, rs, rec.At); err != nil {
				return err
			}
		}
		after, changes, err := step(rs, before, rec.At, cur)
		if err != nil {
			return fmt.Errorf("cannot evaluate minute %s again: %w", rec.At.Format(time.RFC3339), err)
		}
		if i == len(st.Minutes)-1 {
			if err := e.refreshInfo(ctx, rs, st, rec.At, cur.rows); err != nil {
				return err
			}
		}
		h, f := e.diff(rs, st, rec.At, rec.Changes, changes)
		hist, flipped = append(hist, h...), flipped || f
		rec.Changes, rec.After, rec.RowsHash = changes, after, cur.hash
		before = after
	}
	st.Final, st.Minutes = st.Minutes[0].After, st.Minutes[1:]
	if err := e.commit(ctx, st, hist, false); err != nil {
		return err
	}
	e.d.Metrics.evaluated("final", time.Since(start), e.d.Now().Sub(m.At.Add(time.Minute)))
	if flipped {
		e.d.Metrics.flip()
	}
	return nil
}

// diff compares the decisions of a minute evaluated again with those
// applied: changed or new ones are written again (a higher version
// replaces the row), vanished ones written retracted.
func (e *Evaluator) diff(rs *alert.Rules, st *State, at time.Time, old, now []alert.Change) ([]HistoryRow, bool) {
	var out []HistoryRow
	flipped := false
	byFP := map[string]alert.Change{}
	for _, c := range old {
		byFP[c.Rule+"\xff"+c.Fingerprint] = c
	}
	for _, c := range now {
		k := c.Rule + "\xff" + c.Fingerprint
		prev, had := byFP[k]
		delete(byFP, k)
		if had && prev.State == c.State && eqPtr(prev.Value, c.Value) && eqPtr(prev.Users, c.Users) {
			continue
		}
		if !had || prev.State != c.State {
			flipped = true
			e.log.Warn().Time("minute", at).Str("rule", c.Rule).Str("fingerprint", c.Fingerprint).
				Str("was", prev.State).Str("now", c.State).Msg("final rows flipped an alert decision; applied")
		}
		out = append(out, e.historyRows(rs, st, []alert.Change{c})...)
	}
	for _, c := range old {
		if _, gone := byFP[c.Rule+"\xff"+c.Fingerprint]; !gone {
			continue
		}
		flipped = true
		e.log.Warn().Time("minute", at).Str("rule", c.Rule).Str("fingerprint", c.Fingerprint).
			Str("was", c.State).Msg("final rows retracted an alert decision; applied")
		r := e.historyRows(rs, st, []alert.Change{c})
		for i := range r {
			r[i].Retracted = true
		}
		out = append(out, r...)
	}
	return out, flipped
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// commit writes the history rows, saves the state with the step's
// notifications in its outbox, hands them to the Sink and saves again
// without them. resend: every firing alert is sent (a minute evaluated
// for the first time, so that delivery keeps them); otherwise only the
// alerts whose firing changed.
func (e *Evaluator) commit(ctx context.Context, st *State, hist []HistoryRow, resend bool) error {
	for i := range hist {
		hist[i].Version = st.Seq
	}
	if len(hist) > 0 {
		if err := e.d.Store.WriteHistory(ctx, hist); err != nil {
			return fmt.Errorf("cannot write alert history: %w", err)
		}
	}
	st.Outbox = e.notifications(st, resend)
	if err := e.save(ctx, st); err != nil {
		return err
	}
	e.set(st)
	return e.flushOutbox(ctx, cloneState(st))
}

// refreshInfo updates what is shown of each active alert at minute t:
// value and volume from the minute's rows, the rendered annotations, and
// the diagnosis of an alert that fires without one yet.
func (e *Evaluator) refreshInfo(ctx context.Context, rs *alert.Rules, st *State, t time.Time, rows []alert.Row) error {
	cur := st.current()
	info := make(map[string]Info, len(cur.Alerts))
	for _, a := range cur.Alerts {
		r := rs.Rule(a.Rule)
		if r == nil {
			continue
		}
		old := st.Info[a.Fingerprint]
		in := Info{Severity: r.Severity, Action: r.Action, Diagnosis: old.Diagnosis, DiagnosisText: old.DiagnosisText}
		in.Value, in.Users = r.Observe(a.Labels, rows)
		if a.LastHeld.Before(t) && old.Value != nil {
			// Firing only by keep_firing_for: the condition no longer
			// holds, and on-call should read the value that made it fire,
			// not a healthy one under a firing title. Like Prometheus, the
			// alert keeps the value of the last minute it held
			// (docs/ALERTS.md, "Annotations").
			in.Value, in.Users = old.Value, old.Users
		}
		in.Annotations = render(r, a.Labels, a.State, in.Value, in.Users, e.log)
		if a.State == alert.StateFiring && in.Diagnosis == nil {
			causes, text, err := e.diagnose(ctx, r, a, t)
			if err != nil {
				return err
			}
			in.Diagnosis, in.DiagnosisText = causes, text
		}
		info[a.Fingerprint] = in
	}
	st.Info = info
	return nil
}

// render renders the rule's annotations for one alert; a template error
// (not caught at load, e.g. a value the sample did not have) is logged and
// leaves the annotation out.
func render(r *alert.Rule, labels alert.Labels, state string, v *float64, u *int64, log zerolog.Logger) map[string]string {
	d := alert.TemplateData{Rule: r.Name, Labels: labels.Map(), State: state}
	if v != nil {
		d.Value, d.HasValue = *v, true
	}
	if u != nil {
		d.Users = *u
	}
	out, err := r.RenderAnnotations(d)
	if err != nil {
		log.Warn().Err(err).Str("rule", r.Name).Msg("cannot render annotations")
		return map[string]string{}
	}
	return out
}

// diagnose explains a firing rate alert by its finer groups (alert.Diagnose):
// it reads the group's rows over the diagnosis window before the alert
// went pending and at t, and the finer sets' rows of the group at t.
func (e *Evaluator) diagnose(ctx context.Context, r *alert.Rule, a alert.AlertState, t time.Time) ([]Cause, string, error) {
	m := r.MetricInfo()
	if m.Kind != query.KindRate || len(r.FinerSets()) == 0 {
		return []Cause{}, "", nil
	}
	dims := r.Dims(a.Labels)
	metrics := []string{m.Numerator, m.Denominator}
	window := e.cfg.DiagnosisWindow
	base, _, err := e.d.Rows.Rows(ctx, r.Source, r.GroupingSet(), metrics, a.ActiveAt.Add(-window), a.ActiveAt, dims)
	if err != nil {
		return nil, "", err
	}
	now, _, err := e.d.Rows.Rows(ctx, r.Source, r.GroupingSet(), metrics, t, t.Add(time.Minute), dims)
	if err != nil {
		return nil, "", err
	}
	rows := append(base, now...)
	for _, f := range r.FinerSets() {
		fr, _, err := e.d.Rows.Rows(ctx, r.Source, f, metrics, t, t.Add(time.Minute), dims)
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, fr...)
	}
	dg, err := alert.DiagnoseWindow(r, dims, a.ActiveAt, t, window, rows)
	if err != nil {
		// No baseline (a new deployment) or no row: the alert goes out
		// without a diagnosis rather than not at all.
		e.log.Info().Err(err).Str("rule", r.Name).Str("fingerprint", a.Fingerprint).Msg("no diagnosis")
		return []Cause{}, "", nil
	}
	causes := make([]Cause, 0, len(dg.Causes))
	lines := make([]string, 0, len(dg.Causes))
	for _, c := range dg.Causes {
		causes = append(causes, Cause{Labels: c.Dims.Map(), Value: c.Rate, Baseline: c.Baseline, Share: c.Share, Text: c.String()})
		lines = append(lines, c.String())
	}
	return causes, strings.Join(lines, "\n"), nil
}

// historyRows are the alert_history rows of changes (version set by commit).
func (e *Evaluator) historyRows(rs *alert.Rules, st *State, changes []alert.Change) []HistoryRow {
	out := make([]HistoryRow, 0, len(changes))
	for _, c := range changes {
		h := HistoryRow{Change: c, Annotations: map[string]string{}}
		if r := rs.Rule(c.Rule); r != nil {
			h.Action = r.Action
			h.Annotations = render(r, c.Labels, c.State, c.Value, c.Users, e.log)
		}
		if in, ok := st.Info[c.Fingerprint]; ok && c.State == alert.StateFiring && len(in.Diagnosis) > 0 {
			b, _ := json.Marshal(in.Diagnosis) // plain data always marshals
			h.Diagnosis = string(b)
		}
		out = append(out, h)
	}
	return out
}

// notifications are the alerts to hand to delivery after a step: every
// firing alert (resend) or those newly firing, and those handed over as
// firing before that no longer fire, as resolved. Notified becomes the
// firing set.
func (e *Evaluator) notifications(st *State, resend bool) []notify.Alert {
	cur := st.current()
	at := cur.Evaluated
	firing := map[string]notify.Alert{}
	var out []notify.Alert
	for _, a := range cur.Alerts {
		if a.State != alert.StateFiring {
			continue
		}
		n := notify.Alert{Fingerprint: a.Fingerprint, Rule: a.Rule, Labels: a.Labels.Map(), Status: notify.StatusFiring,
			StartsAt: a.FiredAt, EvaluatedAt: at, GeneratorURL: e.generatorURL(a.Fingerprint)}
		n.Labels["alertname"] = a.Rule
		in := st.Info[a.Fingerprint]
		n.Value = in.Value
		n.Annotations = map[string]string{}
		for k, v := range in.Annotations {
			n.Annotations[k] = v
		}
		if in.DiagnosisText != "" {
			n.Annotations["diagnosis"] = in.DiagnosisText
		}
		firing[a.Fingerprint] = n
		if _, was := st.Notified[a.Fingerprint]; resend || !was {
			out = append(out, n)
		}
	}
	for fp, prev := range st.Notified {
		if _, still := firing[fp]; still {
			continue
		}
		prev.Status, prev.EndsAt, prev.EvaluatedAt = notify.StatusResolved, at, at
		out = append(out, prev)
	}
	st.Notified = firing
	slices.SortFunc(out, func(a, b notify.Alert) int {
		return strings.Compare(a.Rule+"\xff"+a.Fingerprint, b.Rule+"\xff"+b.Fingerprint)
	})
	return out
}

func (e *Evaluator) generatorURL(fp string) string {
	if e.cfg.ExternalURL == "" {
		return ""
	}
	return strings.TrimRight(e.cfg.ExternalURL, "/") + "/?alert=" + fp
}

// cloneState deep-copies a state (steps work on a copy, which replaces
// the evaluator's only once saved).
func cloneState(st *State) *State {
	b, err := json.Marshal(st)
	if err != nil {
		panic("alert/live: state does not marshal: " + err.Error()) // plain data; a bug
	}
	var c State
	if err := json.Unmarshal(b, &c); err != nil {
		panic("alert/live: state does not unmarshal: " + err.Error())
	}
	if c.Info == nil {
		c.Info = map[string]Info{}
	}
	if c.Notified == nil {
		c.Notified = map[string]notify.Alert{}
	}
	return &c
}
