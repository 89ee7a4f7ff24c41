package gpu

// Grapher is a Device that can record the work a function enqueues and
// replay it later with one launch, as CUDA graphs do: a decode step of a
// few hundred small kernels then costs the host one call, and the device
// runs the kernels back to back. It is optional: detect it with a type
// assertion (cuda has it, cpu does not).
//
// What is recorded is the enqueued work with its arguments as they were at
// capture time: tensor addresses, shapes and scalars. A replay reads and
// writes the same device memory, so inputs that change from replay to
// replay go into the same tensors (Upload before Launch) and no tensor the
// graph touches may be freed while the graph is used. Ops may need scratch
// memory; during a capture the device gives them scratch that the Graph
// owns, kept until Graph.Free.
//
// Threading: Capture, Launch and Free follow the Device's rule (one
// goroutine at a time). During Capture, record may only enqueue ops and
// Copy on this device: Download, Sync, Alloc, Upload and Tensor.Free are
// not allowed inside it (they wait for the device, read host memory that
// does not outlive the capture, or would free memory the graph uses).
type Grapher interface {
	// Capture runs record, recording instead of running the work it
	// enqueues, and returns the recorded graph. Nothing runs on the device.
	// record may be called more than once (the device may first size the
	// scratch the ops ask for); it must enqueue the same work each time.
	Capture(record func() error) (Graph, error)
}

// Graph is work recorded by Grapher.Capture.
type Graph interface {
	// Launch enqueues the recorded work on the device's queue, ordered
	// after the work before it like any op.
	Launch() error
	// Free releases the graph and its scratch once the launches enqueued
	// before it are done; a second Free does nothing.
	Free() error
}
