package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A random generator of valid event lines and the Events they must decode
// to. It encodes with encoding/json and sets the expectation by reflection
// over Event's json tags, so it does not share code with ParseLine.

var jsonField = func() map[string][]int {
	m := map[string][]int{}
	rt := reflect.TypeFor[Event]()
	for i := range rt.NumField() {
		if tag := rt.Field(i).Tag.Get("json"); tag != "" && tag != "-" {
			m[tag] = rt.Field(i).Index
		}
	}
	return m
}()

func setByTag(e *Event, name string, v any) {
	f := reflect.ValueOf(e).Elem().FieldByIndex(jsonField[name])
	f.Set(reflect.ValueOf(v).Convert(f.Type()))
}

var genRunes = []rune("aZ09 _-./:\"\\\n\t\x00\x1féü中文😀\u2028<>&")

func genString(r *rand.Rand, minLen int) string {
	n := minLen + r.IntN(12)
	var b strings.Builder
	for range n {
		b.WriteRune(genRunes[r.IntN(len(genRunes))])
	}
	return b.String()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// genValue returns a valid wire value for p (as JSON text) and the Go value
// the Event field must hold.
func genValue(r *rand.Rand, p Prop, nonEmpty bool) (string, any) {
	s := &propSpecs[p]
	switch s.kind {
	case kString:
		v := genString(r, map[bool]int{true: 1, false: 0}[nonEmpty])
		return mustJSON(v), v
	case kEnum:
		v := s.enum[r.IntN(len(s.enum))]
		return mustJSON(v), v
	case kIP:
		var v string
		switch r.IntN(3) {
		case 0:
			v = netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}).String()
		case 1:
			var a [16]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			v = netip.AddrFrom16(a).String()
		default:
			if nonEmpty {
				v = "10.0.0.1"
			}
		}
		return mustJSON(v), v
	case kInt:
		var n int64
		switch r.IntN(3) {
		case 0:
			n = s.min + r.Int64N(min(s.max-s.min+1, 5000))
		case 1:
			n = s.min + r.Int64N(s.max-s.min+1)
		default:
			n = s.max
		}
		text := strconv.FormatInt(n, 10)
		if n < 1<<40 && r.IntN(4) == 0 {
			text = strconv.FormatFloat(float64(n), 'e', -1, 64) // an integer in exponent form
		}
		if s.intp != nil {
			return text, int(n)
		}
		return text, n
	case kFloat:
		var f float64
		switch r.IntN(4) {
		case 0:
			f = float64(r.IntN(10000)) / 4
		case 1:
			f = r.Float64() * math.Pow(10, float64(r.IntN(40)-20))
		case 2:
			f = s.fmax
		default:
			f = 0
		}
		if f > s.fmax {
			f = r.Float64() * s.fmax
		}
		return mustJSON(f), f
	case kBool:
		b := r.IntN(2) == 0
		return mustJSON(b), b
	case kTime:
		ms := MinTS + r.Int64N(MaxTS-MinTS-86_400_000)
		if r.IntN(2) == 0 {
			return strconv.FormatInt(ms, 10), ms
		}
		off := (r.IntN(2*1439+1) - 1439) * 60 // ±23:59
		tm := time.UnixMilli(ms).Add(time.Duration(r.Int64N(1e6))).In(time.FixedZone("", off))
		return mustJSON(tm.Format(time.RFC3339Nano)), ms
	case kID:
		id := r.Uint64() | 1
		text := fmt.Sprintf("%016x", id)
		if r.IntN(4) == 0 {
			text = strings.ToUpper(text) // accepted in either case
		}
		return mustJSON(text), id
	}
	panic("no generator for " + p.String())
}

type genMember struct{ key, val string }

// genLine returns a valid line of a random type and the Event it encodes.
func genLine(r *rand.Rand) ([]byte, Event) {
	types := Types()
	t := types[r.IntN(len(types))]
	want := Event{V: 1, Type: t, Present: setOf(PropV, PropType)}
	members := []genMember{{"v", "1"}, {"type", mustJSON(t.String())}}
	if r.IntN(8) == 0 {
		members[0].val = "1.0"
	}
	ok := false
	m := typeMasks[t]
	for p := PropTS; p < numProps; p++ {
		used := m.used.Has(p)
		req := m.required.Has(p) || (ok && m.ifOK.Has(p))
		switch {
		case req:
		case used && r.IntN(2) == 0:
		case !used && r.IntN(20) == 0: // a member of another type
		default:
			continue
		}
		if !req && r.IntN(8) == 0 {
			members = append(members, genMember{p.String(), "null"})
			continue
		}
		text, v := genValue(r, p, req)
		members = append(members, genMember{p.String(), text})
		setByTag(&want, p.String(), v)
		want.Present = want.Present.With(p)
		if p == PropOK {
			ok = v.(bool)
		}
	}
	var unknown []genMember
	for i := range r.IntN(4) {
		var v any
		switch r.IntN(4) {
		case 0:
			v = genString(r, 0)
		case 1:
			v = []any{1.5, "x", nil, map[string]any{"k": []any{}}}
		case 2:
			v = map[string]any{"nested": map[string]any{"ts": "not checked"}}
		default:
			v = r.Float64()
		}
		unknown = append(unknown, genMember{mustJSON("x_" + strconv.Itoa(i) + genString(r, 0)), mustJSON(v)})
	}
	// Shuffle known members; unknown ones keep their relative order, which
	// is the order of Extra.
	r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	var extra []string
	for _, u := range unknown {
		at := r.IntN(len(members) + 1)
		members = append(members[:at], append([]genMember{{key: "\x00" + u.key, val: u.val}}, members[at:]...)...)
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, mb := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		if k, ok := strings.CutPrefix(mb.key, "\x00"); ok {
			b.WriteString(k + ":" + mb.val)
			extra = append(extra, k+":"+mb.val)
		} else {
			b.WriteString(mustJSON(mb.key) + ":" + mb.val)
		}
	}
	b.WriteByte('}')
	if len(extra) > 0 {
		want.Extra = []byte(strings.Join(extra, ","))
	}
	return []byte(b.String()), want
}

func sameEvent(a, b Event) bool {
	if len(a.Extra) == 0 && len(b.Extra) == 0 {
		a.Extra, b.Extra = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestGeneratorCoversEveryMember(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var seen PropSet
	for range 2000 {
		_, e := genLine(r)
		seen |= e.Present
	}
	for p := Prop(0); p < numProps; p++ {
		if !seen.Has(p) {
			t.Errorf("generator never produced %s", p)
		}
	}
}
