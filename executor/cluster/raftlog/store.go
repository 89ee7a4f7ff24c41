package raftlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

var (
	// ErrCorrupt is a record that fails its checksum or breaks the run of
	// indexes anywhere but at the end of the last segment.
	ErrCorrupt = errors.New("raftlog: corrupt log")
	// ErrNotContiguous is a StoreLogs batch that does not follow the last
	// entry, or a DeleteRange that is neither the head nor the tail.
	ErrNotContiguous = errors.New("raftlog: entries not contiguous")
	// ErrClosed is any call after Close.
	ErrClosed = errors.New("raftlog: closed")
	// errNotFound is the stable store's missing key: hashicorp/raft
	// compares the message, "not found", as raft-boltdb spells it.
	errNotFound = errors.New("not found")
)

// Options tune a Store.
type Options struct {
	// SegmentBytes is the size past which the next batch starts a new
	// segment file (0: 64 MiB). Whole segments are what head deletions
	// remove.
	SegmentBytes int64
}

// Store is a raft.LogStore and raft.StableStore. Raft calls it from
// several goroutines: StoreLogs and DeleteRange from its main loop, GetLog
// from the replication goroutines at the same time; a RWMutex orders them.
type Store struct {
	dir      string
	segBytes int64

	mu     sync.RWMutex
	segs   []*segment // oldest first; the last takes the writes
	first  uint64     // 0: no entries
	last   uint64
	buf    []byte // StoreLogs' encoding, reused
	stable map[string][]byte
	closed bool
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// segment is one file of records; offs[i] is where entry first+i starts.
type segment struct {
	first uint64
	f     *os.File
	offs  []int64
	size  int64 // the end of the last whole record
}

func (g *segment) end() uint64 { return g.first + uint64(len(g.offs)) } // one past the last

const (
	headerBytes = 8                 // payload length, CRC-32C of the payload
	fixedBytes  = 8 + 8 + 1 + 8 + 4 // index, term, type, append time, data length
	stableFile  = "stable"
	segSuffix   = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Open opens (or creates) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	s := &Store{dir: dir, segBytes: o.SegmentBytes, stable: map[string][]byte{}}
	if b, err := os.ReadFile(filepath.Join(dir, stableFile)); err == nil {
		if err := json.Unmarshal(b, &s.stable); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, filepath.Join(dir, stableFile), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	if err := s.openSegments(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func (s *Store) openSegments() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	var firsts []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("%w: segment %s: bad name", ErrCorrupt, e.Name())
		}
		firsts = append(firsts, n)
	}
	slices.Sort(firsts)
	for i, first := range firsts {
		g, err := s.readSegment(first, i == len(firsts)-1)
		if err != nil {
			return err
		}
		if n := len(s.segs); n > 0 && s.segs[n-1].end() != first {
			g.f.Close()
			return fmt.Errorf("%w: segment %s starts at %d, the one before ends at %d", ErrCorrupt, g.f.Name(), first, s.segs[n-1].end()-1)
		}
		if len(g.offs) == 0 && i < len(firsts)-1 {
			g.f.Close()
			return fmt.Errorf("%w: segment %s is empty and not the last", ErrCorrupt, g.f.Name())
		}
		s.segs = append(s.segs, g)
	}
	if len(s.segs) > 0 && s.segs[len(s.segs)-1].end() > s.segs[0].first {
		s.first, s.last = s.segs[0].first, s.segs[len(s.segs)-1].end()-1
	}
	return nil
}

// readSegment reads a segment's records. A torn record at the end of the
// last segment (a crash inside its write, never acknowledged) is cut off.
func (s *Store) readSegment(first uint64, last bool) (*segment, error) {
	path := s.segPath(first)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	g := &segment{first: first, f: f}
	var off int64
	for off < int64(len(b)) {
		n, ok := recordAt(b[off:])
		var l raft.Log
		if ok {
			ok = decode(b[off+headerBytes:off+n], &l) == nil
		}
		if !ok {
			if !last {
				f.Close()
				return nil, fmt.Errorf("%w: %s at byte %d", ErrCorrupt, path, off)
			}
			break // torn: cut below
		}
		if want := g.end(); l.Index != want {
			f.Close()
			return nil, fmt.Errorf("%w: %s at byte %d holds index %d, not %d", ErrCorrupt, path, off, l.Index, want)
		}
		g.offs = append(g.offs, off)
		off += n
	}
	g.size = off
	if off < int64(len(b)) {
		if err := f.Truncate(off); err != nil {
			f.Close()
			return nil, fmt.Errorf("raftlog: %w", err)
		}
		if err := datasync(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("raftlog: %w", err)
		}
	}
	return g, nil
}

// recordAt is the length of the whole record at the start of b, and
// whether it is all there with a good checksum.
func recordAt(b []byte) (int64, bool) {
	if len(b) < headerBytes {
		return 0, false
	}
	n := int64(binary.LittleEndian.Uint32(b))
	if n < fixedBytes+4 || int64(len(b)) < headerBytes+n {
		return 0, false
	}
	p := b[headerBytes : headerBytes+n]
	return headerBytes + n, crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(b[4:])
}

// appendRecord appends l's record to b.
func appendRecord(b []byte, l *raft.Log) []byte {
	start := len(b)
	b = append(b, make([]byte, headerBytes)...)
	b = binary.LittleEndian.AppendUint64(b, l.Index)
	b = binary.LittleEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(at))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(l.Extensions)))
	b = append(b, l.Extensions...)
	p := b[start+headerBytes:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(p, castagnoli))
	return b
}

// decode reads a record's payload into l; l's slices alias p.
func decode(p []byte, l *raft.Log) error {
	if len(p) < fixedBytes+4 {
		return ErrCorrupt
	}
	l.Index = binary.LittleEndian.Uint64(p)
	l.Term = binary.LittleEndian.Uint64(p[8:])
	l.Type = raft.LogType(p[16])
	l.AppendedAt = time.Time{}
	if at := int64(binary.LittleEndian.Uint64(p[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	n := int(binary.LittleEndian.Uint32(p[25:]))
	p = p[fixedBytes:]
	if len(p) < n+4 {
		return ErrCorrupt
	}
	l.Data = nil
	if n > 0 {
		l.Data = p[:n:n]
	}
	p = p[n:]
	m := int(binary.LittleEndian.Uint32(p))
	if p = p[4:]; len(p) != m {
		return ErrCorrupt
	}
	l.Extensions = nil
	if m > 0 {
		l.Extensions = p[:m:m]
	}
	return nil
}

func (s *Store) segPath(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", first, segSuffix))
}

// FirstIndex is the first entry's index (0: none).
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

// LastIndex is the last entry's index (0: none).
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// GetLog reads entry index into l.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.first == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	i := len(s.segs) - 1
	for s.segs[i].first > index {
		i--
	}
	g := s.segs[i]
	k := index - g.first
	end := g.size
	if k+1 < uint64(len(g.offs)) {
		end = g.offs[k+1]
	}
	b := make([]byte, end-g.offs[k])
	if _, err := g.f.ReadAt(b, g.offs[k]); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	if n, ok := recordAt(b); !ok || n != int64(len(b)) {
		return fmt.Errorf("%w: %s at byte %d", ErrCorrupt, g.f.Name(), g.offs[k])
	}
	if err := decode(b[headerBytes:], l); err != nil || l.Index != index {
		return fmt.Errorf("%w: %s at byte %d", ErrCorrupt, g.f.Name(), g.offs[k])
	}
	return nil
}

// StoreLog stores one entry.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends the batch with one write and one fdatasync. The batch
// must follow the last entry (any index when the store holds none).
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	next := logs[0].Index
	if s.first != 0 && next != s.last+1 {
		return fmt.Errorf("%w: batch starts at %d, the log ends at %d", ErrNotContiguous, next, s.last)
	}
	for i, l := range logs {
		if l.Index != next+uint64(i) {
			return fmt.Errorf("%w: batch entry %d has index %d, not %d", ErrNotContiguous, i, l.Index, next+uint64(i))
		}
	}
	g, err := s.active(next)
	if err != nil {
		return err
	}
	b := s.buf[:0]
	offs := make([]int64, len(logs))
	for i, l := range logs {
		offs[i] = g.size + int64(len(b))
		b = appendRecord(b, l)
	}
	s.buf = b
	if cap(s.buf) > 64<<20 {
		s.buf = nil // a rare huge batch keeps no buffer of its size
	}
	// WriteAt at the last whole record: a failed or torn write is
	// overwritten by the next one.
	if _, err := g.f.WriteAt(b, g.size); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	if err := datasync(g.f); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	g.offs = append(g.offs, offs...)
	g.size += int64(len(b))
	if s.first == 0 {
		s.first = next
	}
	s.last = logs[len(logs)-1].Index
	return nil
}

// active is the segment that takes a batch starting at next: the last one,
// or a new one when the store is empty (at next) or the last is full.
func (s *Store) active(next uint64) (*segment, error) {
	if n := len(s.segs); n > 0 {
		g := s.segs[n-1]
		switch {
		case s.first == 0 && (len(g.offs) > 0 || g.first != next):
			// Empty (every entry deleted): a new run starts at next.
			if err := s.removeSegments(0, n); err != nil {
				return nil, err
			}
		case g.size < s.segBytes || len(g.offs) == 0:
			return g, nil
		}
	}
	f, err := os.OpenFile(s.segPath(next), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return nil, err
	}
	g := &segment{first: next, f: f}
	s.segs = append(s.segs, g)
	return g, nil
}

// removeSegments closes and removes segs[from:to], oldest first (a crash
// half way leaves a run of whole segments).
func (s *Store) removeSegments(from, to int) error {
	for _, g := range s.segs[from:to] {
		g.f.Close()
		if err := os.Remove(g.f.Name()); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
	}
	s.segs = slices.Delete(s.segs, from, to)
	return syncDir(s.dir)
}

// DeleteRange deletes entries min to max, inclusive: the head (after a
// snapshot), the tail (a follower's entries that conflict with the
// leader's), or all of them. Head deletions remove whole segments; the
// entries left before min in a segment are hidden until a restart (raft
// deletes them again after its next snapshot).
func (s *Store) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.first == 0 || max < s.first || min > s.last || min > max {
		return nil
	}
	switch {
	case min <= s.first && max >= s.last:
		s.first, s.last = 0, 0
		return s.removeSegments(0, len(s.segs))
	case min <= s.first:
		k := 0
		for k < len(s.segs) && s.segs[k].end()-1 <= max {
			k++
		}
		s.first = max + 1
		return s.removeSegments(0, k)
	case max >= s.last:
		i := len(s.segs) - 1
		for s.segs[i].first > min {
			i--
		}
		for j := len(s.segs) - 1; j > i; j-- { // newest first: what is left stays a run
			if err := s.removeSegments(j, j+1); err != nil {
				return err
			}
		}
		g := s.segs[i]
		k := min - g.first
		if err := g.f.Truncate(g.offs[k]); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		if err := datasync(g.f); err != nil {
			return fmt.Errorf("raftlog: %w", err)
		}
		g.size, g.offs = g.offs[k], g.offs[:k]
		s.last = min - 1
		return nil
	}
	return fmt.Errorf("%w: delete %d-%d inside the log %d-%d", ErrNotContiguous, min, max, s.first, s.last)
}

// Set stores a stable key durably (a new file, fsync'd, renamed over the
// old one).
func (s *Store) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	next := maps(s.stable)
	next[string(key)] = slices.Clone(val)
	b, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	tmp := filepath.Join(s.dir, stableFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, stableFile))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("raftlog: stable store: %w", err)
	}
	s.stable = next
	return nil
}

func maps(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Get reads a stable key ("not found", as raft expects, when missing).
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.stable[string(key)]
	if !ok {
		return nil, errNotFound
	}
	return slices.Clone(v), nil
}

// SetUint64 stores a stable integer.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 reads a stable integer.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, not 8", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the segment files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeFiles()
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, g := range s.segs {
		errs = append(errs, g.f.Close())
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	return nil
}
