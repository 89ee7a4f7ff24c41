package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// schedEnv drives a scheduler and block manager for the trace files under
// testdata/scheduler, as etcd-io/raft's interaction tests drive raft
// nodes. The "model" samples 100+k for a sequence's k-th output token, or
// the EOS (0) at the output index given by eos-at.
//
// Commands:
//
//	init blocks=N block-size=N max-seqs=N max-batched=N [max-model-len=N] [no-prefix-cache] [no-chunking]
//	add id=N prompt=N [common=K] [max-tokens=N] [min-tokens=N] [eos-at=K]
//	    prompt tokens are K shared ones (1..K) then id*1000+i
//	step [n=N]      schedule, run and update N times, printing each plan
//	finish id=N     abort a sequence
//	state           the block tables and queues
//	check-leaks     run every sequence to the end is not implied: fails on held blocks
//
// Run with -rewrite to regenerate the expected traces.
type schedEnv struct {
	s     *scheduler
	bm    *blockManager
	seqs  map[int64]*Sequence
	eosAt map[int64]int
	order []int64
	steps int
}

const traceEOS = 0

func TestSchedulerTraces(t *testing.T) {
	datadriven.Walk(t, "testdata/scheduler", func(t *testing.T, path string) {
		env := &schedEnv{}
		datadriven.RunTest(t, path, env.handle)
	})
}

func (env *schedEnv) handle(t *testing.T, d *datadriven.TestData) string {
	intArg := func(key string, def int) int {
		v := def
		if d.HasArg(key) {
			d.ScanArgs(t, key, &v)
		}
		return v
	}
	switch d.Cmd {
	case "init":
		cfg := schedulerConfig{
			maxNumSeqs:          intArg("max-seqs", 4),
			maxNumBatchedTokens: intArg("max-batched", 16),
			chunkedPrefill:      !d.HasArg("no-chunking"),
		}
		blocks, size := intArg("blocks", 8), intArg("block-size", 4)
		cfg.maxModelLen = intArg("max-model-len", blocks*size)
		env.bm = newBlockManager(blocks, size, !d.HasArg("no-prefix-cache"))
		env.s = newScheduler(cfg, env.bm)
		env.seqs, env.eosAt, env.order, env.steps = map[int64]*Sequence{}, map[int64]int{}, nil, 0
		return env.stateLine()
	case "add":
		id := int64(intArg("id", 0))
		n, common := intArg("prompt", 1), intArg("common", 0)
		prompt := make([]int32, n)
		for i := range prompt {
			if i < common {
				prompt[i] = int32(i + 1)
			} else {
				prompt[i] = int32(id*1000) + int32(i)
			}
		}
		seq := newSequence(id, prompt, stopRule{
			maxTokens: intArg("max-tokens", 4), minTokens: intArg("min-tokens", 0), eos: []int32{traceEOS},
		})
		if d.HasArg("eos-at") {
			env.eosAt[id] = intArg("eos-at", 0)
		}
		env.seqs[id] = seq
		env.order = append(env.order, id)
		env.s.Add(seq)
		return env.stateLine()
	case "step":
		var b strings.Builder
		for range intArg("n", 1) {
			env.steps++
			p := env.s.Schedule()
			var sampled []int32
			for _, sc := range p.seqs {
				if sc.sample {
					k := sc.seq.numOutput()
					tok := int32(100 + k)
					if at, ok := env.eosAt[sc.seq.id]; ok && at == k {
						tok = traceEOS
					}
					sampled = append(sampled, tok)
				}
			}
			env.s.Update(p, sampled)
			fmt.Fprintf(&b, "step %d: %s (%d tokens)", env.steps, p, p.numTokens)
			for _, q := range p.finished {
				fmt.Fprintf(&b, " done:%d(%s)", q.id, q.finish)
			}
			fmt.Fprintf(&b, "\n  %s\n", env.stateLine())
		}
		return b.String()
	case "finish":
		seq := env.seqs[int64(intArg("id", 0))]
		env.s.Finish(seq, FinishAbort)
		return env.stateLine()
	case "state":
		var b strings.Builder
		for _, id := range env.order {
			q := env.seqs[id]
			fmt.Fprintf(&b, "seq %d: %s computed=%d/%d out=%v blocks=%v", id, q.status, q.numComputed, len(q.tokens), q.output(), q.blocks)
			if q.finish != "" {
				fmt.Fprintf(&b, " finish=%s", q.finish)
			}
			if q.preemptions > 0 {
				fmt.Fprintf(&b, " preempted=%d", q.preemptions)
			}
			b.WriteByte('\n')
		}
		b.WriteString(env.stateLine())
		return b.String()
	case "check-leaks":
		if err := env.bm.CheckLeaks(); err != nil {
			return err.Error()
		}
		return "ok"
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func (env *schedEnv) stateLine() string {
	ids := func(q []*Sequence) []int64 {
		out := make([]int64, len(q))
		for i, s := range q {
			out[i] = s.id
		}
		return out
	}
	return fmt.Sprintf("free=%d/%d cached=%d running=%v waiting=%v", env.bm.NumFree(), env.bm.NumBlocks(),
		env.bm.NumCached(), ids(env.s.running), ids(env.s.waiting))
}

// TestBlockManagerLRU checks eviction order by hand: freed cached blocks
// are reused least recently freed first, uncached ones before any cached.
func TestBlockManagerLRU(t *testing.T) {
	m := newBlockManager(4, 2, true)
	a := newSequence(1, []int32{1, 2, 3, 4, 5}, stopRule{maxTokens: 1})
	if !m.allocate(a, nil, 5) {
		t.Fatal("allocate a")
	}
	a.numComputed = 5
	m.commit(a) // blocks 0, 1 cached; block 2 partial
	if got := m.NumCached(); got != 2 {
		t.Fatalf("cached = %d, want 2", got)
	}
	m.free(a) // order: 2 (uncached) to the front; then 1, 0 to the back
	var order []int32
	for b := m.head; b != noBlock; b = m.blocks[b].next {
		order = append(order, b)
	}
	if want := []int32{2, 3, 1, 0}; !slices.Equal(order, want) {
		t.Fatalf("free list %v, want %v", order, want)
	}
	// A sequence with a's first block as prefix takes it back from the free list.
	b := newSequence(2, []int32{1, 2, 9, 9, 9}, stopRule{maxTokens: 1})
	hits := m.lookup(b)
	if !slices.Equal(hits, []int32{0}) {
		t.Fatalf("hits %v, want [0]", hits)
	}
	if !m.allocate(b, hits, 3) {
		t.Fatal("allocate b")
	}
	// b needs 2 new blocks: 2 and 3 (uncached first); block 1 stays cached.
	if !slices.Equal(b.blocks, []int32{0, 2, 3}) || m.NumCached() != 2 {
		t.Fatalf("b.blocks %v cached %d", b.blocks, m.NumCached())
	}
	// One more block evicts block 1, a's second, the only free one.
	c := newSequence(3, []int32{7, 7}, stopRule{maxTokens: 1})
	if !m.allocate(c, m.lookup(c), 2) || !slices.Equal(c.blocks, []int32{1}) || m.NumCached() != 1 {
		t.Fatalf("c.blocks %v cached %d", c.blocks, m.NumCached())
	}
	if m.allocate(newSequence(4, []int32{1}, stopRule{maxTokens: 1}), nil, 1) {
		t.Fatal("allocated from an empty pool")
	}
	if err := m.CheckLeaks(); err == nil {
		t.Fatal("CheckLeaks passed with blocks held")
	}
	m.free(b)
	m.free(c)
	if err := m.CheckLeaks(); err != nil {
		t.Fatal(err)
	}
}
