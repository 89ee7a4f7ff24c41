package expr

import "github.com/apache/arrow-go/v18/arrow"

// TypeByName is the Arrow type of a CAST type name (int, bigint, double,
// string, bool, date, timestamp...; case-insensitive), for schemas given
// by name such as a plan's schema: key.
func TypeByName(name string) (arrow.DataType, bool) {
	c, ok := canonicalType(name)
	if !ok {
		return nil, false
	}
	return castTarget(c), true
}

// TypeNames lists the names TypeByName accepts.
func TypeNames() []string { return castTypeNames() }
