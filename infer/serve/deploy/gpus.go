package deploy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// gpuSlots hands out a worker's GPUs to the replicas it runs. The
// coordinator counts a worker's GPUs but not which one a task holds, and
// every replica of a worker runs in the worker's process, so the process
// keeps which indices its replicas serve on: a replica takes the lowest
// free ones and gives them back when it ends.
type gpuSlots struct {
	mu   sync.Mutex
	used map[string]map[int]bool // worker -> index -> held
}

var gpus gpuSlots

// take holds n of the have GPUs of worker.
func (g *gpuSlots) take(worker string, have, n int) ([]int, func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used == nil {
		g.used = map[string]map[int]bool{}
	}
	if g.used[worker] == nil {
		g.used[worker] = map[int]bool{}
	}
	used := g.used[worker]
	var idx []int
	for i := 0; i < have && len(idx) < n; i++ {
		if !used[i] {
			idx = append(idx, i)
		}
	}
	if len(idx) < n {
		return nil, nil, fmt.Errorf("the replica needs %d GPUs, and %d of the worker's %d are free here (the worker's --resources gpu= is more than it has?)", n, len(idx), have)
	}
	for _, i := range idx {
		used[i] = true
	}
	var once sync.Once
	return idx, func() {
		once.Do(func() {
			g.mu.Lock()
			for _, i := range idx {
				delete(used, i)
			}
			g.mu.Unlock()
		})
	}, nil
}

// visibleDevices is CUDA_VISIBLE_DEVICES for the indices idx of the
// worker's GPUs: the worker's own CUDA_VISIBLE_DEVICES (parent) maps them
// when it is set, so that index i is the worker's i-th visible GPU.
func visibleDevices(idx []int, parent string) string {
	var seen []string
	if parent = strings.TrimSpace(parent); parent != "" {
		seen = strings.Split(parent, ",")
	}
	out := make([]string, len(idx))
	for k, i := range idx {
		if i < len(seen) {
			out[k] = strings.TrimSpace(seen[i])
		} else {
			out[k] = strconv.Itoa(i)
		}
	}
	return strings.Join(slices.Clip(out), ",")
}
