package structured

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Errors of the package; test them with errors.Is.
var (
	// ErrSchema: a JSON schema is malformed or uses what the automaton
	// does not support (the message names the key path and keyword).
	ErrSchema = errors.New("structured: unsupported or invalid JSON schema")
)

// kind is what a node matches.
type kind uint8

const (
	kAny kind = iota // any JSON value
	kObject
	kArray
	kString
	kNumber
	kInteger
	kBool
	kNull
	kLiteral // one of lits (enum, const)
)

// node is one schema node compiled for the automaton.
type node struct {
	kind  kind
	props []prop // kObject: in the schema's order; nil: any keys, values of kAny
	free  bool   // kObject without properties: any keys
	items *node  // kArray
	// bounds: string length in characters, array items.
	minLen, maxLen int
	lits           []string // kLiteral: compact JSON texts
}

type prop struct {
	key      string // JSON-encoded without its quotes
	val      *node
	required bool
}

var (
	anyNode  = &node{kind: kAny, maxLen: math.MaxInt}
	boolLits = []string{"true", "false"}
	nullLits = []string{"null"}
)

// Schema compiles a JSON schema: type (object, array, string, number,
// integer, boolean, null), properties, required, items, minItems,
// maxItems, minLength, maxLength, enum and const. Objects are generated
// with their properties in sorted order, the optional ones
// possibly left out, and no others. anyOf, oneOf, allOf, $ref, pattern and
// format are not supported: the error names them.
func Schema(raw []byte) (*Grammar, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	n, err := compile(v, "schema")
	if err != nil {
		return nil, err
	}
	return &Grammar{root: n}, nil
}

// Object is the grammar of response_format json_object: any JSON object.
func Object() *Grammar {
	return &Grammar{root: &node{kind: kObject, free: true, maxLen: math.MaxInt}}
}

// Grammar is a compiled JSON grammar; it is immutable and may be shared.
type Grammar struct{ root *node }

func compile(v any, path string) (*node, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrSchema, path}, args...)...)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if b, ok := v.(bool); ok && b {
			return anyNode, nil
		}
		return nil, bad("a schema must be an object")
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf", "not", "$ref", "pattern", "format", "patternProperties", "if"} {
		if _, ok := m[k]; ok {
			return nil, bad("%q is not supported", k)
		}
	}
	if c, ok := m["const"]; ok {
		b, _ := json.Marshal(c)
		return &node{kind: kLiteral, lits: []string{string(b)}}, nil
	}
	if e, ok := m["enum"]; ok {
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			return nil, bad("enum must be a non-empty array")
		}
		n := &node{kind: kLiteral}
		for _, x := range list {
			b, _ := json.Marshal(x)
			n.lits = append(n.lits, string(b))
		}
		return n, nil
	}
	typ, _ := m["type"].(string)
	if t, ok := m["type"]; ok && typ == "" {
		return nil, bad("type must be a string, got %v", t)
	}
	if typ == "" {
		switch {
		case m["properties"] != nil:
			typ = "object"
		case m["items"] != nil:
			typ = "array"
		default:
			return anyNode, nil
		}
	}
	intOf := func(key string, def int) (int, error) {
		x, ok := m[key]
		if !ok {
			return def, nil
		}
		f, ok := x.(float64)
		if !ok || f < 0 || f != math.Trunc(f) {
			return 0, bad("%s must be a non-negative integer, got %v", key, x)
		}
		return int(f), nil
	}
	n := &node{maxLen: math.MaxInt}
	var err error
	if n.minLen, err = intOf(map[bool]string{true: "minItems", false: "minLength"}[typ == "array"], 0); err != nil {
		return nil, err
	}
	if n.maxLen, err = intOf(map[bool]string{true: "maxItems", false: "maxLength"}[typ == "array"], math.MaxInt); err != nil {
		return nil, err
	}
	if n.minLen > n.maxLen {
		return nil, bad("the minimum length (%d) cannot be larger than the maximum (%d)", n.minLen, n.maxLen)
	}
	switch typ {
	case "string":
		n.kind = kString
	case "number":
		n.kind = kNumber
	case "integer":
		n.kind = kInteger
	case "boolean":
		return &node{kind: kLiteral, lits: boolLits}, nil
	case "null":
		return &node{kind: kLiteral, lits: nullLits}, nil
	case "array":
		n.kind = kArray
		n.items = anyNode
		if it, ok := m["items"]; ok {
			if n.items, err = compile(it, path+".items"); err != nil {
				return nil, err
			}
		}
	case "object":
		n.kind = kObject
		props, _ := m["properties"].(map[string]any)
		if m["properties"] != nil && props == nil {
			return nil, bad("properties must be an object")
		}
		if len(props) == 0 {
			n.free = true
			break
		}
		req := map[string]bool{}
		if r, ok := m["required"].([]any); ok {
			for _, x := range r {
				s, _ := x.(string)
				if _, ok := props[s]; !ok {
					return nil, bad("required names %v, which is not in properties", x)
				}
				req[s] = true
			}
		}
		for _, k := range propertyOrder(m, props) {
			val, err := compile(props[k], path+".properties."+k)
			if err != nil {
				return nil, err
			}
			b, _ := json.Marshal(k)
			n.props = append(n.props, prop{key: string(b[1 : len(b)-1]), val: val, required: req[k]})
		}
	default:
		return nil, bad("type %q is not supported", typ)
	}
	return n, nil
}

// propertyOrder is the order objects are generated in: the keys sorted
// (a JSON object's members are unordered, so every order validates).
func propertyOrder(m map[string]any, props map[string]any) []string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	return keys
}
