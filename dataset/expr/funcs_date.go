package expr

import (
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// date_trunc and date_diff work on timestamps as microseconds since the
// epoch in UTC (dates are midnight UTC, zone-aware timestamps their
// instant), as DuckDB does for naive timestamps.

var truncUnits = []string{"second", "minute", "hour", "day", "week", "month", "quarter", "year"}

func init() {
	funcs["date_trunc"] = &funcDef{2, 2, bindDateTrunc}
	funcs["date_diff"] = &funcDef{3, 3, bindDateDiff}
	funcs["datediff"] = funcs["date_diff"]
}

// unitArg is argument i, a string literal naming a unit.
func unitArg(c *Call, args []node, i int) (string, bool, error) {
	u, null, err := literalString(c, args, i, "unit")
	if err != nil || null {
		return "", null, err
	}
	u = strings.TrimSuffix(strings.ToLower(u), "s")
	for _, v := range truncUnits {
		if u == v {
			return u, false, nil
		}
	}
	return "", false, errorf(ErrType, c.Args[i].Pos(), "function %s: unknown unit %s (want %s)", c.Name, quoteString(u), strings.Join(truncUnits, ", "))
}

func temporalArg(c *Call, args []node, i int) (node, error) {
	x, err := argOf(c, args, i, "a timestamp or date", isTemporal, tsMicro)
	if err != nil {
		return nil, err
	}
	return coerce(x, tsMicro)
}

// truncMicros truncates v (µs since the epoch, UTC) to the start of unit;
// weeks start on Monday (ISO, as in PostgreSQL and DuckDB).
func truncMicros(v int64, unit string) int64 {
	const us = int64(time.Second / time.Microsecond)
	per := map[string]int64{"second": us, "minute": 60 * us, "hour": 3600 * us, "day": 86400 * us}
	if p, ok := per[unit]; ok {
		return floorDiv(v, p) * p
	}
	t := time.UnixMicro(v).UTC()
	y, m, d := t.Date()
	switch unit {
	case "week":
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC).UnixMicro()
	case "month":
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	case "quarter":
		return time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	}
	return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
}

// bindDateTrunc is date_trunc('unit', ts): a timestamp[us].
func bindDateTrunc(b *binder, c *Call, args []node) (node, error) {
	unit, null, err := unitArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	x, err := temporalArg(c, args, 1)
	if err != nil {
		return nil, err
	}
	if null {
		return &constNode{sc: scalar.MakeNullScalar(tsMicro), src: c}, nil
	}
	if n := strictNull(c, []node{x}, tsMicro); n != nil {
		return n, nil
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{x}, dt: tsMicro, null: x.nullable(), src: c,
		run: mapFixed(tsMicro, func(v arrow.Timestamp) (arrow.Timestamp, bool) {
			return arrow.Timestamp(truncMicros(int64(v), unit)), true
		})})
}

// bindDateDiff is date_diff('unit', start, end): the number of unit
// boundaries between start and end (negative when end is earlier), as in
// DuckDB: date_diff('day', '2024-01-01 23:00', '2024-01-02 01:00') is 1.
func bindDateDiff(b *binder, c *Call, args []node) (node, error) {
	unit, null, err := unitArg(c, args, 0)
	if err != nil {
		return nil, err
	}
	x, err := temporalArg(c, args, 1)
	if err != nil {
		return nil, err
	}
	y, err := temporalArg(c, args, 2)
	if err != nil {
		return nil, err
	}
	if null {
		return &constNode{sc: scalar.MakeNullScalar(typInt64), src: c}, nil
	}
	if n := strictNull(c, []node{x, y}, typInt64); n != nil {
		return n, nil
	}
	diff := func(a, b int64) int64 {
		ta, tb := time.UnixMicro(truncMicros(a, unit)).UTC(), time.UnixMicro(truncMicros(b, unit)).UTC()
		switch unit {
		case "year":
			return int64(tb.Year() - ta.Year())
		case "quarter", "month":
			n := int64(tb.Year()-ta.Year())*12 + int64(tb.Month()-ta.Month())
			if unit == "quarter" {
				n /= 3
			}
			return n
		case "week":
			return (truncMicros(b, unit) - truncMicros(a, unit)) / (7 * 86400e6)
		}
		per := map[string]int64{"second": 1e6, "minute": 60e6, "hour": 3600e6, "day": 86400e6}[unit]
		return (truncMicros(b, unit) - truncMicros(a, unit)) / per
	}
	return maybeFold(&fnNode{label: c.Name, args: []node{x, y}, dt: typInt64, null: x.nullable() || y.nullable(), src: c,
		run: func(ec *evalCtx, args []compute.Datum) (compute.Datum, error) {
			n := ec.n
			valid, nulls, allNull := intersectValidity(ec.mem, n, args...)
			if allNull {
				return compute.NewDatum(scalar.MakeNullScalar(typInt64)), nil
			}
			a, bv := newFixedView[int64](args[0]), newFixedView[int64](args[1])
			outBuf, out := newFixedOut[int64](ec.mem, n)
			for i := 0; i < n; i++ {
				if a.ok(i) && bv.ok(i) {
					out[i] = diff(a.at(i), bv.at(i))
				}
			}
			return makeDatum(typInt64, n, nulls, valid, outBuf), nil
		}})
}
