package plans

import (
	"cmp"
	"os"
	"slices"
	"strings"
	"text/template/parse"

	"gopkg.in/yaml.v3"
)

// EnvNames are the environment variables the plan's templates read with
// env "NAME" (a literal name), sorted, each once.
func (p *Plan) EnvNames() []string {
	if p.root == nil {
		return nil
	}
	var out []string
	walkTemplates(p.root, func(n *yaml.Node, path string) {
		t, err := p.parseTemplate(path, n.Value)
		if err != nil {
			return
		}
		envNames(t.Tree.Root, &out)
	})
	slices.Sort(out)
	return slices.Compact(out)
}

func envNames(node parse.Node, out *[]string) {
	if x, ok := node.(*parse.CommandNode); ok && len(x.Args) >= 2 {
		if id, ok := x.Args[0].(*parse.IdentifierNode); ok && id.Ident == "env" {
			if s, ok := x.Args[1].(*parse.StringNode); ok {
				*out = append(*out, s.Text)
			}
		}
	}
	eachChild(node, func(c parse.Node, _ bool) { envNames(c, out) })
}

// EnvRefs holds the values of the environment variables a plan reads
// (only those the operator allows, never a credential, never empty), so
// that what a process hands on (a cluster's layout, stage names, errors,
// output paths) carries a reference instead of the value: Hide replaces
// each value by ${env:NAME}, Show puts the values back where the process
// that runs the work holds them. Hide then Show gives the text back as
// long as it held no ${env:...} of its own.
type EnvRefs struct {
	hide, show *strings.Replacer
	n          int
}

// EnvRef is the reference Hide writes for the variable name.
func EnvRef(name string) string { return "${env:" + name + "}" }

// NewEnvRefs reads the values of the plan's env names (EnvNames) that
// vars allow, with vars.LookupEnv (nil: os.LookupEnv).
func NewEnvRefs(p *Plan, vars Vars) *EnvRefs {
	lookup := vars.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	type kv struct{ name, value string }
	var vals []kv
	for _, name := range p.EnvNames() {
		if IsCredential(name) || !(slices.Contains(vars.EnvAllow, name) || slices.Contains(vars.EnvAllow, "*")) {
			continue
		}
		if v, ok := lookup(name); ok && v != "" {
			vals = append(vals, kv{name, v})
		}
	}
	// The longest value first: one that holds another is hidden whole.
	slices.SortStableFunc(vals, func(a, b kv) int { return cmp.Compare(len(b.value), len(a.value)) })
	var hide, show []string
	for _, v := range vals {
		hide = append(hide, v.value, EnvRef(v.name))
		show = append(show, EnvRef(v.name), v.value)
	}
	return &EnvRefs{hide: strings.NewReplacer(hide...), show: strings.NewReplacer(show...), n: len(vals)}
}

// Hide replaces the values in s by their references.
func (r *EnvRefs) Hide(s string) string {
	if r == nil || r.n == 0 {
		return s
	}
	return r.hide.Replace(s)
}

// Show replaces the references in s by the values.
func (r *EnvRefs) Show(s string) string {
	if r == nil || r.n == 0 {
		return s
	}
	return r.show.Replace(s)
}
