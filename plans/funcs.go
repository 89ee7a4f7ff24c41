package plans

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/didyoumean"
)

// Go functions in plans.
//
// A plan cannot carry code, so a map_batches step names a function that the
// program compiling the plan registered. On a cluster every worker compiles
// the plan itself: the functions a plan names must be registered (at init)
// in the program the workers run, which is why a Go program that uses them
// starts its workers from its own binary (see examples/cluster-udf). Plans
// use only registered or built-in steps.

// Func is a registered batch function a plan's map_batches step names.
type Func struct {
	// Out computes the output schema from the input schema (so plans
	// validate before running). Nil: the function is called once on an
	// empty batch to learn it, as dataset's MapBatches does.
	Out func(in *arrow.Schema) (*arrow.Schema, error)
	// Fn is the batch function (same contract as dataset MapBatches: must
	// not retain rec; returns a new batch the caller releases).
	Fn plan.BatchFunc
	// RowLocal: keeps each row's identity and count (filters/limits may
	// move across it).
	RowLocal bool
	// BatchRows, Concurrency: as dataset's MapBatches options (0:
	// defaults). A step's batch_rows and concurrency override them.
	BatchRows, Concurrency int
}

// funcNamePattern is what a registered name may be, so that it can be
// written in YAML without quotes and read in messages.
var funcNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

const funcNameDoc = "letters, digits, _, . and -, starting with a letter or _"

// registry holds the registered functions. Safe for concurrent use.
type registry struct {
	mu    sync.RWMutex
	funcs map[string]Func
}

// funcs is the program's registry; tests make their own.
var funcs registry

func (r *registry) register(name string, fn Func) error {
	switch {
	case !funcNamePattern.MatchString(name):
		return fmt.Errorf("plans: Register %q: a function name is %s", name, funcNameDoc)
	case fn.Fn == nil:
		return fmt.Errorf("plans: Register %q: Fn is nil", name)
	case fn.BatchRows < 0 || fn.Concurrency < 0:
		return fmt.Errorf("plans: Register %q: BatchRows (%d) and Concurrency (%d) must not be negative", name, fn.BatchRows, fn.Concurrency)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.funcs[name]; ok {
		return fmt.Errorf("%w: %q", ErrFuncRegistered, name)
	}
	if r.funcs == nil {
		r.funcs = map[string]Func{}
	}
	r.funcs[name] = fn
	return nil
}

func (r *registry) lookup(name string) (Func, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.funcs[name]
	return f, ok
}

func (r *registry) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.funcs))
	for name := range r.funcs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Register makes fn available to plans as `map_batches: {fn: name}`. Call
// it at init, in every program that compiles such plans: the one that runs
// them locally and the one the cluster's workers run. A name is registered
// once; a second Register of it is an error that wraps ErrFuncRegistered.
// Safe for concurrent use.
func Register(name string, fn Func) error { return funcs.register(name, fn) }

// MustRegister is Register for init: it panics on an error, which is a
// mistake in the program, not in its input.
func MustRegister(name string, fn Func) {
	if err := Register(name, fn); err != nil {
		panic(err)
	}
}

// Registered is the names of the registered functions, sorted.
func Registered() []string { return funcs.names() }

// MapBatches runs the registered Go function Fn on batches.
type MapBatches struct {
	Fn          string
	BatchRows   int // 0: the registration's
	Concurrency int // 0: the registration's
	stepAt
}

var _ Step = (*MapBatches)(nil)

func (*MapBatches) Kind() string { return "map_batches" }

func mapBatchesSpec() *spec {
	return object("Run a Go function the program registered by name (plans.Register) on each batch. On a cluster, the workers must run a program that registers it.",
		req("fn", &spec{kind: kString, doc: "The registered function's name.", pattern: funcNamePattern, patternDoc: "want a function name: " + funcNameDoc}),
		opt("batch_rows", integer("Give the function batches of exactly this many rows, the last may be shorter (default: the registration's).", 1)),
		opt("concurrency", integer("How many batches the function works on at once (default: the registration's, else the executor's).", 1)))
}

func decodeMapBatches(d *decoder, n *yaml.Node, path string) Step {
	m := &MapBatches{Fn: scalar(get(n, "fn"))}
	br, _ := intValue(get(n, "batch_rows"))
	cc, _ := intValue(get(n, "concurrency"))
	m.BatchRows, m.Concurrency = int(br), int(cc)
	return m
}

// compileMapBatches looks the function up in the compiler's registry. An
// unregistered name is an error, except for Validate in a program that
// registers no functions at all (the sluice command, validating or
// submitting a plan for workers that run another program): there it is a
// note, and what follows the step goes unchecked.
func compileMapBatches(c *compiler, s Step) {
	m := s.(*MapBatches)
	fnNode, fnPath := get(m.node, "fn"), join(m.path, "fn")
	reg := c.funcs
	f, ok := reg.lookup(m.Fn)
	if !ok {
		names := reg.names()
		switch {
		case len(names) == 0 && c.notes:
			c.lints = append(c.lints, Lint{File: c.p.File, Pos: nodePos(fnNode), Path: fnPath, Severity: Note,
				Msg: fmt.Sprintf("function %q is not registered in this program, so the columns it makes and the later steps were not checked; "+
					"the program that runs the workers must register it with plans.Register", m.Fn)})
		case len(names) == 0:
			c.errorf(fnNode, fnPath, "function %q is not registered: this program registers no functions; "+
				"register it with plans.Register in the program that runs the workers", m.Fn)
		default:
			c.errorf(fnNode, fnPath, "function %q is not registered%s; registered: %s", m.Fn, didyoumean.Suggest(m.Fn, names), strings.Join(names, ", "))
		}
		c.d = nil // the columns it makes are unknown
		return
	}
	opts := dataset.MapOptions{Name: m.Fn, BatchRows: f.BatchRows, Concurrency: f.Concurrency}
	if m.BatchRows > 0 {
		opts.BatchRows = m.BatchRows
	}
	if m.Concurrency > 0 {
		opts.Concurrency = m.Concurrency
	}
	if f.Out != nil {
		in, err := c.d.Schema()
		if err != nil {
			c.fail(err, fnNode, fnPath)
			c.d = nil
			return
		}
		out, err := f.Out(in)
		if err == nil && out == nil {
			err = errors.New("its Out returned no schema")
		}
		if err != nil {
			c.errorf(fnNode, fnPath, "%s: %v", m.Fn, err)
			c.d = nil
			return
		}
		opts.Schema = out
	}
	if !c.then(s, c.d.MapBatches(f.Fn, opts), func(err error) { c.fail(err, fnNode, fnPath) }) {
		c.d = nil
		return
	}
	if f.RowLocal {
		// dataset's MapOptions has no RowLocal: mark the node it built.
		n := *c.d.Plan().(*plan.MapBatches)
		n.RowLocal = true
		c.d = dataset.FromPlan(&n)
	}
}
