package expr

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// node is a bound, typed expression. eval returns a datum that the caller
// owns and must release: an array of ec.n rows, or a scalar standing for
// ec.n equal rows.
type node interface {
	typ() arrow.DataType
	nullable() bool
	source() Expr
	children() []node
	eval(ec *evalCtx) (compute.Datum, error)
}

// evalCtx carries one evaluation over one record batch.
type evalCtx struct {
	ctx context.Context // carries mem for the compute kernels
	mem memory.Allocator
	rec arrow.RecordBatch
	n   int
}

func newEvalCtx(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, n int) *evalCtx {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &evalCtx{ctx: compute.WithAllocator(ctx, mem), mem: mem, rec: rec, n: n}
}

// colNode reads a column of the input batch, found by name so that a
// Bound can run over any batch whose schema has the column with the same
// type (a projection of the bound schema, for instance).
type colNode struct {
	name string
	dt   arrow.DataType
	null bool
	src  Expr
}

func (n *colNode) typ() arrow.DataType { return n.dt }
func (n *colNode) nullable() bool      { return n.null }
func (n *colNode) source() Expr        { return n.src }
func (n *colNode) children() []node    { return nil }

func (n *colNode) eval(ec *evalCtx) (compute.Datum, error) {
	if ec.rec == nil {
		return nil, errorf(ErrEval, n.src.Pos(), "column %q referenced without an input batch", n.name)
	}
	idx := ec.rec.Schema().FieldIndices(n.name)
	if len(idx) != 1 {
		if len(idx) == 0 {
			return nil, errorf(ErrUnknownColumn, n.src.Pos(), "column %q is not in the batch", n.name)
		}
		return nil, errorf(ErrUnknownColumn, n.src.Pos(), "column %q is ambiguous: the batch has %d columns of that name", n.name, len(idx))
	}
	col := ec.rec.Column(idx[0])
	if !arrow.TypeEqual(col.DataType(), n.dt) {
		return nil, errorf(ErrType, n.src.Pos(), "column %q is %s in the batch but was bound as %s", n.name, typeName(col.DataType()), typeName(n.dt))
	}
	return compute.NewDatum(col), nil
}

// constNode is a literal or a folded constant subexpression.
type constNode struct {
	sc  scalar.Scalar
	src Expr
}

func (n *constNode) typ() arrow.DataType { return n.sc.DataType() }
func (n *constNode) nullable() bool      { return !n.sc.IsValid() }
func (n *constNode) source() Expr        { return n.src }
func (n *constNode) children() []node    { return nil }

func (n *constNode) eval(*evalCtx) (compute.Datum, error) { return compute.NewDatum(n.sc), nil }

func isConst(n node) bool { _, ok := n.(*constNode); return ok }

func isNullConst(n node) bool {
	c, ok := n.(*constNode)
	return ok && !c.sc.IsValid()
}

// kernel computes a node's result from its evaluated arguments. It must
// not release args.
type kernel func(ec *evalCtx, args []compute.Datum) (compute.Datum, error)

type nodeKind int

const (
	kindOther nodeKind = iota
	kindAnd
	kindOr
	kindNot
	kindCmp
	kindIsNull
	kindIn
	kindBetween
	kindCast
)

// fnNode is every operator and function: arguments, a result type and the
// kernel that computes it. kind and the fields after it describe the
// operator to the pruning logic in MayMatch.
type fnNode struct {
	label string // names the operation in evaluation errors
	args  []node
	dt    arrow.DataType
	null  bool
	src   Expr
	run   kernel

	kind nodeKind
	op   Op   // kindCmp
	not  bool // kindIsNull, kindIn, kindBetween
	// kindIn: the value set, and whether it holds NULL.
	set     arrow.Array
	setNull bool

	// overDict, when set, is the index of the one non-constant argument,
	// a dictionary being decoded: the kernel can then run over the
	// dictionary's distinct values instead of every row.
	overDict int
	hasDict  bool
	// lenient marks kernels that may turn a NULL input into a non-NULL
	// output (CASE, coalesce, concat); with IS NULL, AND and OR they
	// cannot run over a dictionary, whose NULL indices stay NULL.
	lenient bool
}

const labelDecode = "decoding dictionary"

func (n *fnNode) typ() arrow.DataType { return n.dt }
func (n *fnNode) nullable() bool      { return n.null }
func (n *fnNode) source() Expr        { return n.src }
func (n *fnNode) children() []node    { return n.args }

func (n *fnNode) eval(ec *evalCtx) (compute.Datum, error) {
	if ec.n == 0 {
		// Empty batches skip the kernels: ours need not handle them, and
		// some of Arrow's leak on them (is_in in v18.8.0).
		a := array.MakeArrayOfNull(ec.mem, n.dt, 0)
		defer a.Release()
		return compute.NewDatum(a), nil
	}
	if n.hasDict {
		if d, ok, err := n.evalOverDictionary(ec); ok || err != nil {
			return d, err
		}
	}
	var buf [4]compute.Datum
	args := buf[:0]
	defer func() { releaseAll(args) }()
	for _, a := range n.args {
		d, err := a.eval(ec)
		if err != nil {
			return nil, err
		}
		args = append(args, d)
	}
	out, err := n.run(ec, args)
	if err != nil {
		return nil, wrapEval(n.src.Pos(), n.label, err)
	}
	return out, nil
}

// evalOverDictionary runs the kernel over the dictionary of the argument
// being decoded and gathers the results by index: a filter on a
// dictionary-encoded category column then costs a few comparisons plus a
// take, rather than a comparison per row. It declines (ok false) when the
// dictionary is longer than the batch.
func (n *fnNode) evalOverDictionary(ec *evalCtx) (d compute.Datum, ok bool, err error) {
	dec := n.args[n.overDict].(*fnNode)
	col, err := dec.args[0].eval(ec)
	if err != nil {
		return nil, false, err
	}
	defer col.Release()
	cd, isArr := col.(*compute.ArrayDatum)
	if !isArr {
		return nil, false, nil
	}
	arr := cd.MakeArray()
	defer arr.Release()
	dict, isDict := arr.(*array.Dictionary)
	if !isDict || dict.Dictionary().Len() > ec.n {
		return nil, false, nil
	}
	values := dict.Dictionary()
	args := make([]compute.Datum, len(n.args))
	defer func() { releaseAll(args) }()
	for i, a := range n.args {
		if i == n.overDict {
			args[i] = compute.NewDatum(values)
			continue
		}
		if args[i], err = a.eval(ec); err != nil {
			return nil, true, err
		}
	}
	dec2 := *ec
	dec2.n = values.Len()
	var out compute.Datum
	if dec2.n > 0 {
		out, err = n.run(&dec2, args)
	} else {
		empty := array.MakeArrayOfNull(ec.mem, n.dt, 0)
		out = compute.NewDatum(empty)
		empty.Release()
	}
	if err != nil {
		return nil, true, wrapEval(n.src.Pos(), n.label, err)
	}
	defer out.Release()
	perValue, err := datumArray(ec.mem, out, dec2.n)
	if err != nil {
		return nil, true, err
	}
	defer perValue.Release()
	if b, ok := perValue.(*array.Boolean); ok {
		d, err := gatherBool(ec, b, dict.Indices())
		return d, true, err
	}
	taken, err := compute.TakeArray(ec.ctx, perValue, dict.Indices())
	if err != nil {
		return nil, true, wrapEval(n.src.Pos(), n.label, err)
	}
	defer taken.Release()
	return compute.NewDatum(taken), true, nil
}

// fold evaluates a node whose arguments are all constants, once, at bind
// time, and replaces it by a constant.
func fold(n node) (node, error) {
	ec := newEvalCtx(context.Background(), memory.DefaultAllocator, nil, 1)
	d, err := n.eval(ec)
	if err != nil {
		return nil, err
	}
	defer d.Release()
	var sc scalar.Scalar
	switch d := d.(type) {
	case *compute.ScalarDatum:
		sc = d.Value
		if r, ok := sc.(scalar.Releasable); ok {
			r.Retain()
		}
	case *compute.ArrayDatum:
		arr := d.MakeArray()
		defer arr.Release()
		sc, err = scalar.GetScalar(arr, 0)
		if err != nil {
			return nil, wrapEval(n.source().Pos(), "folding constant", err)
		}
	default:
		return nil, fmt.Errorf("expr: unexpected datum kind %s", d.Kind())
	}
	if !arrow.TypeEqual(sc.DataType(), n.typ()) {
		// Kernels on all-null scalars may answer with the null type.
		if !sc.IsValid() {
			sc = scalar.MakeNullScalar(n.typ())
		} else {
			return nil, fmt.Errorf("expr: folding %s produced %s, want %s", n.source(), sc.DataType(), n.typ())
		}
	}
	return &constNode{sc: sc, src: n.source()}, nil
}

// maybeFold folds n when every argument is constant, and otherwise notes
// whether n can run over a dictionary's values.
func maybeFold(n *fnNode) (node, error) {
	nonConst := -1
	for i, a := range n.args {
		if isConst(a) {
			continue
		}
		if nonConst >= 0 {
			return n, nil // two varying arguments
		}
		nonConst = i
	}
	if nonConst < 0 {
		return fold(n)
	}
	strict := !n.lenient && n.kind != kindIsNull && n.kind != kindAnd && n.kind != kindOr
	if d, ok := n.args[nonConst].(*fnNode); ok && strict && d.label == labelDecode && n.label != labelDecode {
		n.overDict, n.hasDict = nonConst, true
	}
	return n, nil
}
