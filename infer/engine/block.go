package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/zeebo/xxh3"
)

// blockHash identifies a full block's contents and everything before it:
// the 128-bit xxh3 of the parent block's hash and the block's tokens, so
// equal hashes mean equal prefixes (collisions aside, at 2^-64 odds for
// 2^32 blocks).
type blockHash struct{ hi, lo uint64 }

// noBlock ends the free list.
const noBlock = -1

type block struct {
	ref        int32
	prev, next int32 // free-list links while ref == 0
	hashed     bool  // hash is registered in the prefix cache
	hash       blockHash
}

// blockManager hands out the fixed-size blocks of a paged KV cache, as
// vLLM's KVCacheManager and nano-vllm's block_manager.py do: a free list,
// reference counts, and automatic prefix caching. A full block whose KV
// has been computed is registered under the chained hash of its tokens;
// a later sequence with the same prefix takes the block instead of
// recomputing it. A freed block keeps its hash and stays findable until
// it is reused: the free list is in LRU order (blocks freed last are
// reused last, blocks that hold no cached prefix first), so eviction of
// cached blocks is least-recently-freed first.
//
// It is a deterministic state machine driven by the scheduler, not safe
// for concurrent use.
type blockManager struct {
	size    int
	blocks  []block
	head    int32 // next block to hand out
	tail    int32
	numFree int
	cache   map[blockHash]int32 // nil when prefix caching is off
	buf     []byte              // hash input scratch

	// Prefix-cache statistics: prompt tokens of admitted sequences, and
	// those found in the cache (the scheduler counts them).
	queried, hit int64
}

// newBlockManager returns a manager of numBlocks blocks of size tokens.
func newBlockManager(numBlocks, size int, prefixCaching bool) *blockManager {
	m := &blockManager{size: size, blocks: make([]block, numBlocks), head: noBlock, tail: noBlock}
	for i := range m.blocks {
		m.pushBack(int32(i))
	}
	if prefixCaching {
		m.cache = make(map[blockHash]int32)
	}
	m.buf = make([]byte, 16+4*size)
	return m
}

// NumBlocks is the total number of blocks.
func (m *blockManager) NumBlocks() int { return len(m.blocks) }

// NumFree is the number of blocks no sequence holds, cached ones included.
func (m *blockManager) NumFree() int { return m.numFree }

// NumCached is the number of blocks registered in the prefix cache.
func (m *blockManager) NumCached() int { return len(m.cache) }

// blocksFor is how many blocks n tokens need.
func (m *blockManager) blocksFor(n int) int { return (n + m.size - 1) / m.size }

// hashesTo extends s.hashes to the first n full blocks of its tokens.
func (m *blockManager) hashesTo(s *Sequence, n int) {
	for i := len(s.hashes); i < n; i++ {
		// The first block chains from the adapter's id: KV computed with
		// one LoRA adapter is no prefix of another's (vLLM hashes the
		// lora_int_id in too).
		parent := blockHash{lo: uint64(s.lora)}
		if i > 0 {
			parent = s.hashes[i-1]
		}
		b := m.buf[:0]
		b = binary.LittleEndian.AppendUint64(b, parent.hi)
		b = binary.LittleEndian.AppendUint64(b, parent.lo)
		for _, t := range s.tokens[i*m.size : (i+1)*m.size] {
			b = binary.LittleEndian.AppendUint32(b, uint32(t))
		}
		h := xxh3.Hash128(b)
		s.hashes = append(s.hashes, blockHash{h.Hi, h.Lo})
	}
}

// lookup returns the cached blocks that hold a prefix of s's tokens, for a
// sequence that holds no blocks. At least one token is left to compute, as
// the step that computes it yields the logits to sample from.
func (m *blockManager) lookup(s *Sequence) []int32 {
	if m.cache == nil || len(s.blocks) > 0 {
		return nil
	}
	maxBlocks := (len(s.tokens) - 1) / m.size
	m.hashesTo(s, maxBlocks)
	var hits []int32
	for i := 0; i < maxBlocks; i++ {
		b, ok := m.cache[s.hashes[i]]
		if !ok {
			break
		}
		hits = append(hits, b)
	}
	return hits
}

// allocate gives s the blocks it needs to compute numNew more tokens after
// taking hits (from lookup) as already computed. It takes nothing and
// returns false when too few blocks are free.
func (m *blockManager) allocate(s *Sequence, hits []int32, numNew int) bool {
	total := s.numComputed + len(hits)*m.size + numNew
	need := max(0, m.blocksFor(total)-len(s.blocks)-len(hits))
	// Hits with no holder sit in the free list: taking them uses it up too.
	idle := 0
	for _, b := range hits {
		if m.blocks[b].ref == 0 {
			idle++
		}
	}
	if need > m.numFree-idle {
		return false
	}
	for _, b := range hits {
		if m.blocks[b].ref == 0 {
			m.unlink(b)
		}
		m.blocks[b].ref++
	}
	s.blocks = append(s.blocks, hits...)
	s.numHashed += len(hits)
	for range need {
		b := m.head
		m.unlink(b)
		blk := &m.blocks[b]
		if blk.hashed { // evict the least recently freed cached block
			delete(m.cache, blk.hash)
			blk.hashed = false
		}
		blk.ref = 1
		s.blocks = append(s.blocks, b)
	}
	return true
}

// commit registers s's full, computed blocks in the prefix cache. The
// scheduler calls it after the step that computed them, so no sequence
// can take a block whose KV is still being written.
func (m *blockManager) commit(s *Sequence) {
	if m.cache == nil {
		return
	}
	n := s.numComputed
	if s.withDraft {
		// A block a later sequence takes must hold the draft's keys and
		// values too: the draft lags by one token after a step that
		// accepted every draft (draft.go).
		n = min(n, s.draftComputed)
	}
	full := n / m.size
	if full <= s.numHashed {
		return
	}
	m.hashesTo(s, full)
	for i := s.numHashed; i < full; i++ {
		h := s.hashes[i]
		if _, dup := m.cache[h]; !dup {
			// A twin computed in the same step keeps the first; this block
			// stays private and is reused first when freed.
			b := s.blocks[i]
			m.cache[h] = b
			m.blocks[b].hash, m.blocks[b].hashed = h, true
		}
	}
	s.numHashed = full
}

// free releases s's blocks, last first: the tail of a sequence is the
// least likely to be shared, so it is evicted first.
func (m *blockManager) free(s *Sequence) {
	for i := len(s.blocks) - 1; i >= 0; i-- {
		b := s.blocks[i]
		blk := &m.blocks[b]
		blk.ref--
		switch {
		case blk.ref > 0:
		case blk.hashed:
			m.pushBack(b)
		default:
			m.pushFront(b)
		}
	}
	s.blocks = s.blocks[:0]
	s.numHashed = 0
}

func (m *blockManager) pushBack(b int32) {
	m.blocks[b].prev, m.blocks[b].next = m.tail, noBlock
	if m.tail == noBlock {
		m.head = b
	} else {
		m.blocks[m.tail].next = b
	}
	m.tail = b
	m.numFree++
}

func (m *blockManager) pushFront(b int32) {
	m.blocks[b].prev, m.blocks[b].next = noBlock, m.head
	if m.head == noBlock {
		m.tail = b
	} else {
		m.blocks[m.head].prev = b
	}
	m.head = b
	m.numFree++
}

func (m *blockManager) unlink(b int32) {
	blk := &m.blocks[b]
	if blk.prev == noBlock {
		m.head = blk.next
	} else {
		m.blocks[blk.prev].next = blk.next
	}
	if blk.next == noBlock {
		m.tail = blk.prev
	} else {
		m.blocks[blk.next].prev = blk.prev
	}
	blk.prev, blk.next = noBlock, noBlock
	m.numFree--
}

// CheckLeaks returns an error unless every block is free with a zero
// reference count, the free list holds each exactly once, and the prefix
// cache maps only to blocks that carry its hash. Tests call it at their
// end, as memory.CheckedAllocator's AssertSize.
func (m *blockManager) CheckLeaks() error {
	for i, b := range m.blocks {
		if b.ref != 0 {
			return fmt.Errorf("infer: block %d leaked: reference count %d", i, b.ref)
		}
	}
	seen := make([]bool, len(m.blocks))
	n := 0
	for b := m.head; b != noBlock; b = m.blocks[b].next {
		if seen[b] || n > len(m.blocks) {
			return fmt.Errorf("infer: free list revisits block %d", b)
		}
		seen[b] = true
		n++
	}
	if n != len(m.blocks) || m.numFree != n {
		return fmt.Errorf("infer: %d of %d blocks free (free count %d)", n, len(m.blocks), m.numFree)
	}
	for h, b := range m.cache {
		if !m.blocks[b].hashed || m.blocks[b].hash != h {
			return fmt.Errorf("infer: prefix cache entry for block %d does not match its hash", b)
		}
	}
	return nil
}
