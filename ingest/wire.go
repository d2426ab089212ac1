package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/ingest/cmcd"
	"github.com/qoscope/qoscope/internal/ipdb"
	"github.com/qoscope/qoscope/schemas"
)

// This file connects the pure parser to the packages owned by others: the
// schema codec, the CMCD mapper and the IP table.

// DefaultCodec is the schemas package's codec.
func DefaultCodec() Codec {
	return Codec{ParseLine: schemas.ParseLine, AppendJSON: schemas.AppendJSON, Split: schemas.Split}
}

// schemaFieldError is the per-line rejection type of ParseLine.
type schemaFieldError = schemas.FieldError

func schemaNames() []string                 { return schemas.SchemaNames() }
func schemaJSON(name string) ([]byte, bool) { return schemas.SchemaJSON(name) }

// Location is an IP lookup result (the ipdb package's type).
type Location = ipdb.Location

// GeoFromTable adapts an IP table to Geo.
func GeoFromTable(t *ipdb.Table) Geo { return t.LookupMany }

// LoadGeo opens the IP table at path, or the embedded synthetic demo table
// when path is empty. close releases a memory-mapped table file; call it
// only after the last lookup.
func LoadGeo(path string) (geo Geo, close func() error, err error) {
	if path == "" {
		t, err := ipdb.Default()
		if err != nil {
			return nil, nil, fmt.Errorf("cannot load the embedded ip table: %w", err)
		}
		// Shared by the process: never closed.
		return GeoFromTable(t), func() error { return nil }, nil
	}
	t, err := ipdb.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("ipdb: cannot open %s: %w", path, err)
	}
	return GeoFromTable(t), t.Close, nil
}

// newStdLogger routes net/http's internal errors (TLS handshakes, broken
// connections) to zerolog.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(l.With().Str("source", "net/http").Logger(), "", 0)
}

// DefaultCMCD maps CMCD requests with the ingest/cmcd package: a POST body
// holds one payload per line (CMCD v2 event mode, application/cmcd); else
// the CMCD query parameter; else the CMCD-* headers.
func DefaultCMCD() CMCDFunc { return cmcdReports }

func cmcdReports(r *http.Request, body []byte, recv time.Time, ip string) ([]CMCDReport, error) {
	one := func(raw []byte, d cmcd.Data, err error) []CMCDReport {
		rep := CMCDReport{Line: 1, Raw: raw}
		if err == nil {
			rep.Events, err = cmcd.ToEvents(d, recv, ip)
		}
		rep.Err = cmcdFieldError(err)
		return []CMCDReport{rep}
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var out []CMCDReport
		for n := 1; len(body) > 0; n++ {
			line := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				line, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			if line = bytes.TrimSpace(line); len(line) == 0 {
				continue
			}
			d, err := cmcd.ParseValue(string(line))
			rep := one(line, d, err)[0]
			rep.Line = n
			out = append(out, rep)
		}
		return out, nil
	}
	if r.URL.Query().Has("CMCD") {
		d, err := cmcd.Parse(r.URL.RawQuery)
		return one([]byte(r.URL.RawQuery), d, err), nil
	}
	var raw []byte
	for _, h := range cmcd.HeaderNames {
		for _, v := range r.Header.Values(h) {
			raw = append(raw, h...)
			raw = append(raw, ": "...)
			raw = append(raw, v...)
			raw = append(raw, '\n')
		}
	}
	if raw == nil {
		return nil, &RequestError{Status: http.StatusBadRequest,
			Msg: "no CMCD data: send the CMCD query parameter, CMCD-Object/-Request/-Session/-Status headers, or a POST body with one payload per line"}
	}
	d, err := cmcd.ParseHeaders(r.Header)
	return one(raw, d, err), nil
}

// cmcdFieldError turns a cmcd.Error into the FieldError of a rejected line,
// the CMCD key being the field.
func cmcdFieldError(err error) error {
	if err == nil {
		return nil
	}
	var ce *cmcd.Error
	if errors.As(err, &ce) {
		return &schemas.FieldError{Field: ce.Key, Reason: ce.Reason}
	}
	return err
}
