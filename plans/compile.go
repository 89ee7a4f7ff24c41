package plans

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/didyoumean"
	"github.com/sluicehq/sluice/storage"
)

// Job is a compiled plan, ready to run.
type Job struct {
	Plan    *Plan            // the rendered plan
	Dataset *dataset.Dataset // the read and the steps
	Sink    *plan.Write      // the write, over Dataset's plan
}

// Output is where the job writes.
func (j *Job) Output() string { return j.Sink.Path }

// Explain is the logical plan, the optimized plan and the stages of the
// job, write included.
func (j *Job) Explain() (string, error) { return dataset.FromPlan(j.Sink).Explain() }

// Run runs the job with the local executor (through dataset.Run).
func (j *Job) Run(ctx context.Context, cfg dataset.Config) (*dataset.Stats, error) {
	return dataset.Run(ctx, j.Sink, cfg, nil)
}

// Compile renders p with vars (unless p is already rendered) and builds
// its dataset graph and write. The error is ErrUnknownParam or the plan's
// Lints (errors only; a source that cannot be read, local or remote, fails
// here).
func Compile(p *Plan, vars Vars) (*Job, error) { return compile(p, vars, &funcs) }

// compile is Compile with the functions of reg.
func compile(p *Plan, vars Vars, reg *registry) (*Job, error) {
	if err := p.lints.Err(); err != nil {
		return nil, err
	}
	q := p
	if p.vars == nil {
		var err error
		if q, err = p.Render(vars); err != nil {
			return nil, err
		}
	}
	c := &compiler{decoder: &decoder{p: q}, funcs: reg}
	job := c.build()
	if err := c.lints.Sort().Err(); err != nil {
		return nil, err.(Lints).Errors()
	}
	if job == nil {
		// Every path that stops the build reports an error; this is a bug.
		return nil, fmt.Errorf("plans: %s: the plan did not compile and no error says why", p.File)
	}
	return job, nil
}

// Validate renders p with vars and checks what needs the data: it reads
// the source's schema, compiles the steps one by one and reports, at the
// step's position, the first error of each step (expressions that do not
// type-check, columns that do not exist at that point). A source that does
// not exist (no such file, object or bucket; a glob that matches nothing)
// is an error at its path. A remote source that cannot be read otherwise
// (unreachable in 20 seconds, refused credentials) gives a Note instead,
// and what depends on its schema goes unchecked. A map_batches step's
// function must be registered (see Register), except in a program that
// registers none (the sluice command checking a plan for workers that run
// another program): there an unknown name is a Note and the later steps go
// unchecked. Validate does not repeat Parse's lints but includes those that
// rendering finds.
func Validate(p *Plan, vars Vars) Lints { return validate(p, vars, &funcs) }

// validate is Validate with the functions of reg.
func validate(p *Plan, vars Vars, reg *registry) Lints {
	if p.root == nil {
		return nil
	}
	q, err := p.Render(vars)
	var lints Lints
	if err != nil {
		var ls Lints
		if !errors.As(err, &ls) {
			return Lints{{File: p.File, Msg: err.Error()}}
		}
		lints = append(lints, ls...)
	}
	c := &compiler{decoder: &decoder{p: q}, remoteTimeout: 20 * time.Second, notes: true, funcs: reg}
	c.build()
	lints = append(lints, c.lints...)
	// Parse's lints come back from Render; report them once, from Parse,
	// and drop rendering errors where Parse already found a problem (an
	// unknown param is both a lint and an execution error).
	var out Lints
	for _, l := range lints.Sort() {
		if !slices.ContainsFunc(p.lints, func(x Lint) bool { return x == l || x.Pos == l.Pos && x.Path == l.Path }) {
			out = append(out, l)
		}
	}
	return out
}

// Check parses and validates a plan: every lint Parse and Validate find.
func Check(filename string, data []byte, vars Vars) (*Plan, Lints) {
	p, lints := Parse(filename, data)
	lints = append(lints, Validate(p, vars)...)
	return p, lints.Sort()
}

// compiler builds a rendered plan's dataset step by step.
type compiler struct {
	*decoder
	d             *dataset.Dataset // nil once nothing more can be checked
	remoteTimeout time.Duration    // 0: wait as long as the read takes
	// notes makes a remote source that cannot be read, for a reason other
	// than not existing, a Note rather than an error (Validate, which may
	// run where the data is out of reach; a run cannot go on).
	notes bool
	// poisoned are columns added by a with_column that failed, kept as
	// NULL so later steps can be checked; errors of steps that use them
	// are not reported, since they follow from the first.
	poisoned map[string]bool
	// funcs are the functions map_batches steps may name: the program's
	// (see Register), or a test's.
	funcs *registry
	// dirBy is the column whose values name the write's directories (a
	// split step's), or "".
	dirBy string
}

// uses reports whether a step that mentions these expressions and columns
// uses a poisoned column.
func (c *compiler) uses(exprs []string, cols []string) bool {
	for name := range c.poisoned {
		if slices.Contains(cols, name) {
			return true
		}
		re := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9_])`)
		for _, e := range exprs {
			if re.MatchString(e) {
				return true
			}
		}
	}
	return false
}

func (c *compiler) build() *Job {
	p := c.p
	if p.Read.Format == "" {
		return nil
	}
	c.d = c.read(p.Read)
	for i, s := range p.Steps {
		if c.d == nil {
			return nil
		}
		if s == nil || p.broken[i] {
			// Its lints are reported. A step that keeps the schema as it
			// is can be skipped; after any other, columns are unknown.
			switch s.(type) {
			case *Filter, *Sort, *Limit, *Repartition, *RandomShuffle:
				continue
			}
			return nil
		}
		lookupStep(s.Kind()).compile(c, s)
	}
	if c.d == nil || p.Write.Format == "" {
		return nil
	}
	return c.write()
}

func remote(path string) bool {
	return strings.Contains(path, "://") && !strings.HasPrefix(strings.ToLower(path), "file://")
}

// read opens a source and checks its columns. It returns nil when the
// source cannot be read: an error lint, or a note for a remote source that
// exists or may exist but cannot be read now (see compiler.notes).
func (c *compiler) read(src Source) *dataset.Dataset {
	var opts []dataset.ReadOption
	if src.Format != "parquet" {
		ro := format.ReadOptions{NoHeader: src.Header != nil && !*src.Header, NullValues: src.NullValues,
			InferRows: int(src.InferRows), ReplaceInvalidUTF8: src.ReplaceUTF8}
		if src.Delimiter != "" {
			ro.Delimiter = []rune(src.Delimiter)[0]
		}
		for _, ct := range src.Schema {
			if ro.Types == nil {
				ro.Types = map[string]arrow.DataType{}
			}
			ro.Types[ct.Column], _ = expr.TypeByName(ct.Type)
		}
		opts = append(opts, dataset.WithReadOptions(ro))
	}
	if len(src.PartitionTypes) > 0 {
		types := map[string]string{}
		for _, ct := range src.PartitionTypes {
			types[ct.Column] = ct.Type
		}
		opts = append(opts, dataset.PartitionTypes(types))
	}
	pathNode := get(src.node, src.Format)
	pathKey := join(src.path, src.Format)
	d, err := c.open(src.Format, src.Path, opts)
	if err == nil {
		err = d.Err()
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "dataset: ")
		if c.notes && remote(src.Path) && !notFound(err) {
			c.lints = append(c.lints, Lint{File: c.p.File, Pos: nodePos(pathNode), Path: pathKey, Severity: Note,
				Msg: "the source could not be read, so its columns and the steps' expressions were not checked: " + msg})
		} else {
			c.errorf(pathNode, pathKey, "%s", msg)
		}
		return nil
	}
	if len(src.Columns) > 0 {
		cols := get(src.node, "columns")
		if !c.haveColumns(d, src.Columns, func(i int) *yaml.Node { return item(cols, i) }, func(i int) string { return index(join(src.path, "columns"), i) }) {
			return nil
		}
		next := d.Select(src.Columns...)
		if err := next.Err(); err != nil {
			c.fail(err, cols, join(src.path, "columns"))
			return nil
		}
		d = next
	}
	return d
}

// notFound reports whether a read's err says that the source does not
// exist (no such file, object or bucket, or a glob matching nothing), as
// opposed to one that could not be reached or read.
func notFound(err error) bool {
	if errors.Is(err, storage.ErrNotExist) || errors.Is(err, fs.ErrNotExist) {
		return true
	}
	// dataset reports a match of no files without a sentinel error.
	return strings.Contains(err.Error(), ": no files match ")
}

// open is dataset.Read, bounded by remoteTimeout for remote paths (the
// dataset API takes no context yet; a read that times out finishes in the
// background).
func (c *compiler) open(formatName, path string, opts []dataset.ReadOption) (*dataset.Dataset, error) {
	if c.remoteTimeout == 0 || !remote(path) {
		return dataset.Read(formatName, path, opts...), nil
	}
	ch := make(chan *dataset.Dataset, 1)
	go func() { ch <- dataset.Read(formatName, path, opts...) }()
	t := time.NewTimer(c.remoteTimeout)
	defer t.Stop()
	select {
	case d := <-ch:
		return d, nil
	case <-t.C:
		return nil, fmt.Errorf("no answer from %s in %s", path, c.remoteTimeout)
	}
}

// haveColumns reports, with a lint at each, the names that d lacks.
func (c *compiler) haveColumns(d *dataset.Dataset, names []string, node func(int) *yaml.Node, path func(int) string) bool {
	s, err := d.Schema()
	if err != nil {
		return false
	}
	ok := true
	for i, name := range names {
		if len(s.FieldIndices(name)) == 0 {
			c.errorf(node(i), path(i), "%s", unknownColumn(name, s))
			ok = false
		}
	}
	return ok
}

func unknownColumn(name string, s *arrow.Schema) string {
	have := columnNames(s)
	if sg := didyoumean.Suggest(name, have); sg != "" {
		return fmt.Sprintf("unknown column %q%s", name, sg)
	}
	return fmt.Sprintf("unknown column %q (have: %s)", name, strings.Join(have, ", "))
}

// fail reports a dataset error at n.
func (c *compiler) fail(err error, n *yaml.Node, path string) {
	var ee *expr.Error
	if errors.As(err, &ee) {
		c.errorf(n, path, "expr: %s", ee.Msg)
		return
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "dataset: "); ok {
		msg = rest
		if in := errors.Unwrap(err); in != nil {
			msg = in.Error()
		}
	}
	c.errorf(n, path, "%s", msg)
}

// failExpr reports a dataset error about the expression in scalar n, at
// the character the expression error points to.
func (c *compiler) failExpr(err error, n *yaml.Node, path string) {
	var ee *expr.Error
	if errors.As(err, &ee) && ee.Pos.IsValid() {
		msg := ee.Msg
		if errors.Is(err, expr.ErrUnknownColumn) && !strings.Contains(msg, "did you mean") {
			if s, err := c.d.Schema(); err == nil {
				msg += " (have: " + strings.Join(columnNames(s), ", ") + ")"
			}
		}
		c.errorAt(c.p.posAt(n, exprIndex(n.Value, ee.Pos.Line, ee.Pos.Col)), path, "expr: %s", msg)
		return
	}
	c.fail(err, n, path)
}

func columnNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// columnsText is "name type, ..." for messages.
func columnsText(s *arrow.Schema) string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name + " " + f.Type.String()
	}
	return strings.Join(out, ", ")
}

// then keeps next when it built, else reports its error with report
// unless the step uses a poisoned column (see compiler.poisoned).
func (c *compiler) then(s Step, next *dataset.Dataset, report func(error)) bool {
	if err := next.Err(); err != nil {
		if exprs, cols := refs(s); !c.uses(exprs, cols) {
			report(err)
		}
		return false
	}
	c.d = next
	return true
}

// refs are the expressions and column names a step mentions.
func refs(s Step) (exprs, cols []string) {
	switch s := s.(type) {
	case *Filter:
		return []string{s.Expr}, nil
	case *WithColumn:
		return []string{s.Expr}, nil
	case *Select:
		return nil, s.Columns
	case *Drop:
		return nil, s.Columns
	case *Rename:
		return nil, slices.Collect(maps.Keys(s.Renames))
	case *Repartition:
		return nil, s.Keys
	case *Sort:
		for _, k := range s.Keys {
			cols = append(cols, k.Column)
		}
	case *GroupBy:
		cols = slices.Clone(s.Keys)
		for _, a := range s.Aggs {
			cols = append(cols, a.Column)
		}
	case *Join:
		cols = slices.Concat(s.On, s.LeftOn)
	case *Explode:
		cols = []string{s.Column}
	case *Window:
		cols = slices.Clone(s.PartitionBy)
		for _, k := range s.OrderBy {
			cols = append(cols, k.Column)
		}
		for _, f := range s.Fns {
			cols = append(cols, f.Column)
		}
	case *Infer:
		cols = []string{s.Input}
	}
	return exprs, cols
}

func seqItems(n *yaml.Node, path string) (func(int) *yaml.Node, func(int) string) {
	return func(i int) *yaml.Node { return item(n, i) }, func(i int) string { return index(path, i) }
}

func compileFilter(c *compiler, s Step) {
	f := s.(*Filter)
	// A failed filter leaves the schema as it was: go on checking.
	c.then(s, c.d.Filter(f.Expr), func(err error) { c.failExpr(err, f.node, f.path) })
}

func compileSelect(c *compiler, s Step) {
	st := s.(*Select)
	node, path := seqItems(st.node, st.path)
	if !c.haveColumns(c.d, st.Columns, node, path) {
		return // go on with every column: later steps see no false misses
	}
	c.then(s, c.d.Select(st.Columns...), func(err error) { c.fail(err, st.node, st.path) })
}

func compileWithColumn(c *compiler, s Step) {
	w := s.(*WithColumn)
	exprNode := get(w.node, "expr")
	if !c.then(s, c.d.WithColumn(w.Name, w.Expr), func(err error) { c.failExpr(err, exprNode, join(w.path, "expr")) }) {
		// Keep the column so later steps that use it can be checked, and
		// keep quiet about their errors.
		if next := c.d.WithColumn(w.Name, "NULL"); next.Err() == nil {
			c.d = next
			if c.poisoned == nil {
				c.poisoned = map[string]bool{}
			}
			c.poisoned[w.Name] = true
		}
	}
}

func compileDrop(c *compiler, s Step) {
	st := s.(*Drop)
	node, path := seqItems(st.node, st.path)
	if !c.haveColumns(c.d, st.Columns, node, path) {
		return
	}
	c.then(s, c.d.Drop(st.Columns...), func(err error) { c.fail(err, st.node, st.path) })
}

func compileRename(c *compiler, s Step) {
	r := s.(*Rename)
	var olds []string
	for i := 0; i+1 < len(r.node.Content); i += 2 {
		olds = append(olds, deref(r.node.Content[i]).Value)
	}
	if !c.haveColumns(c.d, olds, func(i int) *yaml.Node { return deref(r.node.Content[2*i]) },
		func(i int) string { return join(r.path, olds[i]) }) {
		c.d = nil // later names are unknown
		return
	}
	if !c.then(s, c.d.Rename(r.Renames), func(err error) { c.fail(err, r.node, r.path) }) {
		c.d = nil
	}
}

func compileLimit(c *compiler, s Step) {
	l := s.(*Limit)
	c.then(s, c.d.Limit(l.N), func(err error) { c.fail(err, l.node, l.path) })
}

func compileRepartition(c *compiler, s Step) {
	r := s.(*Repartition)
	node, path := seqItems(get(r.node, "keys"), join(r.path, "keys"))
	if !c.haveColumns(c.d, r.Keys, node, path) {
		return
	}
	c.then(s, c.d.Repartition(r.N, r.Keys...), func(err error) { c.fail(err, r.node, r.path) })
}

func compileShuffle(c *compiler, s Step) {
	r := s.(*RandomShuffle)
	c.then(s, c.d.RandomShuffle(r.Seed), func(err error) { c.fail(err, r.node, r.path) })
}

func compileSort(c *compiler, s Step) {
	st := s.(*Sort)
	names := make([]string, len(st.Keys))
	keys := make([]dataset.SortKey, len(st.Keys))
	for i, k := range st.Keys {
		names[i] = k.Column
		keys[i] = dataset.Asc(k.Column)
		if k.Descending {
			keys[i] = dataset.Desc(k.Column)
		}
	}
	ok := c.haveColumns(c.d, names, func(i int) *yaml.Node {
		if it := item(st.node, i); it.Kind == yaml.MappingNode {
			return get(it, "column")
		}
		return item(st.node, i)
	}, func(i int) string {
		if item(st.node, i).Kind == yaml.MappingNode {
			return join(index(st.path, i), "column")
		}
		return index(st.path, i)
	})
	if ok {
		c.then(s, c.d.Sort(keys...), func(err error) { c.fail(err, st.node, st.path) })
	}
}

func compileGroupBy(c *compiler, s Step) {
	g := s.(*GroupBy)
	node, path := seqItems(get(g.node, "keys"), join(g.path, "keys"))
	ok := c.haveColumns(c.d, g.Keys, node, path)
	aggsNode, aggsPath := get(g.node, "aggs"), join(g.path, "aggs")
	var aggs []dataset.Agg
	for i, a := range g.Aggs {
		if a.Column != "" && !c.haveColumns(c.d, []string{a.Column}, func(int) *yaml.Node { return get(item(aggsNode, i), "column") },
			func(int) string { return join(index(aggsPath, i), "column") }) {
			ok = false
			continue
		}
		agg, err := dataset.AggByName(a.Fn, a.Column)
		if a.Fn == "quantile" && a.Q != nil {
			agg, err = dataset.Quantile(a.Column, *a.Q), nil
			if !(*a.Q >= 0 && *a.Q <= 1) {
				err = fmt.Errorf("quantile: q %v is not between 0 and 1", *a.Q)
			}
		}
		if err != nil {
			c.errorf(item(aggsNode, i), index(aggsPath, i), "%v", err)
			ok = false
			continue
		}
		if a.As != "" {
			agg = agg.As(a.As)
		}
		aggs = append(aggs, agg)
	}
	if !ok || !c.then(s, c.d.GroupBy(g.Keys...).Agg(aggs...), func(err error) { c.fail(err, g.node, g.path) }) {
		c.d = nil // the output columns are unknown
	}
}

func compileUnion(c *compiler, s Step) {
	u := s.(*Union)
	var others []*dataset.Dataset
	want, _ := c.d.Schema()
	for i, src := range u.Sources {
		o := c.read(src)
		if o == nil {
			continue
		}
		if have, err := o.Schema(); err == nil && !have.Equal(want) {
			c.errorf(item(u.node, i), index(u.path, i), "the columns differ from those before the union: have %s; want %s",
				columnsText(have), columnsText(want))
			continue
		}
		others = append(others, o)
	}
	if len(others) == len(u.Sources) {
		c.then(s, c.d.Union(others...), func(err error) { c.fail(err, u.node, u.path) })
	}
}

func compileJoin(c *compiler, s Step) {
	j := s.(*Join)
	right := c.read(j.Read)
	if right == nil {
		c.d = nil
		return
	}
	check := func(d *dataset.Dataset, key string, cols []string) bool {
		node, path := seqItems(get(j.node, key), join(j.path, key))
		return c.haveColumns(d, cols, node, path)
	}
	ok := check(c.d, "on", j.On) && check(right, "on", j.On)
	ok = check(c.d, "left_on", j.LeftOn) && ok
	ok = check(right, "right_on", j.RightOn) && ok
	opts := dataset.JoinOptions{On: j.On, LeftOn: j.LeftOn, RightOn: j.RightOn, How: j.How}
	joined := func() *dataset.Dataset {
		switch j.How {
		case "semi":
			return c.d.SemiJoin(right, opts)
		case "anti":
			return c.d.AntiJoin(right, opts)
		}
		return c.d.Join(right, opts)
	}
	if !ok || !c.then(s, joined(), func(err error) { c.fail(err, j.node, j.path) }) {
		c.d = nil
	}
}

func (c *compiler) write() *Job {
	w := c.p.Write
	if slices.ContainsFunc(c.p.lints, func(l Lint) bool { return l.Path == "write" || strings.HasPrefix(l.Path, "write.") }) {
		return nil // reported; the write node would repeat them
	}
	node, path := seqItems(get(w.node, "partition_by"), "write.partition_by")
	if !c.haveColumns(c.d, w.PartitionBy, node, path) {
		return nil
	}
	opts := dataset.WriteOptions{
		Mode:        dataset.WriteMode(w.Mode),
		PartitionBy: w.PartitionBy,
		DirBy:       c.dirBy,
		RowsPerFile: w.RowsPerFile,
		Format:      format.WriteOptions{Compression: w.Compression, CSVHeader: w.Header},
	}
	sink, err := c.d.WriteNode(w.Format, w.Path, opts)
	if err != nil {
		c.fail(err, get(w.node, w.Format), join("write", w.Format))
		return nil
	}
	return &Job{Plan: c.p, Dataset: c.d, Sink: sink}
}
