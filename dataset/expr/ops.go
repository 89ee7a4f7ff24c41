package expr

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// divideFloat is x / y over float64 with NULL where y is 0, as in DuckDB.
// (Arrow's divide kernels fail the whole batch instead.)
func divideFloat(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return binaryNullOnZero(ec, args, typFloat64, func(a, b float64) float64 { return a / b })
}

// modInt is x % y over int64, with the sign of x as in SQL, and NULL where
// y is 0.
func modInt(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return binaryNullOnZero(ec, args, typInt64, func(a, b int64) int64 {
		if b == -1 { // MinInt64 % -1 would trap on some hardware
			return 0
		}
		return a % b
	})
}

func modFloat(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return binaryNullOnZero(ec, args, typFloat64, math.Mod)
}

func binaryNullOnZero[T int64 | float64](ec *evalCtx, args []compute.Datum, dt arrow.DataType, f func(a, b T) T) (compute.Datum, error) {
	n := ec.n
	valid, nulls, allNull := intersectValidity(ec.mem, n, args...)
	if allNull {
		return compute.NewDatum(scalar.MakeNullScalar(dt)), nil
	}
	x, y := newFixedView[T](args[0]), newFixedView[T](args[1])
	outBuf, out := newFixedOut[T](ec.mem, n)
	var bits []byte
	if valid != nil {
		bits = valid.Bytes()
	}
	for i := 0; i < n; i++ {
		b := y.at(i)
		if b == 0 {
			out[i] = 0
			if bits == nil || bitutil.BitIsSet(bits, i) {
				if valid == nil {
					valid, bits = allValid(ec.mem, n)
				}
				bitutil.ClearBit(bits, i)
				nulls++
			}
			continue
		}
		out[i] = f(x.at(i), b)
	}
	return makeDatum(dt, n, nulls, valid, outBuf), nil
}

// allValid allocates a validity bitmap with every bit set.
func allValid(mem memory.Allocator, n int) (*memory.Buffer, []byte) {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(n))))
	b := buf.Bytes()
	for i := range b {
		b[i] = 0xff
	}
	return buf, b
}

// isNullKernel answers IS [NOT] NULL straight from the validity bitmap,
// with a broadcast constant when the input has no nulls. (Arrow's
// is_not_null kernel ignores the offset of sliced input in v18.8.0.)
func isNullKernel(not bool) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		switch a := args[0].(type) {
		case *compute.ScalarDatum:
			return compute.NewDatum(scalar.NewBooleanScalar(a.Value.IsValid() == not)), nil
		case *compute.ArrayDatum:
			d := a.Value
			if d.DataType().ID() == arrow.NULL {
				return compute.NewDatum(scalar.NewBooleanScalar(!not)), nil
			}
			bits, off := validityOf(d)
			if bits == nil {
				return compute.NewDatum(scalar.NewBooleanScalar(not)), nil
			}
			n := d.Len()
			outBuf, out := newBoolOut(ec.mem, n)
			if not {
				bitutil.CopyBitmap(bits, off, n, out, 0)
			} else {
				bitutil.InvertBitmap(bits, off, n, out, 0)
			}
			return makeDatum(typBool, n, 0, nil, outBuf), nil
		}
		return nil, fmt.Errorf("unexpected datum kind %s", args[0].Kind())
	}
}

// inKernel answers x [NOT] IN (set) with SQL semantics: NULL when x is
// NULL, or when x matches nothing and the list holds NULL.
func inKernel(set arrow.Array, hasNull, not bool) kernel {
	small := newSmallSet(set)
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		var in compute.Datum
		var err error
		if small != nil {
			if a, ok := args[0].(*compute.ArrayDatum); ok {
				return small.eval(ec, a.Value, hasNull, not), nil
			}
		}
		in, err = compute.IsIn(ec.ctx, compute.SetOptions{
			ValueSet:     compute.NewDatumWithoutOwning(set),
			NullBehavior: compute.NullMatchingInconclusive,
		}, args[0])
		if err != nil || !not {
			return in, err
		}
		defer in.Release()
		return compute.CallFunction(ec.ctx, "not", nil, in)
	}
}

func betweenKernel(not bool) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		ge, err := compute.CallFunction(ec.ctx, "greater_equal", nil, args[0], args[1])
		if err != nil {
			return nil, err
		}
		defer ge.Release()
		le, err := compute.CallFunction(ec.ctx, "less_equal", nil, args[0], args[2])
		if err != nil {
			return nil, err
		}
		defer le.Release()
		r, err := compute.CallFunction(ec.ctx, "and_kleene", nil, ge, le)
		if err != nil || !not {
			return r, err
		}
		defer r.Release()
		return compute.CallFunction(ec.ctx, "not", nil, r)
	}
}

// decodeDictionary turns a dictionary column into a plain array of its
// value type.
func decodeDictionary(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	a, ok := args[0].(*compute.ArrayDatum)
	if !ok {
		return nil, fmt.Errorf("cannot decode a %s", args[0].Kind())
	}
	arr := a.MakeArray()
	defer arr.Release()
	dict, ok := arr.(*array.Dictionary)
	if !ok {
		return nil, fmt.Errorf("expected a dictionary array, got %s", arr.DataType())
	}
	out, err := compute.TakeArray(ec.ctx, dict.Dictionary(), dict.Indices())
	if err != nil {
		return nil, err
	}
	defer out.Release()
	return compute.NewDatum(out), nil
}

// retype relabels a value with another type of the same layout (date64 as
// timestamp[ms], a timestamp in another time zone) without copying.
func retype(to arrow.DataType) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		switch a := args[0].(type) {
		case *compute.ArrayDatum:
			d := a.Value
			return &compute.ArrayDatum{Value: array.NewData(to, d.Len(), d.Buffers(), nil, nullN(d), d.Offset())}, nil
		case *compute.ScalarDatum:
			if !a.Value.IsValid() {
				return compute.NewDatum(scalar.MakeNullScalar(to)), nil
			}
			v := arrow.GetData[int64](a.Value.(scalar.PrimitiveScalar).Data())[0]
			return compute.NewDatum(scalar.NewTimestampScalar(arrow.Timestamp(v), to)), nil
		}
		return nil, fmt.Errorf("cannot retype a %s", args[0].Kind())
	}
}

// selectable reports whether CASE and coalesce can produce type t.
func selectable(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.NULL, arrow.BOOL, arrow.STRING:
		return true
	}
	_, ok := t.(arrow.FixedWidthDataType)
	return ok && (isNumeric(t) || isTemporal(t))
}

// caseKernel evaluates CASE: args are the nWhen conditions, then the
// values (one per WHEN, plus the ELSE value when hasElse).
func caseKernel(nWhen int, hasElse bool, t arrow.DataType) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		choice, free := scratchInt32(ec.mem, ec.n)
		defer free()
		conds := make([]boolView, nWhen)
		for k := range conds {
			conds[k] = newBoolView(args[k])
		}
		dflt := int32(-1)
		if hasElse {
			dflt = int32(nWhen)
		}
		for i := range choice {
			c := dflt
			for k := range conds {
				if conds[k].isTrue(i) {
					c = int32(k)
					break
				}
			}
			choice[i] = c
		}
		return selectRows(ec, t, choice, args[nWhen:])
	}
}

// coalesceKernel picks, per row, the first argument that is not NULL.
func coalesceKernel(t arrow.DataType) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		choice, free := scratchInt32(ec.mem, ec.n)
		defer free()
		type validity struct {
			bits   []byte // nil: every row valid (or, for scalars, cValid)
			off    int
			cValid bool
			scalar bool
		}
		vs := make([]validity, len(args))
		for k, a := range args {
			switch a := a.(type) {
			case *compute.ScalarDatum:
				vs[k] = validity{scalar: true, cValid: a.Value.IsValid()}
			case *compute.ArrayDatum:
				vs[k].bits, vs[k].off = validityOf(a.Value)
			}
		}
		for i := range choice {
			c := int32(-1)
			for k := range vs {
				v := &vs[k]
				if v.scalar && v.cValid || !v.scalar && (v.bits == nil || bitutil.BitIsSet(v.bits, v.off+i)) {
					c = int32(k)
					break
				}
			}
			choice[i] = c
		}
		return selectRows(ec, t, choice, args)
	}
}

// scratchInt32 borrows n int32s from mem for the duration of a kernel.
func scratchInt32(mem memory.Allocator, n int) ([]int32, func()) {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(n * 4)
	return arrow.GetData[int32](buf.Bytes())[:n], buf.Release
}

// selectRows builds a result whose row i is row i of vals[choice[i]], or
// NULL when choice[i] is -1.
func selectRows(ec *evalCtx, t arrow.DataType, choice []int32, vals []compute.Datum) (compute.Datum, error) {
	n := ec.n
	switch t.ID() {
	case arrow.NULL:
		a := array.MakeArrayOfNull(ec.mem, t, n)
		defer a.Release()
		return compute.NewDatum(a), nil
	case arrow.BOOL:
		views := make([]boolView, len(vals))
		for k, v := range vals {
			views[k] = newBoolView(v)
		}
		outBuf, out := newBoolOut(ec.mem, n)
		vo := validityOut{mem: ec.mem, n: n}
		for i, c := range choice {
			if c < 0 || !views[c].ok(i) {
				vo.setNull(i)
				continue
			}
			if views[c].at(i) {
				bitutil.SetBit(out, i)
			}
		}
		return makeDatum(t, n, vo.nulls, vo.buf, outBuf), nil
	case arrow.STRING:
		views := make([]strView, len(vals))
		size := 0
		for k, v := range vals {
			views[k] = newStrView(v)
			size = max(size, len(views[k].data))
		}
		so := newStrOut(ec.mem, n, size)
		vo := validityOut{mem: ec.mem, n: n}
		for i, c := range choice {
			if c < 0 || !views[c].ok(i) {
				vo.setNull(i)
			} else {
				so.append(views[c].at(i))
			}
			if err := so.end(i); err != nil {
				so.release()
				if vo.buf != nil {
					vo.buf.Release()
				}
				return nil, err
			}
		}
		return so.finish(n, vo.buf, vo.nulls), nil
	}
	fw, ok := t.(arrow.FixedWidthDataType)
	if !ok {
		return nil, fmt.Errorf("cannot select values of type %s", t)
	}
	switch fw.BitWidth() {
	case 8:
		return selectFixed[uint8](ec, t, choice, vals), nil
	case 16:
		return selectFixed[uint16](ec, t, choice, vals), nil
	case 32:
		return selectFixed[uint32](ec, t, choice, vals), nil
	case 64:
		return selectFixed[uint64](ec, t, choice, vals), nil
	}
	return nil, fmt.Errorf("cannot select values of type %s", t)
}

// selectFixed moves values by bit pattern, so one instantiation per width
// serves ints, floats, dates and timestamps alike.
func selectFixed[T uint8 | uint16 | uint32 | uint64](ec *evalCtx, t arrow.DataType, choice []int32, vals []compute.Datum) compute.Datum {
	n := ec.n
	views := make([]fixedView[T], len(vals))
	for k, v := range vals {
		views[k] = newFixedView[T](v)
	}
	outBuf, out := newFixedOut[T](ec.mem, n)
	vo := validityOut{mem: ec.mem, n: n}
	for i, c := range choice {
		if c < 0 || !views[c].ok(i) {
			out[i] = 0
			vo.setNull(i)
			continue
		}
		out[i] = views[c].at(i)
	}
	return makeDatum(t, n, vo.nulls, vo.buf, outBuf)
}

// gatherBool is take(values, indices) for a boolean per-dictionary-value
// result, the common case of a predicate over a dictionary column. Arrow's
// boolean take spends most of its time checking bounds and reading one
// bit at a time through an interface.
func gatherBool(ec *evalCtx, values *array.Boolean, indices arrow.Array) (compute.Datum, error) {
	switch indices.DataType().ID() {
	case arrow.INT8:
		return gatherBoolBy[int8](ec, values, indices)
	case arrow.INT16:
		return gatherBoolBy[int16](ec, values, indices)
	case arrow.INT32:
		return gatherBoolBy[int32](ec, values, indices)
	case arrow.INT64:
		return gatherBoolBy[int64](ec, values, indices)
	case arrow.UINT8:
		return gatherBoolBy[uint8](ec, values, indices)
	case arrow.UINT16:
		return gatherBoolBy[uint16](ec, values, indices)
	case arrow.UINT32:
		return gatherBoolBy[uint32](ec, values, indices)
	case arrow.UINT64:
		return gatherBoolBy[uint64](ec, values, indices)
	}
	return nil, fmt.Errorf("unsupported dictionary index type %s", indices.DataType())
}

func gatherBoolBy[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](ec *evalCtx, values *array.Boolean, indices arrow.Array) (compute.Datum, error) {
	n := indices.Len()
	vd := values.Data()
	vbits, voff := vd.Buffers()[1].Bytes(), vd.Offset()
	vvalid, vvoff := validityOf(vd)
	m := uint64(values.Len())
	// A per-value lookup table: bit 0 the value, bit 1 its validity.
	table := make([]byte, m)
	for k := range table {
		if vvalid == nil || bitutil.BitIsSet(vvalid, vvoff+k) {
			table[k] = 2
			if bitutil.BitIsSet(vbits, voff+k) {
				table[k] |= 1
			}
		}
	}
	idx := arrow.GetValues[T](indices.Data(), 1)
	ivalid, ioff := validityOf(indices.Data())
	outBuf, out := newBoolOut(ec.mem, n)
	vo := validityOut{mem: ec.mem, n: n}
	for i, k := range idx {
		if ivalid != nil && !bitutil.BitIsSet(ivalid, ioff+i) {
			vo.setNull(i)
			continue
		}
		if uint64(k) >= m {
			outBuf.Release()
			if vo.buf != nil {
				vo.buf.Release()
			}
			return nil, fmt.Errorf("dictionary index %d out of range [0, %d)", k, m)
		}
		e := table[k]
		if e&2 == 0 {
			vo.setNull(i)
			continue
		}
		out[i>>3] |= (e & 1) << (i & 7)
	}
	return makeDatum(typBool, n, vo.nulls, vo.buf, outBuf), nil
}
