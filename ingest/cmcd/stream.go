package cmcd

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Stream sources: where StreamSource finds a payload's stream_id.
const (
	// StreamFromCID is the CMCD cid key. Players send it only when the
	// application configures a content id.
	StreamFromCID = "cid"
	// StreamFromQuery is a query parameter of the collector URL (e.g.
	// /v1/cmcd?stream=room-1): the event-mode target URL the application
	// gives the player, or a log shipper's replay URL.
	StreamFromQuery = "query"
	// StreamFromPath is the requested object's path matched against a
	// pattern: the v2 url key, else each nor entry.
	StreamFromPath = "path"
	// StreamFromUnknown is the literal stream_id "unknown": nothing is
	// rejected for want of a stream, and what has no stream shows as one.
	StreamFromUnknown = "unknown"
)

// UnknownStream is the stream_id StreamFromUnknown gives.
const UnknownStream = "unknown"

// StreamSource picks a payload's stream_id from an ordered list of
// sources; the first that yields a non-empty value wins. Build it with
// NewStreamSource.
type StreamSource struct {
	from  []string
	param string
	path  *regexp.Regexp
	group int
}

// StreamConfigError is a StreamSource setting NewStreamSource refuses:
// Setting is "from", "param" or "path_pattern".
type StreamConfigError struct {
	Setting, Reason string
}

func (e *StreamConfigError) Error() string { return e.Setting + ": " + e.Reason }

func configErr(setting, format string, args ...any) error {
	return &StreamConfigError{Setting: setting, Reason: fmt.Sprintf(format, args...)}
}

// NewStreamSource validates the sources (each of cid, query, path,
// unknown, at most once, unknown last), the query parameter name (needed
// for query) and the path pattern (needed for path: a regular expression
// with a group named "stream", or exactly one group).
func NewStreamSource(from []string, param, pathPattern string) (*StreamSource, error) {
	s := &StreamSource{param: param}
	if len(from) == 0 {
		return nil, configErr("from", "want at least one of cid, query, path, unknown")
	}
	seen := map[string]bool{}
	for i, f := range from {
		switch f {
		case StreamFromCID, StreamFromQuery, StreamFromPath, StreamFromUnknown:
		default:
			return nil, configErr("from", "%q is not one of cid, query, path, unknown", f)
		}
		if seen[f] {
			return nil, configErr("from", "%q is listed twice", f)
		}
		seen[f] = true
		if f == StreamFromUnknown && i != len(from)-1 {
			return nil, configErr("from", "unknown must come last: it always yields, so %q after it would never be tried", from[i+1])
		}
	}
	s.from = from
	if seen[StreamFromQuery] {
		if param == "" || param == "CMCD" {
			return nil, configErr("param", "the query source needs a parameter name other than CMCD")
		}
	}
	if seen[StreamFromPath] {
		if pathPattern == "" {
			return nil, configErr("path_pattern", "the path source needs a pattern")
		}
		re, err := regexp.Compile(pathPattern)
		if err != nil {
			return nil, configErr("path_pattern", "%v", err)
		}
		s.path, s.group = re, re.SubexpIndex("stream")
		if s.group < 0 {
			if re.NumSubexp() != 1 {
				return nil, configErr("path_pattern", "%q needs a group named stream, (?P<stream>...), or exactly one group", pathPattern)
			}
			s.group = 1
		}
	}
	return s, nil
}

// Stream returns the stream_id of payload d sent to a collector URL whose
// query is query, and the source it came from. The error names the sources
// tried.
func (s *StreamSource) Stream(d *Data, query url.Values) (stream, source string, err error) {
	for _, f := range s.from {
		switch f {
		case StreamFromCID:
			stream = d.ContentID
		case StreamFromQuery:
			stream = query.Get(s.param)
		case StreamFromPath:
			stream = s.fromPath(d)
		case StreamFromUnknown:
			stream = UnknownStream
		}
		if stream != "" {
			return stream, f, nil
		}
	}
	return "", "", &Error{Key: "cid", Reason: "required: it is the stream_id (none from " + s.describe() + ")"}
}

func (s *StreamSource) fromPath(d *Data) string {
	try := func(ref string, encoded bool) string {
		if encoded {
			if dec, err := url.PathUnescape(ref); err == nil {
				ref = dec
			}
		}
		if u, err := url.Parse(ref); err == nil && u.Path != "" {
			ref = u.Path
		}
		if m := s.path.FindStringSubmatch(ref); m != nil {
			return m[s.group]
		}
		return ""
	}
	if d.URL != "" {
		if v := try(d.URL, false); v != "" {
			return v
		}
	}
	for _, n := range d.NextObjects {
		// v1 nor is URL-encoded once more (README.md).
		if v := try(n, d.Version == 1); v != "" {
			return v
		}
	}
	return ""
}

func (s *StreamSource) describe() string {
	parts := make([]string, 0, len(s.from))
	for _, f := range s.from {
		switch f {
		case StreamFromQuery:
			parts = append(parts, "query parameter "+strconv.Quote(s.param))
		case StreamFromPath:
			parts = append(parts, "the url/nor path")
		default:
			parts = append(parts, f)
		}
	}
	return strings.Join(parts, ", ")
}
