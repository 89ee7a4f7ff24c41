package expr

import (
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Interval is an INTERVAL literal: months, days and microseconds, kept
// apart as in PostgreSQL and DuckDB because a month and a day have no fixed
// length. Adding one to a timestamp adds the months first (the day of the
// month clamped to the month's last day: 2024-01-31 + 1 month is
// 2024-02-29), then the days, then the microseconds.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// intervalUnits maps a unit (singular, lower case) to months, days or
// microseconds per unit.
var intervalUnits = map[string]Interval{
	"year": {Months: 12}, "quarter": {Months: 3}, "month": {Months: 1},
	"week": {Days: 7}, "day": {Days: 1},
	"hour": {Micros: 3600e6}, "minute": {Micros: 60e6}, "second": {Micros: 1e6},
	"millisecond": {Micros: 1e3}, "microsecond": {Micros: 1},
}

const intervalUnitList = "year, quarter, month, week, day, hour, minute, second, millisecond, microsecond"

// parseInterval reads "N unit [N unit ...]" ("1 day", "-3 hours",
// "1 month 2 days"); unit, when set, is the unit written after the
// string (INTERVAL '2' DAY) and the text is one number.
func parseInterval(text, unit string) (Interval, string) {
	f := strings.Fields(strings.ToLower(text))
	if unit != "" {
		f = append(f, strings.ToLower(unit))
	}
	if len(f) == 0 || len(f)%2 != 0 {
		return Interval{}, "want 'N unit [N unit ...]', as '1 day' or '2 hours 30 minutes'"
	}
	var iv Interval
	for i := 0; i < len(f); i += 2 {
		n, err := strconv.ParseInt(f[i], 10, 32)
		if err != nil {
			return Interval{}, strconv.Quote(f[i]) + " is not a whole number"
		}
		u, ok := intervalUnits[strings.TrimSuffix(f[i+1], "s")]
		if !ok {
			return Interval{}, "unknown unit " + strconv.Quote(f[i+1]) + " (want " + intervalUnitList + ")"
		}
		iv.Months += int32(n) * u.Months
		iv.Days += int32(n) * u.Days
		iv.Micros += n * u.Micros
	}
	return iv, ""
}

// String is the interval as an INTERVAL literal, each part in the largest
// unit that holds it exactly.
func (iv Interval) String() string {
	var parts []string
	add := func(n int64, unit string) {
		parts = append(parts, strconv.FormatInt(n, 10)+" "+unit)
		if n != 1 && n != -1 {
			parts[len(parts)-1] += "s"
		}
	}
	if iv.Months != 0 {
		add(int64(iv.Months), "month")
	}
	if iv.Days != 0 {
		add(int64(iv.Days), "day")
	}
	if us := iv.Micros; us != 0 || len(parts) == 0 {
		for _, u := range []string{"hour", "minute", "second", "millisecond", "microsecond"} {
			if per := intervalUnits[u].Micros; us%per == 0 {
				add(us/per, u)
				break
			}
		}
	}
	return "INTERVAL '" + strings.Join(parts, " ") + "'"
}

func (iv Interval) neg() Interval { return Interval{-iv.Months, -iv.Days, -iv.Micros} }

var typInterval = arrow.FixedWidthTypes.MonthDayNanoInterval

func isInterval(dt arrow.DataType) bool { return dt.ID() == arrow.INTERVAL_MONTH_DAY_NANO }

func intervalScalar(iv Interval) scalar.Scalar {
	return scalar.NewMonthDayNanoIntervalScalar(arrow.MonthDayNanoInterval{Months: iv.Months, Days: iv.Days, Nanoseconds: iv.Micros * 1000})
}

// addInterval is v (µs since the epoch, UTC) plus iv.
func addInterval(v int64, iv Interval) int64 {
	if iv.Months != 0 {
		t := time.UnixMicro(v).UTC()
		y, m, d := t.Date()
		mm := int(m) - 1 + int(iv.Months)
		y += mm / 12
		if mm %= 12; mm < 0 {
			mm += 12
			y--
		}
		// The 0th day of the next month is the last day of this one.
		if last := time.Date(y, time.Month(mm+2), 0, 0, 0, 0, 0, time.UTC).Day(); d > last {
			d = last
		}
		hh, mi, ss := t.Clock()
		v = time.Date(y, time.Month(mm+1), d, hh, mi, ss, t.Nanosecond(), time.UTC).UnixMicro()
	}
	return v + int64(iv.Days)*86400e6 + iv.Micros
}

// bindIntervalArith binds timestamp ± INTERVAL, INTERVAL + timestamp and
// the same with dates; the result is a timestamp[us], as in DuckDB.
func (b *binder) bindIntervalArith(e *Binary, x, y node) (node, error) {
	ts, iv := x, y
	if isInterval(x.typ()) {
		ts, iv = y, x
	}
	switch {
	case e.Op != OpAdd && e.Op != OpSub, e.Op == OpSub && iv == x:
		return nil, errorf(ErrType, e.OpPos, "cannot apply %q to %s and %s: an INTERVAL can be added to a timestamp or date, or subtracted from one", e.Op.String(), describe(x), describe(y))
	case isInterval(ts.typ()):
		return nil, errorf(ErrType, e.OpPos, "arithmetic on two intervals is not supported: add each to the timestamp")
	case !isTemporal(ts.typ()) && !isNullConst(ts):
		return nil, errorf(ErrType, e.OpPos, "cannot apply %q to %s and %s: an INTERVAL can be added to a timestamp or date only", e.Op.String(), describe(x), describe(y))
	}
	c, ok := iv.(*constNode)
	if !ok || !c.sc.IsValid() {
		return nil, errorf(ErrType, e.OpPos, "the interval of %q must be an INTERVAL literal", e.Op.String())
	}
	v := c.sc.(*scalar.MonthDayNanoInterval).Value
	d := Interval{Months: v.Months, Days: v.Days, Micros: v.Nanoseconds / 1000}
	if e.Op == OpSub {
		d = d.neg()
	}
	if isNullConst(ts) {
		return &constNode{sc: scalar.MakeNullScalar(tsMicro), src: e}, nil
	}
	t, err := coerce(ts, tsMicro)
	if err != nil {
		return nil, err
	}
	return maybeFold(&fnNode{label: strconv.Quote(e.Op.String()), args: []node{t}, dt: tsMicro, null: t.nullable(), src: e,
		run: mapFixed(tsMicro, func(v arrow.Timestamp) (arrow.Timestamp, bool) {
			return arrow.Timestamp(addInterval(int64(v), d)), true
		})})
}
