package live

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qoscope/qoscope/internal/httpx"
)

// Mount adds the scores routes to r (serve's router), each behind auth:
// GET /api/v1/scores and GET /api/v1/blacklist need read, POST
// /api/v1/admin/blacklist needs admin.
func (s *Scores) Mount(r chi.Router, auth *httpx.Auth) {
	r.Group(func(r chi.Router) {
		r.Use(auth.Require(httpx.ScopeRead))
		r.Get("/api/v1/scores", s.ServeScores)
		r.Get("/api/v1/blacklist", s.serveBlacklist)
	})
	r.Group(func(r chi.Router) {
		r.Use(auth.Require(httpx.ScopeAdmin), httpx.MaxBody(4096))
		r.Post("/api/v1/admin/blacklist", s.switchEntry)
	})
}

var (
	hdrNoCache = []string{"no-cache"}
	hdrVary    = []string{"Accept, Accept-Encoding"}
	hdrGzip    = []string{"gzip"}
)

// ServeScores answers GET /api/v1/scores[?province=&isp=] from the
// snapshot's encoded bytes (docs/SCORES.md, "Serving the scheduler").
func (s *Scores) ServeScores(w http.ResponseWriter, r *http.Request) {
	sn := s.snap.Load()
	if sn == nil {
		w.Header().Set("Retry-After", strconv.Itoa(int((s.cfg.RetryInterval+time.Second-1)/time.Second)))
		httpx.WriteError(w, http.StatusServiceUnavailable, "no scores snapshot yet: the first rebuild has not succeeded (retry later; the server log says why)")
		return
	}
	var f filter
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		for k, vs := range q {
			switch {
			case k != "province" && k != "isp":
				httpx.WriteError(w, http.StatusBadRequest, fmt.Sprintf("parameter %s: unknown (the filters are province and isp)", k))
				return
			case len(vs) != 1 || vs[0] == "":
				httpx.WriteError(w, http.StatusBadRequest, fmt.Sprintf("parameter %s: give one non-empty value", k))
				return
			}
		}
		f = filter{q.Get("province"), q.Get("isp")}
	}
	v, err := sn.lookup(f)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "cannot encode the scores table")
		return
	}
	e := &v.json
	if strings.Contains(r.Header.Get("Accept"), ctArrow) {
		e = &v.arrow
	}
	gz := e.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding"))
	if gz {
		e = e.gz
	}
	h := w.Header()
	now := s.now()
	h["Etag"] = e.etag
	h["Cache-Control"] = hdrNoCache
	h["Vary"] = hdrVary
	h["X-Scores-At"] = sn.hAt
	h["X-Data-Until"] = sn.hDataUntil
	h["Last-Modified"] = sn.hBuilt
	age := sn.Age(now)
	h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	if stale, ferr := s.Stale(sn, now); stale {
		h.Add("Warning", warning(110, fmt.Sprintf("Response is Stale: scores snapshot of %s built %ds ago", sn.At.Format(time.RFC3339), int64(age/time.Second))))
		if ferr != nil {
			h.Add("Warning", warning(111, "Revalidation Failed: the scores rebuild fails ("+ferr.Error()+")"))
		}
	}
	if match(r.Header.Get("If-None-Match"), e.etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = e.ctype
	h["Content-Length"] = e.length
	if gz {
		h["Content-Encoding"] = hdrGzip
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
}

// warning is one Warning header value (RFC 7234 §5.5): code, agent, a
// quoted text without quotes, backslashes or control characters.
func warning(code int, text string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return '\''
		}
		return r
	}, text)
	return fmt.Sprintf(`%d qoscope "%s"`, code, clean)
}

// match reports whether an If-None-Match value names etag (weak
// comparison, RFC 9110 §13.1.2).
func match(inm, etag string) bool {
	if inm == "" {
		return false
	}
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// blacklistAnswer is GET /api/v1/blacklist.
type blacklistAnswer struct {
	// At is the snapshot's minute the entries were judged against.
	At      *time.Time `json:"at"`
	Entries []Entry    `json:"entries"`
	Changes []Change   `json:"changes"`
}

// maxChanges is how many audit rows GET /api/v1/blacklist lists by default
// and at most.
const maxChanges = 1000

func (s *Scores) serveBlacklist(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > maxChanges {
			httpx.WriteError(w, http.StatusBadRequest, fmt.Sprintf("parameter limit: %q is not a number between 0 and %d", l, maxChanges))
			return
		}
		limit = n
	}
	sn := s.snap.Load()
	if sn == nil {
		w.Header().Set("Retry-After", strconv.Itoa(int((s.cfg.RetryInterval+time.Second-1)/time.Second)))
		httpx.WriteError(w, http.StatusServiceUnavailable, "no scores snapshot yet: the first rebuild has not succeeded")
		return
	}
	ans := blacklistAnswer{At: &sn.At, Entries: sn.Blacklist, Changes: []Change{}}
	if ans.Entries == nil {
		ans.Entries = []Entry{}
	}
	if limit > 0 {
		ctx, cancel := contextTimeout(r, s.cfg.Timeout)
		defer cancel()
		ch, err := s.store.Changes(ctx, limit)
		if err != nil {
			s.log.Error().Err(err).Msg("cannot read the blacklist audit")
			httpx.WriteError(w, http.StatusServiceUnavailable, "cannot read the blacklist audit from clickhouse")
			return
		}
		ans.Changes = ch
	}
	httpx.WriteJSON(w, http.StatusOK, ans)
}

// switchRequest is POST /api/v1/admin/blacklist's body.
type switchRequest struct {
	Vendor   string `json:"vendor"`
	Province string `json:"province"`
	ISP      string `json:"isp"`
	On       *bool  `json:"on"`
	Reason   string `json:"reason"`
}

// switchAnswer says what was recorded and what the rebuilt snapshot made
// of it.
type switchAnswer struct {
	Change Change `json:"change"`
	// Entry is the operator entry as the new snapshot judged it (applied,
	// or the note why not); null after on:false.
	Entry *Entry `json:"entry"`
	// Note is set when the snapshot could not be rebuilt at once: the
	// switch is recorded and applies at the next rebuild.
	Note *string `json:"note"`
}

// switchEntry records an operator's switch (audited, who = the token's
// name), rebuilds the snapshot and answers with the entry as applied.
func (s *Scores) switchEntry(w http.ResponseWriter, r *http.Request) {
	var req switchRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "body: not a JSON object {vendor, province, isp, on, reason}: "+err.Error())
		return
	}
	var problems []string
	if _, ok := s.contracts.Vendors[req.Vendor]; !ok {
		problems = append(problems, fmt.Sprintf("vendor: %q has no contract in the scores file", req.Vendor))
	}
	if req.Province == "" {
		problems = append(problems, "province: required")
	}
	if req.ISP == "" {
		problems = append(problems, "isp: required")
	}
	if req.On == nil {
		problems = append(problems, "on: required (true blacklists, false removes the operator entry)")
	}
	if strings.TrimSpace(req.Reason) == "" {
		problems = append(problems, "reason: required (it is audited and shown to the scheduler)")
	}
	if len(problems) > 0 {
		httpx.WriteError(w, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	ctx, cancel := contextTimeout(r, s.cfg.Timeout)
	defer cancel()
	ops, err := s.store.OperatorEntries(ctx)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot read the operator blacklist")
		httpx.WriteError(w, http.StatusServiceUnavailable, "cannot read the operator blacklist from clickhouse")
		return
	}
	k := entryKey{req.Vendor, req.Province, req.ISP}
	exists := false
	for i := range ops {
		exists = exists || ops[i].key() == k
	}
	if !*req.On && !exists {
		httpx.WriteError(w, http.StatusNotFound, fmt.Sprintf("no operator entry for %s in %s/%s (alert and file entries are not switched here)", req.Vendor, req.Province, req.ISP))
		return
	}
	action := ActionOff
	if *req.On {
		action = ActionOn
	}
	by := "unknown"
	if t := httpx.TokenFrom(r); t != nil {
		by = t.Name
	}
	ch := Change{At: s.now().UTC(), Vendor: req.Vendor, Province: req.Province, ISP: req.ISP,
		Source: SourceOperator, Action: action, Reason: req.Reason, By: by}
	if err := s.store.Append(ctx, []Change{ch}); err != nil {
		s.log.Error().Err(err).Msg("cannot record an operator blacklist switch")
		httpx.WriteError(w, http.StatusServiceUnavailable, "cannot record the switch in clickhouse; nothing changed")
		return
	}
	s.log.Info().Str("by", by).Str("vendor", req.Vendor).Str("province", req.Province).Str("isp", req.ISP).
		Str("action", action).Str("reason", req.Reason).Msg("operator blacklist switch")
	ans := switchAnswer{Change: ch}
	if err := s.Rebuild(ctx); err != nil {
		note := "recorded; the snapshot could not be rebuilt now and applies it at the next rebuild"
		ans.Note = &note
	} else if sn := s.snap.Load(); sn != nil {
		for i := range sn.Blacklist {
			if e := sn.Blacklist[i]; e.Source == SourceOperator && e.key() == k {
				ans.Entry = &e
			}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, ans)
}

// acceptsGzip reports whether an Accept-Encoding value accepts gzip
// (listed, or "*", without q=0).
func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		return !strings.HasPrefix(q, "q=0") || strings.HasPrefix(q, "q=0.") && strings.Trim(q[4:], "0") != ""
	}
	return false
}
