package train

import (
	"runtime"
	"sync"
)

// parallel runs f(0..n-1) on up to GOMAXPROCS goroutines. Each index is
// computed by one goroutine in a fixed order, so results do not depend on
// the scheduling: a run is reproducible bit for bit.
func parallel(n int, f func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				f(i)
			}
		}()
	}
	wg.Wait()
}
