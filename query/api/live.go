package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/httpx"
	"github.com/qoscope/qoscope/query"
)

// LiveEvent is the data of one /api/v1/live event: the latest minute's
// headline numbers per source (query.Latest, with each minute's age) and
// the freshness it was read at.
type LiveEvent struct {
	query.Latest
	LastWrite time.Time `json:"last_write"`
}

// liveEvent is an encoded event. Its id is the freshness it was read at
// (written_at in Unix milliseconds, "-", the row count): a client that
// reconnects with Last-Event-ID equal to the current id has seen the
// current numbers; any other id gets them at once. Only the newest
// numbers are kept: a missed event is superseded by the next, so there
// is nothing older to replay.
type liveEvent struct {
	id   string
	data []byte
}

func eventID(f query.Freshness) string {
	return strconv.FormatInt(f.LastWrite.UnixMilli(), 10) + "-" + strconv.FormatUint(f.Rows, 10)
}

// hub is the one poller of every live client: while at least one listens,
// it reads the minute tables' freshness every Live.Poll and, when it
// changed, the headline numbers once, and hands the encoded event to every
// client. Clients never query ClickHouse themselves.
type hub struct {
	q       *query.Querier
	cfg     Live
	timeout time.Duration
	log     zerolog.Logger
	clients prometheus.Gauge
	// changed, when set, is called when the tables changed, before the
	// clients are told (serve drops its shared answers).
	changed func()

	mu   sync.Mutex
	cur  *liveEvent
	last query.Freshness
	subs map[chan struct{}]struct{}
	wake chan struct{}
	done chan struct{}
}

func newHub(q *query.Querier, cfg Live, timeout time.Duration, log zerolog.Logger) *hub {
	return &hub{q: q, cfg: cfg, timeout: timeout, log: log, subs: map[chan struct{}]struct{}{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// subscribe registers a client; its channel is signalled (never blocking
// the hub) when a new event is current. max bounds the clients.
func (h *hub) subscribe(max int) (chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= max {
		return nil, false
	}
	c := make(chan struct{}, 1)
	h.subs[c] = struct{}{}
	if h.clients != nil {
		h.clients.Inc()
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return c, true
}

func (h *hub) unsubscribe(c chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, c)
	if h.clients != nil {
		h.clients.Dec()
	}
	if len(h.subs) == 0 {
		// Nobody listens: the next client must not get numbers read
		// while nobody polled.
		h.cur, h.last = nil, query.Freshness{}
	}
}

func (h *hub) current() *liveEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// run polls until ctx ends, then closes done, which ends every client.
func (h *hub) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.wake:
		}
		h.mu.Lock()
		n := len(h.subs)
		h.mu.Unlock()
		if n > 0 {
			h.poll(ctx)
		}
	}
}

func (h *hub) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	f, err := h.q.Freshness(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn().Err(err).Msg("live: cannot poll the minute tables")
		}
		return
	}
	h.mu.Lock()
	same := h.cur != nil && f == h.last
	h.mu.Unlock()
	if same {
		return
	}
	l, err := h.q.Latest(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn().Err(err).Msg("live: cannot read the latest minute")
		}
		return
	}
	data, err := json.Marshal(LiveEvent{Latest: *l, LastWrite: f.LastWrite})
	if err != nil {
		h.log.Error().Err(err).Msg("live: cannot encode the event")
		return
	}
	if h.changed != nil {
		h.changed()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last, h.cur = f, &liveEvent{id: eventID(f), data: data}
	for c := range h.subs {
		select {
		case c <- struct{}{}:
		default: // it has a signal pending; it will read the newest event
		}
	}
}

// liveRetry is the reconnection delay the stream asks browsers to use.
const liveRetry = time.Second

// live streams LiveEvents as server-sent events (event: latest), a
// heartbeat comment every Live.Heartbeat, until the client leaves or the
// server stops.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	if _, err := parseParams(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	sub, ok := s.hub.subscribe(s.cfg.Limits.MaxLiveClients)
	if !ok {
		w.Header().Set("Retry-After", "5")
		httpx.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d live clients already connected (serve.limits.max_live_clients)", s.cfg.Limits.MaxLiveClients))
		return
	}
	defer s.hub.unsubscribe(sub)
	rc := http.NewResponseController(w)
	// A stream outlives any write timeout of the server.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", liveRetry.Milliseconds()); err != nil {
		return
	}
	_ = rc.Flush()
	sent := r.Header.Get("Last-Event-ID")
	send := func() bool {
		ev := s.hub.current()
		if ev == nil || ev.id == sent {
			return true
		}
		if _, err := fmt.Fprintf(w, "id: %s\nevent: latest\ndata: %s\n\n", ev.id, ev.data); err != nil {
			return false
		}
		sent = ev.id
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	beat := time.NewTicker(s.cfg.Live.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.hub.done:
			return
		case <-sub:
			if !send() {
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
