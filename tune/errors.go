package tune

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the package. Wrapped errors name the key, trial or file.
var (
	// ErrInvalid is returned for a bad space, config or experiment file.
	ErrInvalid = errors.New("tune: invalid")
	// ErrStopped is returned by Trial.Report once the scheduler stopped the
	// trial (or moved it to another trial's checkpoint): the trial function
	// should return.
	ErrStopped = errors.New("tune: trial stopped by the scheduler")
	// ErrNoMetric is returned by Run when no trial ever reported the metric.
	ErrNoMetric = errors.New("tune: metric never reported")
	// ErrExists is returned by Run when Dir already holds an experiment and
	// Resume is off.
	ErrExists = errors.New("tune: experiment directory already holds an experiment")
	// ErrNoExperiment is returned when Resume or Load finds no experiment.
	ErrNoExperiment = errors.New("tune: no experiment")
)

// Error is one problem of an experiment file at a line and column, printed
// as file:line:column: key.path: message.
type Error struct {
	File      string
	Line, Col int
	Path      string
	Msg       string
	// Err is the cause, for a problem found after parsing (ErrNoMetric).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// Errors are every problem found in one file, one a line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) Unwrap() error { return ErrInvalid }
