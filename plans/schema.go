package plans

import (
	"bytes"
	"encoding/json"
)

// SchemaID is the $id of the JSON Schema of plan files.
const SchemaID = "https://sluice.dev/schemas/plan.json"

// JSONSchema is a JSON Schema (draft 2020-12) of the plan format, with a
// description for every key, enums, defaults, and additionalProperties
// false, so editors can complete and check plans. It is generated from the
// same specs as Parse's checks. Where templates are allowed, a scalar of
// another type may also be a string holding {{ }}.
func JSONSchema() []byte {
	root := jobj{
		{"$schema", "https://json-schema.org/draft/2020-12/schema"},
		{"$id", SchemaID},
		{"title", "Sluice plan"},
	}
	root = append(root, schemaOf(planSpec(), false)...)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		panic("plans: JSONSchema: " + err.Error()) // a bug in the specs, caught by the tests
	}
	return b.Bytes()
}

// jobj is a JSON object that keeps its keys in order.
type jobj []kv

type kv struct {
	k string
	v any
}

func (o jobj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var templateString = jobj{{"type", "string"}, {"pattern", `\{\{`}, {"description", "A template, typed once rendered."}}

func schemaOf(s *spec, templ bool) jobj {
	templ = templ || s.templates
	var o jobj
	if s.doc != "" {
		o = append(o, kv{"description", s.doc})
	}
	if s.def != nil {
		o = append(o, kv{"default", s.def})
	}
	// orTemplate lets a templated scalar be given as a template string.
	orTemplate := func(t jobj) jobj {
		if !templ {
			return append(o, t...)
		}
		return append(o, kv{"anyOf", []any{t, templateString}})
	}
	switch s.kind {
	case kString:
		t := jobj{{"type", "string"}}
		if s.enum != nil {
			t = append(t, kv{"enum", s.enum})
		}
		if s.pattern != nil {
			t = append(t, kv{"pattern", s.pattern.String()})
		}
		if s.enum == nil && s.pattern == nil {
			return append(o, t...)
		}
		return orTemplate(t)
	case kInt:
		t := jobj{{"type", "integer"}}
		if s.min != nil && *s.min > -1<<63 {
			t = append(t, kv{"minimum", *s.min})
		}
		return orTemplate(t)
	case kNumber:
		return orTemplate(jobj{{"type", "number"}})
	case kBool:
		return orTemplate(jobj{{"type", "boolean"}})
	case kScalar:
		return append(o, kv{"type", []string{"string", "number", "boolean"}})
	case kList:
		typ := any("array")
		if s.min == nil || *s.min == 0 {
			typ = []string{"array", "null"}
		}
		o = append(o, kv{"type", typ}, kv{"items", schemaOf(s.items, templ)})
		if s.min != nil && *s.min > 0 {
			o = append(o, kv{"minItems", *s.min})
		}
	case kObject:
		props := jobj{}
		var required []string
		for _, f := range s.fields {
			props = append(props, kv{f.name, schemaOf(f.spec, templ)})
			if f.required {
				required = append(required, f.name)
			}
		}
		o = append(o, kv{"type", "object"}, kv{"properties", props})
		if required != nil {
			o = append(o, kv{"required", required})
		}
		o = append(o, kv{"additionalProperties", false})
		if s.oneKey != nil {
			var alts []any
			for _, k := range s.oneKey {
				alts = append(alts, jobj{{"required", []string{k}}})
			}
			o = append(o, kv{"oneOf", alts})
		}
	case kMap:
		typ := any("object")
		if s.min == nil || *s.min == 0 {
			typ = []string{"object", "null"}
		}
		o = append(o, kv{"type", typ})
		if s.keys != nil && s.keys.pattern != nil {
			o = append(o, kv{"propertyNames", jobj{{"pattern", s.keys.pattern.String()}}})
		}
		o = append(o, kv{"additionalProperties", schemaOf(s.values, templ)})
		if s.min != nil && *s.min > 0 {
			o = append(o, kv{"minProperties", *s.min})
		}
	case kOneOf:
		var alts []any
		for _, a := range s.alts {
			alts = append(alts, schemaOf(a, templ))
		}
		o = append(o, kv{"oneOf", alts})
	}
	return o
}
