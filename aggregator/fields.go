package aggregator

import (
	"unsafe"

	"github.com/qoscope/qoscope/schemas"
)

// fieldOffset returns the offset in schemas.Event of the string field f, so
// the hot path reads dimensions with one load instead of Event.Get's switch
// (nine of them per client event). ok is false for a field this table does
// not know (a field added to the schema later): Plan falls back to Get.
// TestFieldOffsetsMatchGet checks the table against Event.Get.
func fieldOffset(f schemas.Field) (off uintptr, ok bool) {
	var e schemas.Event
	switch f {
	case schemas.FieldUserID:
		return unsafe.Offsetof(e.UserID), true
	case schemas.FieldSessionID:
		return unsafe.Offsetof(e.SessionID), true
	case schemas.FieldStreamID:
		return unsafe.Offsetof(e.StreamID), true
	case schemas.FieldVendor:
		return unsafe.Offsetof(e.Vendor), true
	case schemas.FieldNode:
		return unsafe.Offsetof(e.Node), true
	case schemas.FieldIP:
		return unsafe.Offsetof(e.IP), true
	case schemas.FieldCountry:
		return unsafe.Offsetof(e.Country), true
	case schemas.FieldProvince:
		return unsafe.Offsetof(e.Province), true
	case schemas.FieldCity:
		return unsafe.Offsetof(e.City), true
	case schemas.FieldISP:
		return unsafe.Offsetof(e.ISP), true
	case schemas.FieldPlatform:
		return unsafe.Offsetof(e.Platform), true
	case schemas.FieldClientVersion:
		return unsafe.Offsetof(e.ClientVersion), true
	case schemas.FieldQuality:
		return unsafe.Offsetof(e.Quality), true
	case schemas.FieldRole:
		return unsafe.Offsetof(e.Role), true
	case schemas.FieldMedia:
		return unsafe.Offsetof(e.Media), true
	case schemas.FieldLine:
		return unsafe.Offsetof(e.Line), true
	case schemas.FieldEgressISP:
		return unsafe.Offsetof(e.EgressISP), true
	case schemas.FieldErr:
		return unsafe.Offsetof(e.Error), true
	case schemas.FieldReason:
		return unsafe.Offsetof(e.Reason), true
	}
	return 0, false
}

// getter reads one dimension of an event.
type getter struct {
	off   uintptr
	field schemas.Field
	fast  bool
}

func newGetter(f schemas.Field) getter {
	off, ok := fieldOffset(f)
	return getter{off: off, field: f, fast: ok}
}

// get returns the value, "unknown" when empty.
func (g getter) get(e *schemas.Event) string {
	var s string
	if g.fast {
		s = *(*string)(unsafe.Add(unsafe.Pointer(e), g.off))
	} else {
		s = e.Get(g.field)
	}
	if s == "" {
		return unknown
	}
	return s
}
