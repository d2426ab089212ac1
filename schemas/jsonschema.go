package schemas

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
)

// JSON Schema (draft 2020-12) documents generated from propSpecs and
// typeSpecs. Each type's document is self-contained; each source's document
// accepts any event of that source through a oneOf over its types, with the
// type documents inlined under $defs so that it is self-contained too.
//
// Where the schema cannot say what ParseLine checks, ParseLine is stricter:
// duplicate member names, RFC 3339 times before 1973-03-03T09:46:40Z,
// numbers beyond float64 range and lone surrogates (which JSON Schema
// validators decode to U+FFFD). Everything else, plausible ranges included,
// agrees (tested).

// SchemaIDPrefix prefixes every document's $id: the name follows it.
const SchemaIDPrefix = "urn:qoscope:schema:v1:"

const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// SchemaNames lists the documents SchemaJSON serves, sorted: one per event
// type (named as the type, e.g. "heartbeat") and one per source ("client",
// "cdn", "origin").
func SchemaNames() []string {
	names := make([]string, 0, len(schemaDocs()))
	for n := range schemaDocs() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SchemaJSON returns the named JSON Schema document (see SchemaNames),
// indented, or false when there is no such document. The slice is shared:
// do not modify it.
func SchemaJSON(name string) ([]byte, bool) {
	b, ok := schemaDocs()[name]
	return b, ok
}

var schemaDocs = sync.OnceValue(func() map[string][]byte {
	docs := make(map[string][]byte)
	for _, t := range Types() {
		docs[t.String()] = marshalDoc(typeDoc(t))
	}
	for src := SourceClient; src <= SourceOrigin; src++ {
		docs[src.String()] = marshalDoc(sourceDoc(src))
	}
	return docs
})

// obj is a JSON object that keeps its member order.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalDoc(o obj) []byte {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		panic("schemas: cannot marshal JSON Schema: " + err.Error()) // static data: a bug
	}
	return append(b, '\n')
}

// valueSchema is what p's value must look like; null is accepted too and
// means "absent" (required members narrow the type, see required).
func valueSchema(p Prop) obj {
	s := &propSpecs[p]
	o := obj{{"description", s.doc}}
	switch s.kind {
	case kVersion:
		o = append(o, kv{"const", Version})
	case kType:
		names := make([]string, 0, numTypes-1)
		for _, t := range Types() {
			names = append(names, t.String())
		}
		o = append(o, kv{"enum", names})
	case kTime:
		o = append(o, kv{"anyOf", []obj{
			{{"type", "string"}, {"format", "date-time"}},
			{{"type", "integer"}, {"minimum", MinTS}, {"maximum", MaxTS}},
			{{"type", "null"}},
		}})
	case kString:
		o = append(o, kv{"type", []string{"string", "null"}}, kv{"maxLength", s.maxLen})
	case kEnum:
		o = append(o, kv{"enum", enumWithNull(s.enum)})
	case kIP:
		// Formats only judge strings, so null passes them.
		o = append(o, kv{"type", []string{"string", "null"}}, kv{"maxLength", s.maxLen}, kv{"anyOf", []obj{
			{{"const", ""}}, {{"format", "ipv4"}}, {{"format", "ipv6"}},
		}})
	case kInt:
		o = append(o, kv{"type", []string{"integer", "null"}}, kv{"minimum", s.min}, kv{"maximum", s.max})
	case kFloat:
		o = append(o, kv{"type", []string{"number", "null"}}, kv{"minimum", 0}, kv{"maximum", s.fmax})
	case kBool:
		o = append(o, kv{"type", []string{"boolean", "null"}})
	case kID:
		// Formats and patterns only judge strings, so null passes them.
		o = append(o, kv{"type", []string{"string", "null"}}, kv{"pattern", "^[0-9a-fA-F]{16}$"}, kv{"not", obj{{"const", "0000000000000000"}}})
	}
	return o
}

func enumWithNull(values []string) []any {
	out := make([]any, 0, len(values)+1)
	for _, v := range values {
		out = append(out, v)
	}
	return append(out, nil)
}

func ref(p Prop) obj { return obj{{"$ref", "#/$defs/" + p.String()}} }

// required narrows p's value schema to non-null (and non-empty strings).
func required(p Prop) obj {
	o := ref(p)
	switch propSpecs[p].kind {
	case kString:
		o = append(o, kv{"type", "string"}, kv{"minLength", 1})
	case kEnum, kIP:
		o = append(o, kv{"type", "string"})
	case kInt:
		o = append(o, kv{"type", "integer"})
	case kFloat:
		o = append(o, kv{"type", "number"})
	case kBool:
		o = append(o, kv{"type", "boolean"})
	case kTime:
		o = append(o, kv{"type", []string{"string", "integer"}})
	}
	return o
}

// typeSchema is the schema of one type, without $schema, $id or $defs.
func typeSchema(t Type) obj {
	m := typeMasks[t]
	spec := &typeSpecs[t]
	var req []string
	props := obj{}
	// The type's own members first, in table order, then the other known
	// members, which are validated wherever they appear.
	for pass := 0; pass < 2; pass++ {
		for p := Prop(0); p < numProps; p++ {
			used := m.used.Has(p)
			if used != (pass == 0) {
				continue
			}
			var ps obj
			switch {
			case p == PropType:
				ps = obj{{"const", t.String()}}
				req = append(req, p.String())
			case m.required.Has(p):
				ps = required(p)
				req = append(req, p.String())
			default:
				ps = ref(p)
				if !used {
					ps = append(ps, kv{"$comment", "not used by " + t.String() + "; validated and kept when present"})
				}
			}
			props = append(props, kv{p.String(), ps})
		}
	}
	o := obj{
		{"title", t.String()},
		{"description", spec.doc},
		{"type", "object"},
		{"required", req},
		{"properties", props},
	}
	if len(spec.ifOK) > 0 {
		var names []string
		then := obj{}
		for _, p := range spec.ifOK {
			names = append(names, p.String())
			then = append(then, kv{p.String(), required(p)})
		}
		o = append(o, kv{"if", obj{
			{"properties", obj{{"ok", obj{{"const", true}}}}},
			{"required", []string{"ok"}},
		}}, kv{"then", obj{
			{"required", names},
			{"properties", then},
		}})
	}
	return append(o, kv{"additionalProperties", true})
}

func propDefs() obj {
	defs := obj{}
	for p := Prop(0); p < numProps; p++ {
		defs = append(defs, kv{p.String(), valueSchema(p)})
	}
	return defs
}

func typeDoc(t Type) obj {
	o := obj{
		{"$schema", draft2020},
		{"$id", SchemaIDPrefix + t.String()},
	}
	o = append(o, typeSchema(t)...)
	o[2].v = "qoscope " + t.String() + " event, v1" // title
	return append(o, kv{"$defs", propDefs()})
}

func sourceDoc(src Source) obj {
	var one []obj
	defs := propDefs()
	for _, t := range Types() {
		if t.Source() != src {
			continue
		}
		one = append(one, obj{{"$ref", "#/$defs/" + t.String()}})
		defs = append(defs, kv{t.String(), typeSchema(t)})
	}
	return obj{
		{"$schema", draft2020},
		{"$id", SchemaIDPrefix + src.String()},
		{"title", "qoscope " + src.String() + " event, v1"},
		{"description", "Any " + src.String() + " event; \"type\" selects the schema in $defs."},
		{"type", "object"},
		{"required", []string{"v", "type", "ts"}},
		{"oneOf", one},
		{"$defs", defs},
	}
}
