package expr

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Bound is an expression resolved against a schema and ready to evaluate.
// A Bound is immutable and safe for concurrent use by multiple goroutines.
type Bound struct {
	src  Expr
	root node
}

// Type is the Arrow type of the result: boolean for predicates. A bare
// column reference has the column's type, dictionary-encoded or not; any
// operator over a dictionary column sees the decoded values.
func (b *Bound) Type() arrow.DataType { return b.root.typ() }

// Nullable reports whether the result may contain NULLs. It is
// conservative: false guarantees no NULLs.
func (b *Bound) Nullable() bool { return b.root.nullable() }

// Expr returns the syntax tree b was bound from.
func (b *Bound) Expr() Expr { return b.src }

// String is the canonical text of the expression (see Expr).
func (b *Bound) String() string { return b.src.String() }

// Columns returns the distinct column names the expression reads, in order
// of first use. Parts folded away at bind time (x in FALSE AND x > 1) are
// not read and not listed.
func (b *Bound) Columns() []string {
	var cols []string
	seen := map[string]bool{}
	var visit func(n node)
	visit = func(n node) {
		if c, ok := n.(*colNode); ok && !seen[c.name] {
			seen[c.name] = true
			cols = append(cols, c.name)
		}
		for _, k := range n.children() {
			visit(k)
		}
	}
	visit(b.root)
	return cols
}

// RequireBool returns an ErrType error unless b is a predicate: boolean,
// or a NULL literal.
func (b *Bound) RequireBool() error {
	t := b.root.typ()
	if isBool(t) || isNullType(t) {
		return nil
	}
	return errorf(ErrType, b.src.Pos(), "predicate must be boolean, but %s", describe(b.root)+" is not")
}

// Eval evaluates b over rec and returns an array of rec.NumRows() rows,
// allocated from mem; the caller releases it. Constant results are
// materialized to full length. Columns are looked up in rec by name and
// must have the types they were bound with.
func (b *Bound) Eval(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.Array, error) {
	d, ec, err := b.eval(ctx, mem, rec)
	if err != nil {
		return nil, err
	}
	defer d.Release()
	return datumArray(ec.mem, d, ec.n)
}

func (b *Bound) eval(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (compute.Datum, *evalCtx, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	n := 0
	if rec != nil {
		n = int(rec.NumRows())
	}
	ec := newEvalCtx(ctx, mem, rec, n)
	d, err := b.root.eval(ec)
	return d, ec, err
}

// Filter returns the rows of rec for which b is TRUE (NULL and FALSE rows
// are dropped). b must be boolean. The caller releases the result, which
// may share buffers with rec.
func (b *Bound) Filter(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if err := b.RequireBool(); err != nil {
		return nil, err
	}
	d, ec, err := b.eval(ctx, mem, rec)
	if err != nil {
		return nil, err
	}
	defer d.Release()
	switch d := d.(type) {
	case *compute.ScalarDatum:
		if d.Value.IsValid() && isBool(d.Value.DataType()) && boolScalar(d.Value) {
			rec.Retain()
			return rec, nil
		}
		return rec.NewSlice(0, 0), nil
	case *compute.ArrayDatum:
		data := d.Value
		if nullN(data) == 0 {
			switch bitutil.CountSetBits(data.Buffers()[1].Bytes(), data.Offset(), data.Len()) {
			case data.Len():
				rec.Retain()
				return rec, nil
			case 0:
				return rec.NewSlice(0, 0), nil
			}
		}
		mask := d.MakeArray()
		defer mask.Release()
		out, err := compute.FilterRecordBatch(ec.ctx, rec, mask, &compute.FilterOptions{NullSelection: compute.SelectionDropNulls})
		if err != nil {
			return nil, wrapEval(b.src.Pos(), "filter", err)
		}
		return out, nil
	}
	return nil, errorf(ErrEval, b.src.Pos(), "unexpected result kind %s", d.Kind())
}

// Conjuncts splits a predicate into its top-level AND terms, so that each
// can be pushed down separately; a predicate that is not an AND is its own
// only conjunct. Their conjunction is equivalent to b.
func Conjuncts(b *Bound) []*Bound {
	var out []*Bound
	var split func(n node)
	split = func(n node) {
		if f, ok := n.(*fnNode); ok && f.kind == kindAnd {
			split(f.args[0])
			split(f.args[1])
			return
		}
		out = append(out, &Bound{src: n.source(), root: n})
	}
	split(b.root)
	if len(out) == 1 {
		// Keep the original text: folding may have simplified the tree.
		return []*Bound{b}
	}
	return out
}

// And combines predicates with AND, the inverse of Conjuncts. It returns
// nil for no predicates. The predicates must be bound to compatible
// schemas; they are not re-checked.
func And(preds ...*Bound) *Bound {
	if len(preds) == 0 {
		return nil
	}
	asBool := func(n node) node {
		if isNullConst(n) {
			return &constNode{sc: scalar.MakeNullScalar(typBool), src: n.source()}
		}
		return n
	}
	acc := preds[0]
	for _, p := range preds[1:] {
		src := &Binary{Op: OpAnd, X: acc.src, Y: p.src}
		x, y := asBool(acc.root), asBool(p.root)
		acc = &Bound{src: src, root: &fnNode{
			label: "AND", kind: kindAnd, args: []node{x, y}, dt: typBool,
			null: x.nullable() || y.nullable(), src: src, run: callCompute("and_kleene", nil),
		}}
	}
	return acc
}

func boolScalar(sc interface{ IsValid() bool }) bool {
	b, ok := sc.(*scalar.Boolean)
	return ok && b.Valid && b.Value
}
