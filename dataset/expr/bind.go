package expr

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Bind resolves the column and function names in e against schema and
// checks types. Subexpressions made only of literals are evaluated once
// here. The result can be evaluated over any batch that has the referenced
// columns with the same types.
func Bind(e Expr, schema *arrow.Schema) (*Bound, error) {
	if e == nil {
		return nil, errorf(ErrSyntax, Pos{}, "nil expression")
	}
	if schema == nil {
		schema = arrow.NewSchema(nil, nil)
	}
	b := &binder{schema: schema}
	n, err := b.bind(e)
	if err != nil {
		return nil, err
	}
	return &Bound{src: e, root: n}, nil
}

// Compile parses src and binds it against schema.
func Compile(src string, schema *arrow.Schema) (*Bound, error) {
	e, err := Parse(src)
	if err != nil {
		return nil, err
	}
	return Bind(e, schema)
}

type binder struct {
	schema *arrow.Schema
	depth  int
}

func (b *binder) bind(e Expr) (node, error) {
	// Programmatic trees are not depth-checked by the parser.
	b.depth++
	defer func() { b.depth-- }()
	if b.depth > 4*maxDepth {
		return nil, errorf(ErrSyntax, e.Pos(), "expression nested too deeply")
	}
	switch e := e.(type) {
	case *Column:
		return b.bindColumn(e)
	case *Literal:
		sc, err := literalScalar(e)
		if err != nil {
			return nil, err
		}
		return &constNode{sc: sc, src: e}, nil
	case *Unary:
		if e.Op == OpNot {
			return b.bindNot(e)
		}
		if e.Op == OpNeg {
			return b.bindNeg(e)
		}
	case *Binary:
		switch {
		case e.Op.isArithmetic():
			return b.bindArith(e)
		case e.Op.isComparison():
			return b.bindCompare(e)
		case e.Op == OpAnd || e.Op == OpOr:
			return b.bindLogic(e)
		}
	case *IsNull:
		return b.bindIsNull(e)
	case *In:
		return b.bindIn(e)
	case *Between:
		return b.bindBetween(e)
	case *Case:
		return b.bindCase(e)
	case *Call:
		return b.bindCall(e)
	case *Cast:
		return b.bindCast(e)
	case nil:
		return nil, errorf(ErrSyntax, Pos{}, "nil expression")
	}
	return nil, errorf(ErrSyntax, e.Pos(), "invalid expression %T (%s)", e, e)
}

func (b *binder) bindColumn(e *Column) (node, error) {
	idx := b.schema.FieldIndices(e.Name)
	switch len(idx) {
	case 0:
		names := make([]string, len(b.schema.Fields()))
		for i, f := range b.schema.Fields() {
			names[i] = f.Name
		}
		return nil, errorf(ErrUnknownColumn, e.NamePos, "unknown column %q%s", e.Name, suggest(e.Name, names))
	case 1:
	default:
		return nil, errorf(ErrUnknownColumn, e.NamePos, "column %q is ambiguous: the schema has %d columns of that name", e.Name, len(idx))
	}
	f := b.schema.Field(idx[0])
	return &colNode{name: e.Name, dt: f.Type, null: f.Nullable, src: e}, nil
}

func literalScalar(e *Literal) (scalar.Scalar, error) {
	switch v := e.Value.(type) {
	case nil:
		return scalar.MakeNullScalar(typNull), nil
	case bool:
		return scalar.NewBooleanScalar(v), nil
	case int64:
		return scalar.NewInt64Scalar(v), nil
	case float64:
		return scalar.NewFloat64Scalar(v), nil
	case string:
		return scalar.NewStringScalar(v), nil
	case arrow.Date32:
		return scalar.NewDate32Scalar(v), nil
	case Interval:
		return intervalScalar(v), nil
	case time.Time:
		if ts, exact := timeToUnit(v, arrow.Microsecond); exact {
			return scalar.NewTimestampScalar(arrow.Timestamp(ts), tsMicro), nil
		}
		ts, exact := timeToUnit(v, arrow.Nanosecond)
		if !exact {
			return nil, errorf(ErrType, e.ValuePos, "timestamp %s is out of range for timestamp[ns]", formatTimestamp(v))
		}
		return scalar.NewTimestampScalar(arrow.Timestamp(ts), &arrow.TimestampType{Unit: arrow.Nanosecond}), nil
	}
	return nil, errorf(ErrType, e.ValuePos, "unsupported literal value %v of type %T", e.Value, e.Value)
}

// value prepares an operand for an operator: dictionary columns are
// decoded, large strings cast to strings and date64 read as timestamp[ms],
// so that kernels see a small set of types.
func (b *binder) value(n node) node {
	switch dt := n.typ(); dt.ID() {
	case arrow.DICTIONARY:
		vt := dt.(*arrow.DictionaryType).ValueType
		return b.value(&fnNode{label: labelDecode, kind: kindCast, args: []node{n}, dt: vt, null: n.nullable(), src: n.source(), run: decodeDictionary})
	case arrow.LARGE_STRING:
		return castNode(n, typString)
	case arrow.DATE64:
		return &fnNode{label: "reading date64", args: []node{n}, dt: &arrow.TimestampType{Unit: arrow.Millisecond}, null: n.nullable(), src: n.source(), run: retype(&arrow.TimestampType{Unit: arrow.Millisecond}), kind: kindCast}
	}
	return n
}

func (b *binder) bindValue(e Expr) (node, error) {
	n, err := b.bind(e)
	if err != nil {
		return nil, err
	}
	return b.value(n), nil
}

// describe renders an operand for messages: its type and where it came
// from.
func describe(n node) string {
	t := typeName(n.typ())
	switch s := n.source().(type) {
	case *Column:
		return t + " " + strconv.Quote(s.Name)
	case *Literal:
		if s.Value == nil {
			return "NULL"
		}
		return t + " literal " + truncate(s.String(), 40)
	}
	return t + " (" + truncate(n.source().String(), 40) + ")"
}

// coerce converts n to type to, folding constants.
func coerce(n node, to arrow.DataType) (node, error) {
	if arrow.TypeEqual(n.typ(), to) {
		return n, nil
	}
	if isNullConst(n) {
		return &constNode{sc: scalar.MakeNullScalar(to), src: n.source()}, nil
	}
	c := castNode(n, to)
	if isConst(n) {
		return fold(c)
	}
	return c, nil
}

// commonType finds the type in which nodes are compared or combined. Null
// literals adapt to the others. Temporal values may be mixed with string
// literals, which are read as timestamps or dates. Integers of one type
// stay in that type when every integer literal fits it; otherwise integers
// widen to int64, and anything with a float to float64.
//
// On failure it returns the index of the first node that does not fit and
// a reason, possibly empty.
func commonType(ns []node) (arrow.DataType, int, string) {
	dom := classNull
	for _, n := range ns {
		if c := classOf(n.typ()); c == classTemporal || (dom == classNull && c != classNull) {
			dom = c
		}
	}
	for i, n := range ns {
		c := classOf(n.typ())
		switch {
		case c == classNull || c == dom && dom != classOther:
		case dom == classTemporal && c == classString && isConst(n):
			if _, _, ok := parseTimestampNanos(n.(*constNode).sc.(*scalar.String).String()); !ok {
				return nil, i, "not a valid timestamp or date"
			}
		default:
			return nil, i, ""
		}
	}
	switch dom {
	case classNull:
		return typNull, -1, ""
	case classString:
		return typString, -1, ""
	case classBool:
		return typBool, -1, ""
	case classNumeric:
		return commonNumeric(ns), -1, ""
	case classTemporal:
		return commonTemporal(ns), -1, ""
	}
	return nil, 0, ""
}

func commonNumeric(ns []node) arrow.DataType {
	var k arrow.DataType
	same := true
	for _, n := range ns {
		t := n.typ()
		if isFloat(t) {
			return typFloat64
		}
		if isInteger(t) && !isConst(n) {
			if k == nil {
				k = t
			} else if !arrow.TypeEqual(k, t) {
				same = false
			}
		}
	}
	if k == nil || !same {
		return typInt64
	}
	for _, n := range ns {
		if c, ok := n.(*constNode); ok && c.sc.IsValid() && isInteger(c.sc.DataType()) {
			v, ok := intValue(c.sc)
			if !ok || !fitsInt(v, k) {
				return typInt64
			}
		}
	}
	return k
}

// commonTemporal picks the type for comparing timestamps and dates. A
// timestamp column keeps its unit and zone when the literals convert to
// it exactly; otherwise the finer unit wins, so no comparison rounds.
// Dates compared with timestamps become timestamps.
func commonTemporal(ns []node) arrow.DataType {
	var base *arrow.TimestampType
	unit := arrow.Second
	anyTs, anyTsConst := false, false
	for _, n := range ns {
		if ts, ok := n.typ().(*arrow.TimestampType); ok && !isConst(n) {
			if base == nil {
				base = ts
			}
			unit = finerUnit(unit, ts.Unit)
			anyTs = true
		}
	}
	for _, n := range ns {
		c, ok := n.(*constNode)
		if !ok || !c.sc.IsValid() {
			continue
		}
		var t time.Time
		switch sc := c.sc.(type) {
		case *scalar.Timestamp:
			t = unitToTime(int64(sc.Value), sc.Type.(*arrow.TimestampType).Unit)
		case *scalar.String:
			s := sc.String()
			if _, ok := parseDate(s); ok {
				continue
			}
			t, _ = parseTimestamp(s)
		default:
			continue
		}
		anyTsConst = true
		if !anyTs {
			// Dates (or nothing) on the other side: compare as
			// timestamp[us], or [ns] when the literal needs it.
			if _, exact := timeToUnit(t, arrow.Microsecond); exact {
				unit = finerUnit(unit, arrow.Microsecond)
			} else {
				unit = arrow.Nanosecond
			}
			continue
		}
		if _, exact := timeToUnit(t, unit); !exact {
			if _, exact := timeToUnit(t, arrow.Microsecond); exact {
				unit = finerUnit(unit, arrow.Microsecond)
			} else {
				unit = arrow.Nanosecond
			}
		}
	}
	switch {
	case base != nil:
		if base.Unit == unit {
			return base
		}
		return &arrow.TimestampType{Unit: unit, TimeZone: base.TimeZone}
	case anyTsConst:
		return &arrow.TimestampType{Unit: unit}
	}
	return typDate32
}

func intValue(sc scalar.Scalar) (int64, bool) {
	switch sc := sc.(type) {
	case *scalar.Int8:
		return int64(sc.Value), true
	case *scalar.Int16:
		return int64(sc.Value), true
	case *scalar.Int32:
		return int64(sc.Value), true
	case *scalar.Int64:
		return sc.Value, true
	case *scalar.Uint8:
		return int64(sc.Value), true
	case *scalar.Uint16:
		return int64(sc.Value), true
	case *scalar.Uint32:
		return int64(sc.Value), true
	case *scalar.Uint64:
		if sc.Value > 1<<63-1 {
			return 0, false
		}
		return int64(sc.Value), true
	}
	return 0, false
}

func (b *binder) bindNeg(e *Unary) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	if isNullConst(x) {
		return &constNode{sc: scalar.MakeNullScalar(typNull), src: e}, nil
	}
	if !isNumeric(x.typ()) {
		return nil, errorf(ErrType, e.OpPos, `cannot apply unary "-" to %s`, describe(x))
	}
	rt := typInt64
	if isFloat(x.typ()) {
		rt = typFloat64
	}
	if x, err = coerce(x, rt); err != nil {
		return nil, err
	}
	return maybeFold(&fnNode{label: `unary "-"`, args: []node{x}, dt: rt, null: x.nullable(), src: e, run: callCompute("negate", nil)})
}

func (b *binder) bindNot(e *Unary) (node, error) {
	x, err := b.bindBool(e.X, "NOT")
	if err != nil {
		return nil, err
	}
	return maybeFold(&fnNode{label: "NOT", kind: kindNot, args: []node{x}, dt: typBool, null: x.nullable(), src: e, run: callCompute("not", nil)})
}

// bindBool binds an operand that must be boolean; NULL becomes a boolean
// NULL.
func (b *binder) bindBool(e Expr, what string) (node, error) {
	x, err := b.bindValue(e)
	if err != nil {
		return nil, err
	}
	if isNullConst(x) {
		return coerce(x, typBool)
	}
	if !isBool(x.typ()) {
		return nil, errorf(ErrType, e.Pos(), "%s requires a boolean operand, got %s", what, describe(x))
	}
	return x, nil
}

func (b *binder) bindArith(e *Binary) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	y, err := b.bindValue(e.Y)
	if err != nil {
		return nil, err
	}
	if isInterval(x.typ()) || isInterval(y.typ()) {
		return b.bindIntervalArith(e, x, y)
	}
	for _, n := range []node{x, y} {
		if !isNumeric(n.typ()) && !isNullConst(n) {
			return nil, errorf(ErrType, e.OpPos, "cannot apply %q to %s and %s", e.Op.String(), describe(x), describe(y))
		}
	}
	rt := typInt64
	if e.Op == OpDiv || isFloat(x.typ()) || isFloat(y.typ()) {
		rt = typFloat64
	}
	if isNullConst(x) || isNullConst(y) {
		return &constNode{sc: scalar.MakeNullScalar(rt), src: e}, nil
	}
	if x, err = coerce(x, rt); err != nil {
		return nil, err
	}
	if y, err = coerce(y, rt); err != nil {
		return nil, err
	}
	n := &fnNode{label: strconv.Quote(e.Op.String()), args: []node{x, y}, dt: rt, null: x.nullable() || y.nullable(), src: e}
	isInt := rt.ID() == arrow.INT64
	switch e.Op {
	case OpAdd:
		n.run = callCompute(pick(isInt, "add", "add_unchecked"), nil)
	case OpSub:
		n.run = callCompute(pick(isInt, "subtract", "subtract_unchecked"), nil)
	case OpMul:
		n.run = callCompute(pick(isInt, "multiply", "multiply_unchecked"), nil)
	case OpDiv:
		n.run = divideFloat
		n.null = n.null || !isNonZeroConst(y)
	case OpMod:
		n.run = pick(isInt, modInt, modFloat)
		n.null = n.null || !isNonZeroConst(y)
	}
	return maybeFold(n)
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

func isNonZeroConst(n node) bool {
	c, ok := n.(*constNode)
	if !ok || !c.sc.IsValid() {
		return false
	}
	switch sc := c.sc.(type) {
	case *scalar.Int64:
		return sc.Value != 0
	case *scalar.Float64:
		return sc.Value != 0
	}
	return false
}

var cmpFuncs = map[Op]string{
	OpEq: "equal", OpNe: "not_equal", OpLt: "less", OpLe: "less_equal", OpGt: "greater", OpGe: "greater_equal",
}

func (b *binder) bindCompare(e *Binary) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	y, err := b.bindValue(e.Y)
	if err != nil {
		return nil, err
	}
	ns := []node{x, y}
	t, bad, why := commonType(ns)
	if bad >= 0 {
		msg := fmt.Sprintf("cannot compare %s with %s using %q", describe(x), describe(y), e.Op.String())
		if why != "" {
			msg += ": " + describe(ns[bad]) + " is " + why
		}
		return nil, &Error{Pos: e.OpPos, Msg: msg, Kind: ErrType}
	}
	if isNullConst(x) || isNullConst(y) {
		return &constNode{sc: scalar.MakeNullScalar(typBool), src: e}, nil
	}
	if x, err = coerce(x, t); err != nil {
		return nil, err
	}
	if y, err = coerce(y, t); err != nil {
		return nil, err
	}
	return maybeFold(&fnNode{
		label: strconv.Quote(e.Op.String()), kind: kindCmp, op: e.Op, args: []node{x, y},
		dt: typBool, null: x.nullable() || y.nullable(), src: e, run: callCompute(cmpFuncs[e.Op], nil),
	})
}

func (b *binder) bindLogic(e *Binary) (node, error) {
	x, err := b.bindBool(e.X, e.Op.String())
	if err != nil {
		return nil, err
	}
	y, err := b.bindBool(e.Y, e.Op.String())
	if err != nil {
		return nil, err
	}
	// absorb is the value that decides the result on its own (FALSE for
	// AND, TRUE for OR); the other boolean constant is the identity.
	absorb := e.Op == OpOr
	for _, pair := range [][2]node{{x, y}, {y, x}} {
		if c, ok := pair[0].(*constNode); ok && c.sc.IsValid() {
			if c.sc.(*scalar.Boolean).Value == absorb {
				return &constNode{sc: scalar.NewBooleanScalar(absorb), src: e}, nil
			}
			return pair[1], nil
		}
	}
	n := &fnNode{label: e.Op.String(), args: []node{x, y}, dt: typBool, null: x.nullable() || y.nullable(), src: e}
	if e.Op == OpAnd {
		n.kind, n.run = kindAnd, callCompute("and_kleene", nil)
	} else {
		n.kind, n.run = kindOr, callCompute("or_kleene", nil)
	}
	return maybeFold(n)
}

func (b *binder) bindIsNull(e *IsNull) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	label := "IS NULL"
	if e.Not {
		label = "IS NOT NULL"
	}
	return maybeFold(&fnNode{label: label, kind: kindIsNull, not: e.Not, args: []node{x}, dt: typBool, src: e, run: isNullKernel(e.Not)})
}

func (b *binder) bindIn(e *In) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	ns := []node{x}
	for _, l := range e.List {
		n, err := b.bind(l)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	t, bad, why := commonType(ns)
	if bad >= 0 {
		other := ns[bad]
		if bad == 0 {
			other = ns[1]
		}
		msg := fmt.Sprintf("cannot compare %s with %s in IN list", describe(x), describe(other))
		if why != "" {
			msg += ": " + describe(other) + " is " + why
		}
		return nil, &Error{Pos: ns[bad].source().Pos(), Msg: msg, Kind: ErrType}
	}
	label := "IN"
	if e.Not {
		label = "NOT IN"
	}
	hasNull := false
	var vals []scalar.Scalar
	for _, n := range ns[1:] {
		if isNullConst(n) {
			hasNull = true
			continue
		}
		c, err := coerce(n, t)
		if err != nil {
			return nil, err
		}
		vals = append(vals, c.(*constNode).sc)
	}
	if isNullConst(x) || len(vals) == 0 {
		// NULL IN (...) and x IN (NULL) are NULL for every row.
		return &constNode{sc: scalar.MakeNullScalar(typBool), src: e}, nil
	}
	if x, err = coerce(x, t); err != nil {
		return nil, err
	}
	set, err := valueSet(t, vals, hasNull)
	if err != nil {
		return nil, errorf(ErrType, e.InPos, "building IN list: %v", err)
	}
	n := &fnNode{
		label: label, kind: kindIn, not: e.Not, args: []node{x}, dt: typBool,
		null: x.nullable() || hasNull, src: e, set: set, setNull: hasNull,
	}
	n.run = inKernel(set, hasNull, e.Not)
	return maybeFold(n)
}

// valueSet builds the array of IN-list values, with a trailing null when
// the list holds NULL. It lives on the Go heap for the Bound's lifetime.
func valueSet(t arrow.DataType, vals []scalar.Scalar, withNull bool) (arrow.Array, error) {
	mem := memory.DefaultAllocator
	arrs := make([]arrow.Array, 0, len(vals)+1)
	defer func() {
		for _, a := range arrs {
			a.Release()
		}
	}()
	for _, v := range vals {
		a, err := scalar.MakeArrayFromScalar(v, 1, mem)
		if err != nil {
			return nil, err
		}
		arrs = append(arrs, a)
	}
	if withNull {
		arrs = append(arrs, array.MakeArrayOfNull(mem, t, 1))
	}
	return array.Concatenate(arrs, mem)
}

func (b *binder) bindBetween(e *Between) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	lo, err := b.bindValue(e.Lo)
	if err != nil {
		return nil, err
	}
	hi, err := b.bindValue(e.Hi)
	if err != nil {
		return nil, err
	}
	ns := []node{x, lo, hi}
	t, bad, why := commonType(ns)
	if bad >= 0 {
		other := ns[bad]
		if bad == 0 {
			other = lo
		}
		msg := fmt.Sprintf("cannot compare %s with %s in BETWEEN", describe(x), describe(other))
		if why != "" {
			msg += ": " + describe(other) + " is " + why
		}
		return nil, &Error{Pos: ns[bad].source().Pos(), Msg: msg, Kind: ErrType}
	}
	if isNullConst(x) || isNullType(t) {
		return &constNode{sc: scalar.MakeNullScalar(typBool), src: e}, nil
	}
	for i := range ns {
		if ns[i], err = coerce(ns[i], t); err != nil {
			return nil, err
		}
	}
	label := "BETWEEN"
	if e.Not {
		label = "NOT BETWEEN"
	}
	return maybeFold(&fnNode{
		label: label, kind: kindBetween, not: e.Not, args: ns, dt: typBool,
		null: ns[0].nullable() || ns[1].nullable() || ns[2].nullable(), src: e, run: betweenKernel(e.Not),
	})
}

func (b *binder) bindCase(e *Case) (node, error) {
	var conds, vals []node
	for _, w := range e.Whens {
		c, err := b.bindBool(w.Cond, "CASE WHEN")
		if err != nil {
			return nil, err
		}
		v, err := b.bindValue(w.Then)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
		vals = append(vals, v)
	}
	if e.Else != nil {
		v, err := b.bindValue(e.Else)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	t, bad, _ := commonType(vals)
	if bad >= 0 {
		other := vals[0]
		if bad == 0 {
			other = vals[1]
		}
		return nil, errorf(ErrType, vals[bad].source().Pos(), "CASE branches have incompatible types: %s and %s", describe(other), describe(vals[bad]))
	}
	if !selectable(t) {
		return nil, errorf(ErrType, e.CasePos, "CASE cannot produce values of type %s", typeName(t))
	}
	for i := range vals {
		var err error
		if vals[i], err = coerce(vals[i], t); err != nil {
			return nil, err
		}
	}
	hasElse := e.Else != nil
	// Drop arms that can never be taken; stop at one always taken.
	var keepC, keepV []node
	for i, c := range conds {
		if cn, ok := c.(*constNode); ok {
			if !cn.sc.IsValid() || !cn.sc.(*scalar.Boolean).Value {
				continue
			}
			if len(keepC) == 0 {
				return vals[i], nil
			}
			// An always-true arm acts as the ELSE of the arms before it.
			keepV = append(keepV, vals[i])
			hasElse = true
			return b.caseNode(e, t, keepC, keepV, hasElse)
		}
		keepC = append(keepC, c)
		keepV = append(keepV, vals[i])
	}
	if hasElse {
		keepV = append(keepV, vals[len(vals)-1])
	}
	if len(keepC) == 0 {
		if hasElse {
			return keepV[0], nil
		}
		return &constNode{sc: scalar.MakeNullScalar(t), src: e}, nil
	}
	return b.caseNode(e, t, keepC, keepV, hasElse)
}

func (b *binder) caseNode(e *Case, t arrow.DataType, conds, vals []node, hasElse bool) (node, error) {
	null := !hasElse
	for _, v := range vals {
		null = null || v.nullable()
	}
	args := append(append([]node{}, conds...), vals...)
	return maybeFold(&fnNode{label: "CASE", lenient: true, args: args, dt: t, null: null, src: e, run: caseKernel(len(conds), hasElse, t)})
}

func (b *binder) bindCast(e *Cast) (node, error) {
	x, err := b.bindValue(e.X)
	if err != nil {
		return nil, err
	}
	to := castTarget(e.Type)
	if to == nil {
		return nil, errorf(ErrSyntax, e.CastPos, "unknown type %q", e.Type)
	}
	if !canCast(x.typ(), to) {
		return nil, errorf(ErrType, e.CastPos, "cannot cast %s to %s", describe(x), e.Type)
	}
	if arrow.TypeEqual(x.typ(), to) {
		return x, nil
	}
	if isNullConst(x) {
		return &constNode{sc: scalar.MakeNullScalar(to), src: e}, nil
	}
	n := castNode(x, to)
	n.src = e
	return maybeFold(n)
}

func callCompute(name string, opts compute.FunctionOptions) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		return compute.CallFunction(ec.ctx, name, opts, args...)
	}
}
