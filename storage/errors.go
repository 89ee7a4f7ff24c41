package storage

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// pathError is the error every FS in this package returns. Its text is
// "storage: PATH: MSG", where MSG says what went wrong and, when the user can
// fix it, what to do. It unwraps to its causes, so errors.Is(err, ErrNotExist)
// and errors.Is(err, syscall.ENOSPC) work.
type pathError struct {
	path  string
	msg   string
	cause []error
}

func (e *pathError) Error() string   { return "storage: " + e.path + ": " + e.msg }
func (e *pathError) Unwrap() []error { return e.cause }

// newError returns a pathError; nil causes are dropped.
func newError(path, msg string, causes ...error) error {
	e := &pathError{path: path, msg: msg}
	for _, c := range causes {
		if c != nil {
			e.cause = append(e.cause, c)
		}
	}
	return e
}

// notExist is the error for a path that names nothing.
func notExist(path, what string, cause error) error {
	return newError(path, what, ErrNotExist, cause)
}

// osError turns an error from package os about path into a pathError. The
// message keeps the syscall's words ("no space left on device") and, when the
// OS worked on another file (the staging file of an upload), names that file.
func osError(path, op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	var le *os.LinkError
	msg := err.Error()
	switch {
	case errors.As(err, &pe):
		msg = pe.Err.Error()
		if pe.Path != path && pe.Path != "" {
			msg = op + " " + pe.Path + ": " + msg
		} else {
			msg = op + ": " + msg
		}
	case errors.As(err, &le):
		msg = op + ": " + le.Err.Error()
	default:
		msg = op + ": " + strings.TrimPrefix(msg, "storage: ")
	}
	if errors.Is(err, fs.ErrNotExist) {
		return newError(path, msg, ErrNotExist, err)
	}
	if errors.Is(err, fs.ErrExist) {
		return newError(path, msg, ErrExist, err)
	}
	return newError(path, msg, err)
}
