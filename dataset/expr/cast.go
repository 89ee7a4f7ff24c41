package expr

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// canCast reports whether CAST supports from -> to. from is an operand
// type after value() normalization.
func canCast(from, to arrow.DataType) bool {
	if isNullType(from) || arrow.TypeEqual(from, to) {
		return true
	}
	fc := classOf(from)
	switch classOf(to) {
	case classNumeric, classBool:
		return fc == classNumeric || fc == classString || fc == classBool
	case classString:
		return fc == classNumeric || fc == classString || fc == classBool || fc == classTemporal
	case classTemporal:
		return fc == classString || fc == classTemporal
	}
	return false
}

// castNode converts n to type to. Callers check canCast first, or rely on
// commonType having picked a reachable type.
func castNode(n node, to arrow.DataType) *fnNode {
	return &fnNode{
		label: "CAST to " + typeName(to), kind: kindCast, args: []node{n}, dt: to,
		null: n.nullable(), src: n.source(), run: castKernel(n.typ(), to),
	}
}

func castKernel(from, to arrow.DataType) kernel {
	switch {
	case isNullType(from):
		return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			return compute.NewDatum(scalar.MakeNullScalar(to)), nil
		}
	case to.ID() == arrow.TIMESTAMP:
		tt := to.(*arrow.TimestampType)
		switch from.ID() {
		case arrow.TIMESTAMP:
			ft := from.(*arrow.TimestampType)
			if ft.Unit == tt.Unit {
				return retype(to)
			}
			return mapFixed(to, func(v int64) (int64, bool) { return convertUnit(v, ft.Unit, tt.Unit) })
		case arrow.DATE32:
			per := secondsPerDay * unitsPerSecond(tt.Unit)
			return mapFixed(to, func(d int32) (int64, bool) { return mulChecked(int64(d), per) })
		case arrow.STRING:
			return parseTimestamps(tt)
		}
	case to.ID() == arrow.DATE32:
		switch from.ID() {
		case arrow.TIMESTAMP:
			ft := from.(*arrow.TimestampType)
			per := secondsPerDay * unitsPerSecond(ft.Unit)
			loc, _ := loadLocation(ft.TimeZone)
			if loc == nil {
				return mapFixed(to, func(v int64) (int32, bool) { return int32(floorDiv(v, per)), true })
			}
			return mapFixed(to, func(v int64) (int32, bool) {
				t := unitToTime(v, ft.Unit).In(loc)
				y, m, d := t.Date()
				return int32(daysFromCivil(int64(y), int(m), d)), true
			})
		case arrow.STRING:
			return parseDates
		}
	case to.ID() == arrow.STRING && isTemporal(from):
		return formatTemporal(from)
	case to.ID() == arrow.STRING && (isNumeric(from) || isBool(from)):
		// Arrow's own number-to-string cast leaks builder memory in
		// v18.8.0, and formats large floats in exponent form.
		return formatNumbers(from)
	case isInteger(to) && isFloat(from):
		return castFloatToInt(to)
	}
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		return compute.CastDatum(ec.ctx, args[0], compute.SafeCastOptions(to))
	}
}

// castFloatToInt rounds half away from zero before converting, as
// PostgreSQL and DuckDB do; Arrow's safe cast would reject 2.5 instead.
func castFloatToInt(to arrow.DataType) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		f, err := compute.CastDatum(ec.ctx, args[0], compute.SafeCastOptions(typFloat64))
		if err != nil {
			return nil, err
		}
		defer f.Release()
		var badVal float64
		bad := false
		lo, hi := intRange(to)
		rounded, err := mapFixed(typFloat64, func(v float64) (float64, bool) {
			r := math.Round(v)
			if math.IsNaN(r) || r < lo || r >= hi {
				if !bad {
					bad, badVal = true, v
				}
				return 0, true
			}
			return r, true
		})(ec, []compute.Datum{f})
		if err != nil {
			return nil, err
		}
		defer rounded.Release()
		if bad {
			return nil, fmt.Errorf("float value %v is out of range for %s", badVal, typeName(to))
		}
		return compute.CastDatum(ec.ctx, rounded, compute.SafeCastOptions(to))
	}
}

// intRange is the range [lo, hi) of integer type t as float64s, hi
// exclusive so that 2^63 (the float64 nearest MaxInt64) is out of range.
func intRange(t arrow.DataType) (lo, hi float64) {
	switch t.ID() {
	case arrow.INT8:
		return math.MinInt8, math.MaxInt8 + 1
	case arrow.INT16:
		return math.MinInt16, math.MaxInt16 + 1
	case arrow.INT32:
		return math.MinInt32, math.MaxInt32 + 1
	case arrow.UINT8:
		return 0, math.MaxUint8 + 1
	case arrow.UINT16:
		return 0, math.MaxUint16 + 1
	case arrow.UINT32:
		return 0, math.MaxUint32 + 1
	case arrow.UINT64:
		return 0, 1.8446744073709551616e19
	}
	return -9.223372036854775808e18, 9.223372036854775808e18
}

func mulChecked(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	c := a * b
	if c/b != a {
		return 0, false
	}
	return c, true
}

// convertUnit converts ticks between time units, flooring toward the past
// when going coarser and failing on overflow when going finer.
func convertUnit(v int64, from, to arrow.TimeUnit) (int64, bool) {
	fp, tp := unitsPerSecond(from), unitsPerSecond(to)
	if tp >= fp {
		return mulChecked(v, tp/fp)
	}
	return floorDiv(v, fp/tp), true
}

// mapFixed builds a kernel applying f to each valid value of a
// fixed-width argument. f reports false on overflow, which fails the
// evaluation.
func mapFixed[In, Out fixed](to arrow.DataType, f func(In) (Out, bool)) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		if s, ok := args[0].(*compute.ScalarDatum); ok {
			if !s.Value.IsValid() {
				return compute.NewDatum(scalar.MakeNullScalar(to)), nil
			}
		}
		n := ec.n
		x := newFixedView[In](args[0])
		if x.isConst {
			n = 1
		}
		valid, nulls, _ := intersectValidity(ec.mem, n, args[0])
		outBuf, out := newFixedOut[Out](ec.mem, n)
		for i := 0; i < n; i++ {
			if !x.ok(i) {
				out[i] = 0
				continue
			}
			v, ok := f(x.at(i))
			if !ok {
				outBuf.Release()
				if valid != nil {
					valid.Release()
				}
				return nil, fmt.Errorf("value %v is out of range for %s", x.at(i), typeName(to))
			}
			out[i] = v
		}
		d := makeDatum(to, n, nulls, valid, outBuf)
		if x.isConst {
			return scalarOf(d)
		}
		return d, nil
	}
}

// scalarOf turns a one-row array datum into a scalar datum.
func scalarOf(d compute.Datum) (compute.Datum, error) {
	defer d.Release()
	arr := d.(*compute.ArrayDatum).MakeArray()
	defer arr.Release()
	sc, err := scalar.GetScalar(arr, 0)
	if err != nil {
		return nil, err
	}
	return &compute.ScalarDatum{Value: sc}, nil
}

// parseTimestamps is CAST(string AS timestamp).
func parseTimestamps(to *arrow.TimestampType) kernel {
	per := unitsPerSecond(to.Unit)
	return stringToFixed(to, func(s []byte) (int64, bool) {
		sec, nsec, ok := parseTimestampNanos(string(s))
		if !ok {
			return 0, false
		}
		v, ok := mulChecked(sec, per)
		return v + nsec/(1e9/per), ok
	}, "timestamp")
}

// parseDates is CAST(string AS date); a timestamp string yields its date.
var parseDates = stringToFixed(typDate32, func(s []byte) (int32, bool) {
	sec, _, ok := parseTimestampNanos(string(s))
	return int32(floorDiv(sec, secondsPerDay)), ok
}, "date")

func stringToFixed[Out fixed](to arrow.DataType, f func([]byte) (Out, bool), what string) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		n := ec.n
		x := newStrView(args[0])
		if x.isConst {
			n = 1
		}
		valid, nulls, allNull := intersectValidity(ec.mem, n, args[0])
		if allNull {
			return compute.NewDatum(scalar.MakeNullScalar(to)), nil
		}
		outBuf, out := newFixedOut[Out](ec.mem, n)
		for i := 0; i < n; i++ {
			if !x.ok(i) {
				out[i] = 0
				continue
			}
			v, ok := f(x.at(i))
			if !ok {
				outBuf.Release()
				if valid != nil {
					valid.Release()
				}
				return nil, fmt.Errorf("%s is not a valid %s", quoteString(truncate(string(x.at(i)), 40)), what)
			}
			out[i] = v
		}
		d := makeDatum(to, n, nulls, valid, outBuf)
		if x.isConst {
			return scalarOf(d)
		}
		return d, nil
	}
}

// formatTemporal is CAST(timestamp or date AS string): "YYYY-MM-DD" for
// dates, "YYYY-MM-DD HH:MM:SS[.fraction]" for timestamps, in the column's
// time zone with its offset appended when it has one.
func formatTemporal(from arrow.DataType) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		n := ec.n
		if s, ok := args[0].(*compute.ScalarDatum); ok {
			if !s.Value.IsValid() {
				return compute.NewDatum(scalar.MakeNullScalar(typString)), nil
			}
			n = 1
		}
		valid, nulls, _ := intersectValidity(ec.mem, n, args[0])
		so := newStrOut(ec.mem, n, n*26)
		var loc *time.Location
		layout := "2006-01-02"
		var unit arrow.TimeUnit
		ts, isTs := from.(*arrow.TimestampType)
		if isTs {
			unit = ts.Unit
			layout = "2006-01-02 15:04:05.999999999"
			var err error
			if loc, err = loadLocation(ts.TimeZone); err != nil {
				so.release()
				return nil, err
			}
			if loc != nil {
				layout += "-07:00"
			}
		}
		var t time.Time
		if isTs {
			x := newFixedView[int64](args[0])
			for i := 0; i < n; i++ {
				if x.ok(i) {
					t = unitToTime(x.at(i), unit)
					if loc != nil {
						t = t.In(loc)
					}
					so.reserve(40)
					so.data = t.AppendFormat(so.data, layout)
				}
				if err := so.end(i); err != nil {
					so.release()
					return nil, err
				}
			}
		} else {
			x := newFixedView[int32](args[0])
			for i := 0; i < n; i++ {
				if x.ok(i) {
					so.reserve(16)
					so.data = appendDate(so.data, int64(x.at(i)))
				}
				if err := so.end(i); err != nil {
					so.release()
					return nil, err
				}
			}
		}
		d := so.finish(n, valid, nulls)
		if n == 1 && ec.n != 1 {
			return scalarOf(d)
		}
		return d, nil
	}
}

func appendDate(b []byte, days int64) []byte {
	y, m, d := civilFromDays(days)
	if y >= 0 && y <= 9999 {
		b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	} else {
		b = fmt.Appendf(b, "%d", y)
	}
	return append(b, '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
}

// loadLocation resolves an Arrow time zone: nil for none or UTC, a fixed
// zone for "+HH:MM", otherwise the IANA database.
func loadLocation(tz string) (*time.Location, error) {
	switch tz {
	case "", "UTC", "utc", "Z", "Etc/UTC", "+00:00", "-00:00", "GMT":
		return nil, nil
	}
	if len(tz) == 6 && (tz[0] == '+' || tz[0] == '-') && tz[3] == ':' {
		h, ok1 := digits(tz, 1, 2)
		m, ok2 := digits(tz, 4, 2)
		if ok1 && ok2 {
			off := h*3600 + m*60
			if tz[0] == '-' {
				off = -off
			}
			return time.FixedZone(tz, off), nil
		}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: %v", tz, err)
	}
	return loc, nil
}

// formatNumbers is CAST(number or bool AS string).
func formatNumbers(from arrow.DataType) kernel {
	switch from.ID() {
	case arrow.INT8:
		return formatFixed(func(b []byte, v int8) []byte { return strconv.AppendInt(b, int64(v), 10) })
	case arrow.INT16:
		return formatFixed(func(b []byte, v int16) []byte { return strconv.AppendInt(b, int64(v), 10) })
	case arrow.INT32:
		return formatFixed(func(b []byte, v int32) []byte { return strconv.AppendInt(b, int64(v), 10) })
	case arrow.INT64:
		return formatFixed(func(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) })
	case arrow.UINT8:
		return formatFixed(func(b []byte, v uint8) []byte { return strconv.AppendUint(b, uint64(v), 10) })
	case arrow.UINT16:
		return formatFixed(func(b []byte, v uint16) []byte { return strconv.AppendUint(b, uint64(v), 10) })
	case arrow.UINT32:
		return formatFixed(func(b []byte, v uint32) []byte { return strconv.AppendUint(b, uint64(v), 10) })
	case arrow.UINT64:
		return formatFixed(func(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) })
	case arrow.FLOAT32:
		return formatFixed(func(b []byte, v float32) []byte { return appendFloat(b, float64(v), 32) })
	case arrow.FLOAT64:
		return formatFixed(func(b []byte, v float64) []byte { return appendFloat(b, v, 64) })
	}
	return formatBools
}

// appendFloat writes the shortest text that reads back as v, in plain
// decimal notation for everyday magnitudes (1234567, not 1.234567e+06).
func appendFloat(b []byte, v float64, bits int) []byte {
	if a := math.Abs(v); a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.AppendFloat(b, v, 'f', -1, bits)
	}
	return strconv.AppendFloat(b, v, 'g', -1, bits)
}

func formatFixed[T fixed](f func([]byte, T) []byte) kernel {
	return func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
		return formatRows(ec, args[0], func() func(i int, b []byte) []byte {
			x := newFixedView[T](args[0])
			return func(i int, b []byte) []byte { return f(b, x.at(i)) }
		})
	}
}

func formatBools(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
	return formatRows(ec, args[0], func() func(i int, b []byte) []byte {
		x := newBoolView(args[0])
		return func(i int, b []byte) []byte { return strconv.AppendBool(b, x.at(i)) }
	})
}

// formatRows builds a string array by appending the text of each valid
// row; a scalar argument gives a scalar.
func formatRows(ec *evalCtx, arg compute.Datum, mk func() func(i int, b []byte) []byte) (compute.Datum, error) {
	n := ec.n
	if s, ok := arg.(*compute.ScalarDatum); ok {
		if !s.Value.IsValid() {
			return compute.NewDatum(scalar.MakeNullScalar(typString)), nil
		}
		n = 1
	}
	valid, nulls, _ := intersectValidity(ec.mem, n, arg)
	app := mk()
	so := newStrOut(ec.mem, n, n*8)
	bits := []byte(nil)
	if valid != nil {
		bits = valid.Bytes()
	}
	for i := 0; i < n; i++ {
		if bits == nil || validAt(bits, i) {
			so.reserve(32)
			so.data = app(i, so.data)
		}
		if err := so.end(i); err != nil {
			so.release()
			if valid != nil {
				valid.Release()
			}
			return nil, err
		}
	}
	d := so.finish(n, valid, nulls)
	if _, ok := arg.(*compute.ScalarDatum); ok && ec.n != 1 {
		return scalarOf(d)
	}
	return d, nil
}
