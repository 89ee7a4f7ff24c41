package train

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	gonet "net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/dataset"
)

func TestRingAllReduce(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		addrs := freeAddrs(t, n)
		r := rand.New(rand.NewPCG(uint64(n), 1))
		const size = 1003
		xs := make([][]float32, n)
		want := make([]float32, size)
		for w := range xs {
			xs[w] = make([]float32, size)
			for i := range xs[w] {
				xs[w][i] = float32(r.IntN(100)) // integers: every sum order is exact
				want[i] += xs[w][i]
			}
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rg, err := dialRing(context.Background(), addrs, w)
				if err != nil {
					errs[w] = err
					return
				}
				defer rg.Close()
				errs[w] = rg.allReduce(xs[w])
			}()
		}
		wg.Wait()
		for w := range n {
			if errs[w] != nil {
				t.Fatalf("%d workers: worker %d: %v", n, w, errs[w])
			}
			for i := range want {
				if xs[w][i] != want[i] {
					t.Fatalf("%d workers: worker %d element %d = %v, want %v", n, w, i, xs[w][i], want[i])
				}
			}
		}
	}
}

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := gonet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs
}

// runWorkers runs cfg on n workers over loopback TCP; edit adjusts each.
func runWorkers(t *testing.T, n int, cfg Config, data string, edit func(rank int, c *Config)) ([][]Metrics, []error) {
	t.Helper()
	addrs := freeAddrs(t, n)
	ms := make([][]Metrics, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		c := cfg
		c.Workers, c.Rank = addrs, w
		if w > 0 {
			c.Out = filepath.Join(t.TempDir(), "worker")
		}
		c.OnStep = func(m Metrics) error { ms[w] = append(ms[w], m); return nil }
		if edit != nil {
			edit(w, &c)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = Run(context.Background(), c, dataset.ReadJSONL(data))
		}()
	}
	wg.Wait()
	return ms, errs
}

// TestDataParallel: two workers over loopback TCP follow the one-worker
// run's curve (the gradients are summed in another order), stay in
// lockstep, and after a worker is lost both resume from the last
// checkpoint and continue as the undisturbed two-worker run, bit for bit.
func TestDataParallel(t *testing.T) {
	data := writeRows(t, t.TempDir(), 9, 512)
	c := baseConfig(t, "llama3")
	c.Steps, c.BatchSize, c.CheckpointEvery = 4, 4, 2
	one := runLosses(t, c, data)

	two := c
	two.Out = filepath.Join(t.TempDir(), "two")
	ms, errs := runWorkers(t, 2, two, data, nil)
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	for i := range one {
		if !relClose(ms[0][i].Loss, one[i].Loss, 1e-5) || !relClose(ms[0][i].GradNorm, one[i].GradNorm, 1e-4) {
			t.Errorf("step %d: 2 workers loss %v grad_norm %v, 1 worker %v %v", i+1, ms[0][i].Loss, ms[0][i].GradNorm, one[i].Loss, one[i].GradNorm)
		}
		if ms[1][i].Loss != ms[0][i].Loss || ms[1][i].GradNorm != ms[0][i].GradNorm {
			t.Errorf("step %d: the workers disagree: %+v and %+v", i+1, ms[0][i], ms[1][i])
		}
	}

	// Worker 1 is lost after step 3: worker 0 fails its step 4.
	lost := c
	lost.Out = filepath.Join(t.TempDir(), "lost")
	stop := errors.New("worker lost")
	_, errs = runWorkers(t, 2, lost, data, func(rank int, c *Config) {
		if rank == 1 {
			c.OnStep = func(m Metrics) error {
				if m.Step == 3 {
					return stop
				}
				return nil
			}
		}
	})
	if !errors.Is(errs[1], stop) || !errors.Is(errs[0], ErrPeer) {
		t.Fatalf("after losing worker 1: worker 0 %v, worker 1 %v", errs[0], errs[1])
	}
	resumed := lost
	resumed.Resume = filepath.Join(lost.Out, "checkpoint")
	ms2, errs := runWorkers(t, 2, resumed, data, nil)
	for w, err := range errs {
		if err != nil {
			t.Fatalf("resumed worker %d: %v", w, err)
		}
	}
	if len(ms2[0]) != 2 || ms2[0][0].Step != 3 {
		t.Fatalf("resumed run reported %+v, want steps 3 and 4", ms2[0])
	}
	for i, m := range ms2[0] {
		if w := ms[0][2+i]; m.Loss != w.Loss || m.GradNorm != w.GradNorm {
			t.Errorf("resumed step %d: loss %v grad_norm %v, undisturbed %v %v", m.Step, m.Loss, m.GradNorm, w.Loss, w.GradNorm)
		}
	}
}

// TestDataParallelMasked: prompt/completion rows keep their masks when a
// batch is shared among workers: two workers follow the one-worker curve
// of the completion-only loss.
func TestDataParallelMasked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pairs.jsonl")
	var body []byte
	for i, p := range []string{"the quick brown fox", "hello", "a b c d e f", "jumps over", "lazy dog sleeps"} {
		js, _ := json.Marshal(map[string]string{"prompt": p, "completion": strings.Repeat(" done", 1+i%3)})
		body = append(append(body, js...), '\n')
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	c := baseConfig(t, "llama3")
	c.Steps, c.BatchSize, c.PromptColumn, c.CompletionColumn = 3, 4, "prompt", "completion"
	one := runLosses(t, c, path)
	two := c
	two.Out = filepath.Join(t.TempDir(), "two")
	ms, errs := runWorkers(t, 2, two, path, nil)
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	for i := range one {
		if !relClose(ms[0][i].Loss, one[i].Loss, 1e-5) || !relClose(ms[0][i].GradNorm, one[i].GradNorm, 1e-4) {
			t.Errorf("step %d: 2 workers loss %v grad_norm %v, 1 worker %v %v", i+1, ms[0][i].Loss, ms[0][i].GradNorm, one[i].Loss, one[i].GradNorm)
		}
	}
}
