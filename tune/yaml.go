package tune

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// kinds are the domain keys of the YAML space syntax.
var kinds = []string{"uniform", "loguniform", "quniform", "randint", "choice", "grid"}

// parser collects every problem of one file.
type parser struct {
	file string
	errs Errors
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: p.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// ParseSpace reads a space in the YAML syntax of `sluice tune` files:
//
//	lr: {loguniform: [1e-5, 1e-2]}
//	batch_size: {choice: [8, 16, 32]}
//	warmup: {randint: [0, 100]}   # hi exclusive
//	opt:                          # conditional: each option a sub-space
//	  choice:
//	    - {optimizer: sgd, momentum: {uniform: [0.5, 0.99]}}
//	    - {optimizer: adamw}
//
// A mapping with one domain key is a domain; any other mapping is a nested
// space; a scalar or list is a constant. Errors are [Errors] naming
// file:line:column and the key path.
func ParseSpace(file string, data []byte) (Space, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", file, ErrInvalid, err)
	}
	p := &parser{file: file}
	var n *yaml.Node
	if len(doc.Content) > 0 {
		n = doc.Content[0]
	}
	s := p.space(n, "space")
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return s, nil
}

// space decodes a mapping node into a Space.
func (p *parser) space(n *yaml.Node, path string) Space {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		p.errorf(n, path, "want a mapping of parameter names to ranges")
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, path, "the space has no parameters")
		return nil
	}
	s := Space{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		if _, dup := s[k.Value]; dup {
			p.errorf(k, key, "duplicate parameter")
			continue
		}
		s[k.Value] = p.value(v, key)
	}
	return s
}

// value decodes one parameter: a domain, a nested space or a constant.
func (p *parser) value(n *yaml.Node, path string) any {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return p.constant(n, path)
	}
	domain := false
	for i := 0; i < len(n.Content); i += 2 {
		if slices.Contains(kinds, n.Content[i].Value) {
			domain = true
		}
	}
	if !domain {
		if len(n.Content) == 2 && deref(n.Content[1]).Kind == yaml.SequenceNode {
			// {normal: [0, 1]}: a misspelt range, not a nested space.
			p.errorf(n.Content[0], join(path, n.Content[0].Value), "unknown range kind %q: want one of %s", n.Content[0].Value, strings.Join(kinds, ", "))
			return nil
		}
		return p.space(n, path)
	}
	if len(n.Content) != 2 {
		p.errorf(n, path, "a range takes exactly one key (one of %s), got %d keys", strings.Join(kinds, ", "), len(n.Content)/2)
		return nil
	}
	k, v := n.Content[0], deref(n.Content[1])
	path = join(path, k.Value)
	var d Domain
	switch k.Value {
	case "uniform", "loguniform":
		xs, ok := p.floats(v, path, 2, "[lo, hi]")
		if !ok {
			return nil
		}
		if k.Value == "uniform" {
			d = Uniform{xs[0], xs[1]}
		} else {
			d = LogUniform{xs[0], xs[1]}
		}
	case "quniform":
		xs, ok := p.floats(v, path, 3, "[lo, hi, q]")
		if !ok {
			return nil
		}
		d = QUniform{xs[0], xs[1], xs[2]}
	case "randint":
		if v.Kind != yaml.SequenceNode || len(v.Content) != 2 {
			p.errorf(v, path, "want [lo, hi] (two integers, hi exclusive), got %s", describe(v))
			return nil
		}
		var xs [2]int64
		for i, e := range v.Content {
			if err := e.Decode(&xs[i]); err != nil || e.Tag != "!!int" {
				p.errorf(e, fmt.Sprintf("%s[%d]", path, i), "want an integer, got %s", describe(e))
				return nil
			}
		}
		d = RandInt{xs[0], xs[1]}
	case "choice", "grid":
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, path, "want a list of values, got %s", describe(v))
			return nil
		}
		vals := make([]any, len(v.Content))
		for i, e := range v.Content {
			e = deref(e)
			if e.Kind == yaml.MappingNode {
				vals[i] = p.space(e, fmt.Sprintf("%s[%d]", path, i))
			} else {
				vals[i] = p.constant(e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
		if k.Value == "choice" {
			d = Choice{vals}
		} else {
			d = Grid{vals}
		}
	}
	if msg := d.check(); msg != "" {
		p.errorf(v, path, "%s", msg)
		return nil
	}
	return d
}

func (p *parser) floats(v *yaml.Node, path string, n int, want string) ([]float64, bool) {
	if v.Kind != yaml.SequenceNode || len(v.Content) != n {
		p.errorf(v, path, "want %s (%d numbers), got %s", want, n, describe(v))
		return nil, false
	}
	xs := make([]float64, n)
	for i, e := range v.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || (e.Tag != "!!int" && e.Tag != "!!float") || e.Decode(&xs[i]) != nil {
			p.errorf(e, fmt.Sprintf("%s[%d]", path, i), "want a number, got %s", describe(e))
			return nil, false
		}
		if math.IsNaN(xs[i]) || math.IsInf(xs[i], 0) {
			p.errorf(e, fmt.Sprintf("%s[%d]", path, i), "want a finite number, got %s", e.Value)
			return nil, false
		}
	}
	return xs, true
}

// constant decodes a scalar or list as a plain value.
func (p *parser) constant(n *yaml.Node, path string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		p.errorf(n, path, "%v", err)
		return nil
	}
	return v
}

// describe names what a node is, for "want X, got Y".
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return fmt.Sprintf("a list of %d", len(n.Content))
	case n.Tag == "!!null":
		return "null"
	case n.Tag == "!!str":
		return fmt.Sprintf("%q", n.Value)
	}
	return n.Value
}

var keyPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
