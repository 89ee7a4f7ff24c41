package expr

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

type datePart int

const (
	partYear datePart = iota
	partMonth
	partDay
	partHour
)

// datePartKernel extracts a field of a date or timestamp as int64. Time
// zone aware timestamps are read in their zone; naive ones as UTC.
func datePartKernel(t arrow.DataType, part datePart) (kernel, error) {
	fromDays := func(days int64) int64 {
		y, m, d := civilFromDays(days)
		switch part {
		case partYear:
			return y
		case partMonth:
			return int64(m)
		case partDay:
			return int64(d)
		}
		return 0
	}
	switch t := t.(type) {
	case *arrow.Date32Type:
		return mapFixed(typInt64, func(d int32) (int64, bool) { return fromDays(int64(d)), true }), nil
	case *arrow.TimestampType:
		loc, err := loadLocation(t.TimeZone)
		if err != nil {
			return nil, err
		}
		per := unitsPerSecond(t.Unit)
		if loc != nil {
			return mapFixed(typInt64, func(v int64) (int64, bool) {
				tm := unitToTime(v, t.Unit).In(loc)
				switch part {
				case partYear:
					return int64(tm.Year()), true
				case partMonth:
					return int64(tm.Month()), true
				case partDay:
					return int64(tm.Day()), true
				}
				return int64(tm.Hour()), true
			}), nil
		}
		return mapFixed(typInt64, func(v int64) (int64, bool) {
			sec := floorDiv(v, per)
			days := floorDiv(sec, secondsPerDay)
			if part == partHour {
				return (sec - days*secondsPerDay) / 3600, true
			}
			return fromDays(days), true
		}), nil
	}
	return nil, fmt.Errorf("cannot extract a date part from %s", typeName(t))
}
