package gpu

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// OpenFunc opens a backend's device.
type OpenFunc func() (Device, error)

// Registry maps backend names to their OpenFunc. Backends register
// themselves in the Default registry from their package's init, as
// database/sql drivers do, so a program imports the backends it wants:
//
//	import _ "github.com/sluicehq/sluice/gpu/cpu"
//
// A Registry is safe for concurrent use. Tests build their own with
// NewRegistry.
type Registry struct {
	// Logger receives the choice "auto" makes; nil means slog.Default().
	Logger *slog.Logger

	mu    sync.Mutex
	opens map[string]OpenFunc
}

// Default is the registry that Register and Open use.
var Default = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{opens: map[string]OpenFunc{}} }

// Register adds a backend. Registering a name twice or the reserved name
// "auto" is a programming error and panics, as sql.Register does.
func (r *Registry) Register(name string, open OpenFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "auto" || open == nil {
		panic(fmt.Sprintf("gpu: Register(%q) with a reserved name or nil OpenFunc", name))
	}
	if _, dup := r.opens[name]; dup {
		panic(fmt.Sprintf("gpu: backend %q registered twice", name))
	}
	r.opens[name] = open
}

// Names lists the registered backends, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.opens))
	for n := range r.opens {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Open opens the backend called name. "auto" opens "cuda" when it is
// registered and opens, and "cpu" otherwise, logging which it chose and why.
func (r *Registry) Open(name string) (Device, error) {
	if name != "auto" {
		return r.open(name)
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	d, err := r.open("cuda")
	if err == nil {
		log.Info("gpu: auto device", "device", "cuda")
		return d, nil
	}
	d, cerr := r.open("cpu")
	if cerr != nil {
		return nil, fmt.Errorf("gpu: auto: cuda: %w; cpu: %w", err, cerr)
	}
	log.Info("gpu: auto device", "device", "cpu", "cuda", err.Error())
	return d, nil
}

func (r *Registry) open(name string) (Device, error) {
	r.mu.Lock()
	open, ok := r.opens[name]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("gpu: %q (registered: %v; import the backend's package): %w", name, r.Names(), ErrUnknownDevice)
	}
	d, err := open()
	if err != nil {
		return nil, fmt.Errorf("gpu: open %q: %w", name, err)
	}
	return d, nil
}

// Register adds a backend to the Default registry.
func Register(name string, open OpenFunc) { Default.Register(name, open) }

// Open opens a device from the Default registry: "cpu", "cuda" or "auto".
func Open(name string) (Device, error) { return Default.Open(name) }
