// Package plan holds Sluice's logical plan: the nodes a dataset.Dataset
// builds, the optimizer that rewrites them, and the text Explain prints.
//
// Nodes are immutable once built: the optimizer returns new nodes and never
// edits the ones it was given, so a Dataset can be consumed many times.
// Every node knows its output schema at construction, which is how a type
// error in an expression is reported before anything runs.
//
// This package is unstable: node fields change as the engine grows.
package plan

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/internal/kernel"
)

// Node is one operator of a logical plan.
type Node interface {
	// Schema is the node's output schema.
	Schema() *arrow.Schema
	// Children are the node's inputs, in order.
	Children() []Node
	// Describe is the one-line text Explain prints for the node.
	Describe() string
	// withChildren returns a copy of the node over new inputs.
	withChildren(children []Node) Node
}

// WithChildren returns a copy of n over new inputs, one per child of n, in
// order. n's own fields (expressions, output schema) are kept as they are,
// so each new child must have the schema of the child it replaces; it is
// how an executor swaps a subtree for another source of the same rows.
func WithChildren(n Node, children []Node) Node { return n.withChildren(children) }

// File is one input file of a scan, with the hive partition values its path carries.
type File struct {
	Path      string
	Size      int64
	Partition []PartitionValue
}

// MayMatch reports whether the file's hive partition values may satisfy
// b, a filter over partition columns only (a file it rules out is never
// opened).
func (f File) MayMatch(b *expr.Bound) bool {
	return b.MayMatch(func(c string) (expr.Stats, bool) {
		for _, p := range f.Partition {
			if p.Key == c && p.Null {
				return expr.Stats{NullCount: 1, RowCount: 1}, true
			}
			if p.Key == c {
				return expr.Stats{Min: p.Value, Max: p.Value, HasMinMax: true, RowCount: 1}, true
			}
		}
		return expr.Stats{}, false
	})
}

// PartitionValue is one `key=value` directory of a hive-style path.
// Null marks the directory value __HIVE_DEFAULT_PARTITION__, which Hive,
// Spark and Sluice's writer use for a null (Value is then "").
type PartitionValue struct {
	Key, Value string
	Null       bool `json:",omitempty"`
}

// Scan reads files of one format. Columns, Filters and Limit are set by the
// optimizer's pushdowns; Filters are applied to every row read (and used to
// prune Parquet row groups and hive partitions), Limit stops the scan early.
type Scan struct {
	Format     format.Format
	Root       string // the path or pattern the user gave, for messages
	Files      []File
	FileSchema *arrow.Schema // schema of the files, without partition columns
	PartCols   []string      // hive partition columns, appended after file columns (utf8)
	ReadOpts   format.ReadOptions

	Columns []string      // output columns (nil: all), in this order
	Filters []*expr.Bound // all must hold; bound against FullSchema
	Limit   int64         // -1: none

	schema *arrow.Schema
}

// FullSchema is the schema of file columns followed by partition columns.
func (s *Scan) FullSchema() *arrow.Schema {
	fields := append([]arrow.Field(nil), s.FileSchema.Fields()...)
	for _, c := range s.PartCols {
		fields = append(fields, arrow.Field{Name: c, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

func (s *Scan) Schema() *arrow.Schema {
	if s.schema == nil {
		s.schema = s.FullSchema()
		if s.Columns != nil {
			s.schema = selectFields(s.schema, s.Columns)
		}
	}
	return s.schema
}
func (s *Scan) Children() []Node { return nil }
func (s *Scan) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Scan %s %s (%d files)", s.Format.Name(), s.Root, len(s.Files))
	if s.Columns != nil {
		fmt.Fprintf(&b, " columns=[%s]", strings.Join(s.Columns, ", "))
	}
	for _, f := range s.Filters {
		fmt.Fprintf(&b, " filter=%s", f)
	}
	if s.Limit >= 0 {
		fmt.Fprintf(&b, " limit=%d", s.Limit)
	}
	return b.String()
}
func (s *Scan) withChildren([]Node) Node { c := *s; c.schema = nil; return &c }

// Values is an in-memory source. The node holds a reference to each record.
type Values struct {
	Records []arrow.RecordBatch
	Sch     *arrow.Schema
}

func (v *Values) Schema() *arrow.Schema    { return v.Sch }
func (v *Values) Children() []Node         { return nil }
func (v *Values) withChildren([]Node) Node { return v }
func (v *Values) Describe() string {
	var rows int64
	for _, r := range v.Records {
		rows += r.NumRows()
	}
	return fmt.Sprintf("Values (%d batches, %d rows)", len(v.Records), rows)
}

// Range produces one int64 column "id" with values [0, N).
type Range struct {
	N         int64
	BatchRows int
}

// RangeSchema is the schema of a Range.
var RangeSchema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)

func (r *Range) Schema() *arrow.Schema    { return RangeSchema }
func (r *Range) Children() []Node         { return nil }
func (r *Range) withChildren([]Node) Node { return r }
func (r *Range) Describe() string         { return fmt.Sprintf("Range %d", r.N) }

// Filter keeps the rows for which Pred is TRUE.
type Filter struct {
	Input Node
	Pred  *expr.Bound
}

func (f *Filter) Schema() *arrow.Schema      { return f.Input.Schema() }
func (f *Filter) Children() []Node           { return []Node{f.Input} }
func (f *Filter) withChildren(c []Node) Node { n := *f; n.Input = c[0]; return &n }
func (f *Filter) Describe() string           { return "Filter " + f.Pred.String() }

// Column is one output column of a Project.
type Column struct {
	Name string
	Expr *expr.Bound
}

// Project computes its output columns from expressions over the input. It
// is what Select, WithColumn, Drop and Rename build.
type Project struct {
	Input   Node
	Columns []Column
	schema  *arrow.Schema
}

// NewProject builds a Project and its schema.
func NewProject(input Node, cols []Column) *Project {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.Name, Type: c.Expr.Type(), Nullable: c.Expr.Nullable()}
	}
	return &Project{Input: input, Columns: cols, schema: arrow.NewSchema(fields, nil)}
}

func (p *Project) Schema() *arrow.Schema      { return p.schema }
func (p *Project) Children() []Node           { return []Node{p.Input} }
func (p *Project) withChildren(c []Node) Node { return NewProject(c[0], p.Columns) }
func (p *Project) Describe() string {
	parts := make([]string, len(p.Columns))
	for i, c := range p.Columns {
		s := c.Expr.String()
		if s == quoteIdent(c.Name) || s == c.Name {
			parts[i] = c.Name
		} else {
			parts[i] = s + " AS " + c.Name
		}
	}
	return "Project " + strings.Join(parts, ", ")
}

// IsRename reports whether column i passes an input column through, and which.
func (p *Project) IsRename(i int) (string, bool) {
	cols := p.Columns[i].Expr.Columns()
	if len(cols) == 1 {
		if s := p.Columns[i].Expr.String(); s == cols[0] || s == quoteIdent(cols[0]) {
			return cols[0], true
		}
	}
	return "", false
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// BatchFunc is a user function over one batch. It must not retain rec; it
// returns a new batch that the caller releases.
type BatchFunc func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error)

// MapBatches applies a Go function to batches of BatchRows rows (0: as they come).
type MapBatches struct {
	Input       Node
	Name        string
	Fn          BatchFunc
	Out         *arrow.Schema
	BatchRows   int
	Concurrency int
	// RowLocal is true when the function keeps each row's identity and
	// count, so filters and limits may move across it.
	RowLocal bool
	// GPU asks for a GPU where the cluster has GPU workers.
	GPU bool
	// Builtin marks a map that implements a dataset operator (Sample,
	// Split, Explode): Explain shows its Name alone, not as a user's
	// MapBatches.
	Builtin bool
}

func (m *MapBatches) Schema() *arrow.Schema      { return m.Out }
func (m *MapBatches) Children() []Node           { return []Node{m.Input} }
func (m *MapBatches) withChildren(c []Node) Node { n := *m; n.Input = c[0]; return &n }
func (m *MapBatches) Describe() string {
	s := "MapBatches " + m.Name
	if m.Builtin {
		s = m.Name
	}
	if m.BatchRows > 0 {
		s += fmt.Sprintf(" batch_rows=%d", m.BatchRows)
	}
	if m.Concurrency > 0 {
		s += fmt.Sprintf(" concurrency=%d", m.Concurrency)
	}
	return s
}

// Limit keeps the first N rows.
type Limit struct {
	Input Node
	N     int64
}

func (l *Limit) Schema() *arrow.Schema      { return l.Input.Schema() }
func (l *Limit) Children() []Node           { return []Node{l.Input} }
func (l *Limit) withChildren(c []Node) Node { n := *l; n.Input = c[0]; return &n }
func (l *Limit) Describe() string           { return fmt.Sprintf("Limit %d", l.N) }

// Repartition redistributes rows into N blocks: evenly in order, or by hash of Keys.
type Repartition struct {
	Input Node
	N     int
	Keys  []string
}

func (r *Repartition) Schema() *arrow.Schema      { return r.Input.Schema() }
func (r *Repartition) Children() []Node           { return []Node{r.Input} }
func (r *Repartition) withChildren(c []Node) Node { n := *r; n.Input = c[0]; return &n }
func (r *Repartition) Describe() string {
	if len(r.Keys) > 0 {
		return fmt.Sprintf("Repartition %d by [%s]", r.N, strings.Join(r.Keys, ", "))
	}
	return fmt.Sprintf("Repartition %d", r.N)
}

// Shuffle permutes all rows with a seeded generator.
type Shuffle struct {
	Input Node
	Seed  int64
}

func (s *Shuffle) Schema() *arrow.Schema      { return s.Input.Schema() }
func (s *Shuffle) Children() []Node           { return []Node{s.Input} }
func (s *Shuffle) withChildren(c []Node) Node { n := *s; n.Input = c[0]; return &n }
func (s *Shuffle) Describe() string           { return fmt.Sprintf("RandomShuffle seed=%d", s.Seed) }

// Sort orders all rows by Keys; with Limit >= 0 it keeps only the first Limit rows (top-k).
type Sort struct {
	Input Node
	Keys  []kernel.SortKey
	Limit int64
}

func (s *Sort) Schema() *arrow.Schema      { return s.Input.Schema() }
func (s *Sort) Children() []Node           { return []Node{s.Input} }
func (s *Sort) withChildren(c []Node) Node { n := *s; n.Input = c[0]; return &n }
func (s *Sort) Describe() string {
	keys := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		keys[i] = k.Column
		if k.Descending {
			keys[i] += " DESC"
		}
	}
	if s.Limit >= 0 {
		return fmt.Sprintf("TopK %d by %s", s.Limit, strings.Join(keys, ", "))
	}
	return "Sort by " + strings.Join(keys, ", ")
}

// Aggregate groups by Keys and computes Aggs.
type Aggregate struct {
	Input Node
	Keys  []string
	Aggs  []kernel.Agg
	// Label names the operator the Aggregate implements ("Distinct
	// [a, b]"), for Explain; "": a GroupBy.
	Label  string
	schema *arrow.Schema
}

// NewAggregate checks the keys and aggregates against the input schema.
func NewAggregate(input Node, keys []string, aggs []kernel.Agg) (*Aggregate, error) {
	h, err := kernel.NewHashAgg(memory.NewGoAllocator(), input.Schema(), keys, aggs)
	if err != nil {
		return nil, err
	}
	defer h.Release()
	return &Aggregate{Input: input, Keys: keys, Aggs: aggs, schema: h.OutputSchema()}, nil
}

func (a *Aggregate) Schema() *arrow.Schema { return a.schema }
func (a *Aggregate) Children() []Node      { return []Node{a.Input} }
func (a *Aggregate) withChildren(c []Node) Node {
	n := *a
	n.Input = c[0]
	return &n
}
func (a *Aggregate) Describe() string {
	aggs := make([]string, len(a.Aggs))
	for i, g := range a.Aggs {
		aggs[i] = fmt.Sprintf("%s(%s) AS %s", g.Func, g.Column, g.As)
	}
	return labelled(a.Label, fmt.Sprintf("Aggregate keys=[%s] %s", strings.Join(a.Keys, ", "), strings.Join(aggs, ", ")))
}

// labelled is what a node built for another operator describes itself
// as: that operator, then what it is made of.
func labelled(label, node string) string {
	if label == "" {
		return node
	}
	return label + " (" + node + ")"
}

// Union concatenates inputs of equal schemas.
type Union struct {
	Inputs []Node
}

func (u *Union) Schema() *arrow.Schema      { return u.Inputs[0].Schema() }
func (u *Union) Children() []Node           { return u.Inputs }
func (u *Union) withChildren(c []Node) Node { return &Union{Inputs: c} }
func (u *Union) Describe() string           { return fmt.Sprintf("Union (%d inputs)", len(u.Inputs)) }

// Join is a hash join: the right input is built into a table, the left probes it.
type Join struct {
	Left, Right         Node
	LeftKeys, RightKeys []string
	Kind                kernel.JoinKind
	// Label names the operator the Join implements ("SemiJoin on [k]"),
	// for Explain; "": a Join.
	Label  string
	schema *arrow.Schema
}

// NewJoin checks the keys and computes the output schema.
func NewJoin(left, right Node, leftKeys, rightKeys []string, kind kernel.JoinKind) (*Join, error) {
	j, err := kernel.NewHashJoin(memory.NewGoAllocator(), left.Schema(), right.Schema(), leftKeys, rightKeys, kind)
	if err != nil {
		return nil, err
	}
	defer j.Release()
	return &Join{Left: left, Right: right, LeftKeys: leftKeys, RightKeys: rightKeys, Kind: kind, schema: j.OutputSchema()}, nil
}

func (j *Join) Schema() *arrow.Schema { return j.schema }
func (j *Join) Children() []Node      { return []Node{j.Left, j.Right} }
func (j *Join) withChildren(c []Node) Node {
	n := *j
	n.Left, n.Right = c[0], c[1]
	return &n
}
func (j *Join) Describe() string {
	kind := "inner"
	if j.Kind == kernel.Left {
		kind = "left"
	}
	return labelled(j.Label, fmt.Sprintf("Join %s on [%s] = [%s]", kind, strings.Join(j.LeftKeys, ", "), strings.Join(j.RightKeys, ", ")))
}

// WriteMode says what a write does when the destination already has files.
type WriteMode string

// The write modes.
const (
	ModeOverwrite WriteMode = "overwrite"
	ModeError     WriteMode = "error"
	ModeAppend    WriteMode = "append"
)

// Write is a sink: it writes its input as files under Path and publishes
// them only when the whole job succeeds.
type Write struct {
	Input       Node
	Format      string // parquet, csv, jsonl
	Path        string
	Mode        WriteMode
	PartitionBy []string
	// DirBy is a string column whose value names a directory under Path,
	// bare (Path/train/), above PartitionBy's key=value ones; "": none.
	DirBy       string
	RowsPerFile int64 // 0: one file per writer
	Options     format.WriteOptions
}

func (w *Write) Schema() *arrow.Schema      { return w.Input.Schema() }
func (w *Write) Children() []Node           { return []Node{w.Input} }
func (w *Write) withChildren(c []Node) Node { n := *w; n.Input = c[0]; return &n }
func (w *Write) Describe() string {
	s := fmt.Sprintf("Write %s %s mode=%s", w.Format, w.Path, w.Mode)
	if len(w.PartitionBy) > 0 {
		s += " partition_by=[" + strings.Join(w.PartitionBy, ", ") + "]"
	}
	if w.DirBy != "" {
		s += " dir_by=" + w.DirBy
	}
	return s
}

func selectFields(s *arrow.Schema, cols []string) *arrow.Schema {
	fields := make([]arrow.Field, 0, len(cols))
	for _, c := range cols {
		if i := s.FieldIndices(c); len(i) > 0 {
			fields = append(fields, s.Field(i[0]))
		}
	}
	return arrow.NewSchema(fields, nil)
}

// Format prints a plan tree, one node a line, children indented.
func Format(n Node) string {
	var b strings.Builder
	var walk func(n Node, depth int)
	walk = func(n Node, depth int) {
		fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), n.Describe())
		for _, c := range n.Children() {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}
