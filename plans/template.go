package plans

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/didyoumean"
	"gopkg.in/yaml.v3"
)

// Vars are the values a plan's templates see.
type Vars struct {
	// ScheduledTime is the run's scheduled time (.ScheduledTime), shown in
	// the schedule's time zone (UTC without a schedule). Zero: now.
	ScheduledTime time.Time
	// RunID names the run (.RunID). Empty: NAME-YYYYMMDDTHHMMSSZ of the
	// plan's name and the scheduled time in UTC.
	RunID string
	// Params override the plan's params (--param name=value). Each must be
	// declared by the plan; the value is used as is, not as a template.
	Params map[string]string
	// LookupEnv reads environment variables for env; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// EnvAllow are the environment variables env may read: the operator's
	// list (sluice run --env-allow, sluice worker --env-allow), never the
	// plan's. "*" allows any name. Credentials (IsCredential) are never
	// readable, whatever the list says.
	EnvAllow []string
}

// EnvAllowVar is the environment variable that holds the operator's list
// of the variables plans may read (comma-separated), for processes started
// without --env-allow.
const EnvAllowVar = "SLUICE_ENV_ALLOW"

// ParseEnvAllow splits a comma-separated --env-allow list.
func ParseEnvAllow(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// IsCredential reports whether an environment variable holds a credential
// that no plan may read: the cluster's token and secret, cloud keys, and
// any name holding SECRET, TOKEN, PASSWORD, CREDENTIAL or PRIVATE_KEY.
func IsCredential(name string) bool {
	n := strings.ToUpper(name)
	switch n {
	case "AWS_ACCESS_KEY_ID", "SLUICE_TOKEN", "SLUICE_CLUSTER_SECRET", "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_KEY", "HF_TOKEN":
		return true
	}
	for _, w := range []string{"SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "ACCESS_KEY", "SESSION_KEY"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// tmplData is the dot of every template.
type tmplData struct {
	ScheduledTime time.Time
	RunID         string
	Name          string
	Params        map[string]string
}

var tmplFields = []string{"ScheduledTime", "RunID", "Name", "Params"}

// funcs are the template functions. env reads only allowed names.
func (p *Plan) funcs(lookup func(string) (string, bool), allow []string) template.FuncMap {
	fm := template.FuncMap{
		"date":    func(layout string, t time.Time) string { return t.Format(layout) },
		"addDays": func(n int, t time.Time) time.Time { return t.AddDate(0, 0, n) },
		"upper":   strings.ToUpper,
		"lower":   strings.ToLower,
		"default": func(def, v any) any {
			if v == nil || reflect.ValueOf(v).IsZero() {
				return def
			}
			return v
		},
		"env": func(name string) (string, error) {
			if IsCredential(name) {
				return "", fmt.Errorf("%s", envCredential(name))
			}
			if lookup == nil {
				return "", nil // checking, not rendering: the operator's list is not known
			}
			if !slices.Contains(allow, name) && !slices.Contains(allow, "*") {
				return "", fmt.Errorf("env %q is not allowed: the operator lists the variables plans may read with --env-allow (on sluice run, and on each cluster worker)", name)
			}
			v, _ := lookup(name)
			return v, nil
		},
	}
	maps.Copy(fm, exprFuncs)
	return fm
}

func envCredential(name string) string {
	return fmt.Sprintf("env %q holds a credential, which plans never read (the token, the cluster secret, cloud and API keys)", name)
}

func (p *Plan) parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(p.funcs(nil, nil)).Option("missingkey=error").Parse(text)
}

var (
	tmplParseErr = regexp.MustCompile(`^template: [^:]*:(\d+): (.*)$`)
	tmplExecErr  = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+): executing "[^"]*" at <([^>]*)>: (.*)$`)
)

// templateError reports a parse or execution error of the template in n
// at the position the error names.
func (d *decoder) templateError(n *yaml.Node, path string, err error) {
	msg := err.Error()
	line, col := 1, 0
	if m := tmplExecErr.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		col, _ = strconv.Atoi(m[2])
		msg = fmt.Sprintf("template: <%s>: %s", m[3], strings.TrimPrefix(m[4], "error calling env: "))
	} else if m := tmplParseErr.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = "template: " + m[2]
	}
	// Template columns are 0-based byte offsets in their line; posAt wants
	// a rune index.
	off := 0
	for l := 1; l < line; l++ {
		j := strings.IndexByte(n.Value[off:], '\n')
		if j < 0 {
			break
		}
		off += j + 1
	}
	off = min(off+col, len(n.Value))
	if m := tmplExecErr.FindStringSubmatch(err.Error()); m != nil {
		off = nodeStart(n.Value, off, m[3])
	}
	d.errorAt(d.p.posAt(n, utf8.RuneCountInString(n.Value[:off])), path, "%s", msg)
}

// nodeStart is the start of text in the template s when a node printed as
// text has its position at pos (the parser puts a field chain's position
// at its last field).
func nodeStart(s string, pos int, text string) int {
	if i := strings.LastIndex(s[:min(pos+len(text), len(s))], text); i >= 0 && i <= pos {
		return i
	}
	return pos
}

// walkTemplates calls fn for each string holding a template in the parts
// of the plan that are templated: params values, read, steps and write.
func walkTemplates(root *yaml.Node, fn func(n *yaml.Node, path string)) {
	seen := map[*yaml.Node]bool{} // aliases: each node once, so no alias bomb
	walk := func(n *yaml.Node, path string) { walkScalars(n, path, seen, fn) }
	if pn := get(root, "params"); pn != nil && pn.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(pn.Content); i += 2 {
			walk(pn.Content[i+1], join("params", deref(pn.Content[i]).Value))
		}
	}
	for _, key := range []string{"read", "steps", "write"} {
		walk(get(root, key), key)
	}
}

func walkScalars(n *yaml.Node, path string, seen map[*yaml.Node]bool, fn func(n *yaml.Node, path string)) {
	n = deref(n)
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkScalars(n.Content[i+1], join(path, deref(n.Content[i]).Value), seen, fn)
		}
	case yaml.SequenceNode:
		for i, it := range n.Content {
			walkScalars(it, index(path, i), seen, fn)
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" && isTemplate(n.Value) {
			fn(n, path)
		}
	}
}

// checkTemplates parses every template and checks the names it uses: the
// fields of the dot, declared params (a param may use only the params
// above it), and env names.
func (d *decoder) checkTemplates() {
	p := d.p
	if n := get(p.root, "env_allow"); n != nil {
		d.errorf(n, "env_allow", "the variables templates may read are the operator's to allow, not the plan's: remove env_allow and run with --env-allow %s (sluice run, and each cluster worker)", strings.Join(p.EnvAllow, ","))
	}
	var all []string
	for _, pr := range p.Params {
		all = append(all, pr.Name)
	}
	walkTemplates(p.root, func(n *yaml.Node, path string) {
		t, err := p.parseTemplate(path, n.Value)
		if err != nil {
			d.templateError(n, path, err)
			return
		}
		visible := all
		if name, ok := strings.CutPrefix(path, "params."); ok {
			visible = all[:max(slices.Index(all, name), 0)]
		}
		d.checkNames(n, path, t.Tree.Root, true, visible, all)
	})
}

func (d *decoder) checkNames(n *yaml.Node, path string, node parse.Node, rootDot bool, visible, all []string) {
	at := func(pos parse.Pos, text string) Pos {
		off := nodeStart(n.Value, min(int(pos), len(n.Value)), text)
		return d.p.posAt(n, utf8.RuneCountInString(n.Value[:off]))
	}
	fields := func(pos parse.Pos, text string, ident []string) {
		if len(ident) == 0 {
			return
		}
		if !slices.Contains(tmplFields, ident[0]) {
			d.errorAt(at(pos, text), path, "template: unknown field .%s%s (have .ScheduledTime, .RunID, .Name, .Params.NAME)",
				ident[0], didyoumean.Suggest("."+ident[0], []string{".ScheduledTime", ".RunID", ".Name", ".Params"}))
			return
		}
		if ident[0] != "Params" || len(ident) < 2 {
			return
		}
		switch name := ident[1]; {
		case slices.Contains(visible, name):
		case slices.Contains(all, name):
			d.errorAt(at(pos, text), path, "template: param %q is declared below this one; a param may use only the params above it", name)
		default:
			sg := didyoumean.Suggest(name, all)
			if sg == "" {
				sg = " (declared: " + strings.Join(all, ", ") + ")"
				if len(all) == 0 {
					sg = " (the plan declares no params)"
				}
			}
			d.errorAt(at(pos, text), path, "template: unknown param %q%s", name, sg)
		}
	}
	switch x := node.(type) {
	case *parse.CommandNode:
		if len(x.Args) >= 2 {
			if id, ok := x.Args[0].(*parse.IdentifierNode); ok && id.Ident == "env" {
				if s, ok := x.Args[1].(*parse.StringNode); ok && IsCredential(s.Text) {
					d.errorAt(at(id.Pos, "env"), path, "template: %s", envCredential(s.Text))
				}
			}
		}
	case *parse.FieldNode:
		if rootDot {
			fields(x.Pos, x.String(), x.Ident)
		}
	case *parse.VariableNode:
		if len(x.Ident) > 0 && x.Ident[0] == "$" {
			fields(x.Pos, x.String(), x.Ident[1:])
		}
	}
	eachChild(node, func(c parse.Node, body bool) { d.checkNames(n, path, c, rootDot && !body, visible, all) })
}

// eachChild calls f with each child of a template parse node, in order;
// body is true for the body of a range or with, where dot is no longer the
// template's root.
func eachChild(node parse.Node, f func(c parse.Node, body bool)) {
	switch x := node.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			f(c, false)
		}
	case *parse.ActionNode:
		f(x.Pipe, false)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			f(c, false)
		}
	case *parse.CommandNode:
		for _, c := range x.Args {
			f(c, false)
		}
	case *parse.ChainNode:
		f(x.Node, false)
	case *parse.IfNode:
		f(x.Pipe, false)
		f(x.List, false)
		f(x.ElseList, false)
	case *parse.RangeNode:
		f(x.Pipe, false)
		f(x.List, true)
		f(x.ElseList, false)
	case *parse.WithNode:
		f(x.Pipe, false)
		f(x.List, true)
		f(x.ElseList, false)
	}
}

// Render expands the templates of p with vars and returns the rendered
// plan, checked again now that templated integers and booleans have values.
// The error is ErrUnknownParam for an override the plan does not declare,
// or the rendered plan's Lints.
//
// Templates are Go text/template actions in params values and in every
// string under read, steps and write. The dot has .ScheduledTime (a
// time.Time in the schedule's zone), .RunID, .Name (the plan's name) and
// .Params.NAME. Params are rendered in file order; each sees the params
// above it. The functions are
//
//	date "2006-01-02"   format a time with a Go layout: .ScheduledTime | date "2006-01-02"
//	addDays N           shift a time by N days:          .ScheduledTime | addDays -1 | date "2006-01-02"
//	upper, lower        change a string's case
//	default "x"         "x" when the piped value is empty: .Params.region | default "eu"
//	env "NAME"          an environment variable ("" when unset), only names
//	                    the operator allows (Vars.EnvAllow: --env-allow),
//	                    never a credential (IsCredential)
//	raw                 in an expression, insert the text as written (see below)
//
// In an expression (a filter, a with_column expr) each action's output is
// one literal, never expression text: a number or true/false as is,
// anything else as a quoted string, and quotes doubled inside a '...'
// string or "..." identifier. So --param min_price='0 OR TRUE' makes
// price > '0 OR TRUE', a type error, not a wider filter. End an action
// with | raw where the plan wants expression text pasted in.
func (p *Plan) Render(vars Vars) (*Plan, error) {
	if p.root == nil {
		if err := p.lints.Err(); err != nil {
			return p, err
		}
		return p, fmt.Errorf("plans: %s: nothing to render", p.File)
	}
	declared := make([]string, len(p.Params))
	for i, pr := range p.Params {
		declared[i] = pr.Name
	}
	for _, name := range slices.Sorted(maps.Keys(vars.Params)) {
		if !slices.Contains(declared, name) {
			have := "declares no params"
			if len(declared) > 0 {
				have = "declares " + strings.Join(declared, ", ")
			}
			return p, fmt.Errorf("%w %q%s: %s %s", ErrUnknownParam, name, didyoumean.Suggest(name, declared), p.File, have)
		}
	}
	loc := time.UTC
	if p.Schedule != nil {
		loc = p.Schedule.Location
	}
	if vars.ScheduledTime.IsZero() {
		vars.ScheduledTime = time.Now().Truncate(time.Second)
	}
	vars.ScheduledTime = vars.ScheduledTime.In(loc)
	if vars.RunID == "" {
		vars.RunID = p.Name + "-" + vars.ScheduledTime.UTC().Format("20060102T150405Z")
	}
	if vars.LookupEnv == nil {
		vars.LookupEnv = os.LookupEnv
	}
	q := &Plan{File: p.File, src: p.src, rendered: map[*yaml.Node]string{}, vars: &vars}
	q.root = copyNode(p.root, map[*yaml.Node]*yaml.Node{})
	d := &decoder{p: q}
	data := &tmplData{ScheduledTime: vars.ScheduledTime, RunID: vars.RunID, Name: p.Name, Params: map[string]string{}}
	funcs := q.funcs(vars.LookupEnv, vars.EnvAllow)
	render := func(n *yaml.Node, path string) {
		if _, done := q.rendered[n]; done {
			return // an aliased node, rendered once
		}
		t, err := template.New(path).Funcs(funcs).Option("missingkey=error").Parse(n.Value)
		if err == nil && exprPath.MatchString(path) {
			err = escapeExpr(t)
		}
		if err == nil {
			var b strings.Builder
			if err = t.Execute(&b, data); err == nil {
				q.rendered[n] = n.Value
				n.Value = b.String()
				return
			}
		}
		d.templateError(n, path, err)
	}
	if pn := get(q.root, "params"); pn != nil && pn.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(pn.Content); i += 2 {
			k, v := deref(pn.Content[i]), deref(pn.Content[i+1])
			if o, ok := vars.Params[k.Value]; ok {
				q.rendered[v] = v.Value
				v.Value, v.Tag, v.Style = o, "!!str", yaml.DoubleQuotedStyle
			} else if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && isTemplate(v.Value) {
				render(v, join("params", k.Value))
			}
			data.Params[k.Value] = v.Value
		}
	}
	seen := map[*yaml.Node]bool{}
	for _, key := range []string{"read", "steps", "write"} {
		walkScalars(get(q.root, key), key, seen, render)
	}
	d.decode()
	q.lints = d.lints.Sort()
	return q, q.lints.Err()
}

func copyNode(n *yaml.Node, seen map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := seen[n]; ok {
		return c
	}
	c := *n
	seen[n] = &c
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = copyNode(ch, seen)
	}
	c.Alias = copyNode(n.Alias, seen)
	return &c
}

// Vars is what a rendered plan was rendered with, or nil.
func (p *Plan) Vars() *Vars { return p.vars }
