package blocks

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/internal/kernel"
)

// Store holds a worker's blocks under a memory budget. When the buffer
// bytes of the blocks in memory exceed the budget after a Put, it spills
// least-recently-used blocks to its directory and reads them back on each
// Get. It is safe for concurrent use; spill files are written outside its
// lock, so Gets of other blocks do not wait on the disk.
type Store struct {
	dir    string
	budget int64
	mem    memory.Allocator

	mu     sync.Mutex
	blocks map[string]*entry
	// lru orders the in-memory blocks that are not being spilled, most
	// recently put or read first.
	lru      list.List
	memBytes int64 // blocks in memory, including those being spilled
	spilling int64 // of memBytes, the blocks being written to disk now
	disk     int64 // sizes of spill files
	onDisk   int
	spills   int64
	// seq names spill files. Names never repeat within a process, so the
	// file of a block replaced while it was being spilled cannot collide
	// with its successor's, and no id text reaches the file system.
	seq uint64
}

// entry is one block. Its batches stay in recs until the spill file is
// renamed into place; while spilling is set the spiller owns recs and a
// Delete only unlinks the entry, leaving the release to the spiller.
type entry struct {
	id       string
	schema   *arrow.Schema
	recs     []arrow.RecordBatch // nil once on disk
	bytes    int64
	elem     *list.Element // in lru, or nil
	spilling bool
	path     string // spill file once on disk
	size     int64  // its size
}

// Stats is a snapshot of a Store.
type Stats struct {
	Blocks      int   // blocks held, in memory or on disk
	OnDisk      int   // of Blocks, those spilled to disk
	MemoryBytes int64 // buffer bytes of the blocks in memory
	DiskBytes   int64 // bytes of the spill files
	Spills      int64 // blocks written to disk since NewStore
}

// Spill files are blk-<seq>.arrows, written first as blk-*.tmp.
const (
	spillPrefix = "blk-"
	spillSuffix = ".arrows"
	tempSuffix  = ".tmp"
)

// NewStore opens a store that spills to dir, creating it, and deletes the
// spill files an earlier process left there (other files are left alone).
// dir must belong to this Store alone. budget is the most buffer bytes of
// blocks held in memory; 0 spills every non-empty block. Batches read
// back from disk are allocated from mem.
func NewStore(dir string, budget int64, mem memory.Allocator) (*Store, error) {
	if dir == "" {
		return nil, errors.New("blocks: spill directory is empty")
	}
	if budget < 0 {
		return nil, fmt.Errorf("blocks: memory budget (%d) is negative", budget)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blocks: spill directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("blocks: spill directory: %w", err)
	}
	for _, de := range ents {
		name := de.Name()
		if de.Type().IsRegular() && strings.HasPrefix(name, spillPrefix) &&
			(strings.HasSuffix(name, spillSuffix) || strings.HasSuffix(name, tempSuffix)) {
			if err := os.Remove(dir + string(os.PathSeparator) + name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("blocks: remove leftover spill file: %w", err)
			}
		}
	}
	return &Store{dir: dir, budget: budget, mem: mem, blocks: make(map[string]*entry)}, nil
}

// Put stores a block of batches of schema under id, replacing any block of
// that id. The store retains the batches; the caller still releases its
// own references. A non-nil error after the arguments were accepted means
// spilling failed: the block is stored anyway and the store holds more
// than its budget until a later Put spills successfully.
func (s *Store) Put(id string, schema *arrow.Schema, recs []arrow.RecordBatch) error {
	if id == "" {
		return errors.New("blocks: put: empty block id")
	}
	if schema == nil {
		return fmt.Errorf("blocks: put %q: nil schema", id)
	}
	for i, rec := range recs {
		if !rec.Schema().Equal(schema) {
			return fmt.Errorf("blocks: put %q: batch %d has schema %s, want %s", id, i, rec.Schema(), schema)
		}
	}
	e := &entry{id: id, schema: schema, recs: make([]arrow.RecordBatch, len(recs))}
	for i, rec := range recs {
		rec.Retain()
		e.recs[i] = rec
		e.bytes += kernel.BatchBytes(rec)
	}

	s.mu.Lock()
	var g garbage
	if old := s.blocks[id]; old != nil {
		g = s.unlink(old)
	}
	s.blocks[id] = e
	e.elem = s.lru.PushFront(e)
	s.memBytes += e.bytes
	victims := s.pickVictims(e)
	s.mu.Unlock()

	g.free()
	return s.spill(victims)
}

// pickVictims marks the blocks to spill so that the bytes in memory not
// already being spilled fit the budget: the block just put first when it
// alone is over budget (evicting others for it would not help), then
// least-recently-used ones. s.mu is held.
func (s *Store) pickVictims(put *entry) []*entry {
	over := s.memBytes - s.spilling - s.budget
	if over <= 0 {
		return nil
	}
	var victims []*entry
	take := func(e *entry) {
		s.lru.Remove(e.elem)
		e.elem = nil
		e.spilling = true
		s.spilling += e.bytes
		over -= e.bytes
		victims = append(victims, e)
	}
	if put.bytes > s.budget {
		take(put)
	}
	for el := s.lru.Back(); el != nil && over > 0; {
		prev := el.Prev()
		if e := el.Value.(*entry); e != put && e.bytes > 0 {
			take(e)
		}
		el = prev
	}
	return victims
}

// spill writes victims to disk, one at a time, outside s.mu.
func (s *Store) spill(victims []*entry) error {
	var errs []error
	for _, e := range victims {
		s.mu.Lock()
		s.seq++
		path := fmt.Sprintf("%s%c%s%016x%s", s.dir, os.PathSeparator, spillPrefix, s.seq, spillSuffix)
		s.mu.Unlock()

		size, err := writeSpill(s.dir, path, e.schema, e.recs, s.mem)

		var g garbage
		s.mu.Lock()
		switch {
		case s.blocks[e.id] != e:
			// Deleted or replaced meanwhile; unlink settled the counters.
			g.recs = e.recs
			if err == nil {
				g.paths = append(g.paths, path)
			}
		case err != nil:
			e.spilling = false
			s.spilling -= e.bytes
			e.elem = s.lru.PushBack(e)
			errs = append(errs, fmt.Errorf("blocks: spill %q: %w", e.id, err))
		default:
			g.recs = e.recs
			e.recs = nil
			e.spilling = false
			e.path, e.size = path, size
			s.memBytes -= e.bytes
			s.spilling -= e.bytes
			s.disk += size
			s.onDisk++
			s.spills++
		}
		s.mu.Unlock()
		g.free()
	}
	return errors.Join(errs...)
}

// Get returns the block stored under id: its schema and new references to
// its batches, which the caller releases. A spilled block is read from
// disk on every call. A missing id gives an error wrapping ErrNotFound.
func (s *Store) Get(id string) (*arrow.Schema, []arrow.RecordBatch, error) {
	s.mu.Lock()
	e := s.blocks[id]
	if e == nil {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if e.recs != nil {
		out := make([]arrow.RecordBatch, len(e.recs))
		for i, rec := range e.recs {
			rec.Retain()
			out[i] = rec
		}
		if e.elem != nil {
			s.lru.MoveToFront(e.elem)
		}
		s.mu.Unlock()
		return e.schema, out, nil
	}
	schema, path := e.schema, e.path
	s.mu.Unlock()

	recs, err := readSpill(path, s.mem)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted between the lookup and the open.
		return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("blocks: read spilled block %q: %w", id, err)
	}
	return schema, recs, nil
}

// Delete frees the block stored under id, in memory or on disk. Deleting
// a missing id does nothing. References handed out by Get stay valid.
func (s *Store) Delete(id string) {
	s.mu.Lock()
	var g garbage
	if e := s.blocks[id]; e != nil {
		g = s.unlink(e)
	}
	s.mu.Unlock()
	g.free()
}

// DeletePrefix frees every block whose id starts with prefix ("j-000012/"
// for a job, "j-000012/s2/" for a stage; "" for all) and returns how many
// it freed.
func (s *Store) DeletePrefix(prefix string) int {
	s.mu.Lock()
	var g garbage
	n := 0
	for id, e := range s.blocks {
		if strings.HasPrefix(id, prefix) {
			g.add(s.unlink(e))
			n++
		}
	}
	s.mu.Unlock()
	g.free()
	return n
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Blocks:      len(s.blocks),
		OnDisk:      s.onDisk,
		MemoryBytes: s.memBytes,
		DiskBytes:   s.disk,
		Spills:      s.spills,
	}
}

// unlink removes e from the store and settles the counters, returning
// what to free once s.mu is released. A block being spilled is freed by
// its spiller, which finds it unlinked. s.mu is held.
func (s *Store) unlink(e *entry) garbage {
	delete(s.blocks, e.id)
	if e.elem != nil {
		s.lru.Remove(e.elem)
		e.elem = nil
	}
	switch {
	case e.spilling:
		s.memBytes -= e.bytes
		s.spilling -= e.bytes
		return garbage{}
	case e.recs != nil:
		s.memBytes -= e.bytes
		return garbage{recs: e.recs}
	default:
		s.disk -= e.size
		s.onDisk--
		return garbage{paths: []string{e.path}}
	}
}

// garbage is what a change under s.mu leaves to free after it: batch
// references to release and spill files to remove.
type garbage struct {
	recs  []arrow.RecordBatch
	paths []string
}

func (g *garbage) add(o garbage) {
	g.recs = append(g.recs, o.recs...)
	g.paths = append(g.paths, o.paths...)
}

func (g garbage) free() {
	for _, rec := range g.recs {
		rec.Release()
	}
	for _, p := range g.paths {
		// A failed remove leaves a file the next NewStore deletes.
		_ = os.Remove(p)
	}
}
