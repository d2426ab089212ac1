package steer

import (
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Kind is the manifest format.
type Kind int

const (
	// HLS is the HLS Content Steering manifest (draft-pantos-hls-rfc8216bis,
	// "Content Steering"): {"VERSION":1,"TTL":s,"RELOAD-URI":u,"PATHWAY-PRIORITY":[…]}.
	HLS Kind = iota
	// DASH is the DASH-IF Content Steering response: the same members with
	// SERVICE-LOCATION-PRIORITY, whose entries are BaseURL@serviceLocation
	// values.
	DASH
)

func (k Kind) String() string {
	if k == DASH {
		return "dash"
	}
	return "hls"
}

// Per kind: the manifest's head up to TTL, the RELOAD-URI's path (relative
// to the manifest's own URI, /steer/hls or /steer/dash: resolved against it,
// so it works wherever the routes are mounted) and the priority member.
var kinds = [2]struct{ reload, priority string }{
	HLS:  {reload: `hls?session=`, priority: `","PATHWAY-PRIORITY":[`},
	DASH: {reload: `dash?session=`, priority: `","SERVICE-LOCATION-PRIORITY":[`},
}

// Request is what one manifest depends on besides the table.
type Request struct {
	Kind Kind
	// TTL is the manifest's TTL in seconds (the player reloads after it).
	TTL int
	// Session is the player session's id: its order is drawn from it. It
	// must be a valid session (validSession).
	Session string
	// Province and ISP are the client's region, "" when unknown.
	Province, ISP string
	// Pin writes Province and ISP into RELOAD-URI even when the table lacks
	// the region (they came from query parameters, which the next request
	// must repeat). A region of the table is always pinned: the session keeps
	// its region, and so its order, if its address changes network.
	Pin bool
}

// AppendManifest appends r's manifest (JSON, one line, no newline) to dst
// and says which order it used. It allocates nothing for up to maxStack
// pathways; every string it writes was validated or escaped before (ids by
// Compile, the table's region names by Compile, session and pinned names by
// the handler), so none needs JSON escaping.
func (s *Snapshot) AppendManifest(dst []byte, r *Request) ([]byte, Level) {
	o, lvl := s.find(r.Province, r.ISP)
	k := &kinds[r.Kind]
	dst = append(dst, `{"VERSION":1,"TTL":`...)
	dst = strconv.AppendInt(dst, int64(r.TTL), 10)
	dst = append(dst, `,"RELOAD-URI":"`...)
	dst = append(dst, k.reload...)
	dst = append(dst, r.Session...)
	switch {
	case lvl == LevelRegion:
		dst = append(dst, o.query...)
	case r.Pin && r.Province != "" && r.ISP != "":
		dst = append(dst, "&province="...)
		dst = append(dst, r.Province...)
		dst = append(dst, "&isp="...)
		dst = append(dst, r.ISP...)
	}
	dst = append(dst, k.priority...)
	var idx [maxStack]int
	for i, pi := range o.draw(idx[:0], xxhash.Sum64String(r.Session)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, s.paths[pi].id...)
		dst = append(dst, '"')
	}
	return append(dst, "]}"...), lvl
}

// validSession accepts 1–128 URL-unreserved characters (RFC 3986:
// letters, digits, '-', '.', '_', '~'): such an id goes into RELOAD-URI and
// JSON as it is. A player's session id (CMCD sid, a UUID) fits.
func validSession(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !idChar(c) && c != '~' {
			return false
		}
	}
	return true
}

// validRegionName accepts what a region name from a query parameter may
// be: 1–64 characters of [a-z0-9._-] (the IP table's canonical names,
// docs/IPDB.md "Names", are lowercase pinyin and ASCII).
func validRegionName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
