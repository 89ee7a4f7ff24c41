package expr

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

var (
	typBool    = arrow.FixedWidthTypes.Boolean
	typInt64   = arrow.PrimitiveTypes.Int64
	typFloat64 = arrow.PrimitiveTypes.Float64
	typString  = arrow.BinaryTypes.String
	typDate32  = arrow.FixedWidthTypes.Date32
	typNull    = arrow.Null
)

func isInteger(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func isFloat(dt arrow.DataType) bool {
	return dt.ID() == arrow.FLOAT32 || dt.ID() == arrow.FLOAT64
}

func isNumeric(dt arrow.DataType) bool { return isInteger(dt) || isFloat(dt) }

func isString(dt arrow.DataType) bool { return dt.ID() == arrow.STRING }

func isBool(dt arrow.DataType) bool { return dt.ID() == arrow.BOOL }

func isTemporal(dt arrow.DataType) bool {
	return dt.ID() == arrow.TIMESTAMP || dt.ID() == arrow.DATE32
}

func isNullType(dt arrow.DataType) bool { return dt.ID() == arrow.NULL }

// typeName renders dt for messages, in the vocabulary of the language
// ("string", not Arrow's "utf8").
func typeName(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.STRING:
		return "string"
	case arrow.LARGE_STRING:
		return "large_string"
	case arrow.DICTIONARY:
		return fmt.Sprintf("dictionary<%s>", typeName(dt.(*arrow.DictionaryType).ValueType))
	case arrow.NULL:
		return "null"
	case arrow.DATE32:
		return "date"
	case arrow.INTERVAL_MONTH_DAY_NANO:
		return "interval"
	case arrow.LIST:
		return "list<" + typeName(dt.(*arrow.ListType).Elem()) + ">"
	}
	return dt.String()
}

// typeClass groups types that may be compared or combined with each other.
type typeClass int

const (
	classOther typeClass = iota
	classNull
	classNumeric
	classString
	classBool
	classTemporal
)

func classOf(dt arrow.DataType) typeClass {
	switch {
	case isNullType(dt):
		return classNull
	case isNumeric(dt):
		return classNumeric
	case isString(dt):
		return classString
	case isBool(dt):
		return classBool
	case isTemporal(dt):
		return classTemporal
	}
	return classOther
}

// fitsInt reports whether v is representable in integer type dt.
func fitsInt(v int64, dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8:
		return v >= -1<<7 && v < 1<<7
	case arrow.INT16:
		return v >= -1<<15 && v < 1<<15
	case arrow.INT32:
		return v >= -1<<31 && v < 1<<31
	case arrow.INT64:
		return true
	case arrow.UINT8:
		return v >= 0 && v < 1<<8
	case arrow.UINT16:
		return v >= 0 && v < 1<<16
	case arrow.UINT32:
		return v >= 0 && v < 1<<32
	case arrow.UINT64:
		return v >= 0
	}
	return false
}
