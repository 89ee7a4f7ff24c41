package format

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/storage"
)

// dictionaryLimit is the largest dictionary a written column chunk keeps
// (arrow-go's default is 1 MiB: 131,072 distinct int64 values hashed into
// a growing table before a unique column falls back to plain).
const dictionaryLimit = 128 << 10

// parquetWriter buffers up to RowGroupRows rows as one row group, then
// flushes it to the Upload.
type parquetWriter struct {
	u      storage.Upload
	cw     *countingWriter
	fw     *pqarrow.FileWriter
	schema *arrow.Schema
	rows   int64
	closed bool
	err    error // a failed Write poisons the writer: the file is incomplete
}

var _ Writer = (*parquetWriter)(nil)

func parquetCodec(name string) (compress.Compression, error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return compress.Codecs.Zstd, nil
	case "snappy":
		return compress.Codecs.Snappy, nil
	case "gzip":
		return compress.Codecs.Gzip, nil
	case "none", "uncompressed":
		return compress.Codecs.Uncompressed, nil
	}
	return 0, fmt.Errorf("%w: WriteOptions.Compression %q (want zstd, snappy, gzip or none)", ErrUnsupported, name)
}

func newParquetWriter(u storage.Upload, schema *arrow.Schema, opts WriteOptions, mem memory.Allocator) (*parquetWriter, error) {
	codec, err := parquetCodec(opts.Compression)
	if err != nil {
		return nil, err
	}
	rgRows := opts.RowGroupRows
	if rgRows <= 0 {
		rgRows = DefaultRowGroupRows
	}
	// The encoder's page buffers come from the Go heap, not mem: arrow-go
	// does not release them when a write fails (a full disk), and the
	// garbage collector then reclaims them.
	props := parquet.NewWriterProperties(
		parquet.WithAllocator(memory.DefaultAllocator),
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(rgRows),
		parquet.WithStats(true),
		parquet.WithDictionaryDefault(true),
		// A column chunk gives up its dictionary (and writes plain) once the
		// dictionary reaches this size: a column of mostly distinct values
		// (ids, prices) stops paying a hash insert per value early.
		parquet.WithDictionaryPageSizeLimit(dictionaryLimit),
		parquet.WithCreatedBy("sluice"),
	)
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(memory.DefaultAllocator))
	cw := &countingWriter{w: u}
	fw, err := pqarrow.NewFileWriter(schema, cw, props, arrProps)
	if err != nil {
		return nil, fmt.Errorf("%w: parquet cannot store schema %s: %w", ErrUnsupported, schema, err)
	}
	return &parquetWriter{u: u, cw: cw, fw: fw, schema: schema}, nil
}

func (w *parquetWriter) Write(rec arrow.RecordBatch) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("format: parquet writer: Write after Close")
	}
	if !rec.Schema().Equal(w.schema) {
		return fmt.Errorf("format: parquet writer: batch schema %s differs from the writer's %s", rec.Schema(), w.schema)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if err := w.fw.WriteBuffered(rec); err != nil {
		w.err = fmt.Errorf("format: parquet writer: %w", err)
		return w.err
	}
	w.rows += rec.NumRows()
	return nil
}

func (w *parquetWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.fw.Close()
	if err != nil {
		err = fmt.Errorf("format: parquet writer: %w", err)
	}
	// A failed Write already reported its error; Close only reports its own.
	return errors.Join(err, w.u.Close())
}

func (w *parquetWriter) Rows() int64  { return w.rows }
func (w *parquetWriter) Bytes() int64 { return w.cw.n }
