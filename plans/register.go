package plans

import (
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/dataset"
)

// StepCompiler adds a decoded step to the dataset built so far. A package
// that plans must not import (the inference engine, which links the GPU
// backends) registers the compiler of its own step; plans keeps the step's
// format (spec, decoding, checks), so a plan validates without it linked.
type StepCompiler func(s Step, in *dataset.Dataset) *dataset.Dataset

var compilers struct {
	sync.RWMutex
	m map[string]StepCompiler
}

// RegisterCompiler sets how steps of a kind compile; it is called once,
// from the init of the package that owns the step (the infer step:
// package infer). It panics on an unknown kind or a second registration.
func RegisterCompiler(kind string, f StepCompiler) {
	if lookupStep(kind) == nil {
		panic(fmt.Sprintf("plans: RegisterCompiler(%q): no such step kind", kind))
	}
	compilers.Lock()
	defer compilers.Unlock()
	if compilers.m == nil {
		compilers.m = map[string]StepCompiler{}
	}
	if _, dup := compilers.m[kind]; dup {
		panic(fmt.Sprintf("plans: RegisterCompiler(%q): registered twice", kind))
	}
	compilers.m[kind] = f
}

func registeredCompiler(kind string) StepCompiler {
	compilers.RLock()
	defer compilers.RUnlock()
	return compilers.m[kind]
}

// compileInfer adds the infer step through the compiler package infer
// registers.
func compileInfer(c *compiler, s Step) {
	st := s.(*Infer)
	f := registeredCompiler("infer")
	if f == nil {
		c.fail(fmt.Errorf("%w: the infer step needs the inference engine linked into this program (import github.com/sluicehq/sluice/infer)", ErrStepNotLinked), st.node, st.path)
		c.d = nil
		return
	}
	c.then(s, f(s, c.d), func(err error) { c.fail(err, st.node, st.path) })
}
