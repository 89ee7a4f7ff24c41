package kernel

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Each error wraps one of these, so callers
// can test with errors.Is; the message itself names the operator, the column
// and the types involved.
var (
	// ErrColumn is returned when a key or aggregate names a column the schema
	// does not have.
	ErrColumn = errors.New("kernel: no such column")
	// ErrType is returned when a column's type cannot be used the way it is
	// asked to be (summing strings, joining a string key with an int key).
	ErrType = errors.New("kernel: unsupported type")
	// ErrSchema is returned when a batch does not match the schema an operator
	// was built for.
	ErrSchema = errors.New("kernel: batch does not match the schema")
	// ErrInvalid is returned for bad arguments: a negative k, an index out of
	// range, an unknown aggregate function, an output name used twice.
	ErrInvalid = errors.New("kernel: invalid argument")
	// ErrState is returned when methods are called out of order, such as
	// HashJoin.Build after Probe or any method after Release.
	ErrState = errors.New("kernel: method called out of order")
)

// kernelError carries a complete user-facing message and the sentinel it
// belongs to, so the message is not followed by the sentinel's own text.
type kernelError struct {
	msg string
	err error
}

func (e *kernelError) Error() string { return e.msg }
func (e *kernelError) Unwrap() error { return e.err }

// errorf formats "kernel: " + format as an error that wraps sentinel.
func errorf(sentinel error, format string, args ...any) error {
	return &kernelError{msg: "kernel: " + fmt.Sprintf(format, args...), err: sentinel}
}
