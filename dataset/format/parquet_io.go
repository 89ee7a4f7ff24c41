package format

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/parquet/metadata"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/storage"
)

// The footer is read with one ranged read of the file's tail; most footers
// fit, so opening a Parquet file on S3 costs one GET, not three.
const footerTail = 64 << 10

// Row-group ranges are fetched in as few reads as possible: needed column
// chunks closer than coalesceHole are read together (the hole is cheaper
// than another request on S3), up to coalesceMax bytes per read.
const (
	coalesceHole  = 256 << 10
	coalesceMax   = 32 << 20
	fetchParallel = 4
)

var (
	magic          = []byte("PAR1")
	magicEncrypted = []byte("PARE")
)

// ioError marks an error that came from the storage.File, so that it is not
// reported as a corrupt file.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

// footers caches parsed footers by File, so that Read after Splits on the
// same open File does not fetch the footer again. Bounded; keyed by the File
// value itself, so a cached entry can only be found through the same open
// file.
var footers = &footerCache{m: make(map[storage.File]*metadata.FileMetaData)}

const footerCacheSize = 256

type footerCache struct {
	mu    sync.Mutex
	m     map[storage.File]*metadata.FileMetaData
	order []storage.File
}

func (c *footerCache) get(f storage.File) *metadata.FileMetaData {
	if !reflect.TypeOf(f).Comparable() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[f]
}

func (c *footerCache) put(f storage.File, md *metadata.FileMetaData) {
	if !reflect.TypeOf(f).Comparable() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[f]; ok {
		return
	}
	if len(c.order) >= footerCacheSize {
		delete(c.m, c.order[0])
		c.order = slices.Delete(c.order, 0, 1)
	}
	c.m[f] = md
	c.order = append(c.order, f)
}

// readFooter returns f's parsed Parquet footer.
func readFooter(f storage.File) (*metadata.FileMetaData, error) {
	if md := footers.get(f); md != nil {
		return md, nil
	}
	md, err := parseFooter(f)
	if err != nil {
		return nil, err
	}
	footers.put(f, md)
	return md, nil
}

func parseFooter(f storage.File) (md *metadata.FileMetaData, err error) {
	p, size := f.Path(), f.Size()
	if size < int64(2*len(magic)+4) {
		return nil, fileErr(p, mark(ErrCorrupt, "not a parquet file (only %d bytes)", size))
	}
	tail := make([]byte, min(size, footerTail))
	if err := readFull(f, tail, size-int64(len(tail))); err != nil {
		return nil, fileErr(p, err)
	}
	trailer := tail[len(tail)-8:]
	switch {
	case bytes.Equal(trailer[4:], magic):
	case bytes.Equal(trailer[4:], magicEncrypted):
		return nil, fileErr(p, mark(ErrUnsupported, "encrypted parquet files are not supported"))
	default:
		return nil, fileErr(p, mark(ErrCorrupt, "not a parquet file (bad magic)"))
	}
	n := int64(binary.LittleEndian.Uint32(trailer[:4]))
	if n+8+int64(len(magic)) > size {
		return nil, fileErr(p, mark(ErrCorrupt, "truncated or corrupt footer (footer length %d, file size %d)", n, size))
	}
	var buf []byte
	if n+8 <= int64(len(tail)) {
		buf = tail[int64(len(tail))-8-n : len(tail)-8]
	} else {
		buf = make([]byte, n)
		if err := readFull(f, buf, size-8-n); err != nil {
			return nil, fileErr(p, err)
		}
	}
	// The thrift decoder trusts lengths inside the footer; a corrupt footer
	// can make it panic, and bad input must never crash the process.
	defer func() {
		if r := recover(); r != nil {
			md, err = nil, fileErr(p, mark(ErrCorrupt, "corrupt footer: %v", r))
		}
	}()
	md, err = metadata.NewFileMetaData(buf, nil)
	if err != nil {
		return nil, fileErr(p, markCause(ErrCorrupt, err, "corrupt footer"))
	}
	md.SetSourceFileSize(size)
	if md.Schema == nil || md.Schema.NumColumns() == 0 && md.NumRowGroups() > 0 {
		return nil, fileErr(p, mark(ErrCorrupt, "corrupt footer: no columns"))
	}
	for rg := 0; rg < md.NumRowGroups(); rg++ {
		if got, want := md.RowGroup(rg).NumColumns(), md.Schema.NumColumns(); got != want {
			return nil, &Error{Path: p, RowGroup: rg, Err: mark(ErrCorrupt, "corrupt footer: row group has %d columns, schema has %d", got, want)}
		}
		if md.RowGroup(rg).NumRows() < 0 {
			return nil, &Error{Path: p, RowGroup: rg, Err: mark(ErrCorrupt, "corrupt footer: negative row count")}
		}
	}
	return md, nil
}

// readFull reads len(p) bytes at off; a short read is a truncated file.
func readFull(f io.ReaderAt, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return mark(ErrCorrupt, "truncated file: read %d of %d bytes at offset %d", n, len(p), off)
	}
	return &ioError{err}
}

// byteRange is [off, off+n) of a file.
type byteRange struct{ off, n int64 }

// chunkRange is where a column chunk's pages lie in the file.
func chunkRange(cc *metadata.ColumnChunkMetaData) byteRange {
	start := cc.DataPageOffset()
	if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
		start = cc.DictionaryPageOffset()
	}
	return byteRange{start, cc.TotalCompressedSize()}
}

// coalesce sorts ranges and merges those closer than coalesceHole.
func coalesce(rs []byteRange) []byteRange {
	slices.SortFunc(rs, func(a, b byteRange) int { return cmp.Compare(a.off, b.off) })
	var out []byteRange
	for _, r := range rs {
		if r.n <= 0 {
			continue
		}
		if k := len(out) - 1; k >= 0 {
			last := &out[k]
			end := last.off + last.n
			if r.off <= end+coalesceHole && max(end, r.off+r.n)-last.off <= coalesceMax {
				last.n = max(end, r.off+r.n) - last.off
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// prefetchReader is the parquet reader's view of a storage.File: before a
// row group is decoded, the column chunks it needs are fetched in a few
// large coalesced reads (in parallel), and the decoder's many small reads
// are served from memory. Reads outside the fetched ranges go to the file.
type prefetchReader struct {
	f        storage.File
	onDemand bool // fetch fetches nothing: every ReadAt goes to f (ReadOptions.OnDemand)
	cached   atomic.Pointer[[]fetched]
	pos      int64
}

type fetched struct {
	off  int64
	data []byte
}

// fetch replaces the cache with the given ranges of the file.
func (r *prefetchReader) fetch(ctx context.Context, rs []byteRange) error {
	r.cached.Store(nil) // let the previous row group's bytes go first
	if r.onDemand {
		return nil
	}
	rs = coalesce(rs)
	out := make([]fetched, len(rs))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallel)
	for i, br := range rs {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			buf := make([]byte, br.n)
			if err := readFull(r.f, buf, br.off); err != nil {
				return err
			}
			out[i] = fetched{br.off, buf}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.cached.Store(&out)
	return nil
}

func (r *prefetchReader) drop() { r.cached.Store(nil) }

func (r *prefetchReader) ReadAt(p []byte, off int64) (int, error) {
	if c := r.cached.Load(); c != nil {
		for _, ch := range *c {
			if off >= ch.off && off+int64(len(p)) <= ch.off+int64(len(ch.data)) {
				return copy(p, ch.data[off-ch.off:]), nil
			}
		}
	}
	n, err := r.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &ioError{err}
	}
	return n, err
}

func (r *prefetchReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.f.Size()
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek: negative position %d", offset)
	}
	r.pos = offset
	return offset, nil
}
