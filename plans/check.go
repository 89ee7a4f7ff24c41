package plans

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/internal/didyoumean"
	"gopkg.in/yaml.v3"
)

// decoder checks a plan's YAML tree against planSpec and decodes it. It
// collects every problem as a lint instead of stopping at the first.
type decoder struct {
	p     *Plan
	lints Lints
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.lints = append(d.lints, Lint{File: d.p.File, Pos: nodePos(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errorAt(pos Pos, path, format string, args ...any) {
	d.lints = append(d.lints, Lint{File: d.p.File, Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func nodePos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// deref follows an alias (*name) to its anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// check reports where n does not fit s. templ says templates are allowed
// here. It returns false when it reported anything.
func (d *decoder) check(n *yaml.Node, s *spec, path string, templ bool) bool {
	n = deref(n)
	templ = templ || s.templates
	before := len(d.lints)
	switch s.kind {
	case kOneOf:
		for _, a := range s.alts {
			if fitsKind(n, a) {
				return d.check(n, a, path, templ)
			}
		}
		d.errorf(n, path, "want %s, got %s", want(s), describe(n))
	case kList:
		if isNull(n) && (s.min == nil || *s.min == 0) {
			break
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want %s, got %s", want(s), describe(n))
			break
		}
		if s.min != nil && int64(len(n.Content)) < *s.min {
			d.errorf(n, path, "want at least %d item%s, got %d", *s.min, plural(*s.min), len(n.Content))
		}
		for i, it := range n.Content {
			d.check(it, s.items, index(path, i), templ)
		}
	case kObject:
		d.checkObject(n, s, path, templ)
	case kMap:
		if isNull(n) && (s.min == nil || *s.min == 0) {
			break
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want %s, got %s", want(s), describe(n))
			break
		}
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := deref(n.Content[i]), n.Content[i+1]
			if !d.checkKey(k, path, seen) {
				continue
			}
			if s.keys != nil {
				d.check(k, s.keys, join(path, k.Value), false)
			}
			d.check(v, s.values, join(path, k.Value), templ)
		}
		if s.min != nil && int64(len(seen)) < *s.min {
			d.errorf(n, path, "want at least %d entr%s, got %d", *s.min, map[bool]string{true: "y", false: "ies"}[*s.min == 1], len(seen))
		}
	default:
		d.checkScalar(n, s, path, templ)
	}
	return len(d.lints) == before
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// checkKey reports a mapping key that is not a plain string or that
// repeats an earlier one; it returns whether the entry may be checked.
func (d *decoder) checkKey(k *yaml.Node, path string, seen map[string]*yaml.Node) bool {
	if k.Kind != yaml.ScalarNode {
		d.errorf(k, path, "want a string key, got %s", describe(k))
		return false
	}
	if first, ok := seen[k.Value]; ok {
		d.errorf(k, path, "duplicate key %q (first at line %d)", k.Value, first.Line)
		return false
	}
	seen[k.Value] = k
	return true
}

func (d *decoder) checkObject(n *yaml.Node, s *spec, path string, templ bool) {
	if isNull(n) {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want %s, got %s", want(s), describe(n))
		return
	}
	seen := map[string]*yaml.Node{}
	unknown := false
	var chosen []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if !d.checkKey(k, path, seen) {
			continue
		}
		f := s.field(k.Value)
		if f == nil {
			unknown = true
			sg := didyoumean.Suggest(k.Value, s.fieldNames())
			if sg == "" {
				sg = " (want " + strings.Join(s.fieldNames(), ", ") + ")"
			}
			d.errorf(k, path, "unknown key %q%s", k.Value, sg)
			continue
		}
		if slices.Contains(s.oneKey, k.Value) {
			chosen = append(chosen, k)
		}
		d.check(v, f.spec, join(path, k.Value), templ)
	}
	for _, f := range s.fields {
		if f.required && seen[f.name] == nil {
			d.errorf(n, path, "missing required key %q", f.name)
		}
	}
	switch {
	case len(s.oneKey) == 0:
	case len(chosen) == 0 && !unknown:
		d.errorf(n, path, "want one %s key: %s", s.oneWhat, strings.Join(s.oneKey, ", "))
	case len(chosen) > 1:
		msg := fmt.Sprintf("%s and %s both given; want exactly one %s", chosen[0].Value, chosen[1].Value, s.oneWhat)
		if s.oneWhat == "step kind" {
			msg += " per step (make it two steps)"
		}
		d.errorf(chosen[1], path, "%s", msg)
	}
}

func (d *decoder) checkScalar(n *yaml.Node, s *spec, path string, templ bool) {
	_, rendered := d.p.rendered[n]
	if n.Kind == yaml.ScalarNode && templ && !rendered && n.ShortTag() == "!!str" && isTemplate(n.Value) {
		return // typed once rendered
	}
	if !fitsScalar(n, s, rendered) {
		d.errorf(n, path, "want %s, got %s", want(s), describe(n))
		return
	}
	switch s.kind {
	case kString:
		switch {
		case s.enum != nil && !slices.Contains(s.enum, n.Value):
			d.errorf(n, path, "%q is not one of %s%s", n.Value, strings.Join(s.enum, ", "), didyoumean.Suggest(n.Value, s.enum))
		case s.pattern != nil && !s.pattern.MatchString(n.Value):
			d.errorf(n, path, "%q: %s", n.Value, s.patternDoc)
		}
	case kInt:
		v, _ := intValue(n)
		if s.min != nil && v < *s.min {
			d.errorf(n, path, "%d is less than the minimum, %d", v, *s.min)
		}
	}
}

// fitsKind reports whether the alternative a could describe n, by the YAML
// node's kind: scalars for scalar specs, mappings for objects and maps,
// sequences for lists.
func fitsKind(n *yaml.Node, a *spec) bool {
	switch n.Kind {
	case yaml.MappingNode:
		return a.kind == kObject || a.kind == kMap
	case yaml.SequenceNode:
		return a.kind == kList
	case yaml.ScalarNode:
		switch a.kind {
		case kString, kInt, kNumber, kBool, kScalar:
			return !isNull(n)
		}
	}
	return false
}

func fitsScalar(n *yaml.Node, s *spec, rendered bool) bool {
	if n.Kind != yaml.ScalarNode {
		return false
	}
	tag := n.ShortTag()
	switch s.kind {
	case kString:
		return tag == "!!str" || rendered && tag != "!!null"
	case kInt:
		_, ok := intValue(n)
		return ok && (tag == "!!int" || rendered)
	case kNumber:
		_, ok := floatValue(n)
		return ok && (tag == "!!int" || tag == "!!float" || rendered)
	case kBool:
		_, ok := boolValue(n)
		return ok && (tag == "!!bool" || rendered)
	case kScalar:
		return tag == "!!str" || tag == "!!int" || tag == "!!float" || tag == "!!bool"
	}
	return false
}

func intValue(n *yaml.Node) (int64, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return 0, false
	}
	var v int64
	if n.ShortTag() == "!!int" && n.Decode(&v) == nil {
		return v, true
	}
	v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
	return v, err == nil
}

func floatValue(n *yaml.Node) (float64, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return 0, false
	}
	var v float64
	if (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") && n.Decode(&v) == nil {
		return v, true
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64)
	return v, err == nil
}

func boolValue(n *yaml.Node) (bool, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return false, false
	}
	var v bool
	if n.ShortTag() == "!!bool" && n.Decode(&v) == nil {
		return v, true
	}
	switch strings.TrimSpace(n.Value) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// want names what s accepts, for messages.
func want(s *spec) string {
	if s.typeDoc != "" {
		return s.typeDoc
	}
	switch s.kind {
	case kString:
		return "a string"
	case kInt:
		return "an integer"
	case kNumber:
		return "a number"
	case kBool:
		return "true or false"
	case kScalar:
		return "a string, number or boolean"
	case kList:
		return "a list"
	case kObject:
		if len(s.fields) > 0 && len(s.fields) <= 3 {
			return "a mapping (" + strings.Join(s.fieldNames(), ", ") + ")"
		}
		return "a mapping"
	case kMap:
		return "a mapping"
	case kOneOf:
		var alts []string
		for _, a := range s.alts {
			alts = append(alts, want(a))
		}
		return strings.Join(alts, " or ")
	}
	return "?"
}

// describe names what n is, for messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!str":
			return fmt.Sprintf("the string %q", v)
		case "!!int":
			return "the integer " + v
		case "!!float":
			return "the number " + v
		case "!!bool":
			return "the boolean " + v
		}
		return v
	}
	return "an unexpected node"
}
