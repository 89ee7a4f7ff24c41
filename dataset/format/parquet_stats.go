package format

import (
	"math"
	"time"

	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// rowGroupStats returns the stats lookup a PruneFunc receives for one row
// group. leaves maps a column name (a top-level name, or a dotted path for
// a nested leaf) to its leaf index.
func rowGroupStats(md *metadata.FileMetaData, rg int, leaves map[string]int) func(string) (ColumnStats, bool) {
	rgmd := md.RowGroup(rg)
	return func(column string) (st ColumnStats, ok bool) {
		leaf, ok := leaves[column]
		if !ok {
			return ColumnStats{}, false
		}
		// Statistics decode bytes from the footer; a corrupt footer must
		// read as "no statistics", which keeps the row group.
		defer func() {
			if recover() != nil {
				st, ok = ColumnStats{}, false
			}
		}()
		cc, err := rgmd.ColumnChunk(leaf)
		if err != nil {
			return ColumnStats{}, false
		}
		ts, err := cc.Statistics()
		if err != nil || ts == nil {
			return ColumnStats{}, false
		}
		st = ColumnStats{NullCount: -1, RowCount: rgmd.NumRows()}
		if ts.HasNullCount() {
			st.NullCount = ts.NullCount()
		}
		if ts.HasMinMax() {
			st.Min, st.Max, st.HasMinMax = statMinMax(ts, md.Schema.Column(leaf))
		}
		return st, true
	}
}

// leafNames maps every leaf column's dotted path to its index.
func leafNames(md *metadata.FileMetaData) map[string]int {
	m := make(map[string]int, md.Schema.NumColumns())
	for i := 0; i < md.Schema.NumColumns(); i++ {
		m[md.Schema.Column(i).ColumnPath().String()] = i
	}
	return m
}

// statMinMax converts typed statistics to the Go values ColumnStats documents.
func statMinMax(ts metadata.TypedStatistics, col *schema.Column) (lo, hi any, ok bool) {
	lt := col.LogicalType()
	ct := col.ConvertedType()
	switch s := ts.(type) {
	case *metadata.BooleanStatistics:
		return s.Min(), s.Max(), true
	case *metadata.Float32Statistics:
		return float64(s.Min()), float64(s.Max()), true
	case *metadata.Float64Statistics:
		return s.Min(), s.Max(), true
	case *metadata.ByteArrayStatistics:
		return string(s.Min()), string(s.Max()), true
	case *metadata.Int32Statistics:
		switch t := lt.(type) {
		case schema.DateLogicalType:
			return dayTime(s.Min()), dayTime(s.Max()), true
		case schema.IntLogicalType:
			if !t.IsSigned() {
				return int64(uint32(s.Min())), int64(uint32(s.Max())), true
			}
			return int64(s.Min()), int64(s.Max()), true
		case schema.DecimalLogicalType, schema.TimeLogicalType:
			return nil, nil, false
		}
		switch ct {
		case schema.ConvertedTypes.Date:
			return dayTime(s.Min()), dayTime(s.Max()), true
		case schema.ConvertedTypes.Uint8, schema.ConvertedTypes.Uint16, schema.ConvertedTypes.Uint32:
			return int64(uint32(s.Min())), int64(uint32(s.Max())), true
		case schema.ConvertedTypes.None, schema.ConvertedTypes.Int8, schema.ConvertedTypes.Int16, schema.ConvertedTypes.Int32:
			return int64(s.Min()), int64(s.Max()), true
		}
		if lt == nil || lt.Equals(schema.NoLogicalType{}) {
			return int64(s.Min()), int64(s.Max()), true
		}
		return nil, nil, false
	case *metadata.Int64Statistics:
		switch t := lt.(type) {
		case schema.TimestampLogicalType:
			return unitTime(s.Min(), t.TimeUnit()), unitTime(s.Max(), t.TimeUnit()), true
		case schema.IntLogicalType:
			if !t.IsSigned() {
				lo, hi := uint64(s.Min()), uint64(s.Max())
				if hi > math.MaxInt64 {
					return nil, nil, false
				}
				return int64(lo), int64(hi), true
			}
			return s.Min(), s.Max(), true
		case schema.DecimalLogicalType, schema.TimeLogicalType:
			return nil, nil, false
		}
		switch ct {
		case schema.ConvertedTypes.TimestampMillis:
			return unitTime(s.Min(), schema.TimeUnitMillis), unitTime(s.Max(), schema.TimeUnitMillis), true
		case schema.ConvertedTypes.TimestampMicros:
			return unitTime(s.Min(), schema.TimeUnitMicros), unitTime(s.Max(), schema.TimeUnitMicros), true
		case schema.ConvertedTypes.Uint64:
			lo, hi := uint64(s.Min()), uint64(s.Max())
			if hi > math.MaxInt64 {
				return nil, nil, false
			}
			return int64(lo), int64(hi), true
		case schema.ConvertedTypes.None, schema.ConvertedTypes.Int64:
			return s.Min(), s.Max(), true
		}
		if lt == nil || lt.Equals(schema.NoLogicalType{}) {
			return s.Min(), s.Max(), true
		}
		return nil, nil, false
	}
	return nil, nil, false
}

func dayTime(days int32) time.Time { return time.Unix(int64(days)*86400, 0).UTC() }

func unitTime(v int64, u schema.TimeUnitType) time.Time {
	switch u {
	case schema.TimeUnitMillis:
		return time.UnixMilli(v).UTC()
	case schema.TimeUnitMicros:
		return time.UnixMicro(v).UTC()
	default:
		return time.Unix(0, v).UTC()
	}
}
