package live

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/qoscope/qoscope/score"
)

// Snapshot is one rebuild's table with everything the handlers serve,
// encoded once: the JSON document and the Arrow IPC stream of the whole
// table and of each filter the table can answer (a province, an ISP, a
// province × ISP). It is immutable once published.
type Snapshot struct {
	// Table is the score.Table document (docs/SCORES.md, "The table").
	Table *score.Table
	// At is the table's minute, BuiltAt when the rebuild finished.
	At, BuiltAt time.Time
	// Blacklist are the entries the snapshot applied, each judged
	// (applied or why not).
	Blacklist []Entry

	views map[filter]*view
	// regionJSON is each region's document for the Kafka topic, keyed
	// "province/isp".
	regionJSON map[string][]byte
	// regionBody is the region part of each document, without the times,
	// to tell a changed region from an unchanged one.
	regionBody map[string][]byte
	// Header values shared by every answer of the snapshot.
	hAt, hDataUntil, hBuilt []string
}

type filter struct{ province, isp string }

// view is one filter's answer in both encodings.
type view struct {
	json, arrow encoded
}

type encoded struct {
	body   []byte
	etag   []string // one-element header values, shared by every answer
	ctype  []string
	length []string
	// gz is body gzipped once per snapshot, for clients that accept it
	// (nil for bodies too small to gain): the whole table is ~90 kB of
	// JSON, ~10 kB gzipped, and a scheduler far away pulls it often. It
	// is another representation, with its own ETag.
	gz *encoded
}

// gzipFrom: smaller bodies are sent as they are (a packet or two anyway).
const gzipFrom = 1400

const (
	ctJSON  = "application/json"
	ctArrow = "application/vnd.apache.arrow.stream"
)

func newEncoded(body []byte, ctype string) (encoded, error) {
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:12])
	e := encoded{body: body, etag: []string{`"` + tag + `"`},
		ctype: []string{ctype}, length: []string{fmt.Sprint(len(body))}}
	if len(body) >= gzipFrom {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // a valid level: no error
		if _, err := zw.Write(body); err != nil {
			return e, fmt.Errorf("cannot gzip the scores answer: %w", err)
		}
		if err := zw.Close(); err != nil {
			return e, fmt.Errorf("cannot gzip the scores answer: %w", err)
		}
		e.gz = &encoded{body: b.Bytes(), etag: []string{`"` + tag + `-gz"`}, ctype: e.ctype, length: []string{fmt.Sprint(b.Len())}}
	}
	return e, nil
}

// newSnapshot encodes t and its filtered views.
func newSnapshot(t *score.Table, builtAt time.Time, bl []Entry) (*Snapshot, error) {
	s := &Snapshot{Table: t, At: t.At, BuiltAt: builtAt, Blacklist: bl,
		views: map[filter]*view{}, regionJSON: map[string][]byte{}, regionBody: map[string][]byte{},
		hAt: []string{t.At.UTC().Format(time.RFC3339)}, hDataUntil: []string{"none"}, hBuilt: []string{httpDate(builtAt)}}
	if t.DataUntil != nil {
		s.hDataUntil = []string{t.DataUntil.UTC().Format(time.RFC3339)}
	}
	groups := map[filter][]score.Region{{}: t.Regions}
	for _, r := range t.Regions {
		for _, f := range []filter{{r.Province, ""}, {"", r.ISP}, {r.Province, r.ISP}} {
			groups[f] = append(groups[f], r)
		}
	}
	for f, regions := range groups {
		v, err := encodeView(t, regions)
		if err != nil {
			return nil, err
		}
		s.views[f] = v
		if f.province != "" && f.isp != "" {
			key := f.province + "/" + f.isp
			s.regionJSON[key] = v.json.body
			b, err := json.Marshal(regions[0])
			if err != nil {
				return nil, fmt.Errorf("cannot encode region %s: %w", key, err)
			}
			s.regionBody[key] = b
		}
	}
	return s, nil
}

// encodeView encodes the table restricted to regions.
func encodeView(t *score.Table, regions []score.Region) (*view, error) {
	sub := *t
	sub.Regions = regions
	if sub.Regions == nil {
		sub.Regions = []score.Region{}
	}
	j, err := json.Marshal(&sub)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the scores table: %w", err)
	}
	a, err := encodeArrow(&sub)
	if err != nil {
		return nil, err
	}
	je, err := newEncoded(append(j, '\n'), ctJSON)
	if err != nil {
		return nil, err
	}
	ae, err := newEncoded(a, ctArrow)
	if err != nil {
		return nil, err
	}
	return &view{json: je, arrow: ae}, nil
}

// lookup returns the view of a filter; a filter naming no region of the
// table gets an empty table, encoded on the spot.
func (s *Snapshot) lookup(f filter) (*view, error) {
	if v, ok := s.views[f]; ok {
		return v, nil
	}
	return encodeView(s.Table, nil)
}

// Age is how long ago the snapshot was built.
func (s *Snapshot) Age(now time.Time) time.Duration { return max(0, now.Sub(s.BuiltAt)) }

// httpDate formats t for Last-Modified.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
