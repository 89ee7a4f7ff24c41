package tune

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// The registry of named trial functions.
//
// A cluster trial cannot ship Go code to a worker, so it names a function
// instead (Cluster.Function), as a plan's map_batches step names one of
// plans' registered functions: every worker's program registers the
// function under that name (at init, say) and runs it in-process when a
// trial's job names it. The driver needs no registration.

var registry = struct {
	sync.RWMutex
	fns map[string]Func
}{fns: map[string]Func{}}

var funcName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// Register makes fn the trial function called name in this program. It
// is an error to register a name twice, or a name that is not a letter or
// _ followed by letters, digits, _, . or -.
func Register(name string, fn Func) error {
	if !funcName.MatchString(name) {
		return fmt.Errorf("%w: trial function name %q: want a letter or _ followed by letters, digits, _, . or -", ErrInvalid, name)
	}
	if fn == nil {
		return fmt.Errorf("%w: trial function %q is nil", ErrInvalid, name)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.fns[name]; ok {
		return fmt.Errorf("%w: trial function %q is registered already", ErrInvalid, name)
	}
	registry.fns[name] = fn
	return nil
}

// MustRegister is Register that panics on error, for init functions.
func MustRegister(name string, fn Func) {
	if err := Register(name, fn); err != nil {
		panic(err)
	}
}

// Lookup returns the trial function registered as name.
func Lookup(name string) (Func, bool) {
	registry.RLock()
	defer registry.RUnlock()
	fn, ok := registry.fns[name]
	return fn, ok
}

// Registered lists the registered trial functions' names, sorted.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.fns))
	for n := range registry.fns {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// lookupErr is the error of a name this program did not register.
func lookupErr(name string) error {
	list := "none"
	if r := Registered(); len(r) > 0 {
		list = strings.Join(r, ", ")
	}
	return fmt.Errorf("%w: trial function %q is not registered in this program (tune.Register); registered: %s", ErrInvalid, name, list)
}
