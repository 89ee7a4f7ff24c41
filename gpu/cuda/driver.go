package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The CUDA driver API and cuBLAS, bound at run time with purego: each
// function's address is looked up once when the library is opened, and
// calls go through purego.SyscallN with every argument as a uintptr. Every
// call's result is turned into an error naming the call and the result.

// Errors of the bindings.
var (
	// ErrUnavailable: no CUDA driver, no device, or no cuBLAS on this
	// machine. Tests skip on it; gpu.Open("auto") falls back to the CPU.
	ErrUnavailable = errors.New("cuda: not available")
	// ErrCall: a driver or cuBLAS call failed; the message names the call
	// and its result.
	ErrCall = errors.New("cuda: call failed")
)

// cuResult is a CUresult; 0 is CUDA_SUCCESS.
type cuResult uintptr

// Driver results that mean "no usable GPU here" rather than a bug.
const (
	cudaErrorInsufficientDriver cuResult = 35
	cudaErrorNoDevice           cuResult = 100
)

// lib is one dlopen'ed library and its symbols.
type lib struct {
	name   string
	handle uintptr
}

// openLib tries each candidate path in turn.
func openLib(candidates ...string) (*lib, error) {
	var first error
	for _, p := range candidates {
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return &lib{name: p, handle: h}, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, fmt.Errorf("cuda: dlopen (%d places tried): %w: %w", len(candidates), first, ErrUnavailable)
}

func (l *lib) sym(name string) (uintptr, error) {
	p, err := purego.Dlsym(l.handle, name)
	if err != nil {
		return 0, fmt.Errorf("cuda: %s has no %s: %w: %w", l.name, name, err, ErrUnavailable)
	}
	return p, nil
}

// driver is libcuda's entry points.
type driver struct {
	lib *lib

	cuInit, cuGetErrorName, cuDeviceGet, cuDeviceGetAttribute, cuDeviceGetName,
	cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent,
	cuMemGetInfo, cuMemAllocAsync, cuMemFreeAsync, cuDeviceGetDefaultMemPool, cuMemPoolSetAttribute, cuMemPoolTrimTo,
	cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync,
	cuStreamCreate, cuStreamDestroy, cuStreamSynchronize,
	cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy,
	cuModuleLoadData, cuModuleUnload, cuModuleGetFunction, cuLaunchKernel,
	cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiateWithFlags, cuGraphLaunch,
	cuGraphExecDestroy, cuGraphDestroy uintptr
}

// libcudaPaths are where the driver library is looked for: the loader's
// search path first, then where NVIDIA's container runtime mounts it.
var libcudaPaths = []string{"libcuda.so.1", "libcuda.so", "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"}

func loadDriver() (*driver, error) {
	l, err := openLib(libcudaPaths...)
	if err != nil {
		return nil, err
	}
	d := &driver{lib: l}
	for _, s := range []struct {
		p    *uintptr
		name string
	}{
		{&d.cuInit, "cuInit"}, {&d.cuGetErrorName, "cuGetErrorName"}, {&d.cuDeviceGet, "cuDeviceGet"},
		{&d.cuDeviceGetAttribute, "cuDeviceGetAttribute"}, {&d.cuDeviceGetName, "cuDeviceGetName"},
		{&d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"}, {&d.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&d.cuMemGetInfo, "cuMemGetInfo_v2"}, {&d.cuMemAllocAsync, "cuMemAllocAsync"}, {&d.cuMemFreeAsync, "cuMemFreeAsync"},
		{&d.cuDeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool"}, {&d.cuMemPoolSetAttribute, "cuMemPoolSetAttribute"},
		{&d.cuMemPoolTrimTo, "cuMemPoolTrimTo"},
		{&d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"}, {&d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&d.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"},
		{&d.cuStreamCreate, "cuStreamCreate"}, {&d.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&d.cuStreamSynchronize, "cuStreamSynchronize"},
		{&d.cuEventCreate, "cuEventCreate"}, {&d.cuEventRecord, "cuEventRecord"},
		{&d.cuEventSynchronize, "cuEventSynchronize"}, {&d.cuEventElapsedTime, "cuEventElapsedTime"},
		{&d.cuEventDestroy, "cuEventDestroy_v2"},
		{&d.cuModuleLoadData, "cuModuleLoadData"}, {&d.cuModuleUnload, "cuModuleUnload"},
		{&d.cuModuleGetFunction, "cuModuleGetFunction"}, {&d.cuLaunchKernel, "cuLaunchKernel"},
		{&d.cuStreamBeginCapture, "cuStreamBeginCapture_v2"}, {&d.cuStreamEndCapture, "cuStreamEndCapture"},
		{&d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"}, {&d.cuGraphLaunch, "cuGraphLaunch"},
		{&d.cuGraphExecDestroy, "cuGraphExecDestroy"}, {&d.cuGraphDestroy, "cuGraphDestroy"},
	} {
		if *s.p, err = l.sym(s.name); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// call runs fn and turns a non-zero CUresult into an error naming the call.
func (d *driver) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if r == 0 {
		return nil
	}
	return d.err(name, cuResult(r))
}

func (d *driver) err(name string, r cuResult) error {
	var s *byte
	code := fmt.Sprintf("CUresult %d", r)
	if rr, _, _ := purego.SyscallN(d.cuGetErrorName, uintptr(r), uintptr(unsafe.Pointer(&s))); rr == 0 && s != nil {
		code = fmt.Sprintf("%s (%d)", goString(s), r)
	}
	sentinel := ErrCall
	if r == cudaErrorNoDevice || r == cudaErrorInsufficientDriver {
		sentinel = ErrUnavailable
	}
	return fmt.Errorf("cuda: %s: %s: %w", name, code, sentinel)
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var n int
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cString returns s NUL-terminated.
func cString(s string) []byte { return append([]byte(s), 0) }

// Device attributes (CUdevice_attribute).
const (
	attrMultiprocessors = 16
	attrMajor           = 75
	attrMinor           = 76
)

// cublas is libcublas's entry points.
type cublas struct {
	lib *lib

	create, destroy, setStream, setWorkspace, gemmEx uintptr
}

// cublasPaths: the loader's search path, then the toolkit, then PyTorch's
// wheel (the GPU machine has both). SLUICE_CUBLAS names the file outright.
func cublasPaths() []string {
	var ps []string
	if p := os.Getenv("SLUICE_CUBLAS"); p != "" {
		ps = append(ps, p)
	}
	ps = append(ps, "libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.13",
		"/usr/local/cuda/targets/x86_64-linux/lib/libcublas.so.13")
	for _, g := range []string{
		"/opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib/libcublas.so.13",
		"/opt/torch/.venv/lib/python3*/site-packages/nvidia/cublas/lib/libcublas.so.13",
	} {
		m, _ := filepath.Glob(g)
		ps = append(ps, m...)
	}
	return ps
}

func loadCublas() (*cublas, error) {
	l, err := openLib(cublasPaths()...)
	if err != nil {
		return nil, err
	}
	c := &cublas{lib: l}
	for _, s := range []struct {
		p    *uintptr
		name string
	}{{&c.create, "cublasCreate_v2"}, {&c.destroy, "cublasDestroy_v2"}, {&c.setStream, "cublasSetStream_v2"},
		{&c.setWorkspace, "cublasSetWorkspace_v2"}, {&c.gemmEx, "cublasGemmEx"}} {
		if *s.p, err = l.sym(s.name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

var cublasStatus = map[uintptr]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE",
	8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR",
}

// call runs a cuBLAS function and turns a non-zero cublasStatus_t into an
// error naming the call.
func (c *cublas) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if r == 0 {
		return nil
	}
	s, ok := cublasStatus[r]
	if !ok {
		s = "cublasStatus"
	}
	return fmt.Errorf("cuda: %s: %s (%d): %w", name, s, r, ErrCall)
}

// cuBLAS and CUDA data-type enums.
const (
	cudaR32F  = 0
	cudaR16F  = 2
	cudaR16BF = 14

	cublasOpN         = 0
	cublasOpT         = 1
	cublasCompute32F  = 68
	cublasGemmDefault = -1
	memPoolReleaseThr = 4 // CU_MEMPOOL_ATTR_RELEASE_THRESHOLD

	// CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: calls that are unsafe during a
	// capture (a synchronous allocation, a stream wait) fail on the
	// capturing thread only; Capture keeps the goroutine on one thread.
	captureThreadLocal = 1
)
