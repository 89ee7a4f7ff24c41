package plans

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/schedule"
)

// Plan is a parsed plan file. A Plan from Parse or Load may hold templates
// ({{ }}) in its strings; Render expands them into a new Plan.
type Plan struct {
	File        string // the name lints carry
	Name        string
	Description string
	Schedule    *schedule.Schedule // nil: run only on demand
	Params      []Param            // in file order
	EnvAllow    []string
	Read        Source
	Steps       []Step
	Write       Sink

	src      []byte
	root     *yaml.Node
	rendered map[*yaml.Node]string // rendered scalar -> its template text
	vars     *Vars                 // set on a rendered plan
	broken   map[int]bool          // steps whose structure has lints
	lints    Lints                 // from Parse or Render
}

// Param is one params entry: its name and its default value (a template
// before Render, the value after).
type Param struct {
	Name, Value string
	node        *yaml.Node
}

// Source is a read (or a union's or join's source).
type Source struct {
	Format    string // parquet, csv or jsonl
	Path      string
	Columns   []string
	Header    *bool  // CSV: nil means true
	Delimiter string // CSV: "" means ","
	// Schema sets CSV/JSONL column types by name (type names as in CAST),
	// in file order; the other columns are inferred.
	Schema []ColumnType
	// PartitionTypes types hive partition columns (type names as in CAST).
	PartitionTypes []ColumnType
	NullValues     []string // CSV: nil means the empty field
	InferRows      int64    // CSV/JSONL: 0 means the default, -1 every row
	ReplaceUTF8    bool     // CSV: replace invalid UTF-8 instead of failing
	node           *yaml.Node
	path           string
}

// ColumnType is one entry of a source's schema.
type ColumnType struct{ Column, Type string }

// Sink is the write.
type Sink struct {
	Format      string // parquet, csv or jsonl
	Path        string
	Mode        string // overwrite, error (the default) or append
	PartitionBy []string
	RowsPerFile int64
	Compression string
	Header      bool // CSV: write a header line (default true)
	node        *yaml.Node
}

// Step is one transform of steps: *Filter, *Select, *WithColumn, *Drop,
// *Rename, *Limit, *Repartition, *RandomShuffle, *Sort, *GroupBy, *Union,
// *Join, *Infer or *MapBatches. A plan with lints may hold nil for a step
// of no known kind.
type Step interface {
	// Kind is the step's key in the plan: filter, select, with_column...
	Kind() string
	at() *stepAt
}

// stepAt is where a step is in the file.
type stepAt struct {
	node *yaml.Node // the step's value
	path string     // steps[i].kind
}

func (s *stepAt) at() *stepAt { return s }

// Filter keeps the rows for which Expr is true.
type Filter struct {
	Expr string
	stepAt
}

// Select keeps Columns, in order.
type Select struct {
	Columns []string
	stepAt
}

// WithColumn adds or replaces the column Name computed by Expr.
type WithColumn struct {
	Name, Expr string
	stepAt
}

// Drop removes Columns.
type Drop struct {
	Columns []string
	stepAt
}

// Rename renames columns: Renames maps old names to new names.
type Rename struct {
	Renames map[string]string
	stepAt
}

// Limit keeps the first N rows.
type Limit struct {
	N int64
	stepAt
}

// Repartition makes N blocks, by hash of Keys when set.
type Repartition struct {
	N    int
	Keys []string
	stepAt
}

// RandomShuffle permutes the rows with Seed.
type RandomShuffle struct {
	Seed int64
	stepAt
}

// Sort orders the rows by Keys.
type Sort struct {
	Keys []SortKey
	stepAt
}

// SortKey is one key of a Sort.
type SortKey struct {
	Column     string
	Descending bool
}

// GroupBy aggregates the groups of equal Keys.
type GroupBy struct {
	Keys []string
	Aggs []Agg
	stepAt
}

// Agg is one aggregate of a GroupBy: Fn of Column, named As.
type Agg struct {
	Fn, Column, As string
	// Q is quantile's fraction.
	Q *float64
}

// Union appends the rows of Sources.
type Union struct {
	Sources []Source
	stepAt
}

// Join hash-joins with the rows of Read.
type Join struct {
	Read            Source
	On              []string
	LeftOn, RightOn []string
	How             string // inner (default) or left
	stepAt
}

// Infer generates text with an LLM for each row (package infer).
type Infer struct {
	Model, Input, Output string
	MaxTokens            int64
	Temperature          float64
	Device, DType        string // "" or "auto": by device
	OnError, OnNull      string // "": fail, error
	LoRA                 string // a PEFT LoRA adapter directory; "": the base model
	// SpeculativeModel and NumSpeculativeTokens are vLLM's speculative
	// decoding options: a draft model directory, or "[ngram]" for prompt
	// lookup, and the draft tokens per step.
	SpeculativeModel     string
	NumSpeculativeTokens int64
	stepAt
}

var (
	_ Step = (*Filter)(nil)
	_ Step = (*Select)(nil)
	_ Step = (*WithColumn)(nil)
	_ Step = (*Drop)(nil)
	_ Step = (*Rename)(nil)
	_ Step = (*Limit)(nil)
	_ Step = (*Repartition)(nil)
	_ Step = (*RandomShuffle)(nil)
	_ Step = (*Sort)(nil)
	_ Step = (*GroupBy)(nil)
	_ Step = (*Union)(nil)
	_ Step = (*Join)(nil)
	_ Step = (*Infer)(nil)
)

func (*Filter) Kind() string        { return "filter" }
func (*Select) Kind() string        { return "select" }
func (*WithColumn) Kind() string    { return "with_column" }
func (*Drop) Kind() string          { return "drop" }
func (*Rename) Kind() string        { return "rename" }
func (*Limit) Kind() string         { return "limit" }
func (*Repartition) Kind() string   { return "repartition" }
func (*RandomShuffle) Kind() string { return "random_shuffle" }
func (*Sort) Kind() string          { return "sort" }
func (*GroupBy) Kind() string       { return "group_by" }
func (*Union) Kind() string         { return "union" }
func (*Join) Kind() string          { return "join" }
func (*Infer) Kind() string         { return "infer" }

// Load reads and parses a plan file. The error is the file's Lints when
// it has any of severity Error.
func Load(file string) (*Plan, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("plans: %w", err)
	}
	p, lints := Parse(file, data)
	if err := lints.Err(); err != nil {
		return p, err
	}
	return p, nil
}

// Parse parses a plan and checks everything that needs neither the data
// nor the templates' values: YAML syntax, unknown keys (with suggestions),
// types, enums, required keys, names, the cron expression, the time zone,
// template syntax and the names templates use. The lints are sorted by
// position. The Plan is never nil; after lints it may be partial.
func Parse(filename string, data []byte) (*Plan, Lints) {
	p := &Plan{File: filename, src: data}
	d := &decoder{p: p}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.yamlError(err)
		p.lints = d.lints.Sort()
		return p, p.lints
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		d.errorAt(Pos{1, 1}, "", "empty plan: want a mapping with name, read and write")
		p.lints = d.lints.Sort()
		return p, p.lints
	}
	p.root = doc.Content[0]
	d.decode()
	d.checkTemplates()
	p.lints = d.lints.Sort()
	return p, p.lints
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.errorAt(Pos{line, 1}, "", "yaml: %s", m[2])
		return
	}
	d.errorAt(Pos{1, 1}, "", "%s", msg)
}

// decode checks the tree and fills the plan from it.
func (d *decoder) decode() {
	p, root := d.p, d.p.root
	if !d.check(root, planSpec(), "", false) && root.Kind != yaml.MappingNode {
		return
	}
	p.Name = scalar(get(root, "name"))
	p.Description = scalar(get(root, "description"))
	if n := get(root, "schedule"); n != nil && n.Kind == yaml.MappingNode {
		d.decodeSchedule(n)
	}
	if n := get(root, "params"); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := deref(n.Content[i]), deref(n.Content[i+1])
			p.Params = append(p.Params, Param{Name: k.Value, Value: v.Value, node: v})
		}
	}
	p.EnvAllow = strs(get(root, "env_allow"))
	p.Read = d.decodeSource(get(root, "read"), "read")
	d.decodeSteps(get(root, "steps"))
	d.decodeSink(get(root, "write"))
}

func (d *decoder) decodeSteps(n *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return
	}
	d.p.broken = map[int]bool{}
	for i, sn := range n.Content {
		sn = deref(sn)
		path := index("steps", i)
		var step Step
		if sn.Kind == yaml.MappingNode && len(sn.Content) == 2 {
			k := deref(sn.Content[0])
			if def := lookupStep(k.Value); def != nil {
				before := len(d.lints)
				vn := deref(sn.Content[1])
				step = def.decode(d, vn, join(path, k.Value))
				*step.at() = stepAt{node: vn, path: join(path, k.Value)}
				d.stepLints(step)
				if len(d.lints) > before {
					d.p.broken[i] = true
				}
			}
		}
		if step == nil {
			d.p.broken[i] = true
		}
		d.p.Steps = append(d.p.Steps, step) // nil for a step of no known kind
	}
	// Lints from check for a step's subtree also make it broken.
	for _, l := range d.lints {
		for i := range n.Content {
			pre := index("steps", i)
			if l.Path == pre || len(l.Path) > len(pre) && l.Path[:len(pre)] == pre && (l.Path[len(pre)] == '.' || l.Path[len(pre)] == '[') {
				d.p.broken[i] = true
			}
		}
	}
}

// get is the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if deref(m.Content[i]).Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// getKey is the key node of key in mapping m, or nil.
func getKey(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Value == key {
			return k
		}
	}
	return nil
}

// item is the i-th element of sequence n, or n itself when there is none,
// so lints always have a position.
func item(n *yaml.Node, i int) *yaml.Node {
	n = deref(n)
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return deref(n.Content[i])
	}
	return n
}

func scalar(n *yaml.Node) string {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return ""
	}
	return n.Value
}

func strs(n *yaml.Node) []string {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, it := range n.Content {
		out = append(out, scalar(it))
	}
	return out
}

func (d *decoder) decodeSource(n *yaml.Node, path string) Source {
	s := Source{node: n, path: path}
	for _, f := range formats {
		if v := get(n, f); v != nil && s.Format == "" {
			s.Format, s.Path = f, scalar(v)
		}
	}
	s.Columns = strs(get(n, "columns"))
	if h, ok := boolValue(get(n, "header")); ok {
		s.Header = &h
	}
	s.Delimiter = scalar(get(n, "delimiter"))
	if sn := get(n, "schema"); sn != nil && sn.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(sn.Content); i += 2 {
			col, tn := deref(sn.Content[i]).Value, sn.Content[i+1]
			if _, ok := expr.TypeByName(scalar(tn)); !ok {
				d.errorf(tn, join(join(path, "schema"), col), "unknown type %q (want one of %s)", scalar(tn), strings.Join(expr.TypeNames(), ", "))
				continue
			}
			s.Schema = append(s.Schema, ColumnType{Column: col, Type: scalar(tn)})
		}
	}
	if pn := get(n, "partition_types"); pn != nil && pn.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(pn.Content); i += 2 {
			col, tn := deref(pn.Content[i]).Value, pn.Content[i+1]
			if _, ok := expr.TypeByName(scalar(tn)); !ok {
				d.errorf(tn, join(join(path, "partition_types"), col), "unknown type %q (want one of %s)", scalar(tn), strings.Join(expr.TypeNames(), ", "))
				continue
			}
			s.PartitionTypes = append(s.PartitionTypes, ColumnType{Column: col, Type: scalar(tn)})
		}
	}
	if nv := get(n, "null_values"); nv != nil {
		s.NullValues = strs(nv)
		if s.NullValues == nil {
			s.NullValues = []string{}
		}
	}
	s.InferRows, _ = intValue(get(n, "infer_rows"))
	s.ReplaceUTF8, _ = boolValue(get(n, "replace_invalid_utf8"))
	if s.Format == "parquet" {
		for _, k := range []string{"schema", "infer_rows"} {
			if kn := getKey(n, k); kn != nil {
				d.errorf(kn, path, "%s applies to csv and jsonl sources only, not parquet", k)
			}
		}
	}
	if s.Format != "" && s.Format != "csv" {
		for _, k := range []string{"header", "delimiter", "null_values", "replace_invalid_utf8"} {
			if kn := getKey(n, k); kn != nil {
				d.errorf(kn, path, "%s applies to csv sources only, not %s", k, s.Format)
			}
		}
	}
	return s
}

func (d *decoder) decodeSink(n *yaml.Node) {
	w := &d.p.Write
	*w = Sink{node: n, Mode: "error", Header: true}
	for _, f := range formats {
		if v := get(n, f); v != nil && w.Format == "" {
			w.Format, w.Path = f, scalar(v)
		}
	}
	if m := scalar(get(n, "mode")); m != "" {
		w.Mode = m
	}
	w.PartitionBy = strs(get(n, "partition_by"))
	w.RowsPerFile, _ = intValue(get(n, "rows_per_file"))
	w.Compression = scalar(get(n, "compression"))
	if h, ok := boolValue(get(n, "header")); ok {
		w.Header = h
	}
	if kn := getKey(n, "compression"); kn != nil && w.Format != "" && w.Format != "parquet" {
		d.errorf(kn, "write", "compression applies to parquet output only, not %s", w.Format)
	}
	if kn := getKey(n, "header"); kn != nil && w.Format != "" && w.Format != "csv" {
		d.errorf(kn, "write", "header applies to csv output only, not %s", w.Format)
	}
}

func decodeFilter(d *decoder, n *yaml.Node, path string) Step { return &Filter{Expr: scalar(n)} }
func decodeSelect(d *decoder, n *yaml.Node, path string) Step { return &Select{Columns: strs(n)} }
func decodeDrop(d *decoder, n *yaml.Node, path string) Step   { return &Drop{Columns: strs(n)} }

func decodeWithColumn(d *decoder, n *yaml.Node, path string) Step {
	return &WithColumn{Name: scalar(get(n, "name")), Expr: scalar(get(n, "expr"))}
}

func decodeRename(d *decoder, n *yaml.Node, path string) Step {
	r := &Rename{Renames: map[string]string{}}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			r.Renames[deref(n.Content[i]).Value] = scalar(n.Content[i+1])
		}
	}
	return r
}

func decodeLimit(d *decoder, n *yaml.Node, path string) Step {
	v, _ := intValue(n)
	return &Limit{N: v}
}

func decodeRepartition(d *decoder, n *yaml.Node, path string) Step {
	if n.Kind == yaml.MappingNode {
		v, _ := intValue(get(n, "n"))
		return &Repartition{N: int(v), Keys: strs(get(n, "keys"))}
	}
	v, _ := intValue(n)
	return &Repartition{N: int(v)}
}

func decodeShuffle(d *decoder, n *yaml.Node, path string) Step {
	if n.Kind == yaml.MappingNode {
		v, _ := intValue(get(n, "seed"))
		return &RandomShuffle{Seed: v}
	}
	v, _ := intValue(n)
	return &RandomShuffle{Seed: v}
}

func decodeSort(d *decoder, n *yaml.Node, path string) Step {
	s := &Sort{}
	if n.Kind != yaml.SequenceNode {
		return s
	}
	for _, it := range n.Content {
		it = deref(it)
		if it.Kind == yaml.MappingNode {
			desc, _ := boolValue(get(it, "descending"))
			s.Keys = append(s.Keys, SortKey{Column: scalar(get(it, "column")), Descending: desc})
		} else {
			s.Keys = append(s.Keys, SortKey{Column: scalar(it)})
		}
	}
	return s
}

func decodeGroupBy(d *decoder, n *yaml.Node, path string) Step {
	g := &GroupBy{Keys: strs(get(n, "keys"))}
	aggs := get(n, "aggs")
	if aggs == nil || aggs.Kind != yaml.SequenceNode {
		return g
	}
	for i, a := range aggs.Content {
		agg := Agg{Fn: scalar(get(a, "fn")), Column: scalar(get(a, "column")), As: scalar(get(a, "as"))}
		if q, ok := floatValue(get(a, "q")); ok {
			agg.Q = &q
		}
		if agg.Fn == "quantile" && agg.Q == nil {
			d.errorf(deref(a), index(join(path, "aggs"), i), "quantile needs q, the fraction (0 to 1)")
		} else if agg.Fn != "quantile" && agg.Q != nil && !isTemplate(agg.Fn) {
			d.errorf(get(a, "q"), join(index(join(path, "aggs"), i), "q"), "q is quantile's fraction; %s takes none", agg.Fn)
		}
		if agg.Fn != "" && agg.Fn != "count" && agg.Column == "" && !isTemplate(agg.Fn) {
			d.errorf(deref(a), index(join(path, "aggs"), i), "%s needs a column", agg.Fn)
		}
		g.Aggs = append(g.Aggs, agg)
	}
	return g
}

func decodeUnion(d *decoder, n *yaml.Node, path string) Step {
	u := &Union{}
	if n.Kind != yaml.SequenceNode {
		return u
	}
	for i, it := range n.Content {
		u.Sources = append(u.Sources, d.decodeSource(it, index(path, i)))
	}
	return u
}

func decodeJoin(d *decoder, n *yaml.Node, path string) Step {
	j := &Join{Read: d.decodeSource(get(n, "read"), join(path, "read")), On: strs(get(n, "on")),
		LeftOn: strs(get(n, "left_on")), RightOn: strs(get(n, "right_on")), How: scalar(get(n, "how"))}
	if j.How == "" {
		j.How = "inner"
	}
	if n.Kind != yaml.MappingNode {
		return j
	}
	on, lo, ro := getKey(n, "on"), getKey(n, "left_on"), getKey(n, "right_on")
	switch {
	case on != nil && (lo != nil || ro != nil):
		d.errorf(on, path, "give on, or left_on and right_on, not both")
	case on == nil && lo == nil && ro == nil:
		d.errorf(n, path, "missing the keys: on (or left_on and right_on)")
	case on == nil && (lo == nil) != (ro == nil):
		k := lo
		if k == nil {
			k = ro
		}
		d.errorf(k, path, "left_on and right_on go together")
	case on == nil && len(j.LeftOn) != len(j.RightOn):
		d.errorf(ro, path, "right_on has %d columns, left_on %d; want as many", len(j.RightOn), len(j.LeftOn))
	}
	return j
}

func decodeInfer(d *decoder, n *yaml.Node, path string) Step {
	i := &Infer{Model: scalar(get(n, "model")), Input: scalar(get(n, "input")), Output: scalar(get(n, "output"))}
	i.MaxTokens, _ = intValue(get(n, "max_tokens"))
	i.Temperature, _ = floatValue(get(n, "temperature"))
	i.Device, i.DType = scalar(get(n, "device")), scalar(get(n, "dtype"))
	i.OnError, i.OnNull = scalar(get(n, "on_error")), scalar(get(n, "on_null"))
	i.LoRA = scalar(get(n, "lora"))
	i.SpeculativeModel = scalar(get(n, "speculative_model"))
	i.NumSpeculativeTokens, _ = intValue(get(n, "num_speculative_tokens"))
	if k := get(n, "num_speculative_tokens"); k != nil && i.SpeculativeModel == "" {
		d.errorf(k, path+".num_speculative_tokens", "num_speculative_tokens needs speculative_model (a draft model directory or \"[ngram]\")")
	} else if k := get(n, "speculative_model"); k != nil && i.NumSpeculativeTokens == 0 {
		d.errorf(k, path+".speculative_model", "speculative_model needs num_speculative_tokens (the draft tokens per step, 1 or more)")
	}
	return i
}

// stepLints are the checks of one step that need more than its spec.
func (d *decoder) stepLints(s Step) {
	if s, ok := s.(*Infer); ok && !strings.Contains(s.Model, "://") && !strings.Contains(s.Model, "{{") {
		if _, err := os.Stat(filepath.Join(s.Model, "config.json")); err != nil {
			d.errorf(s.node, s.path+".model", "no model at %q: want a Hugging Face model directory with config.json", s.Model)
		}
	}
}
