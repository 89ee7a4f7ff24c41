package plans

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// AbsPaths rewrites the relative local paths of a plan's sources and sink
// (read, union, join's read, write) and of an infer step's model, when it
// is a local directory, to absolute ones under dir, so that a plan
// submitted to a cluster reads and writes where it was submitted rather
// than in each worker's directory. Each path is changed in place in the
// text (line numbers stay), so the plan is otherwise as written. URLs
// (s3://...) and absolute paths are kept. A relative path that starts
// with a template cannot be resolved before it is rendered: that is an
// error naming it, as is a dir that cannot be written into a YAML scalar.
// It returns the text and the paths it changed.
func AbsPaths(file string, src []byte, dir string) ([]byte, []string, error) {
	if strings.ContainsAny(dir, "\"'\\#\n") || strings.Contains(dir, ": ") {
		return nil, nil, fmt.Errorf("%s: the directory %q has characters a plan path cannot hold; give absolute paths in the plan", file, dir)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return src, nil, nil
	}
	root := deref(doc.Content[0])
	var nodes []*yaml.Node
	source := func(n *yaml.Node) {
		for _, k := range []string{"parquet", "csv", "jsonl"} {
			if v := get(n, k); v != nil && v.Kind == yaml.ScalarNode {
				nodes = append(nodes, v)
			}
		}
	}
	source(get(root, "read"))
	source(get(root, "write"))
	var models []*yaml.Node
	if steps := get(root, "steps"); steps != nil && steps.Kind == yaml.SequenceNode {
		for _, st := range steps.Content {
			st = deref(st)
			if u := get(st, "union"); u != nil && u.Kind == yaml.SequenceNode {
				for _, s := range u.Content {
					source(deref(s))
				}
			}
			source(get(get(st, "join"), "read"))
			if m := get(get(st, "infer"), "model"); m != nil && m.Kind == yaml.ScalarNode {
				models = append(models, m)
			}
		}
	}
	type edit struct {
		line, col int
		text      string
	}
	var edits []edit
	var changed []string
	var errs []string
	seen := map[*yaml.Node]bool{}
	add := func(n *yaml.Node) {
		if seen[n] {
			return // an alias of a node already done
		}
		seen[n] = true
		v := n.Value
		if v == "" || strings.Contains(v, "://") || filepath.IsAbs(v) {
			return
		}
		if strings.HasPrefix(v, "{{") {
			errs = append(errs, fmt.Sprintf("%s:%d:%d: the relative path %q starts with a template, so it cannot be resolved where the plan is submitted; make it absolute (or an s3:// URL)", file, n.Line, n.Column, v))
			return
		}
		col := n.Column
		switch n.Style {
		case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
			col++ // after the quote
		case 0, yaml.FlowStyle:
		default:
			errs = append(errs, fmt.Sprintf("%s:%d:%d: a block scalar path %q cannot be resolved; write it on one line", file, n.Line, n.Column, v))
			return
		}
		sep := string(filepath.Separator)
		edits = append(edits, edit{n.Line, col, strings.TrimRight(dir, sep) + sep})
		changed = append(changed, v)
	}
	for _, n := range nodes {
		add(n)
	}
	for _, n := range models {
		if v := n.Value; v != "" && !filepath.IsAbs(v) && !strings.Contains(v, "://") && !strings.HasPrefix(v, "{{") {
			if fi, err := os.Stat(filepath.Join(dir, v)); err == nil && fi.IsDir() {
				add(n)
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	// Apply from the last position back, so earlier ones stay valid.
	slices.SortFunc(edits, func(a, b edit) int {
		if a.line != b.line {
			return b.line - a.line
		}
		return b.col - a.col
	})
	lines := strings.SplitAfter(string(src), "\n")
	for _, e := range edits {
		l := lines[e.line-1]
		// yaml.v3 columns count runes.
		r := []rune(l)
		if e.col-1 > len(r) {
			return nil, nil, fmt.Errorf("%s:%d:%d: internal: no such column", file, e.line, e.col)
		}
		lines[e.line-1] = string(r[:e.col-1]) + e.text + string(r[e.col-1:])
	}
	return []byte(strings.Join(lines, "")), changed, nil
}
