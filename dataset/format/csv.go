package format

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/storage"
)

// readBuffer is the size of each ranged read of a CSV or JSONL file; large,
// so that a file on S3 costs few GETs.
const readBuffer = 4 << 20

type csvFormat struct{}

var _ Format = csvFormat{}

func (csvFormat) Name() string { return "csv" }

// csvPlan is how one CSV file maps onto the batches Read emits.
type csvPlan struct {
	fields []arrow.Field // output columns, in output order
	src    []int         // for each output column, its field index in a record
	width  int           // fields per record; -1 until the first record sets it
	header bool          // the first record is the header
	// inferred: the types came from a sample, so a value that does not
	// parse says how to read it anyway.
	inferred bool
}

func csvReader(f storage.File, opts ReadOptions, buf int) *csv.Reader {
	// A small file needs no large buffer.
	buf = int(min(int64(buf), max(f.Size(), 16)))
	r := csv.NewReader(bufio.NewReaderSize(io.NewSectionReader(fileReaderAt{f}, 0, f.Size()), buf))
	r.Comma = ','
	if opts.Delimiter != 0 {
		r.Comma = opts.Delimiter
	}
	r.FieldsPerRecord = -1 // checked here, to name the header's width
	r.ReuseRecord = true
	return r
}

// fileReaderAt marks the File's own errors, so they are not mistaken for
// malformed text.
type fileReaderAt struct{ f storage.File }

func (r fileReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &ioError{err}
	}
	return n, err
}

// csvErr turns an error from encoding/csv into one that names the file and line.
func csvErr(p string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		e := &Error{Path: p, Line: pe.Line, Col: pe.Column, RowGroup: -1, Err: kindOf(ErrParse, pe.Err)}
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			e.Col = 0
		}
		return e
	}
	return fileErr(p, err)
}

func validDelimiter(d rune) bool {
	return d == 0 || d != '"' && d != '\r' && d != '\n' && utf8.ValidRune(d) && d != utf8.RuneError
}

// head opens a CSV reader on f and reads its header: the column names,
// or nil with opts.NoHeader or in an empty file.
func csvHead(f storage.File, opts ReadOptions) (*csv.Reader, []string, error) {
	p := f.Path()
	if !validDelimiter(opts.Delimiter) {
		return nil, nil, fileErr(p, fmt.Errorf("%w: CSV delimiter %q", ErrUnsupported, opts.Delimiter))
	}
	r := csvReader(f, opts, 256<<10)
	if opts.NoHeader {
		return r, nil, nil
	}
	rec, err := r.Read()
	switch {
	case err == io.EOF:
		return r, nil, nil
	case err != nil:
		return nil, nil, csvErr(p, err)
	}
	names := slices.Clone(rec)
	if len(names) > 0 {
		names[0] = trimBOM(names[0])
	}
	for i, n := range names {
		if n == "" {
			names[i] = "c" + strconv.Itoa(i)
		}
		if !utf8.ValidString(n) {
			_, col := r.FieldPos(i)
			return nil, nil, &Error{Path: p, Line: 1, Col: col, RowGroup: -1, Err: mark(ErrParse, "header name %q is not valid UTF-8", n)}
		}
	}
	return r, names, nil
}

// sample reads the header and the first opts.InferRows records (all when
// negative), and returns each column's kind.
func (csvFormat) sample(ctx context.Context, f storage.File, opts ReadOptions) (*sample, error) {
	r, names, err := csvHead(f, opts)
	if err != nil {
		return nil, err
	}
	kinds, width, err := inferCSV(ctx, f.Path(), r, opts, len(names))
	if err != nil {
		return nil, err
	}
	if names == nil {
		for i := range width {
			names = append(names, "c"+strconv.Itoa(i))
		}
	}
	s := newSample()
	for i, n := range names {
		k := kNull
		if i < len(kinds) {
			k = kinds[i]
		}
		s.addKey([]byte(n), k)
	}
	return s, nil
}

// plan reads the header and, without opts.Schema, infers the types from the
// first opts.InferRows records.
func (c csvFormat) plan(ctx context.Context, f storage.File, opts ReadOptions) (*csvPlan, error) {
	p := f.Path()
	var fields []arrow.Field // one per record field
	var width int
	switch {
	case opts.Schema != nil:
		_, names, err := csvHead(f, opts)
		if err != nil {
			return nil, err
		}
		for _, fl := range opts.Schema.Fields() {
			if !textTypeOK(fl.Type) {
				return nil, &Error{Path: p, RowGroup: -1, Column: fl.Name, Err: mark(ErrUnsupported, "CSV cannot hold type %s", fl.Type)}
			}
		}
		if opts.NoHeader {
			fields = opts.Schema.Fields()
			width = len(fields)
			break
		}
		// Match the schema to the header by name; header columns a user's
		// schema leaves out are read as strings and usually projected
		// away. An inferred schema that lacks one was inferred from other
		// files: fail rather than drop the column.
		fields = make([]arrow.Field, len(names))
		for i, n := range names {
			fields[i] = arrow.Field{Name: n, Type: arrow.BinaryTypes.String, Nullable: true}
			if opts.Inferred && opts.Schema.FieldIndices(n) == nil {
				return nil, &Error{Path: p, Line: 1, RowGroup: -1, Column: n, Err: mark(ErrParse,
					"header column is not in the schema inferred from the files sampled (their headers differ): give a schema, or read the files separately")}
			}
		}
		for _, fl := range opts.Schema.Fields() {
			i := slices.Index(names, fl.Name)
			if i < 0 {
				return nil, noColumn(p, fl.Name, names)
			}
			fields[i] = fl
		}
		width = len(fields)
		if opts.Columns == nil {
			// The schema decides the output columns and their order.
			cols := make([]string, opts.Schema.NumFields())
			for i, fl := range opts.Schema.Fields() {
				cols[i] = fl.Name
			}
			opts.Columns = cols
		}
	default:
		s, err := c.sample(ctx, f, opts)
		if err != nil {
			return nil, err
		}
		if fields, err = s.fields(p, opts); err != nil {
			return nil, err
		}
		width = len(fields)
		if opts.NoHeader && len(fields) == 0 {
			width = -1
		}
	}

	pl := &csvPlan{width: width, header: !opts.NoHeader, inferred: opts.Schema == nil || opts.Inferred}
	if opts.Columns == nil {
		pl.fields = fields
		pl.src = make([]int, len(fields))
		for i := range pl.src {
			pl.src[i] = i
		}
		return pl, nil
	}
	idx, err := pickColumns(p, fields, opts.Columns)
	if err != nil {
		return nil, err
	}
	for _, i := range idx {
		pl.fields = append(pl.fields, fields[i])
	}
	pl.src = idx
	return pl, nil
}

// invalidAt is the byte offset of the first invalid UTF-8 in s.
func invalidAt(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return 0
}

func trimBOM(s string) string {
	if len(s) >= 3 && s[:3] == "\xef\xbb\xbf" {
		return s[3:]
	}
	return s
}

// inferCSV reads up to opts.InferRows records and returns each field's kind.
func inferCSV(ctx context.Context, p string, r *csv.Reader, opts ReadOptions, width int) ([]kind, int, error) {
	nulls := nullSet(opts.NullValues)
	kinds := make([]kind, max(width, 0))
	limit := opts.inferRows()
	for n := 0; limit < 0 || n < limit; n++ {
		if n%1024 == 0 {
			if err := ctxErr(ctx); err != nil {
				return nil, 0, err
			}
		}
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, csvErr(p, err)
		}
		if width <= 0 && n == 0 {
			width = len(rec)
			kinds = make([]kind, width)
		}
		if len(rec) != width {
			line, _ := r.FieldPos(0)
			return nil, 0, wrongWidth(p, line, len(rec), width, !opts.NoHeader)
		}
		for i, s := range rec {
			if nulls.has(s) {
				continue
			}
			kinds[i] = mergeKind(kinds[i], textKind(s))
		}
	}
	return kinds, width, nil
}

func wrongWidth(p string, line, got, want int, header bool) error {
	what := "the first row"
	if header {
		what = "the header"
	}
	return &Error{Path: p, Line: line, RowGroup: -1, Err: mark(ErrParse, "row has %d fields, %s has %d", got, what, want)}
}

// nulls is the set of field texts read as null.
type nulls []string

func nullSet(vs []string) nulls {
	if vs == nil {
		return nulls{""}
	}
	return nulls(vs)
}

func (n nulls) has(s string) bool {
	for _, v := range n {
		if s == v {
			return true
		}
	}
	return false
}

func (c csvFormat) Schema(ctx context.Context, f storage.File, opts ReadOptions) (*arrow.Schema, error) {
	pl, err := c.plan(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	return arrow.NewSchema(pl.fields, nil), nil
}

func (csvFormat) Splits(ctx context.Context, f storage.File, opts ReadOptions) ([]Split, error) {
	return wholeFile(f), nil
}

func (c csvFormat) Read(ctx context.Context, f storage.File, s Split, opts ReadOptions, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	p := f.Path()
	pl, err := c.plan(ctx, f, opts)
	if err != nil {
		return err
	}
	bb := newBatchBuilder(pl.fields, opts, mem)
	defer bb.release()
	nulls := nullSet(opts.NullValues)
	r := csvReader(f, opts, readBuffer)
	if pl.header {
		if _, err := r.Read(); err != nil {
			if err == io.EOF {
				return nil
			}
			return csvErr(p, err)
		}
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvErr(p, err)
		}
		if pl.width < 0 {
			pl.width = len(rec)
		}
		if len(rec) != pl.width {
			line, _ := r.FieldPos(0)
			return wrongWidth(p, line, len(rec), pl.width, pl.header)
		}
		for i, a := range bb.apps {
			s := rec[pl.src[i]]
			if nulls.has(s) {
				a.b.AppendNull()
				continue
			}
			if a.text && !utf8.ValidString(s) {
				if !opts.ReplaceInvalidUTF8 {
					line, col := r.FieldPos(pl.src[i])
					return &Error{Path: p, Line: line, Col: col, RowGroup: -1, Column: a.name, Err: mark(ErrParse,
						"invalid UTF-8 at byte %d of the value (replace_invalid_utf8 reads it as U+FFFD)", invalidAt(s)+1)}
				}
				s = strings.ToValidUTF8(s, "\uFFFD")
			}
			if err := a.add(s); err != nil {
				if pl.inferred {
					err = inferredErr(err, opts)
				}
				// The column name places the value; its line is where
				// the field starts (a quoted field may span lines).
				line, _ := r.FieldPos(pl.src[i])
				return &Error{Path: p, Line: line, RowGroup: -1, Column: a.name, Err: err}
			}
		}
		if err := bb.endRow(ctx, emit); err != nil {
			return err
		}
	}
	return bb.flush(emit)
}

// csvWriter writes a header (optionally) and one line per row.
type csvWriter struct {
	u      storage.Upload
	cw     *countingWriter
	w      *csv.Writer
	schema *arrow.Schema
	fmts   []func(dst []byte, a arrow.Array, i int) []byte
	rec    []string
	buf    []byte
	rows   int64
	closed bool
}

var _ Writer = (*csvWriter)(nil)

func newCSVWriter(u storage.Upload, schema *arrow.Schema, opts WriteOptions) (*csvWriter, error) {
	w := &csvWriter{u: u, cw: &countingWriter{w: u}, schema: schema, rec: make([]string, schema.NumFields())}
	w.w = csv.NewWriter(w.cw)
	for _, f := range schema.Fields() {
		w.fmts = append(w.fmts, textFormatter(f.Type))
	}
	if opts.CSVHeader {
		names := make([]string, schema.NumFields())
		for i, f := range schema.Fields() {
			names[i] = f.Name
		}
		if err := w.w.Write(names); err != nil {
			return nil, fmt.Errorf("format: csv writer: %w", err)
		}
	}
	return w, nil
}

// textFormatter renders one value of type t as CSV text (which the CSV
// reader parses back to the same value): RFC 3339 UTC timestamps,
// 2006-01-02 dates, and floats that always read back as floats.
func textFormatter(t arrow.DataType) func(dst []byte, a arrow.Array, i int) []byte {
	switch t.ID() {
	case arrow.INT8:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendInt(d, int64(a.(*array.Int8).Value(i)), 10)
		}
	case arrow.INT16:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendInt(d, int64(a.(*array.Int16).Value(i)), 10)
		}
	case arrow.INT32:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendInt(d, int64(a.(*array.Int32).Value(i)), 10)
		}
	case arrow.INT64:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendInt(d, a.(*array.Int64).Value(i), 10)
		}
	case arrow.UINT8:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendUint(d, uint64(a.(*array.Uint8).Value(i)), 10)
		}
	case arrow.UINT16:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendUint(d, uint64(a.(*array.Uint16).Value(i)), 10)
		}
	case arrow.UINT32:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendUint(d, uint64(a.(*array.Uint32).Value(i)), 10)
		}
	case arrow.UINT64:
		return func(d []byte, a arrow.Array, i int) []byte {
			return strconv.AppendUint(d, a.(*array.Uint64).Value(i), 10)
		}
	case arrow.FLOAT32:
		return func(d []byte, a arrow.Array, i int) []byte {
			return appendFloatText(d, float64(a.(*array.Float32).Value(i)), 32)
		}
	case arrow.FLOAT64:
		return func(d []byte, a arrow.Array, i int) []byte {
			return appendFloatText(d, a.(*array.Float64).Value(i), 64)
		}
	case arrow.BOOL:
		return func(d []byte, a arrow.Array, i int) []byte { return strconv.AppendBool(d, a.(*array.Boolean).Value(i)) }
	case arrow.STRING:
		return func(d []byte, a arrow.Array, i int) []byte { return append(d, a.(*array.String).Value(i)...) }
	case arrow.LARGE_STRING:
		return func(d []byte, a arrow.Array, i int) []byte { return append(d, a.(*array.LargeString).Value(i)...) }
	case arrow.TIMESTAMP:
		unit := t.(*arrow.TimestampType).Unit
		return func(d []byte, a arrow.Array, i int) []byte {
			return appendTimeText(d, int64(a.(*array.Timestamp).Value(i)), unit)
		}
	case arrow.DATE32:
		return func(d []byte, a arrow.Array, i int) []byte {
			return a.(*array.Date32).Value(i).ToTime().AppendFormat(d, "2006-01-02")
		}
	case arrow.DATE64:
		return func(d []byte, a arrow.Array, i int) []byte {
			return a.(*array.Date64).Value(i).ToTime().UTC().AppendFormat(d, "2006-01-02")
		}
	}
	return func(d []byte, a arrow.Array, i int) []byte { return append(d, a.ValueStr(i)...) }
}

func (w *csvWriter) Write(rec arrow.RecordBatch) error {
	if w.closed {
		return errors.New("format: csv writer: Write after Close")
	}
	if !rec.Schema().Equal(w.schema) {
		return fmt.Errorf("format: csv writer: batch schema %s differs from the writer's %s", rec.Schema(), w.schema)
	}
	cols := rec.Columns()
	for i := 0; i < int(rec.NumRows()); i++ {
		w.buf = w.buf[:0]
		ends := w.rec[:0]
		for j, c := range cols {
			if c.IsNull(i) {
				ends = append(ends, "")
				continue
			}
			start := len(w.buf)
			w.buf = w.fmts[j](w.buf, c, i)
			ends = append(ends, string(w.buf[start:]))
		}
		if err := w.w.Write(ends); err != nil {
			return fmt.Errorf("format: csv writer: %w", err)
		}
	}
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("format: csv writer: %w", err)
	}
	w.rows += rec.NumRows()
	return nil
}

func (w *csvWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.w.Flush()
	err := w.w.Error()
	if err != nil {
		err = fmt.Errorf("format: csv writer: %w", err)
	}
	return errors.Join(err, w.u.Close())
}

func (w *csvWriter) Rows() int64  { return w.rows }
func (w *csvWriter) Bytes() int64 { return w.cw.n }
