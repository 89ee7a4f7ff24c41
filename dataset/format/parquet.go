package format

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/storage"
)

// Splits merges neighbouring row groups into one split until it holds this
// many compressed bytes, so files of many tiny row groups don't become
// thousands of tasks.
const splitTargetBytes = 32 << 20

type parquetFormat struct{}

var _ Format = parquetFormat{}

func (parquetFormat) Name() string { return "parquet" }

func (parquetFormat) Schema(ctx context.Context, f storage.File, opts ReadOptions) (*arrow.Schema, error) {
	md, err := readFooter(f)
	if err != nil {
		return nil, err
	}
	man, err := manifest(f.Path(), md)
	if err != nil {
		return nil, err
	}
	fields, err := projectFields(f.Path(), man, opts.Columns)
	if err != nil {
		return nil, err
	}
	return outputSchema(man, fields), nil
}

func (parquetFormat) Splits(ctx context.Context, f storage.File, opts ReadOptions) ([]Split, error) {
	md, err := readFooter(f)
	if err != nil {
		return nil, err
	}
	// Fail at planning, not in every task, when a column is missing.
	man, err := manifest(f.Path(), md)
	if err != nil {
		return nil, err
	}
	if _, err := projectFields(f.Path(), man, opts.Columns); err != nil {
		return nil, err
	}
	var (
		out   []Split
		names map[string]int
	)
	for rg := 0; rg < md.NumRowGroups(); rg++ {
		rgmd := md.RowGroup(rg)
		if rgmd.NumRows() == 0 {
			continue
		}
		if opts.Prune != nil {
			if names == nil {
				names = leafNames(md)
			}
			if !opts.Prune(rowGroupStats(md, rg, names)) {
				continue
			}
		}
		size := rowGroupBytes(rgmd)
		if k := len(out) - 1; k >= 0 && out[k].Size+size <= splitTargetBytes {
			out[k].RowGroups = append(out[k].RowGroups, rg)
			out[k].Size += size
			out[k].Rows += rgmd.NumRows()
			continue
		}
		out = append(out, Split{Path: f.Path(), Size: size, RowGroups: []int{rg}, Rows: rgmd.NumRows()})
	}
	return out, nil
}

// rowGroupBytes is the compressed size of a row group (older writers leave
// the row group's own total unset).
func rowGroupBytes(rgmd *metadata.RowGroupMetaData) int64 {
	if n := rgmd.TotalCompressedSize(); n > 0 {
		return n
	}
	var n int64
	for c := 0; c < rgmd.NumColumns(); c++ {
		if cc, err := rgmd.ColumnChunk(c); err == nil {
			n += cc.TotalCompressedSize()
		}
	}
	return n
}

func manifest(p string, md *metadata.FileMetaData) (man *pqarrow.SchemaManifest, err error) {
	defer func() {
		if r := recover(); r != nil {
			man, err = nil, fileErr(p, mark(ErrCorrupt, "corrupt schema: %v", r))
		}
	}()
	if err := checkStoredSchema(md.KeyValueMetadata()); err != nil {
		return nil, fileErr(p, markCause(ErrCorrupt, err, "corrupt ARROW:schema metadata"))
	}
	man, err = pqarrow.NewSchemaManifest(md.Schema, md.KeyValueMetadata(), &pqarrow.ArrowReadProperties{})
	if err != nil {
		return nil, fileErr(p, kindOf(ErrUnsupported, err))
	}
	return man, nil
}

// projectFields maps the requested column names to top-level field indices.
func projectFields(p string, man *pqarrow.SchemaManifest, cols []string) ([]int, error) {
	if cols == nil {
		out := make([]int, len(man.Fields))
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	byName := make(map[string]int, len(man.Fields))
	for i := len(man.Fields) - 1; i >= 0; i-- {
		byName[man.Fields[i].Field.Name] = i
	}
	out := make([]int, 0, len(cols))
	for _, c := range cols {
		i, ok := byName[c]
		if !ok {
			have := make([]string, len(man.Fields))
			for j := range man.Fields {
				have[j] = man.Fields[j].Field.Name
			}
			return nil, noColumn(p, c, have)
		}
		out = append(out, i)
	}
	return out, nil
}

// outputSchema is the schema of the batches Read emits: the projected fields,
// with dictionary-encoded columns replaced by their value type.
func outputSchema(man *pqarrow.SchemaManifest, fields []int) *arrow.Schema {
	fs := make([]arrow.Field, len(fields))
	for i, fi := range fields {
		fs[i] = *man.Fields[fi].Field
		if dt, ok := fs[i].Type.(*arrow.DictionaryType); ok {
			fs[i].Type = dt.ValueType
		}
		fs[i].Metadata = dropNoFieldID(fs[i].Metadata)
		// Parquet has no seconds unit and no time zone names: a
		// timestamp[s, tz=Europe/Paris] is stored as UTC milliseconds.
		// pqarrow restores the zone only when the unit matches; restore
		// both from the stored Arrow schema (column converts the values).
		if origin := man.OriginSchema; origin != nil && fi < origin.NumFields() {
			ot, ok1 := origin.Field(fi).Type.(*arrow.TimestampType)
			it, ok2 := fs[i].Type.(*arrow.TimestampType)
			if ok1 && ok2 && origin.Field(fi).Name == fs[i].Name && !arrow.TypeEqual(ot, it) {
				fs[i].Type = ot
			}
		}
	}
	return arrow.NewSchema(fs, nil)
}

// dropNoFieldID removes the "PARQUET:field_id": "-1" that pqarrow puts on
// every field of a file without field ids: it says nothing, and it would
// make schemas read from Parquet differ from the same schema elsewhere.
func dropNoFieldID(md arrow.Metadata) arrow.Metadata {
	i := md.FindKey("PARQUET:field_id")
	if i < 0 || md.Values()[i] != "-1" {
		return md
	}
	if md.Len() == 1 {
		return arrow.Metadata{}
	}
	keys := slices.Delete(slices.Clone(md.Keys()), i, i+1)
	vals := slices.Delete(slices.Clone(md.Values()), i, i+1)
	return arrow.NewMetadata(keys, vals)
}

// leavesOf collects the leaf column indices under a field.
func leavesOf(sf *pqarrow.SchemaField, into map[int]bool) {
	if sf.IsLeaf() {
		into[sf.ColIndex] = true
	}
	for i := range sf.Children {
		leavesOf(&sf.Children[i], into)
	}
}

func (parquetFormat) Read(ctx context.Context, f storage.File, s Split, opts ReadOptions, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	p := f.Path()
	md, err := readFooter(f)
	if err != nil {
		return err
	}
	man, err := manifest(p, md)
	if err != nil {
		return err
	}
	fields, err := projectFields(p, man, opts.Columns)
	if err != nil {
		return err
	}
	rgs := s.RowGroups
	if rgs == nil {
		var names map[string]int
		for rg := 0; rg < md.NumRowGroups(); rg++ {
			if opts.Prune != nil {
				if names == nil {
					names = leafNames(md)
				}
				if !opts.Prune(rowGroupStats(md, rg, names)) {
					continue
				}
			}
			rgs = append(rgs, rg)
		}
	}
	for _, rg := range rgs {
		if rg < 0 || rg >= md.NumRowGroups() {
			return fileErr(p, fmt.Errorf("%w: split names row group %d, file has %d", ErrCorrupt, rg, md.NumRowGroups()))
		}
	}
	sc := outputSchema(man, fields)
	batch := int64(opts.batchRows())

	if len(fields) == 0 {
		// Nothing to decode: the metadata has the row counts.
		for _, rg := range rgs {
			for n := md.RowGroup(rg).NumRows(); n > 0; n -= batch {
				if err := ctxErr(ctx); err != nil {
					return err
				}
				if err := emit(array.NewRecordBatch(sc, nil, min(n, batch))); err != nil {
					return err
				}
			}
		}
		return nil
	}

	leaves := make(map[int]bool)
	for _, fi := range fields {
		leavesOf(&man.Fields[fi], leaves)
	}
	src := &prefetchReader{f: f, onDemand: opts.OnDemand}
	defer src.drop()
	// Page buffers come from the Go heap: the parquet reader pools them and
	// frees them by finalizer, which an accounting allocator would see as a
	// leak. Decoded arrays, which leave this package, use mem.
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true // pages are served from the prefetched ranges, not copied again
	props.BufferSize = 64 << 10
	rdr, err := file.NewParquetReader(src, file.WithReadProps(props), file.WithMetadata(md))
	if err != nil {
		return fileErr(p, kindOf(ErrCorrupt, err))
	}
	aprops := pqarrow.ArrowReadProperties{Parallel: opts.Parallel, BatchSize: batch, PreAllocBinaryData: true}
	dict := dictFields(md, man, sc, fields, rgs, opts.Dict)
	for i, fi := range fields {
		if dict != nil && dict[i] {
			aprops.SetReadDict(man.Fields[fi].ColIndex, true)
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, aprops, mem)
	if err != nil {
		return fileErr(p, kindOf(ErrUnsupported, err))
	}
	rd := &rowGroupReader{p: p, md: md, man: man, fr: fr, src: src, sc: sc, fields: fields, dict: dict, leaves: leaves, batch: batch, parallel: opts.Parallel, mem: mem}
	rd.setFlat()
	rd.setLate(opts)
	for _, rg := range rgs {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := rd.read(ctx, rg, emit); err != nil {
			return err
		}
	}
	return nil
}

// dictFields reports which projected fields to read as dictionary arrays:
// those named in want that are top-level string or binary leaves with a
// dictionary page in every row group read (a plain-encoded chunk would have
// to be dictionary-built row by row, which costs more than it saves).
func dictFields(md *metadata.FileMetaData, man *pqarrow.SchemaManifest, sc *arrow.Schema, fields []int, rgs []int, want []string) []bool {
	if len(want) == 0 {
		return nil
	}
	out := make([]bool, len(fields))
	for i, fi := range fields {
		sf := &man.Fields[fi]
		if !slices.Contains(want, sc.Field(i).Name) || !sf.IsLeaf() {
			continue
		}
		if id := sc.Field(i).Type.ID(); id != arrow.STRING && id != arrow.BINARY {
			continue
		}
		ok := len(rgs) > 0
		for _, rg := range rgs {
			if rg < 0 || rg >= md.NumRowGroups() {
				ok = false
				break
			}
			cc, err := md.RowGroup(rg).ColumnChunk(sf.ColIndex)
			if err != nil || !cc.HasDictionaryPage() {
				ok = false
				break
			}
		}
		out[i] = ok
	}
	return out
}

// rowGroupReader decodes the projected columns of one row group at a time.
type rowGroupReader struct {
	p        string
	md       *metadata.FileMetaData
	man      *pqarrow.SchemaManifest
	fr       *pqarrow.FileReader
	src      *prefetchReader
	sc       *arrow.Schema
	fields   []int
	dict     []bool // fields kept as dictionary arrays (nil: none)
	leaves   map[int]bool
	batch    int64
	parallel bool
	mem      memory.Allocator

	// flat says how each field is read: flatNone through pqarrow, else
	// from its column chunk (parquet_late.go).
	flat []flatKind
	// Late materialization (nil late: off): lateIn marks the fields late
	// reads.
	late   func(ctx context.Context, rec arrow.RecordBatch) ([]bool, error)
	lateIn []bool
	lateSc *arrow.Schema
}

// errEmit carries emit's error through read's panic guard untouched.
type errEmit struct{ err error }

func (e *errEmit) Error() string { return e.err.Error() }

func (r *rowGroupReader) fail(rg int, column string, err error) error {
	var ie *ioError
	if errors.As(err, &ie) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Path: r.p, RowGroup: rg, Column: column, Err: err}
	}
	if errors.Is(err, ErrCorrupt) {
		return &Error{Path: r.p, RowGroup: rg, Column: column, Err: err}
	}
	return &Error{Path: r.p, RowGroup: rg, Column: column, Err: kindOf(ErrCorrupt, err)}
}

func (r *rowGroupReader) read(ctx context.Context, rg int, emit func(arrow.RecordBatch) error) (err error) {
	rgmd := r.md.RowGroup(rg)
	// Fetch every needed column chunk of the row group up front, in a few
	// large reads.
	ranges := make([]byteRange, 0, len(r.leaves))
	for leaf := range r.leaves {
		cc, err := rgmd.ColumnChunk(leaf)
		if err != nil {
			return r.fail(rg, r.md.Schema.Column(leaf).ColumnPath().String(), err)
		}
		br := chunkRange(cc)
		if br.off < 0 || br.n < 0 || br.off+br.n > r.src.f.Size() {
			return r.fail(rg, r.md.Schema.Column(leaf).ColumnPath().String(),
				mark(ErrCorrupt, "column chunk [%d, %d) lies outside the file (size %d): truncated file?", br.off, br.off+br.n, r.src.f.Size()))
		}
		ranges = append(ranges, br)
	}
	if err := r.src.fetch(ctx, ranges); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.fail(rg, "", err)
	}
	defer r.src.drop()

	column := "" // the column being decoded, for errors and panics
	defer func() {
		if rec := recover(); rec != nil {
			err = r.fail(rg, column, mark(ErrCorrupt, "decoder panic: %v", rec))
		}
		var ee *errEmit
		if errors.As(err, &ee) {
			err = ee.err
		}
	}()

	readers := make([]*pqarrow.ColumnReader, len(r.fields))
	defer func() {
		for _, cr := range readers {
			if cr != nil {
				cr.Release()
			}
		}
	}()
	flats := make([]*flatColumn, len(r.fields))
	for i, fi := range r.fields {
		column = r.sc.Field(i).Name
		if r.flat[i] != flatNone {
			cc, err := r.fr.ParquetReader().RowGroup(rg).Column(r.man.Fields[fi].ColIndex)
			if err != nil {
				return r.fail(rg, column, err)
			}
			flats[i] = newFlatColumn(r.flat[i], cc, r.sc.Field(i).Type)
			continue
		}
		cr, err := r.fr.GetFieldReader(ctx, fi, r.leaves, []int{rg})
		if err != nil {
			return r.fail(rg, column, err)
		}
		readers[i] = cr
	}
	column = ""

	cols := make([]arrow.Array, len(readers))
	release := func() {
		for i, c := range cols {
			if c != nil {
				c.Release()
				cols[i] = nil
			}
		}
	}
	defer release()
	for left := rgmd.NumRows(); left > 0; {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		n := min(left, r.batch)
		if r.late != nil {
			rec, err := r.lateBatch(ctx, rg, readers, flats, cols, n, &column)
			release()
			if err != nil {
				return err
			}
			left -= n
			if rec == nil {
				continue
			}
			if err := emit(rec); err != nil {
				return &errEmit{err}
			}
			continue
		}
		if r.parallel && len(readers) > 1 {
			g, _ := errgroup.WithContext(ctx)
			for i := range readers {
				g.Go(func() (err error) {
					defer func() {
						if rec := recover(); rec != nil {
							err = r.fail(rg, r.sc.Field(i).Name, mark(ErrCorrupt, "decoder panic: %v", rec))
						}
					}()
					cols[i], err = r.next(rg, i, readers[i], flats[i], n)
					return err
				})
			}
			if err := g.Wait(); err != nil {
				return err
			}
		} else {
			for i := range readers {
				column = r.sc.Field(i).Name
				var err error
				if cols[i], err = r.next(rg, i, readers[i], flats[i], n); err != nil {
					return err
				}
			}
			column = ""
		}
		rec := array.NewRecordBatch(BatchSchema(r.sc, cols), cols, n)
		release()
		left -= n
		if err := emit(rec); err != nil {
			return &errEmit{err}
		}
	}
	return nil
}

// BatchSchema is sc with the types of dictionary-encoded columns (which
// plan schemas never have) taken from cols: the schema of a batch of cols
// read or computed under sc. Scans and executor/local build batches with it.
func BatchSchema(sc *arrow.Schema, cols []arrow.Array) *arrow.Schema {
	var fs []arrow.Field
	for i, c := range cols {
		if c.DataType().ID() == arrow.DICTIONARY && !arrow.TypeEqual(c.DataType(), sc.Field(i).Type) {
			if fs == nil {
				fs = slices.Clone(sc.Fields())
			}
			fs[i].Type = c.DataType()
		}
	}
	if fs == nil {
		return sc
	}
	md := sc.Metadata()
	return arrow.NewSchema(fs, &md)
}

// column decodes the next n values of projected column i.
// next decodes the next n rows of field i, flat or through pqarrow.
func (r *rowGroupReader) next(rg, i int, cr *pqarrow.ColumnReader, fc *flatColumn, n int64) (arrow.Array, error) {
	if fc == nil {
		return r.column(rg, i, cr, n)
	}
	arr, err := fc.readBatch(r.mem, []run{{0, n}}, n, n)
	if err != nil {
		return nil, r.fail(rg, r.sc.Field(i).Name, err)
	}
	return arr, nil
}

func (r *rowGroupReader) column(rg, i int, cr *pqarrow.ColumnReader, n int64) (arrow.Array, error) {
	name := r.sc.Field(i).Name
	ch, err := cr.NextBatch(n)
	if err != nil {
		return nil, r.fail(rg, name, err)
	}
	defer ch.Release()
	var arr arrow.Array
	switch len(ch.Chunks()) {
	case 0:
		return nil, r.fail(rg, name, mark(ErrCorrupt, "column ends early: no values where the row group promises %d more rows", n))
	case 1:
		arr = ch.Chunk(0)
		arr.Retain()
	default:
		if arr, err = array.Concatenate(ch.Chunks(), r.mem); err != nil {
			return nil, r.fail(rg, name, err)
		}
	}
	if int64(arr.Len()) != n {
		arr.Release()
		return nil, r.fail(rg, name, mark(ErrCorrupt, "column has %d values where the row group promises %d", arr.Len(), n))
	}
	if d, ok := arr.(*array.Dictionary); ok && r.dict != nil && r.dict[i] {
		if want := r.sc.Field(i).Type; !arrow.TypeEqual(d.Dictionary().DataType(), want) {
			defer arr.Release()
			return nil, r.fail(rg, name, fmt.Errorf("%w: decoded dictionary of %s, schema says %s", ErrUnsupported, d.Dictionary().DataType(), want))
		}
		return arr, nil
	}
	if d, ok := arr.(*array.Dictionary); ok {
		plain, err := compute.TakeArray(compute.WithAllocator(context.Background(), r.mem), d.Dictionary(), d.Indices())
		arr.Release()
		if err != nil {
			return nil, r.fail(rg, name, fmt.Errorf("decoding dictionary: %w", err))
		}
		arr = plain
	}
	if want := r.sc.Field(i).Type; arr.DataType().ID() == arrow.TIMESTAMP && want.ID() == arrow.TIMESTAMP && !arrow.TypeEqual(arr.DataType(), want) {
		conv, err := compute.CastArray(compute.WithAllocator(context.Background(), r.mem), arr, compute.SafeCastOptions(want))
		arr.Release()
		if err != nil {
			return nil, r.fail(rg, name, fmt.Errorf("restoring %s: %w", want, err))
		}
		arr = conv
	}
	if !arrow.TypeEqual(arr.DataType(), r.sc.Field(i).Type) {
		defer arr.Release()
		return nil, r.fail(rg, name, fmt.Errorf("%w: decoded type %s, schema says %s", ErrUnsupported, arr.DataType(), r.sc.Field(i).Type))
	}
	return arr, nil
}
