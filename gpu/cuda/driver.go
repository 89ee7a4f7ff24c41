package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
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

// symbol is where bind stores one entry point.
type symbol struct {
	p    *uintptr
	name string
}

// bind looks up every symbol of syms, stopping at the first missing one.
func (l *lib) bind(syms []symbol) error {
	for _, s := range syms {
		var err error
		if *s.p, err = l.sym(s.name); err != nil {
			return err
		}
	}
	return nil
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
	if err := l.bind([]symbol{
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
	}); err != nil {
		return nil, err
	}
	return d, nil
}

// call runs fn and turns a non-zero CUresult into an error naming the call.
// The //go:uintptrescapes directive on call (and on cublas.call and
// cublasLt.call) makes the compiler keep any pointer its callers convert
// to uintptr in the argument list on the heap for the call's duration, as
// purego.SyscallN's own directive does for its direct callers. Without it
// a local whose address is passed (malloc's out-parameter) stays on the
// goroutine stack, the stack can move while the call descends into
// SyscallN, and the driver then writes into the old stack: malloc returned
// 0 with CUDA_SUCCESS, cublasGemmEx refused the null tile and qDequant
// wrote at address 0 (TestQuantPaths on the H100).
//
//go:uintptrescapes
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
	if err := l.bind([]symbol{{&c.create, "cublasCreate_v2"}, {&c.destroy, "cublasDestroy_v2"}, {&c.setStream, "cublasSetStream_v2"},
		{&c.setWorkspace, "cublasSetWorkspace_v2"}, {&c.gemmEx, "cublasGemmEx"}}); err != nil {
		return nil, err
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
//
//go:uintptrescapes
func (c *cublas) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	return blasStatus(name, r)
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

// cublasLt is libcublasLt's entry points, for the FP8 products of
// quant.go. It is opened on the first FP8 QMatMul, not at New: a device
// without it still runs everything else (FP8 then takes the dequantizing
// path).
type cublasLt struct {
	lib *lib

	create, destroy, descCreate, descDestroy, descSet, layoutCreate, layoutDestroy,
	prefCreate, prefDestroy, prefSet, heuristic, matmul uintptr

	// call16 is the trampoline that calls matmul: cublasLtMatmul has 16
	// arguments, one more than purego.SyscallN passes.
	call16 uintptr
}

// cublasLtPaths are cublasPaths with libcublasLt, which sits beside
// libcublas in the toolkit and in PyTorch's wheel. SLUICE_CUBLASLT names
// the file outright.
func cublasLtPaths() []string {
	var ps []string
	if p := os.Getenv("SLUICE_CUBLASLT"); p != "" {
		ps = append(ps, p)
	}
	for _, p := range cublasPaths() {
		dir, base := filepath.Split(p)
		if base == "libcublas.so.13" {
			ps = append(ps, dir+"libcublasLt.so.13")
		}
	}
	return ps
}

func loadCublasLt() (*cublasLt, error) {
	l, err := openLib(cublasLtPaths()...)
	if err != nil {
		return nil, err
	}
	c := &cublasLt{lib: l}
	if err := l.bind([]symbol{{&c.create, "cublasLtCreate"}, {&c.destroy, "cublasLtDestroy"},
		{&c.descCreate, "cublasLtMatmulDescCreate"}, {&c.descDestroy, "cublasLtMatmulDescDestroy"},
		{&c.descSet, "cublasLtMatmulDescSetAttribute"},
		{&c.layoutCreate, "cublasLtMatrixLayoutCreate"}, {&c.layoutDestroy, "cublasLtMatrixLayoutDestroy"},
		{&c.prefCreate, "cublasLtMatmulPreferenceCreate"}, {&c.prefDestroy, "cublasLtMatmulPreferenceDestroy"},
		{&c.prefSet, "cublasLtMatmulPreferenceSetAttribute"},
		{&c.heuristic, "cublasLtMatmulAlgoGetHeuristic"}, {&c.matmul, "cublasLtMatmul"}}); err != nil {
		return nil, err
	}
	if c.call16, err = trampoline16(); err != nil {
		return nil, err
	}
	return c, nil
}

// call is cublas.call for cuBLASLt (the same cublasStatus_t codes).
//
//go:uintptrescapes
func (c *cublasLt) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	return blasStatus(name, r)
}

// blasStatus turns a cublasStatus_t of cuBLAS or cuBLASLt (an int, in the
// low 32 bits) into an error naming the call.
func blasStatus(name string, r uintptr) error {
	r = uintptr(uint32(r))
	if r == 0 {
		return nil
	}
	s, ok := cublasStatus[r]
	if !ok {
		s = "cublasStatus"
	}
	return fmt.Errorf("cuda: %s: %s (%d): %w", name, s, r, ErrCall)
}

// cuBLASLt enums (cublasLt.h, library_types.h).
const (
	cudaR8FE4M3 = 28

	ltDescTransA         = 3  // CUBLASLT_MATMUL_DESC_TRANSA
	ltDescTransB         = 4  // CUBLASLT_MATMUL_DESC_TRANSB
	ltDescAScale         = 17 // CUBLASLT_MATMUL_DESC_A_SCALE_POINTER
	ltDescBScale         = 18 // CUBLASLT_MATMUL_DESC_B_SCALE_POINTER
	ltPrefMaxWorkspace   = 1  // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
	ltPrefMinAlignA      = 5  // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (B, C, D follow: 6, 7, 8)
	ltPrefMinAlignD      = 8
	ltHeuristicResultLen = 96 // sizeof(cublasLtMatmulHeuristicResult_t): algo (64), workspaceSize, state, wavesCount, reserved[4]
)

// trampoline16 returns x86-64 code that calls a C function of 16 integer
// or pointer arguments: called through purego with one argument, the
// address of a [17]uintptr holding the 16 arguments and then the
// function, it loads the first six into registers, copies the other ten to
// its stack frame (System V order, rsp 16-byte aligned at the call) and
// returns the function's rax. The page is mapped once, read and execute.
var trampoline16 = sync.OnceValues(func() (uintptr, error) {
	if runtime.GOARCH != "amd64" {
		return 0, fmt.Errorf("cuda: cublasLtMatmul's 16 arguments need the amd64 trampoline, not %s: %w", runtime.GOARCH, ErrUnavailable)
	}
	code := []byte{
		0x55,             // push rbp
		0x48, 0x89, 0xe5, // mov rbp, rsp
		0x53,                   // push rbx
		0x48, 0x83, 0xec, 0x58, // sub rsp, 88: ten stack arguments and alignment
		0x48, 0x89, 0xfb, // mov rbx, rdi: the argument block
	}
	for i := 6; i < 16; i++ {
		code = append(code,
			0x48, 0x8b, 0x43, byte(8*i), // mov rax, [rbx+8i]
			0x48, 0x89, 0x44, 0x24, byte(8*(i-6))) // mov [rsp+8(i-6)], rax
	}
	code = append(code,
		0x4c, 0x8b, 0x9b, 0x80, 0x00, 0x00, 0x00, // mov r11, [rbx+128]: the function
		0x48, 0x8b, 0x3b, // mov rdi, [rbx]
		0x48, 0x8b, 0x73, 0x08, // mov rsi, [rbx+8]
		0x48, 0x8b, 0x53, 0x10, // mov rdx, [rbx+16]
		0x48, 0x8b, 0x4b, 0x18, // mov rcx, [rbx+24]
		0x4c, 0x8b, 0x43, 0x20, // mov r8, [rbx+32]
		0x4c, 0x8b, 0x4b, 0x28, // mov r9, [rbx+40]
		0x31, 0xc0, // xor eax, eax: no vector registers (for variadic callees)
		0x41, 0xff, 0xd3, // call r11
		0x48, 0x83, 0xc4, 0x58, // add rsp, 88
		0x5b, // pop rbx
		0x5d, // pop rbp
		0xc3, // ret
	)
	mem, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return 0, fmt.Errorf("cuda: trampoline mmap: %w: %w", err, ErrUnavailable)
	}
	copy(mem, code)
	if err := syscall.Mprotect(mem, syscall.PROT_READ|syscall.PROT_EXEC); err != nil {
		return 0, fmt.Errorf("cuda: trampoline mprotect: %w: %w", err, ErrUnavailable)
	}
	return uintptr(unsafe.Pointer(&mem[0])), nil
})

// call16 calls fn with args through the trampoline; block is caller-owned
// (pinned: a field of a heap object) so that the call allocates nothing.
func call16(tramp, fn uintptr, block *[17]uintptr, args [16]uintptr) uintptr {
	copy(block[:16], args[:])
	block[16] = fn
	r, _, _ := purego.SyscallN(tramp, uintptr(unsafe.Pointer(block)))
	return r
}
