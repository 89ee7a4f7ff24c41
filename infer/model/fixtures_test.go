package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// The fixtures: random-weight models saved by transformers with their
// expected logits and greedy tokens (testdata/make_fixtures.py).
var fixtureNames = []string{"llama3", "llama2", "mistral", "qwen2", "qwen3"}

// tol is the largest relative error allowed in float32: max|got − want|
// over max|want| of the compared values.
const tol = 1e-4

type expected struct {
	Name      string    `json:"name"`
	Arch      string    `json:"architecture"`
	InvFreq   []float64 `json:"inv_freq"`
	NewTokens int       `json:"new_tokens"`
	F32       record    `json:"f32"`
	BF16      record    `json:"bf16"`
}

type record struct {
	Logits []logitCase  `json:"logits"`
	Greedy []greedyCase `json:"greedy"`
}

type logitCase struct {
	Tokens   []int32     `json:"tokens"`
	Last     []float32   `json:"last"`
	Top5IDs  [][]int32   `json:"top5_ids"`
	Top5Vals [][]float32 `json:"top5_vals"`
	Sum      float64     `json:"sum"`
	AbsSum   float64     `json:"abs_sum"`
}

type greedyCase struct {
	Prompt []int32 `json:"prompt"`
	Tokens []int32 `json:"tokens"`
}

func fixtureDir(name string) string { return filepath.Join("testdata", "fixtures", name) }

func readExpected(t *testing.T, name string) *expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(name), "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// openCPU opens a two-thread cpu device that must have no live bytes when
// the test ends.
func openCPU(t *testing.T) gpu.Device {
	t.Helper()
	dev, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	gputest.CheckLeaks(t, dev)
	return dev
}

func load(t *testing.T, dev gpu.Device, name string, dt gpu.DType) *Model {
	t.Helper()
	m, err := Load(fixtureDir(name), dev, Options{DType: dt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newCache(t *testing.T, m *Model, blocks, size int) *Cache {
	t.Helper()
	c, err := m.NewCache(blocks, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Free() })
	return c
}

// blocks hands out cache blocks in a seeded random order, so that block
// tables are scattered and not contiguous.
type blocks struct{ free []int32 }

func newBlocks(n int, seed uint64) *blocks {
	r := rand.New(rand.NewPCG(seed, 7))
	b := &blocks{}
	for _, i := range r.Perm(n) {
		b.free = append(b.free, int32(i))
	}
	return b
}

// cover extends table to hold positions [0, n) of blocks of size bs.
func (b *blocks) cover(t *testing.T, table []int32, n, bs int) []int32 {
	for len(table)*bs < n {
		if len(b.free) == 0 {
			t.Fatal("test cache too small")
		}
		table = append(table, b.free[0])
		b.free = b.free[1:]
	}
	return table
}

// relErr is max|got − want| / max|want|.
func relErr(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		s = max(s, math.Abs(float64(want[i])))
	}
	return d / s
}

func argmax(row []float32) int32 {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return int32(best)
}

// checkTop5 compares a position's full row with transformers' top 5: the
// row's values at those ids, and its argmax where the top two are apart.
func checkTop5(t *testing.T, what string, row []float32, ids []int32, vals []float32) {
	t.Helper()
	got := make([]float32, len(ids))
	for i, id := range ids {
		got[i] = row[id]
	}
	if e := relErr(got, vals); e > tol {
		t.Errorf("%s: top-5 logits %v, want %v (ids %v): relative error %.2g", what, got, vals, ids, e)
	}
	if float64(vals[0]-vals[1]) > 2*tol*math.Abs(float64(vals[0])) && argmax(row) != ids[0] {
		t.Errorf("%s: argmax %d, want %d", what, argmax(row), ids[0])
	}
}

func forFixtures(t *testing.T, fn func(t *testing.T, name string, e *expected)) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) { fn(t, name, readExpected(t, name)) })
	}
}

func TestConfigs(t *testing.T) {
	want := map[string]Config{
		"llama3": {Arch: "LlamaForCausalLM", Vocab: 512, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16,
			Intermediate: 160, MaxPositions: 512, EOS: []int32{510, 511}, BOS: 509, RMSNormEps: 1e-5, TieEmbeddings: true,
			Rope:       gpu.Rope{Theta: 500000, Llama3: &gpu.Llama3Scaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}},
			TorchDType: "float32"},
		"llama2": {Arch: "LlamaForCausalLM", Vocab: 384, Hidden: 96, Layers: 3, Heads: 6, KVHeads: 6, HeadDim: 16,
			Intermediate: 256, MaxPositions: 512, EOS: []int32{2}, BOS: 1, RMSNormEps: 1e-6, Rope: gpu.Rope{Theta: 10000},
			TorchDType: "float32"},
		"mistral": {Arch: "MistralForCausalLM", Vocab: 256, Hidden: 64, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 8,
			Intermediate: 192, MaxPositions: 512, EOS: []int32{2}, BOS: 1, RMSNormEps: 1e-5, Rope: gpu.Rope{Theta: 1e6},
			TorchDType: "float32"},
		"qwen2": {Arch: "Qwen2ForCausalLM", Vocab: 1024, Hidden: 64, Layers: 4, Heads: 4, KVHeads: 2, HeadDim: 16,
			Intermediate: 128, MaxPositions: 512, EOS: []int32{1021, 1023}, BOS: 1020, RMSNormEps: 1e-6, TieEmbeddings: true,
			QKVBias: true, Rope: gpu.Rope{Theta: 1e6}, TorchDType: "float32"},
		"qwen3": {Arch: "Qwen3ForCausalLM", Vocab: 768, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32,
			Intermediate: 192, MaxPositions: 512, EOS: []int32{766, 767}, BOS: -1, RMSNormEps: 1e-6, TieEmbeddings: true,
			QKNorm: true, Rope: gpu.Rope{Theta: 1e6}, TorchDType: "float32"},
	}
	for _, name := range fixtureNames {
		cfg, err := readConfig(t.Context(), fixtureDir(name))
		if err != nil {
			t.Fatal(err)
		}
		if w := want[name]; !reflect.DeepEqual(cfg, w) {
			t.Errorf("%s:\n got %+v %+v\nwant %+v %+v", name, cfg, cfg.Rope.Llama3, w, w.Rope.Llama3)
		}
	}
}

// TestInvFreq compares the rotary frequencies of the parsed config with the
// ones transformers used: llama3 scaling included.
func TestInvFreq(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		cfg, err := readConfig(t.Context(), fixtureDir(name))
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.Rope.InvFreq(cfg.HeadDim)
		if len(got) != len(e.InvFreq) {
			t.Fatalf("%d frequencies, want %d", len(got), len(e.InvFreq))
		}
		for i, w := range e.InvFreq {
			if math.Abs(float64(got[i])-w) > 1e-6*w {
				t.Errorf("inv_freq[%d] = %g, want %g", i, got[i], w)
			}
		}
	})
}

// TestPrefill runs each prompt in one step.
func TestPrefill(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.F32)
		for i, lc := range e.F32.Logits {
			c := newCache(t, m, 8, 0)
			table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), c.BlockSize())
			out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(out, lc.Last); e > tol {
				t.Errorf("prompt %d (%d tokens): relative error %.3g", i, len(lc.Tokens), e)
			} else {
				t.Logf("prompt %d (%d tokens): relative error %.3g", i, len(lc.Tokens), e)
			}
			c.Free()
		}
	})
}

// TestDecode feeds each prompt one token per step through the paged cache
// and checks the logits at every position, and their sums.
func TestDecode(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.F32)
		for i, lc := range e.F32.Logits {
			c := newCache(t, m, 16, 4) // blocks of 4: many block boundaries
			bl := newBlocks(16, uint64(10+i))
			var table []int32
			var sum, abs float64
			var row []float32
			for p, tok := range lc.Tokens {
				table = bl.cover(t, table, p+1, 4)
				out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: []int32{tok}, StartPos: p, BlockTable: table, WantLogits: true}}})
				if err != nil {
					t.Fatal(err)
				}
				checkTop5(t, "position "+strconv.Itoa(p), out, lc.Top5IDs[p], lc.Top5Vals[p])
				for _, v := range out {
					sum += float64(v)
					abs += math.Abs(float64(v))
				}
				row = out
			}
			if err := relErr(row, lc.Last); err > tol {
				t.Errorf("prompt %d: last row relative error %.3g", i, err)
			}
			if math.Abs(sum-lc.Sum) > tol*lc.AbsSum || math.Abs(abs-lc.AbsSum) > tol*lc.AbsSum {
				t.Errorf("prompt %d: logits sum %g, |sum| %g; want %g, %g", i, sum, abs, lc.Sum, lc.AbsSum)
			}
			c.Free()
		}
	})
}

// TestChunkedPrefill feeds each prompt in chunks of 5 tokens, asking for
// logits at the end of every chunk.
func TestChunkedPrefill(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.F32)
		for i, lc := range e.F32.Logits {
			c := newCache(t, m, 8, 16)
			bl := newBlocks(8, uint64(20+i))
			var table []int32
			var out []float32
			for p := 0; p < len(lc.Tokens); p += 5 {
				end := min(p+5, len(lc.Tokens))
				table = bl.cover(t, table, end, 16)
				var err error
				out, err = m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens[p:end], StartPos: p, BlockTable: table, WantLogits: true}}})
				if err != nil {
					t.Fatal(err)
				}
				checkTop5(t, "position "+strconv.Itoa(end-1), out, lc.Top5IDs[end-1], lc.Top5Vals[end-1])
			}
			if err := relErr(out, lc.Last); err > tol {
				t.Errorf("prompt %d: relative error %.3g", i, err)
			}
			c.Free()
		}
	})
}

// TestBatch runs every prompt in one step, with scattered block tables,
// block sizes 16 and 5, and sequences that want no logits in between.
func TestBatch(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.F32)
		for _, bs := range []int{16, 5} {
			c := newCache(t, m, 64, bs)
			bl := newBlocks(64, uint64(bs))
			var b Batch
			type want struct {
				row   []float32 // a full row, or
				first int32     // the first greedy token
			}
			var wants []want
			for i := range max(len(e.F32.Logits), len(e.F32.Greedy)) {
				if i < len(e.F32.Greedy) {
					g := e.F32.Greedy[i]
					b.Seqs = append(b.Seqs, SeqInput{Tokens: g.Prompt, BlockTable: bl.cover(t, nil, len(g.Prompt), bs), WantLogits: i%2 == 0})
					if i%2 == 0 {
						wants = append(wants, want{first: g.Tokens[0]})
					}
				}
				if i < len(e.F32.Logits) {
					lc := e.F32.Logits[i]
					b.Seqs = append(b.Seqs, SeqInput{Tokens: lc.Tokens, BlockTable: bl.cover(t, nil, len(lc.Tokens), bs), WantLogits: true})
					wants = append(wants, want{row: lc.Last})
				}
			}
			out, err := m.Forward(c, &b)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Config().Vocab
			if len(out) != len(wants)*v {
				t.Fatalf("%d logits, want %d rows of %d", len(out), len(wants), v)
			}
			for r, w := range wants {
				row := out[r*v : (r+1)*v]
				if w.row != nil {
					if err := relErr(row, w.row); err > tol {
						t.Errorf("block size %d: row %d: relative error %.3g", bs, r, err)
					}
				} else if got := argmax(row); got != w.first {
					t.Errorf("block size %d: row %d: argmax %d, want %d", bs, r, got, w.first)
				}
			}
			c.Free()
		}
	})
}

// gen is one greedy generation driven by the test's own loop.
type gen struct {
	toks   []int32 // prompt, then generated tokens
	prompt int
	cached int // tokens whose K/V are in the cache
	table  []int32
	start  int // step at which it joins the batch
}

// TestGreedy decodes each prompt alone: one prefill step, then one token a
// step, argmax each time; the tokens must be transformers' exactly.
func TestGreedy(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.F32)
		for i, g := range e.F32.Greedy {
			c := newCache(t, m, 8, 16)
			got := greedy(t, m, c, newBlocks(8, uint64(30+i)), []*gen{{toks: slices.Clone(g.Prompt), prompt: len(g.Prompt)}}, len(g.Prompt), e.NewTokens)
			if !slices.Equal(got[0], g.Tokens) {
				t.Errorf("prompt %d: greedy tokens\n got %v\nwant %v", i, got[0], g.Tokens)
			}
			c.Free()
		}
	})
}

// TestGreedyContinuousBatch decodes all prompts in one continuous batch:
// they join at different steps, their prompts are prefilled in chunks of 5
// beside the others' decode tokens, and their blocks are scattered.
func TestGreedyContinuousBatch(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.F32)
		c := newCache(t, m, 40, 8)
		var gens []*gen
		for i, g := range e.F32.Greedy {
			gens = append(gens, &gen{toks: slices.Clone(g.Prompt), prompt: len(g.Prompt), start: 3 * i})
		}
		got := greedy(t, m, c, newBlocks(40, 99), gens, 5, e.NewTokens)
		for i, g := range e.F32.Greedy {
			if !slices.Equal(got[i], g.Tokens) {
				t.Errorf("prompt %d: greedy tokens\n got %v\nwant %v", i, got[i], g.Tokens)
			}
		}
	})
}

// greedy steps gens until each has n new tokens: a sequence still
// prefilling feeds up to chunk prompt tokens, one decoding feeds its last
// token; logits are asked for when a step reaches the sequence's end.
func greedy(t *testing.T, m *Model, c *Cache, bl *blocks, gens []*gen, chunk, n int) [][]int32 {
	t.Helper()
	bs := c.BlockSize()
	var b Batch
	var wanting []*gen
	for step := 0; ; step++ {
		b.Seqs, wanting = b.Seqs[:0], wanting[:0]
		done := true
		for _, g := range gens {
			if len(g.toks)-g.prompt >= n {
				continue
			}
			done = false
			if step < g.start {
				continue
			}
			end := min(g.cached+chunk, len(g.toks))
			g.table = bl.cover(t, g.table, end, bs)
			want := end == len(g.toks)
			b.Seqs = append(b.Seqs, SeqInput{Tokens: g.toks[g.cached:end], StartPos: g.cached, BlockTable: g.table, WantLogits: want})
			if want {
				wanting = append(wanting, g)
			}
			g.cached = end
		}
		if done {
			break
		}
		if len(b.Seqs) == 0 {
			continue
		}
		out, err := m.Forward(c, &b)
		if err != nil {
			t.Fatal(err)
		}
		v := m.Config().Vocab
		for r, g := range wanting {
			g.toks = append(g.toks, argmax(out[r*v:(r+1)*v]))
		}
	}
	res := make([][]int32, len(gens))
	for i, g := range gens {
		res[i] = g.toks[g.prompt:]
	}
	return res
}
