package expr

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package is an *Error whose
// Unwrap yields one of these, so callers can classify failures with
// errors.Is without parsing messages.
var (
	// ErrSyntax reports source text that does not lex or parse: an
	// unterminated string, an unexpected token, a malformed literal.
	ErrSyntax = errors.New("expr: syntax error")
	// ErrUnknownColumn reports a column reference that is not in the schema.
	ErrUnknownColumn = errors.New("expr: unknown column")
	// ErrUnknownFunction reports a call to a function this package does not
	// define.
	ErrUnknownFunction = errors.New("expr: unknown function")
	// ErrType reports an expression that parses but is ill-typed: operands
	// that cannot be compared or combined, a wrong argument count, a
	// non-boolean predicate.
	ErrType = errors.New("expr: type error")
	// ErrEval reports a failure while evaluating a well-typed expression
	// over data, such as a CAST of a string that is not a number or an
	// integer overflow.
	ErrEval = errors.New("expr: evaluation error")
)

// Pos is a position in expression source. Line and Col are 1-based and count
// runes, not bytes. The zero Pos marks nodes built programmatically.
type Pos struct{ Line, Col int }

// IsValid reports whether p refers to source text.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is the error type of this package. Its text is
// "expr: LINE:COL: message", or "expr: message" for nodes without a source
// position.
type Error struct {
	Pos  Pos
	Msg  string
	Kind error // one of the Err* sentinels

	cause error // the kernel failure behind an ErrEval, if any
}

func (e *Error) Error() string {
	if !e.Pos.IsValid() {
		return "expr: " + e.Msg
	}
	return fmt.Sprintf("expr: %d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
}

// Unwrap returns the sentinel classifying e and, for evaluation failures,
// the underlying arrow error (so errors.Is(err, arrow.ErrInvalid) holds too).
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Kind, e.cause}
	}
	return []error{e.Kind}
}

func errorf(kind error, pos Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...), Kind: kind}
}

// wrapEval attaches the position of the node that ran a kernel to the
// kernel's failure. Errors that already carry a position pass through.
func wrapEval(pos Pos, what string, cause error) error {
	if cause == nil {
		return nil
	}
	var pe *Error
	if errors.As(cause, &pe) {
		return cause
	}
	return &Error{Pos: pos, Msg: what + ": " + cause.Error(), Kind: ErrEval, cause: cause}
}
