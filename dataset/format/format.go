package format

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/storage"
)

// Errors of this package. Every error a reader or writer returns is an
// *Error that names the file (and, where known, the line, row group and
// column) and wraps one of these, so callers can test with errors.Is.
var (
	// ErrUnknownFormat is returned by ByName, ForPath and NewWriter for a
	// name or extension that is not one of "parquet", "csv", "jsonl".
	ErrUnknownFormat = errors.New("format: unknown format")
	// ErrNoColumn is returned when ReadOptions.Columns names a column the
	// file does not have.
	ErrNoColumn = errors.New("format: no such column")
	// ErrCorrupt is returned for a file that is not in the format it claims
	// (bad magic, truncated, undecodable pages).
	ErrCorrupt = errors.New("format: corrupt or truncated file")
	// ErrParse is returned for a CSV or JSONL value or line that cannot be
	// read: a malformed line, a wrong number of fields, a value that does
	// not parse as its column's type.
	ErrParse = errors.New("format: cannot parse")
	// ErrUnsupported is returned for a type or feature a format cannot
	// handle (for example a list column in a CSV schema, or an encrypted
	// Parquet file).
	ErrUnsupported = errors.New("format: unsupported")
)

// Error locates a failure in one file. Its message reads
//
//	format: data/x.csv:17: column "qty": cannot parse "abc" as int64
//	format: data/x.parquet: row group 3, column "price": <cause>
type Error struct {
	Path     string
	Line     int    // 1-based line (CSV counts the header line); 0 when not applicable
	Col      int    // 1-based byte column within the line; 0 when unknown
	RowGroup int    // Parquet row group; -1 when not applicable
	Column   string // column name; "" when not applicable
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("format: ")
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.RowGroup >= 0 {
		fmt.Fprintf(&b, "row group %d, ", e.RowGroup)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, "column %q: ", e.Column)
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// fileErr wraps err with the file's path and nothing else.
func fileErr(p string, err error) *Error { return &Error{Path: p, RowGroup: -1, Err: err} }

// detail is an error with its own text that still matches a sentinel, so
// messages read "no column "x"" rather than repeating "format: no such column".
type detail struct {
	msg   string
	kind  error
	cause error
}

func (d *detail) Error() string {
	if d.msg == "" {
		return d.cause.Error()
	}
	if d.cause != nil {
		return d.msg + ": " + d.cause.Error()
	}
	return d.msg
}
func (d *detail) Is(target error) bool { return target == d.kind }
func (d *detail) Unwrap() error        { return d.cause }

func mark(kind error, format string, args ...any) error {
	return &detail{msg: fmt.Sprintf(format, args...), kind: kind}
}

// kindOf marks cause as a kind of failure without changing its text.
func kindOf(kind, cause error) error { return &detail{kind: kind, cause: cause} }

func markCause(kind, cause error, format string, args ...any) error {
	return &detail{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// A Split is one unit of scan work: a whole CSV/JSONL file, or a set of row
// groups of one Parquet file.
type Split struct {
	Path string
	// Size is the number of bytes the split reads: the file size for
	// CSV/JSONL, the compressed size of its row groups for Parquet.
	Size int64
	// RowGroups lists the Parquet row groups to read, in file order (nil =
	// every row group the ReadOptions.Prune keeps). Nil for other formats.
	RowGroups []int
	// Rows is the split's row count when known cheaply (Parquet metadata),
	// else -1.
	Rows int64
}

// ColumnStats are one column's statistics in one Parquet row group, taken
// from the file's metadata (no data is read).
//
// Min and Max, when HasMinMax, hold:
//   - int64 for signed and unsigned integers (a uint64 column whose values
//     exceed math.MaxInt64 reports HasMinMax false);
//   - float64 for float32 and float64;
//   - string for strings and binary;
//   - bool for booleans;
//   - time.Time in UTC for timestamps (any stored unit; values are the
//     stored instants, whether or not the column is marked adjusted to UTC)
//     and for dates (midnight UTC).
//
// Other types (decimals, INT96 timestamps, nested leaves) have no min/max.
// NullCount is -1 when the file does not record it.
type ColumnStats struct {
	Min, Max  any
	NullCount int64
	RowCount  int64
	HasMinMax bool
}

// PruneFunc decides from a row group's statistics whether it may hold rows
// that match a predicate. stats returns false for a column that has no
// statistics or does not exist. Returning false skips the row group, so a
// PruneFunc must return true whenever it is unsure.
type PruneFunc func(stats func(column string) (ColumnStats, bool)) bool

// DefaultBatchRows is the number of rows per batch when ReadOptions.BatchRows is 0.
const DefaultBatchRows = 64 << 10

// DefaultInferRows is how many rows (CSV) or lines (JSONL) type inference reads.
const DefaultInferRows = 1000

// ReadOptions control Schema, Splits and Read.
type ReadOptions struct {
	// Columns is the projection: only these columns are decoded, and they
	// come out in this order. Nil means every column; an empty non-nil slice
	// means none (batches carry only a row count).
	Columns []string
	// Prune skips Parquet row groups; nil keeps all.
	Prune PruneFunc
	// BatchRows is the target number of rows per batch (default DefaultBatchRows).
	BatchRows int
	// Parallel decodes a Parquet batch's columns concurrently. Off by
	// default: the executor already reads many splits at once.
	Parallel bool
	// OnDemand reads a Parquet row group's pages as the decoders reach
	// them, not all its needed column chunks up front in a few coalesced
	// reads. For local files, where a read costs a copy from the page
	// cache rather than a request: the up-front fetch holds each row
	// group's bytes (16 MiB per worker in etl/sales) in fresh heap for the
	// whole row group. Off by default, which is right for object stores.
	OnDemand bool
	// Dict names string or binary columns that a Parquet file stores
	// dictionary-encoded (in every row group read) which may come out as
	// dictionary arrays (dictionary<int32, T>) instead of T, skipping the
	// per-row copy of the values. The schema still says T, and batches
	// carry the dictionary type in their own schema, so only a consumer
	// that accepts either (a hash aggregate's keys) should ask. Other
	// columns, files and formats ignore it.
	Dict []string
	// Late, with LateColumns (the columns it reads, all projected), lets
	// Parquet decode LateColumns first for each batch, call Late on a batch
	// of just those columns, and decode the other columns only for the rows
	// whose keep is true: batches then hold only those rows. Late must keep
	// a superset of what the caller's own filter keeps (other formats
	// ignore it and emit every row; the caller filters anyway). Where it
	// takes effect Late sees every batch of the file whole, before any
	// trimming, so a caller counting rows decoded counts them there. Its
	// error is returned as it is, like emit's: the caller names the file.
	Late        func(ctx context.Context, rec arrow.RecordBatch) (keep []bool, err error)
	LateColumns []string

	// NoHeader says a CSV file's first line is data, not column names;
	// columns are then named c0, c1, ... (CSV reads a header by default).
	NoHeader bool
	// Delimiter separates CSV fields (default ',').
	Delimiter rune
	// Schema fixes the columns and types of a CSV or JSONL file instead of
	// inferring them. CSV matches it to the header by name (by position
	// without a header); JSONL by key. Header columns and JSONL keys that
	// a user's Schema leaves out are skipped.
	Schema *arrow.Schema
	// Types sets the types of the CSV or JSONL columns it names and leaves
	// the others to inference (without a Schema); naming a column the
	// file lacks is an error.
	Types map[string]arrow.DataType
	// Inferred says that Schema came from inference (InferSchema), not
	// from the user: a JSONL key or CSV header column it lacks then fails
	// the read, naming the file and line, instead of being skipped, and a
	// value that does not parse says how to read it anyway. Without a
	// Schema, a file's own inferred schema is read the same way.
	Inferred bool
	// NullValues are the CSV field texts read as null (default: the empty field).
	NullValues []string
	// InferRows is how many CSV rows or JSONL lines inference reads
	// (default DefaultInferRows); negative reads every one.
	InferRows int
	// ReplaceInvalidUTF8 replaces invalid UTF-8 in CSV string columns with
	// U+FFFD; by default such a value fails the read, naming its line and
	// column. (JSONL always replaces it, as encoding/json does.)
	ReplaceInvalidUTF8 bool
}

func (o ReadOptions) batchRows() int {
	if o.BatchRows > 0 {
		return o.BatchRows
	}
	return DefaultBatchRows
}

// inferRows is the number of rows inference reads; negative: all.
func (o ReadOptions) inferRows() int {
	if o.InferRows != 0 {
		return o.InferRows
	}
	return DefaultInferRows
}

// Format reads one file format. Implementations are stateless and safe for
// concurrent use; each call works on the File it is given and never closes it.
type Format interface {
	// Name is "parquet", "csv" or "jsonl".
	Name() string
	// Schema returns the schema Read produces for this file under opts
	// (projection applied), reading as little as it can: the Parquet
	// footer, or the first rows of a CSV/JSONL file.
	Schema(ctx context.Context, f storage.File, opts ReadOptions) (*arrow.Schema, error)
	// Splits plans the work for one file. Parquet reads the footer once and
	// returns a split per row group (small neighbouring row groups share
	// one), already pruned with opts.Prune, with Rows set. CSV and JSONL
	// return one split for the whole file.
	Splits(ctx context.Context, f storage.File, opts ReadOptions) ([]Split, error)
	// Read streams the split's rows to emit as batches, in file order. emit
	// takes ownership of each batch (it must Release it). Read stops when
	// ctx is done, or when emit returns an error, which Read returns as is.
	Read(ctx context.Context, f storage.File, s Split, opts ReadOptions, mem memory.Allocator, emit func(arrow.RecordBatch) error) error
}

// Parquet returns the Parquet format.
func Parquet() Format { return parquetFormat{} }

// CSV returns the CSV format.
func CSV() Format { return csvFormat{} }

// JSONL returns the JSON Lines format.
func JSONL() Format { return jsonlFormat{} }

// ByName returns the format called name: "parquet", "csv" or "jsonl"
// ("ndjson" and "json" mean jsonl).
func ByName(name string) (Format, error) {
	switch strings.ToLower(name) {
	case "parquet":
		return Parquet(), nil
	case "csv":
		return CSV(), nil
	case "jsonl", "ndjson", "json":
		return JSONL(), nil
	}
	return nil, fmt.Errorf("%w %q (want parquet, csv or jsonl)", ErrUnknownFormat, name)
}

// ForPath picks the format from a path's extension: .parquet/.pq, .csv,
// .jsonl/.ndjson/.json (case-insensitive).
func ForPath(p string) (Format, error) {
	switch ext := strings.ToLower(path.Ext(p)); ext {
	case ".parquet", ".pq":
		return Parquet(), nil
	case ".csv":
		return CSV(), nil
	case ".jsonl", ".ndjson", ".json":
		return JSONL(), nil
	}
	return nil, fmt.Errorf("%w: %s: cannot tell the format from the extension (want .parquet, .pq, .csv, .jsonl, .ndjson or .json)", ErrUnknownFormat, p)
}

// WriteOptions control NewWriter.
type WriteOptions struct {
	// Compression is the Parquet codec: "zstd" (default), "snappy", "gzip", "none".
	Compression string
	// RowGroupRows is the number of rows per Parquet row group (default DefaultRowGroupRows).
	RowGroupRows int64
	// CSVHeader writes a header line of column names first.
	CSVHeader bool
}

// DefaultRowGroupRows is the Parquet row group length when WriteOptions.RowGroupRows is 0.
const DefaultRowGroupRows = 1 << 20

// Writer writes batches into one file. Its methods are called from one goroutine.
type Writer interface {
	// Write appends rec's rows. It does not keep rec after it returns; rec
	// must have the writer's schema.
	Write(rec arrow.RecordBatch) error
	// Close flushes what is buffered and closes the Upload. It does not
	// Commit: the caller commits (or aborts) the Upload afterwards.
	Close() error
	// Rows is the number of rows written so far.
	Rows() int64
	// Bytes is the number of bytes handed to the Upload so far. A Parquet
	// writer holds up to a row group in memory, so this lags until Close.
	Bytes() int64
}

// NewWriter starts writing one file of the named format into an open
// Upload. The writer owns u until Close.
func NewWriter(format string, u storage.Upload, schema *arrow.Schema, opts WriteOptions, mem memory.Allocator) (Writer, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	switch strings.ToLower(format) {
	case "parquet":
		return newParquetWriter(u, schema, opts, mem)
	case "csv":
		return newCSVWriter(u, schema, opts)
	case "jsonl", "ndjson", "json":
		return newJSONLWriter(u, schema)
	}
	return nil, fmt.Errorf("%w %q (want parquet, csv or jsonl)", ErrUnknownFormat, format)
}

// countingWriter counts bytes on their way to the Upload, and hides its
// Close from libraries that close what they write to.
type countingWriter struct {
	w storage.Upload
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// noColumn is the error for a requested column the file lacks, listing
// the columns it has.
func noColumn(p, name string, have []string) error {
	const maxShown = 20
	shown := have
	more := ""
	if len(shown) > maxShown {
		shown = shown[:maxShown]
		more = ", ..."
	}
	return fileErr(p, mark(ErrNoColumn, "no column %q (have: %s%s)", name, strings.Join(shown, ", "), more))
}

// ctxErr reports ctx's error, for loops to check between batches.
func ctxErr(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}
