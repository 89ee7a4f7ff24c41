package expr

import (
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Stats summarizes one column of a row group or file, for MayMatch.
//
// Min and Max hold values in the column's domain, when HasMinMax is set:
//   - integer and float columns: any Go integer or float type;
//   - string columns: string or []byte (byte-wise order, as Parquet);
//   - bool columns: bool;
//   - timestamp columns: time.Time, or int64 / arrow.Timestamp counted in
//     the column's unit;
//   - date columns: time.Time, arrow.Date32 or int32 days since the epoch.
//
// A Min or Max of another type makes MayMatch answer true.
//
// NullCount and RowCount are used only when RowCount > 0; NullCount < 0
// means unknown. When RowCount > 0 and NullCount >= 0, NullCount must be
// exact: a zero NullCount lets MayMatch rule out "x IS NULL".
type Stats struct {
	Min, Max            any
	NullCount, RowCount int64
	HasMinMax           bool
}

// MayMatch reports whether the predicate could be TRUE for some row of a
// row group or file whose columns are summarized by stats (which returns
// false for columns without statistics). It is conservative: true means
// "maybe", false means "certainly no row matches". Only AND, OR, NOT,
// comparisons of a column with a literal, IS [NOT] NULL, IN and BETWEEN
// prune; anything else answers true.
func (b *Bound) MayMatch(stats func(column string) (Stats, bool)) bool {
	if isNullConst(b.root) {
		return false
	}
	if !isBool(b.root.typ()) {
		return true
	}
	p := pruner{stats: stats}
	return p.may(b.root, true)
}

type pruner struct {
	stats func(string) (Stats, bool)
}

// may reports whether n could evaluate to want (TRUE or FALSE) for some
// row. NULL is neither, which is what makes NOT and the comparisons below
// sound under three-valued logic.
func (p pruner) may(n node, want bool) bool {
	if c, ok := n.(*constNode); ok {
		return boolScalar(c.sc) == want && c.sc.IsValid()
	}
	f, ok := n.(*fnNode)
	if !ok {
		return true
	}
	switch f.kind {
	case kindAnd:
		if want {
			return p.may(f.args[0], true) && p.may(f.args[1], true)
		}
		return p.may(f.args[0], false) || p.may(f.args[1], false)
	case kindOr:
		if want {
			return p.may(f.args[0], true) || p.may(f.args[1], true)
		}
		return p.may(f.args[0], false) && p.may(f.args[1], false)
	case kindNot:
		return p.may(f.args[0], !want)
	case kindIsNull:
		return p.mayIsNull(f, want)
	case kindCmp:
		return p.mayCompare(f, want)
	case kindIn:
		return p.mayIn(f, want)
	case kindBetween:
		return p.mayBetween(f, want)
	}
	return true
}

// column finds the column under n, looking through conversions that keep
// order (widening numbers, changing time units, decoding dictionaries).
func column(n node) (*colNode, bool) {
	for {
		switch x := n.(type) {
		case *colNode:
			return x, true
		case *fnNode:
			if !keepsOrder(x) {
				return nil, false
			}
			n = x.args[0]
		default:
			return nil, false
		}
	}
}

func keepsOrder(f *fnNode) bool {
	if f.kind != kindCast {
		return false
	}
	from := f.args[0].typ()
	switch from.ID() {
	case arrow.DICTIONARY, arrow.LARGE_STRING, arrow.DATE64:
		return true
	}
	fc, tc := classOf(from), classOf(f.dt)
	return fc == tc && (fc == classNumeric || fc == classTemporal)
}

// colStats returns the statistics of the column under n, and whether the
// column is known to hold only NULLs.
func (p pruner) colStats(n node) (c *colNode, st Stats, ok, allNull bool) {
	c, ok = column(n)
	if !ok {
		return nil, Stats{}, false, false
	}
	st, ok = p.stats(c.name)
	if !ok {
		return nil, Stats{}, false, false
	}
	allNull = st.RowCount > 0 && st.NullCount >= 0 && st.NullCount >= st.RowCount
	return c, st, true, allNull
}

func (p pruner) mayIsNull(f *fnNode, want bool) bool {
	_, st, ok, allNull := p.colStats(f.args[0])
	if !ok || st.RowCount <= 0 || st.NullCount < 0 {
		return true
	}
	// wantNull: do we need a NULL row (IS NULL true, IS NOT NULL false)?
	wantNull := want != f.not
	if wantNull {
		return st.NullCount > 0
	}
	return !allNull
}

// bounds returns the column's min and max converted to comparable values.
func bounds(c *colNode, st Stats) (lo, hi cmpValue, ok bool) {
	if !st.HasMinMax {
		return cmpValue{}, cmpValue{}, false
	}
	lo, ok1 := statValue(st.Min, c.dt)
	hi, ok2 := statValue(st.Max, c.dt)
	return lo, hi, ok1 && ok2
}

func (p pruner) mayCompare(f *fnNode, want bool) bool {
	op := f.op
	x, y := f.args[0], f.args[1]
	if isConst(x) && !isConst(y) {
		x, y = y, x
		op = flip(op)
	}
	k, ok := y.(*constNode)
	if !ok {
		return true
	}
	c, st, ok, allNull := p.colStats(x)
	if !ok {
		return true
	}
	if allNull || !k.sc.IsValid() {
		return false // the comparison is NULL on every row
	}
	if !want {
		op = negate(op)
	}
	v, ok := constValue(k.sc)
	lo, hi, ok2 := bounds(c, st)
	if !ok || !ok2 {
		return true
	}
	return rangeMay(op, lo, hi, v)
}

// rangeMay reports whether some value in [lo, hi] may satisfy "value op v".
func rangeMay(op Op, lo, hi, v cmpValue) bool {
	cl, ok1 := compareValues(lo, v)
	ch, ok2 := compareValues(hi, v)
	if !ok1 || !ok2 {
		return true
	}
	switch op {
	case OpEq:
		return cl <= 0 && ch >= 0
	case OpNe:
		return !(cl == 0 && ch == 0)
	case OpLt:
		return cl < 0
	case OpLe:
		return cl <= 0
	case OpGt:
		return ch > 0
	case OpGe:
		return ch >= 0
	}
	return true
}

func flip(op Op) Op {
	switch op {
	case OpLt:
		return OpGt
	case OpLe:
		return OpGe
	case OpGt:
		return OpLt
	case OpGe:
		return OpLe
	}
	return op
}

// negate gives the operator that is TRUE exactly where op is FALSE (on
// non-NULL values).
func negate(op Op) Op {
	switch op {
	case OpEq:
		return OpNe
	case OpNe:
		return OpEq
	case OpLt:
		return OpGe
	case OpLe:
		return OpGt
	case OpGt:
		return OpLe
	case OpGe:
		return OpLt
	}
	return op
}

func (p pruner) mayIn(f *fnNode, want bool) bool {
	c, st, ok, allNull := p.colStats(f.args[0])
	if !ok {
		return true
	}
	if allNull {
		return false
	}
	if f.not {
		want = !want
	}
	lo, hi, ok := bounds(c, st)
	if !want {
		// x IN (...) is FALSE only for a non-NULL x outside the list, and
		// never when the list holds NULL.
		if f.setNull {
			return false
		}
		if !ok {
			return true
		}
		if cmp, ok := compareValues(lo, hi); ok && cmp == 0 {
			for i := 0; i < f.set.Len(); i++ {
				v, ok := setValue(f.set, i)
				if eq, ok2 := compareValues(v, lo); ok && ok2 && eq == 0 {
					return false
				}
			}
		}
		return true
	}
	if !ok {
		return true
	}
	for i := 0; i < f.set.Len(); i++ {
		if f.set.IsNull(i) {
			continue
		}
		v, ok := setValue(f.set, i)
		if !ok || rangeMay(OpEq, lo, hi, v) {
			return true
		}
	}
	return false
}

func setValue(set arrow.Array, i int) (cmpValue, bool) {
	sc, err := scalar.GetScalar(set, i)
	if err != nil {
		return cmpValue{}, false
	}
	return constValue(sc)
}

func (p pruner) mayBetween(f *fnNode, want bool) bool {
	lo, ok1 := f.args[1].(*constNode)
	hi, ok2 := f.args[2].(*constNode)
	if !ok1 || !ok2 {
		return true
	}
	c, st, ok, allNull := p.colStats(f.args[0])
	if !ok {
		return true
	}
	if allNull {
		return false
	}
	if f.not {
		want = !want
	}
	if !lo.sc.IsValid() || !hi.sc.IsValid() {
		// One bound NULL: BETWEEN is NULL or FALSE, never TRUE.
		return !want
	}
	l, okl := constValue(lo.sc)
	h, okh := constValue(hi.sc)
	mn, mx, okb := bounds(c, st)
	if !okl || !okh || !okb {
		return true
	}
	if want {
		return rangeMay(OpGe, mn, mx, l) && rangeMay(OpLe, mn, mx, h)
	}
	return rangeMay(OpLt, mn, mx, l) || rangeMay(OpGt, mn, mx, h)
}

// cmpValue is a statistic or constant normalized for comparison.
type cmpValue struct {
	kind int // 0 invalid, 1 int, 2 float, 3 string, 4 bool, 5 time
	i    int64
	f    float64
	s    string
	t    time.Time
}

const (
	cvInvalid = iota
	cvInt
	cvFloat
	cvString
	cvBool
	cvTime
)

func constValue(sc scalar.Scalar) (cmpValue, bool) {
	if !sc.IsValid() {
		return cmpValue{}, false
	}
	switch sc := sc.(type) {
	case *scalar.Float64:
		return floatValue(sc.Value)
	case *scalar.Float32:
		return floatValue(float64(sc.Value))
	case *scalar.String:
		return cmpValue{kind: cvString, s: sc.String()}, true
	case *scalar.Boolean:
		return cmpValue{kind: cvBool, i: b2i(sc.Value)}, true
	case *scalar.Timestamp:
		return cmpValue{kind: cvTime, t: unitToTime(int64(sc.Value), sc.Type.(*arrow.TimestampType).Unit)}, true
	case *scalar.Date32:
		return cmpValue{kind: cvTime, t: unitToTime(int64(sc.Value)*secondsPerDay, arrow.Second)}, true
	}
	if v, ok := intValue(sc); ok {
		return cmpValue{kind: cvInt, i: v}, true
	}
	if u, ok := sc.(*scalar.Uint64); ok {
		return floatValue(float64(u.Value))
	}
	return cmpValue{}, false
}

func floatValue(f float64) (cmpValue, bool) {
	if math.IsNaN(f) {
		return cmpValue{}, false
	}
	return cmpValue{kind: cvFloat, f: f}, true
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// statValue normalizes a Stats bound for a column of type dt.
func statValue(v any, dt arrow.DataType) (cmpValue, bool) {
	if d, ok := dt.(*arrow.DictionaryType); ok {
		dt = d.ValueType
	}
	switch dt.ID() {
	case arrow.TIMESTAMP, arrow.DATE64:
		unit := arrow.Millisecond
		if ts, ok := dt.(*arrow.TimestampType); ok {
			unit = ts.Unit
		}
		switch v := v.(type) {
		case time.Time:
			return cmpValue{kind: cvTime, t: v}, true
		case int64:
			return cmpValue{kind: cvTime, t: unitToTime(v, unit)}, true
		case arrow.Timestamp:
			return cmpValue{kind: cvTime, t: unitToTime(int64(v), unit)}, true
		}
		return cmpValue{}, false
	case arrow.DATE32:
		switch v := v.(type) {
		case time.Time:
			return cmpValue{kind: cvTime, t: v}, true
		case arrow.Date32:
			return cmpValue{kind: cvTime, t: unitToTime(int64(v)*secondsPerDay, arrow.Second)}, true
		case int32:
			return cmpValue{kind: cvTime, t: unitToTime(int64(v)*secondsPerDay, arrow.Second)}, true
		}
		return cmpValue{}, false
	}
	switch v := v.(type) {
	case int:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case int8:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case int16:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case int32:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case int64:
		return cmpValue{kind: cvInt, i: v}, true
	case uint:
		return uintValue(uint64(v))
	case uint8:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case uint16:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case uint32:
		return cmpValue{kind: cvInt, i: int64(v)}, true
	case uint64:
		return uintValue(v)
	case float32:
		return floatValue(float64(v))
	case float64:
		return floatValue(v)
	case string:
		return cmpValue{kind: cvString, s: v}, true
	case []byte:
		return cmpValue{kind: cvString, s: string(v)}, true
	case bool:
		return cmpValue{kind: cvBool, i: b2i(v)}, true
	}
	return cmpValue{}, false
}

func uintValue(u uint64) (cmpValue, bool) {
	if u <= math.MaxInt64 {
		return cmpValue{kind: cvInt, i: int64(u)}, true
	}
	return floatValue(float64(u))
}

// compareValues orders a and b, reporting false when they are not
// comparable or when comparing them exactly is not possible.
func compareValues(a, b cmpValue) (int, bool) {
	if a.kind == cvInt && b.kind == cvFloat || a.kind == cvFloat && b.kind == cvInt {
		// Compare through float64 only where that is exact.
		af, bf := a.f, b.f
		if a.kind == cvInt {
			if a.i > 1<<53 || a.i < -(1<<53) {
				return 0, false
			}
			af = float64(a.i)
		}
		if b.kind == cvInt {
			if b.i > 1<<53 || b.i < -(1<<53) {
				return 0, false
			}
			bf = float64(b.i)
		}
		return cmp3(af, bf), true
	}
	if a.kind != b.kind || a.kind == cvInvalid {
		return 0, false
	}
	switch a.kind {
	case cvInt, cvBool:
		return cmp3(a.i, b.i), true
	case cvFloat:
		return cmp3(a.f, b.f), true
	case cvString:
		return cmp3(a.s, b.s), true
	case cvTime:
		return a.t.Compare(b.t), true
	}
	return 0, false
}

func cmp3[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
