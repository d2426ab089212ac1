package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/qoscope/qoscope/internal/httpx"
)

// Silence mutes the alerts its matchers all match while it is active,
// [StartsAt, EndsAt): they are neither grouped nor sent to any receiver
// (Alertmanager receivers included). Deleting a silence expires it.
type Silence struct {
	ID       string    `json:"id"`
	Matchers Matchers  `json:"matchers"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	// CreatedBy is the admin token's name (never its secret).
	CreatedBy string `json:"created_by"`
	Comment   string `json:"comment"`
	// UpdatedAt is the last change (creation or expiry).
	UpdatedAt time.Time `json:"updated_at"`
}

// Silence states, as GET /api/v1/silences reports them.
const (
	SilencePending = "pending"
	SilenceActive  = "active"
	SilenceExpired = "expired"
)

// State is the silence's state at now.
func (s *Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	}
	return SilenceExpired
}

// Mutes reports whether s is active at now and matches labels.
func (s *Silence) Mutes(labels map[string]string, now time.Time) bool {
	return s.State(now) == SilenceActive && s.Matchers.Matches(labels)
}

// maxSilenceBody bounds a POSTed silence.
const maxSilenceBody = 64 << 10

// Mount adds the silence endpoints to r: GET /api/v1/silences (scope
// read), POST /api/v1/admin/silences and DELETE
// /api/v1/admin/silences/{id} (scope admin). query/api/openapi.json
// documents them.
func (d *Dispatcher) Mount(r chi.Router, auth *httpx.Auth) {
	r.With(auth.Require(httpx.ScopeRead)).Get("/api/v1/silences", d.listSilences)
	r.With(auth.Require(httpx.ScopeAdmin)).Post("/api/v1/admin/silences", d.createSilence)
	r.With(auth.Require(httpx.ScopeAdmin)).Delete("/api/v1/admin/silences/{id}", d.expireSilence)
}

type silenceJSON struct {
	Silence
	State string `json:"state"`
}

func (d *Dispatcher) listSilences(w http.ResponseWriter, r *http.Request) {
	ss, err := d.store.Silences(r.Context())
	if err != nil {
		httpx.Info(r).Error = err.Error()
		httpx.WriteError(w, http.StatusServiceUnavailable, "cannot read silences")
		return
	}
	now := d.now()
	// Active first, then pending, then expired; newest first within each.
	rank := map[string]int{SilenceActive: 0, SilencePending: 1, SilenceExpired: 2}
	slices.SortStableFunc(ss, func(a, b Silence) int {
		if c := rank[a.State(now)] - rank[b.State(now)]; c != 0 {
			return c
		}
		return b.UpdatedAt.Compare(a.UpdatedAt)
	})
	out := make([]silenceJSON, len(ss))
	for i, s := range ss {
		out[i] = silenceJSON{Silence: s, State: s.State(now)}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"silences": out})
}

// silenceRequest is POST /api/v1/admin/silences' body.
type silenceRequest struct {
	Matchers []Matcher `json:"matchers"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	Comment  string    `json:"comment"`
}

func (d *Dispatcher) createSilence(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxSilenceBody))
	dec.DisallowUnknownFields()
	var req silenceRequest
	if err := dec.Decode(&req); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad silence: "+err.Error())
		return
	}
	now := d.now()
	if req.StartsAt.IsZero() {
		req.StartsAt = now
	}
	var problems []string
	if len(req.Matchers) == 0 {
		problems = append(problems, "matchers: at least one is required")
	}
	if strings.TrimSpace(req.Comment) == "" {
		problems = append(problems, "comment: required (say why)")
	}
	switch {
	case req.EndsAt.IsZero():
		problems = append(problems, "ends_at: required")
	case !req.EndsAt.After(req.StartsAt):
		problems = append(problems, "ends_at: must be after starts_at")
	case !req.EndsAt.After(now):
		problems = append(problems, "ends_at: must be in the future")
	}
	// A silence matching everything (only matchers that "" satisfies)
	// would mute every alert: Alertmanager refuses it too.
	if len(req.Matchers) > 0 && Matchers(req.Matchers).Matches(map[string]string{}) {
		problems = append(problems, "matchers: at least one must not match the empty string (this silence would mute every alert)")
	}
	if len(problems) > 0 {
		httpx.WriteError(w, http.StatusBadRequest, "bad silence: "+strings.Join(problems, "; "))
		return
	}
	s := Silence{
		ID:        uuid.NewString(),
		Matchers:  req.Matchers,
		StartsAt:  req.StartsAt.UTC(),
		EndsAt:    req.EndsAt.UTC(),
		CreatedBy: httpx.Info(r).TokenName(),
		Comment:   req.Comment,
		UpdatedAt: now.UTC(),
	}
	if err := d.store.PutSilence(r.Context(), s); err != nil {
		httpx.Info(r).Error = err.Error()
		httpx.WriteError(w, http.StatusServiceUnavailable, "cannot store the silence")
		return
	}
	d.setSilence(s)
	d.log.Info().Str("silence", s.ID).Str("by", s.CreatedBy).Stringer("matchers", matcherList(s.Matchers)).
		Time("ends_at", s.EndsAt).Str("comment", s.Comment).Msg("silence created")
	httpx.WriteJSON(w, http.StatusCreated, silenceJSON{Silence: s, State: s.State(now)})
}

func (d *Dispatcher) expireSilence(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	ss, err := d.store.Silences(r.Context())
	if err != nil {
		httpx.Info(r).Error = err.Error()
		httpx.WriteError(w, http.StatusServiceUnavailable, "cannot read silences")
		return
	}
	i := slices.IndexFunc(ss, func(s Silence) bool { return s.ID == id })
	if i < 0 {
		httpx.WriteError(w, http.StatusNotFound, fmt.Sprintf("no silence %q", id))
		return
	}
	s, now := ss[i], d.now()
	if s.State(now) != SilenceExpired {
		s.EndsAt, s.UpdatedAt = now.UTC(), now.UTC()
		if s.StartsAt.After(s.EndsAt) {
			s.StartsAt = s.EndsAt
		}
		if err := d.store.PutSilence(r.Context(), s); err != nil {
			httpx.Info(r).Error = err.Error()
			httpx.WriteError(w, http.StatusServiceUnavailable, "cannot store the silence")
			return
		}
		d.setSilence(s)
		d.log.Info().Str("silence", s.ID).Str("by", httpx.Info(r).TokenName()).Msg("silence expired")
	}
	httpx.WriteJSON(w, http.StatusOK, silenceJSON{Silence: s, State: s.State(now)})
}

type matcherList Matchers

func (m matcherList) String() string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}
