package plans

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors. Lints and the errors of Render, Compile and the schedule
// functions wrap one of these, so callers can classify them with errors.Is.
var (
	// ErrInvalid marks a plan with at least one lint of severity Error.
	ErrInvalid = errors.New("plans: invalid plan")
	// ErrUnknownParam marks a --param override that the plan does not declare.
	ErrUnknownParam = errors.New("plans: unknown param")
	// ErrNoSchedule marks a schedule query on a plan without a schedule key.
	ErrNoSchedule = errors.New("plans: plan has no schedule")
	// ErrFuncRegistered marks a Register of a name already registered.
	ErrFuncRegistered = errors.New("plans: function already registered")
	// ErrStepNotLinked marks a step whose compiler (see RegisterCompiler)
	// is not linked into the program.
	ErrStepNotLinked = errors.New("plans: step not linked")
)

// Pos is a position in a plan file. Line and Col are 1-based; Col counts
// characters (runes), as yaml.v3 does. The zero Pos means "no position".
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Severity says whether a lint fails validation.
type Severity int

const (
	// Error lints make a plan invalid.
	Error Severity = iota
	// Note lints tell what could not be checked (an unreachable s3:// source);
	// they do not fail validation.
	Note
)

// Lint is one problem found in a plan file. Its text is
// "FILE:LINE:COL: PATH: MESSAGE", for example
//
//	plan.yaml:12:11: steps[2].filter: expr: unknown column "pirce" (did you mean "price"?)
//
// PATH is the key path in the plan (empty for problems of the whole file);
// notes have "note: " before the message.
type Lint struct {
	File     string
	Pos      Pos
	Path     string
	Msg      string
	Severity Severity
}

func (l Lint) Error() string {
	var b strings.Builder
	b.WriteString(l.File)
	if l.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", l.Pos.Line, l.Pos.Col)
	}
	b.WriteString(": ")
	if l.Path != "" {
		b.WriteString(l.Path)
		b.WriteString(": ")
	}
	if l.Severity == Note {
		b.WriteString("note: ")
	}
	b.WriteString(l.Msg)
	return b.String()
}

// Unwrap makes every error lint match ErrInvalid.
func (l Lint) Unwrap() error {
	if l.Severity == Error {
		return ErrInvalid
	}
	return nil
}

// Lints are the problems of one plan, sorted by position by Sort. As an
// error, Lints prints one lint per line.
type Lints []Lint

func (ls Lints) Error() string {
	lines := make([]string, len(ls))
	for i, l := range ls {
		lines[i] = l.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes Lints match ErrInvalid when it holds an error lint.
func (ls Lints) Unwrap() error {
	if ls.HasErrors() {
		return ErrInvalid
	}
	return nil
}

// HasErrors reports whether any lint is an Error (not a Note).
func (ls Lints) HasErrors() bool {
	return slices.ContainsFunc(ls, func(l Lint) bool { return l.Severity == Error })
}

// Err is the lints as an error when any is an Error, else nil.
func (ls Lints) Err() error {
	if !ls.HasErrors() {
		return nil
	}
	return ls
}

// Errors is the lints of severity Error.
func (ls Lints) Errors() Lints {
	return slices.DeleteFunc(slices.Clone(ls), func(l Lint) bool { return l.Severity != Error })
}

// Sort orders the lints by file position, then path and message, and drops
// exact duplicates.
func (ls Lints) Sort() Lints {
	slices.SortStableFunc(ls, func(a, b Lint) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Path, b.Path), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.Compact(ls)
}
