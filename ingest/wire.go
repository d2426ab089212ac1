package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

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

// DefaultCMCD maps CMCD requests with the ingest/cmcd package and the
// default cmcd settings (DefaultCMCDConfig); NewCMCD takes others.
func DefaultCMCD() CMCDFunc {
	f, err := NewCMCD(DefaultCMCDConfig())
	if err != nil {
		// The defaults are valid (TestDefaultConfigIsValid); keep the
		// failure visible per request rather than panicking.
		return func(*http.Request, []byte, time.Time, string) ([]CMCDReport, error) { return nil, err }
	}
	return f
}

// NewCMCD maps CMCD requests with the ingest/cmcd package, taking each
// payload's stream_id as cfg says. A POST body is CTA-5004 JSON mode when
// it is declared application/json (or +json) or starts with '{' or '['
// (no CMCD line can), else one payload per line (v2 event mode,
// text/cmcd or application/cmcd); without a body, the CMCD-* headers,
// else the CMCD query parameter (CTA-5004 section 6: headers win over the
// query). A request that mixes modes is reported as a violation on its
// first payload.
func NewCMCD(cfg CMCDConfig) (CMCDFunc, error) {
	streams, err := cfg.streams()
	if err != nil {
		return nil, fmt.Errorf("invalid cmcd config: %w", err)
	}
	return func(r *http.Request, body []byte, recv time.Time, ip string) ([]CMCDReport, error) {
		return cmcdReports(streams, r, body, recv, ip)
	}, nil
}

func cmcdReports(streams *cmcd.StreamSource, r *http.Request, body []byte, recv time.Time, ip string) ([]CMCDReport, error) {
	query := r.URL.Query()
	report := func(line int, raw []byte, d cmcd.Data, err error) CMCDReport {
		rep := CMCDReport{Line: line, Raw: raw}
		if err == nil {
			rep.Events, err = streams.ToEvents(d, query, recv, ip)
			rep.Violations = violationRules(d.Violations)
		}
		rep.Err = cmcdFieldError(err)
		return rep
	}
	hasHeaders := false
	for _, h := range cmcd.HeaderNames {
		hasHeaders = hasHeaders || len(r.Header.Values(h)) > 0
	}
	hasQuery := query.Has("CMCD")
	mixed := func(out []CMCDReport, modes int) []CMCDReport {
		if modes > 1 && len(out) > 0 {
			out[0].Violations = append(out[0].Violations, string(cmcd.RuleMixedTransmission))
		}
		return out
	}
	modes := b2i(hasHeaders) + b2i(hasQuery)

	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 {
		if isJSONBody(r.Header.Get("Content-Type"), trimmed) {
			objs, err := cmcd.SplitJSON(trimmed)
			if err != nil {
				return nil, &RequestError{Status: http.StatusBadRequest, Msg: err.Error()}
			}
			out := make([]CMCDReport, 0, len(objs))
			for i, o := range objs {
				d, err := cmcd.ParseJSON(o)
				out = append(out, report(i+1, o, d, err))
			}
			return mixed(out, modes+1), nil
		}
		var out []CMCDReport
		for n := 1; len(body) > 0; n++ {
			line := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				line, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			// CTA-5004 section 3.3: leading and trailing spaces are ignored.
			if line = bytes.TrimSpace(line); len(line) == 0 {
				continue
			}
			d, err := cmcd.ParseValue(string(line))
			out = append(out, report(n, line, d, err))
		}
		return mixed(out, modes+1), nil
	}
	if hasHeaders {
		var raw []byte
		for _, h := range cmcd.HeaderNames {
			for _, v := range r.Header.Values(h) {
				raw = append(raw, h...)
				raw = append(raw, ": "...)
				raw = append(raw, v...)
				raw = append(raw, '\n')
			}
		}
		d, err := cmcd.ParseHeaders(r.Header)
		return mixed([]CMCDReport{report(1, raw, d, err)}, modes), nil
	}
	if hasQuery {
		d, err := cmcd.Parse(r.URL.RawQuery)
		return []CMCDReport{report(1, []byte(r.URL.RawQuery), d, err)}, nil
	}
	return nil, &RequestError{Status: http.StatusBadRequest,
		Msg: "no CMCD data: send the CMCD query parameter, CMCD-Object/-Request/-Session/-Status headers, or a POST body (one payload per line, or CTA-5004 JSON: an object or an array of objects)"}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// isJSONBody: CTA-5004 v1's JSON mode. A CMCD line starts with a key (a
// lowercase letter or '*'), never with '{' or '[', so sniffing is safe for
// senders that do not declare the type.
func isJSONBody(contentType string, body []byte) bool {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil &&
		(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return true
	}
	return body[0] == '{' || body[0] == '['
}

func violationRules(vs []cmcd.Violation) []string {
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v.Rule)
	}
	return out
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
