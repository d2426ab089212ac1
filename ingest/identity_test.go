package ingest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

// eids sends body to path once per entry of sends (each an Idempotency-Key,
// "" for none) through a server whose clock advances 7 s per request, and
// returns the eid of every record produced, per request.
func eids(t *testing.T, method, path, token, body string, hdr map[string]string, sends ...string) [][]uint64 {
	t.Helper()
	cfg := testConfig()
	fp := &fakeProducer{}
	now := testNow
	s, err := NewServer(cfg, Deps{Producer: fp, Now: func() time.Time { now = now.Add(7 * time.Second); return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var out [][]uint64
	seen := 0
	for _, key := range sends {
		h := map[string]string{}
		for k, v := range hdr {
			h[k] = v
		}
		if key != "" {
			h["Idempotency-Key"] = key
		}
		var rd *strings.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		var r reply
		if rd != nil {
			r = do(t, s.Handler(), method, path, token, rd, h)
		} else {
			r = do(t, s.Handler(), method, path, token, nil, h)
		}
		if r.status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
		var ids []uint64
		for _, m := range fp.msgs[seen:] {
			if m.Topic == cfg.Kafka.Topics.DeadLetter {
				continue
			}
			var e schemas.Event
			if err := schemas.ParseLine(m.Value, &e); err != nil {
				t.Fatalf("record %s: %v", m.Value, err)
			}
			if e.EID == 0 {
				t.Fatalf("record without eid: %s", m.Value)
			}
			ids = append(ids, e.EID)
		}
		seen = len(fp.msgs)
		out = append(out, ids)
	}
	return out
}

func sameIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func distinct(ids ...[]uint64) bool {
	seen := map[uint64]bool{}
	for _, l := range ids {
		for _, id := range l {
			if seen[id] {
				return false
			}
			seen[id] = true
		}
	}
	return true
}

func TestEventIdentity(t *testing.T) {
	ts := ms(testNow) - 1000
	hb := clientEvent("heartbeat", "u1", ts)
	// Line 2 repeats line 1 byte for byte; line 3 tries to choose its eid.
	forged := strings.Replace(clientEvent("heartbeat", "u2", ts), `"v":1,`, `"v":1,"eid":"00000000000000aa",`, 1)
	body := hb + "\n" + hb + "\n" + forged + "\n"

	t.Run("keyed retries share eids, other keys do not", func(t *testing.T) {
		got := eids(t, http.MethodPost, "/v1/events/client", tokSDK, body, nil, "k-1", "k-1", "k-2")
		if len(got[0]) != 3 {
			t.Fatalf("%d records, want 3", len(got[0]))
		}
		if !sameIDs(got[0], got[1]) {
			t.Errorf("retry with the same key: %x then %x", got[0], got[1])
		}
		if !distinct(got[0], got[2]) {
			t.Errorf("another key reuses eids: %x and %x", got[0], got[2])
		}
		if got[0][2] == 0xaa {
			t.Error("the client chose its eid")
		}
	})
	t.Run("without a key the content and position identify the line", func(t *testing.T) {
		got := eids(t, http.MethodPost, "/v1/events/client", tokSDK, body, nil, "", "")
		// Later receive time, same lines: the same events.
		if !sameIDs(got[0], got[1]) {
			t.Errorf("resent body: %x then %x", got[0], got[1])
		}
		// Byte-identical lines 1 and 2 are two events.
		if !distinct(got[0]) {
			t.Errorf("eids within one request repeat: %x", got[0])
		}
	})
	t.Run("a key and no key differ", func(t *testing.T) {
		got := eids(t, http.MethodPost, "/v1/events/client", tokSDK, body, nil, "", "k-1")
		if !distinct(got...) {
			t.Errorf("%x and %x share eids", got[0], got[1])
		}
	})
	t.Run("gzip does not change the identity", func(t *testing.T) {
		plain := eids(t, http.MethodPost, "/v1/events/client", tokSDK, body, nil, "")
		gz := eids(t, http.MethodPost, "/v1/events/client", tokSDK, string(gzipBytes(t, []byte(body))),
			map[string]string{"Content-Encoding": "gzip"}, "")
		if !sameIDs(plain[0], gz[0]) {
			t.Errorf("plain %x, gzip %x", plain[0], gz[0])
		}
	})
	t.Run("CMCD with ts is one event on resend, without ts a new one", func(t *testing.T) {
		withTS := `v=2,cid="live-3",sid="s-3",bsd=(2500;v),ts=` + strconv.FormatInt(ts, 10)
		got := eids(t, http.MethodPost, "/v1/cmcd", tokSDK, withTS, map[string]string{"Content-Type": "application/cmcd"}, "", "")
		if len(got[0]) == 0 || !sameIDs(got[0], got[1]) {
			t.Errorf("payload with ts resent: %x then %x", got[0], got[1])
		}
		// The query form has no ts: each request is stamped with its own
		// receive time, so two identical ones are two events...
		got = eids(t, http.MethodGet, cmcdQueryPath, tokSDK, "", nil, "", "")
		if len(got[0]) != 1 || !distinct(got...) {
			t.Errorf("query form sent twice: %x and %x", got[0], got[1])
		}
		// ...unless they are one request retried with its key.
		got = eids(t, http.MethodGet, cmcdQueryPath, tokSDK, "", nil, "q-1", "q-1")
		if !sameIDs(got[0], got[1]) {
			t.Errorf("query form retried with its key: %x then %x", got[0], got[1])
		}
	})
}
