package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
)

func TestBucket(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0}, {1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 24},
		{255, 256}, {256, 256}, {257, 272}, {500, 512}, {512, 512}, {513, 0}, {-1, 0},
	} {
		if got := bucket(c.n); got != c.want {
			t.Errorf("bucket(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// fakeGrapher is a cpu device that "records" a graph by keeping the
// function and "replays" it by calling it again: enough to drive the
// model's warm-up, capture, replay and release of graphs without a GPU.
type fakeGrapher struct {
	gpu.Device
	captures, launches, live int
}

func (f *fakeGrapher) Capture(record func() error) (gpu.Graph, error) {
	f.captures++
	f.live++
	return &fakeGraph{f: f, run: record}, nil
}

type fakeGraph struct {
	f     *fakeGrapher
	run   func() error
	freed bool
}

func (g *fakeGraph) Launch() error {
	if g.freed {
		return gpu.ErrFreed
	}
	g.f.launches++
	return g.run()
}

func (g *fakeGraph) Free() error {
	if !g.freed {
		g.freed = true
		g.f.live--
	}
	return nil
}

var _ gpu.Grapher = (*fakeGrapher)(nil)

// lockstep runs the same decode steps through two models of one
// checkpoint, each with its own cache and identical block tables, and
// requires bitwise equal logits (Forward) and tokens (ForwardArgmax). The
// batch shrinks and grows across buckets, some sequences want no logits,
// and contexts cross blocks (so the padded table width changes).
func lockstep(t *testing.T, a, b *Model) {
	t.Helper()
	ca, cb := newCache(t, a, 96, 4), newCache(t, b, 96, 4)
	r := rand.New(rand.NewPCG(5, 6))
	vocab := a.Config().Vocab
	const seqs = 11
	tables := make([][]int32, seqs)
	lens := make([]int, seqs)
	bl := newBlocks(96, 17)
	var pre Batch
	for s := range seqs {
		lens[s] = 1 + r.IntN(9)
		toks := make([]int32, lens[s])
		for i := range toks {
			toks[i] = int32(r.IntN(vocab))
		}
		tables[s] = bl.cover(t, nil, lens[s], 4)
		pre.Seqs = append(pre.Seqs, SeqInput{Tokens: toks, BlockTable: tables[s]})
	}
	for _, m := range []struct {
		m *Model
		c *Cache
	}{{a, ca}, {b, cb}} {
		if _, err := m.m.Forward(m.c, &pre); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{11, 11, 9, 5, 3, 1, 2, 7, 11, 11, 4}
	for step, n := range sizes {
		var bt Batch
		for s := range n {
			tables[s] = bl.cover(t, tables[s], lens[s]+1, 4)
			bt.Seqs = append(bt.Seqs, SeqInput{Tokens: []int32{int32(r.IntN(vocab))}, StartPos: lens[s], BlockTable: tables[s], WantLogits: s != 2})
			lens[s]++
		}
		if step%2 == 0 {
			la, err := a.Forward(ca, &bt)
			if err != nil {
				t.Fatal(err)
			}
			la = slices.Clone(la)
			lb, err := b.Forward(cb, &bt)
			if err != nil {
				t.Fatal(err)
			}
			if len(la) != len(lb) {
				t.Fatalf("step %d (%d seqs): %d logits against %d", step, n, len(lb), len(la))
			}
			for i := range la {
				if math.Float32bits(la[i]) != math.Float32bits(lb[i]) {
					t.Fatalf("step %d (%d seqs): logit %d is %g, want %g", step, n, i, lb[i], la[i])
				}
			}
			continue
		}
		ta, err := a.ForwardArgmax(ca, &bt)
		if err != nil {
			t.Fatal(err)
		}
		ta = slices.Clone(ta)
		tb, err := b.ForwardArgmax(cb, &bt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ta, tb) {
			t.Fatalf("step %d (%d seqs): tokens %v, want %v", step, n, tb, ta)
		}
	}
}

// TestPaddedDecode checks on the cpu that decode steps padded to their
// bucket give the unpadded steps' logits bit for bit, run eagerly and
// through (fake) graphs, and that graphs are recorded once per key and
// freed with the model.
func TestPaddedDecode(t *testing.T) {
	t.Setenv("SLUICE_CUDA_GRAPHS", "")
	for _, name := range []string{"llama3", "qwen2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			dev := openCPU(t)
			eager := load(t, dev, name, gpu.F32)
			if eager.step.graphs.mode != graphsOff {
				t.Fatalf("graph mode on the cpu %d, want off", eager.step.graphs.mode)
			}
			t.Run("pad", func(t *testing.T) {
				padded := load(t, dev, name, gpu.F32)
				padded.step.graphs.mode = graphsPad
				lockstep(t, eager, padded)
			})
			t.Run("graphs", func(t *testing.T) {
				fg := &fakeGrapher{Device: dev}
				g, err := Load(fixtureDir(name), fg, Options{DType: gpu.F32})
				if err != nil {
					t.Fatal(err)
				}
				if g.step.graphs.mode != graphsOn {
					t.Fatalf("graph mode on a Grapher %d, want on", g.step.graphs.mode)
				}
				lockstep(t, eager, g)
				if fg.captures == 0 || fg.launches == 0 {
					t.Errorf("%d captures and %d launches, want some", fg.captures, fg.launches)
				}
				if fg.captures != g.Graphs() {
					t.Errorf("%d captures for %d graphs", fg.captures, g.Graphs())
				}
				g.Close()
				if fg.live != 0 {
					t.Errorf("%d graphs live after Close", fg.live)
				}
			})
			t.Run("enforce-eager", func(t *testing.T) {
				fg := &fakeGrapher{Device: dev}
				g, err := Load(fixtureDir(name), fg, Options{DType: gpu.F32, EnforceEager: true})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				lockstep(t, eager, g)
				if fg.captures != 0 {
					t.Errorf("%d captures with EnforceEager", fg.captures)
				}
			})
		})
	}
}

// TestGraphSteadyState checks that replayed decode steps allocate nothing
// on the Go heap or the device, and that a larger step, which regrows the
// step buffers, drops the graphs that used the old ones.
func TestGraphSteadyState(t *testing.T) {
	t.Setenv("SLUICE_CUDA_GRAPHS", "")
	dev := openCPU(t)
	fg := &fakeGrapher{Device: dev}
	m, err := Load(fixtureDir("qwen3"), fg, Options{DType: gpu.F32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := newCache(t, m, 64, 16)
	b := &Batch{}
	for i, tb := range [][]int32{{5, 9, 2, 11}, {7, 3, 60, 0}, {8, 12, 13, 14}} {
		b.Seqs = append(b.Seqs, SeqInput{Tokens: []int32{int32(i + 1)}, BlockTable: tb, WantLogits: i != 1})
	}
	pos := 0
	step := func() {
		for i := range b.Seqs {
			b.Seqs[i].StartPos = pos
		}
		pos++
		if _, err := m.ForwardArgmax(c, b); err != nil {
			t.Fatal(err)
		}
	}
	step() // eager, sizes the buffers
	step() // records
	if fg.captures != 1 {
		t.Fatalf("%d captures after two steps, want 1", fg.captures)
	}
	live := dev.LiveBytes()
	if n := testing.AllocsPerRun(20, step); n != 0 {
		t.Errorf("a replayed decode step allocates %v times on the Go heap", n)
	}
	if got := dev.LiveBytes(); got != live {
		t.Errorf("device live bytes went from %d to %d", live, got)
	}
	if fg.captures != 1 || fg.launches != 22 { // the recording step's, AllocsPerRun's warm-up and 20
		t.Errorf("%d captures and %d launches, want 1 and 22", fg.captures, fg.launches)
	}
	// A prefill of many tokens regrows the buffers: the graph goes.
	big := &Batch{Seqs: []SeqInput{{Tokens: make([]int32, 60), BlockTable: []int32{20, 21, 22, 23}, WantLogits: true}}}
	if _, err := m.Forward(c, big); err != nil {
		t.Fatal(err)
	}
	if fg.live != 0 || len(m.step.graphs.m) != 0 {
		t.Errorf("%d graphs live (%d keys) after the buffers grew", fg.live, len(m.step.graphs.m))
	}
}

// loraTraceSizes are loraTrace's decode batch sizes: runs of one bucket,
// so that its key's first step runs eagerly, the second records and the
// others replay, with the adapters of the batch changing every step.
var loraTraceSizes = []int{8, 8, 8, 8, 5, 6, 7, 12, 12, 12, 3, 4, 2}

// loraTrace loads the adapters in dirs on m, prefills 12 sequences and
// runs loraTraceSizes decode steps of random tokens, each sequence on an
// adapter (or the base) drawn anew every step, and returns each step's
// logits.
func loraTrace(t *testing.T, m *Model, dirs []string) [][]float32 {
	t.Helper()
	ids := []int{0}
	for i, d := range dirs {
		id, err := m.LoadLoRA(fmt.Sprint("ad", i), d, LoRAOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c := newCache(t, m, 96, 4)
	r := rand.New(rand.NewPCG(8, 9))
	vocab := m.Config().Vocab
	const seqs = 12
	tables := make([][]int32, seqs)
	lens := make([]int, seqs)
	bl := newBlocks(96, 21)
	var pre Batch
	for s := range seqs {
		lens[s] = 1 + r.IntN(7)
		toks := make([]int32, lens[s])
		for i := range toks {
			toks[i] = int32(r.IntN(vocab))
		}
		tables[s] = bl.cover(t, nil, lens[s], 4)
		pre.Seqs = append(pre.Seqs, SeqInput{Tokens: toks, BlockTable: tables[s], LoRA: ids[s%len(ids)]})
	}
	if _, err := m.Forward(c, &pre); err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for _, n := range loraTraceSizes {
		var b Batch
		for s := range n {
			tables[s] = bl.cover(t, tables[s], lens[s]+1, 4)
			b.Seqs = append(b.Seqs, SeqInput{Tokens: []int32{int32(r.IntN(vocab))}, StartPos: lens[s], BlockTable: tables[s],
				WantLogits: true, LoRA: ids[r.IntN(len(ids))]})
			lens[s]++
		}
		l, err := m.Forward(c, &b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Clone(l))
	}
	return out
}

// TestLoRAGraphs checks decode steps with LoRA adapters run from graphs
// (gpu.LoRATableOps): the logits of a step of mixed adapters replayed from
// its graph are the padded eager step's bit for bit, also when the
// adapters of the batch change from replay to replay (a graph that kept
// the adapters it was recorded with fails here); and they are the
// unpadded eager steps' (bit for bit on the cpu, whose products do not
// depend on the batch's row count; within the fixture tolerance on a
// GPU). On the cpu the graphs are fakeGrapher's, which replay by running
// the step again; with SLUICE_TEST_DEVICE=cuda they are CUDA graphs.
func TestLoRAGraphs(t *testing.T) {
	t.Setenv("SLUICE_CUDA_GRAPHS", "")
	const name = "qwen3"
	dirs, _ := writeAdapters(t, name)
	t.Run("cpu", func(t *testing.T) {
		dev := openCPU(t)
		eager := load(t, dev, name, gpu.F32)
		padded := load(t, dev, name, gpu.F32)
		padded.step.graphs.mode = graphsPad
		fg := &fakeGrapher{Device: dev}
		g, err := Load(fixtureDir(name), fg, Options{DType: gpu.F32})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		le, lp, lg := loraTrace(t, eager, dirs), loraTrace(t, padded, dirs), loraTrace(t, g, dirs)
		if fg.captures == 0 || fg.launches <= fg.captures {
			t.Fatalf("%d captures and %d launches: no step replayed a graph", fg.captures, fg.launches)
		}
		sameBits(t, "padded vs eager", lp, le)
		sameBits(t, "graphs vs eager", lg, le)
		checkAdapted(t, lg)
	})
	t.Run("device", func(t *testing.T) {
		dev := openTestDevice(t)
		eager := load(t, dev, name, gpu.F32)
		eager.step.graphs.mode = graphsOff
		padded := load(t, dev, name, gpu.F32)
		padded.step.graphs.mode = graphsPad
		g := load(t, dev, name, gpu.F32)
		if g.step.graphs.mode != graphsOn {
			t.Fatalf("graph mode on %s is %d, want on", dev.Name(), g.step.graphs.mode)
		}
		le, lp, lg := loraTrace(t, eager, dirs), loraTrace(t, padded, dirs), loraTrace(t, g, dirs)
		if g.Graphs() == 0 {
			t.Fatal("no decode step was recorded as a graph")
		}
		sameBits(t, "graphs vs padded", lg, lp)
		for i := range lg {
			if e := relErr(lg[i], le[i]); e > 1e-4 {
				t.Errorf("step %d: graph vs eager relative error %.2g", i, e)
			}
		}
		checkAdapted(t, lg)
	})
}

func sameBits(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: step %d: %d logits, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("%s: step %d (%d seqs): logit %d is %g, want %g", what, i, loraTraceSizes[i], j, got[i][j], want[i][j])
			}
		}
	}
}

// checkAdapted fails unless the adapters matter: loraTrace's step 0 and
// the same step run without adapters would be equal otherwise, so compare
// the trace with itself across the steps of one bucket, which see other
// adapters: this only guards against a trace that computes nothing.
func checkAdapted(t *testing.T, l [][]float32) {
	t.Helper()
	if slices.Equal(l[2], l[3]) {
		t.Error("two decode steps gave the same logits: the trace would not see a stale graph")
	}
}

// TestLoRAGraphsLoad checks adapters loaded and unloaded while graphs of
// LoRA steps are live (cpu, fake graphs): loading one past the tables'
// slots drops the graphs (the tables are made again, larger), unloading
// one keeps them, and every step's logits stay the eager model's bit for
// bit, the new adapters' included.
func TestLoRAGraphsLoad(t *testing.T) {
	t.Setenv("SLUICE_CUDA_GRAPHS", "")
	const name = "llama3"
	dirs, _ := writeAdapters(t, name)
	dev := openCPU(t)
	eager := load(t, dev, name, gpu.F32)
	fg := &fakeGrapher{Device: dev}
	g, err := Load(fixtureDir(name), fg, Options{DType: gpu.F32})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	models := []*Model{eager, g}
	loadBoth := func(n string, d string) int {
		id := 0
		for _, m := range models {
			var err error
			if id, err = m.LoadLoRA(n, d, LoRAOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	caches := []*Cache{newCache(t, eager, 32, 4), newCache(t, g, 32, 4)}
	b := &Batch{}
	for s := range 4 {
		b.Seqs = append(b.Seqs, SeqInput{Tokens: []int32{int32(3 + s)}, BlockTable: []int32{int32(4 * s), int32(4*s + 1), int32(4*s + 2), int32(4*s + 3)}, WantLogits: true})
	}
	pos := 0
	step := func(loras ...int) {
		t.Helper()
		for s := range b.Seqs {
			b.Seqs[s].StartPos, b.Seqs[s].LoRA = pos, loras[s]
		}
		pos++
		want, err := eager.Forward(caches[0], b)
		if err != nil {
			t.Fatal(err)
		}
		want = slices.Clone(want)
		got, err := g.Forward(caches[1], b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("step %d (adapters %v): logit %d is %g, want %g", pos-1, loras, i, got[i], want[i])
			}
		}
	}
	a := loadBoth("a", dirs[1])
	step(a, 0, a, a)
	step(0, a, a, 0) // records
	step(a, a, 0, a) // replays
	if fg.live == 0 {
		t.Fatal("no graph recorded")
	}
	var ids []int
	for i := range 16 {
		ids = append(ids, loadBoth(fmt.Sprint("b", i), dirs[i%3]))
	}
	if fg.live != 0 {
		t.Errorf("%d graphs live after the 17th adapter outgrew the tables' 16 slots", fg.live)
	}
	step(ids[15], a, ids[0], ids[7])
	step(ids[14], ids[15], 0, a)
	step(ids[15], ids[2], ids[1], a)
	live := fg.live
	for _, m := range models {
		if err := m.UnloadLoRA(ids[7]); err != nil {
			t.Fatal(err)
		}
	}
	if fg.live != live {
		t.Errorf("unloading an adapter dropped graphs: %d live, %d before", fg.live, live)
	}
	step(ids[15], ids[8], a, ids[6])
	c := loadBoth("c", dirs[2]) // takes the freed slot
	step(c, c, ids[15], 0)
	step(ids[3], c, a, c)
}
