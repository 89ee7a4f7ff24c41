package cuda

import (
	"runtime"
	"testing"
	"unsafe"
)

// deep spends about 128 bytes of stack per level, then runs f: the calls
// f makes then start at a different distance from the goroutine stack's
// end, so that one of them has to grow (move) the stack.
//
//go:noinline
func deep(n int, f func()) byte {
	var pad [96]byte
	pad[n%96] = byte(n)
	if n > 0 {
		return deep(n-1, f) + pad[0]
	}
	f()
	return pad[0]
}

// TestCallKeepsLocalsInPlace passes the address of a local to libc's
// clock_gettime (it returns 0, as a CUDA call that succeeds does) through driver.call, cublas.call and cublasLt.call, as malloc
// passes its out-parameter to cuMemAllocAsync, from fresh goroutines at
// many stack depths. Without go:uintptrescapes on those wrappers the
// local stays on the stack, a stack growth inside the wrapper moves it,
// and clock_gettime writes the old copy: the local reads 0 (what made malloc
// return a null pointer on the H100).
func TestCallKeepsLocalsInPlace(t *testing.T) {
	clock := libcSym(t, "clock_gettime")
	const realtime = 0 // CLOCK_REALTIME
	calls := map[string]func(out *[2]int64){
		"driver": func(out *[2]int64) {
			var ts [2]int64
			if err := (&driver{}).call("clock_gettime", clock, realtime, uintptr(unsafe.Pointer(&ts))); err != nil {
				t.Error(err)
			}
			*out = ts
		},
		"cublas": func(out *[2]int64) {
			var ts [2]int64
			if err := (&cublas{}).call("clock_gettime", clock, realtime, uintptr(unsafe.Pointer(&ts))); err != nil {
				t.Error(err)
			}
			*out = ts
		},
		"cublasLt": func(out *[2]int64) {
			var ts [2]int64
			if err := (&cublasLt{}).call("clock_gettime", clock, realtime, uintptr(unsafe.Pointer(&ts))); err != nil {
				t.Error(err)
			}
			*out = ts
		},
	}
	for name, call := range calls {
		bad := 0
		for depth := 0; depth < 400; depth++ {
			done := make(chan [2]int64)
			go func() {
				var got [2]int64
				deep(depth, func() { call(&got) })
				done <- got
			}()
			if got := <-done; got[0] < 1e9 { // seconds since 1970: after 2001
				bad++
				if bad == 1 {
					t.Errorf("%s.call: clock_gettime into a local at depth %d left %v", name, depth, got)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s.call: %d of 400 depths lost the write", name, bad)
		}
	}
}

// libcSym returns libc's function name, or skips where there is no
// libc.so.6 (not Linux).
func libcSym(t *testing.T, name string) uintptr {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("libc.so.6 is Linux's")
	}
	libc, err := openLib("libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	fn, err := libc.sym(name)
	if err != nil {
		t.Fatal(err)
	}
	return fn
}
