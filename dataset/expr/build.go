package expr

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Col returns a reference to the named column, for building expressions
// in code: &Binary{Op: OpGt, X: Col("price"), Y: Lit(50)}. Nodes built
// this way have no source position; their errors read "expr: message".
func Col(name string) *Column { return &Column{Name: name} }

// Lit returns a literal for v: nil, bool, any Go integer (as int64; a
// uint64 above MaxInt64 is kept and rejected by Bind), float32 or float64,
// string, time.Time (a TIMESTAMP) or arrow.Date32 (a DATE).
func Lit(v any) *Literal {
	switch x := v.(type) {
	case int:
		v = int64(x)
	case int8:
		v = int64(x)
	case int16:
		v = int64(x)
	case int32:
		v = int64(x)
	case uint:
		v = uintLit(uint64(x))
	case uint8:
		v = int64(x)
	case uint16:
		v = int64(x)
	case uint32:
		v = int64(x)
	case uint64:
		v = uintLit(x)
	case float32:
		v = float64(x)
	case time.Time:
		v = x.UTC()
	case arrow.Date32:
	}
	return &Literal{Value: v}
}

func uintLit(u uint64) any {
	if u <= 1<<63-1 {
		return int64(u)
	}
	return u
}
