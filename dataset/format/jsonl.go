package format

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/storage"
)

// maxLine bounds one JSONL line, so a file without newlines fails instead
// of filling memory.
const maxLine = 256 << 20

type jsonlFormat struct{}

var _ Format = jsonlFormat{}

func (jsonlFormat) Name() string { return "jsonl" }

// jsonlPlan is how one JSONL file maps onto the batches Read emits.
type jsonlPlan struct {
	fields []arrow.Field  // output columns
	index  map[string]int // key -> output column
	// known holds every key of an inferred schema, projected or not: a key
	// outside it fails the read. Nil for a user's schema, whose missing
	// keys are skipped.
	known map[string]bool
}

func (j jsonlFormat) plan(ctx context.Context, f storage.File, opts ReadOptions) (*jsonlPlan, error) {
	p := f.Path()
	var fields []arrow.Field
	inferred := true
	if opts.Schema != nil {
		fields = opts.Schema.Fields()
		inferred = opts.Inferred
		for _, fl := range fields {
			if !textTypeOK(fl.Type) {
				return nil, &Error{Path: p, RowGroup: -1, Column: fl.Name, Err: mark(ErrUnsupported, "JSONL reading cannot produce type %s (read nested values as strings)", fl.Type)}
			}
		}
	} else {
		s, err := j.sample(ctx, f, opts)
		if err != nil {
			return nil, err
		}
		if fields, err = s.fields(p, opts); err != nil {
			return nil, err
		}
	}
	pl := &jsonlPlan{index: make(map[string]int)}
	if inferred {
		pl.known = make(map[string]bool, len(fields))
		for _, fl := range fields {
			pl.known[fl.Name] = true
		}
	}
	if opts.Columns == nil {
		pl.fields = fields
	} else {
		idx, err := pickColumns(p, fields, opts.Columns)
		if err != nil {
			return nil, err
		}
		for _, i := range idx {
			pl.fields = append(pl.fields, fields[i])
		}
	}
	for i, fl := range pl.fields {
		if _, dup := pl.index[fl.Name]; !dup {
			pl.index[fl.Name] = i
		}
	}
	return pl, nil
}

// sample reads the first opts.InferRows lines (all when negative): keys
// in the order first seen, with each key's values merged into one kind.
func (jsonlFormat) sample(ctx context.Context, f storage.File, opts ReadOptions) (*sample, error) {
	p := f.Path()
	lr := newLineReader(f, 256<<10)
	s := newSample()
	var sc jsonScanner
	add := func(key []byte, v jsonValue) { s.addKey(key, v.kind()) }
	limit := opts.inferRows()
	for n := 0; limit < 0 || n < limit; {
		if n%1024 == 0 {
			if err := ctxErr(ctx); err != nil {
				return nil, err
			}
		}
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fileErr(p, err)
		}
		if blank(line) {
			continue
		}
		n++
		if err := sc.object(line, add); err != nil {
			return nil, jsonErr(p, lr.line, err)
		}
	}
	return s, nil
}

// newKeyErr is the error for a key that inference did not see.
func newKeyErr(p string, line, col int, key string, opts ReadOptions) error {
	what := fmt.Sprintf("the first %d lines", opts.inferRows())
	if opts.Schema != nil {
		what += " of each file sampled"
	}
	return &Error{Path: p, Line: line, Col: col, RowGroup: -1, Err: mark(ErrParse,
		"key %q is not in the schema inferred from %s: raise infer_rows (-1 reads every line) or give a schema", clip(key), what)}
}

func jsonErr(p string, line int, err error) error {
	var se *scanError
	if errors.As(err, &se) {
		return &Error{Path: p, Line: line, Col: se.col, RowGroup: -1, Err: mark(ErrParse, "invalid JSON: %s", se.msg)}
	}
	return &Error{Path: p, Line: line, RowGroup: -1, Err: err}
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func (j jsonlFormat) Schema(ctx context.Context, f storage.File, opts ReadOptions) (*arrow.Schema, error) {
	pl, err := j.plan(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	return arrow.NewSchema(pl.fields, nil), nil
}

func (jsonlFormat) Splits(ctx context.Context, f storage.File, opts ReadOptions) ([]Split, error) {
	return wholeFile(f), nil
}

func (j jsonlFormat) Read(ctx context.Context, f storage.File, s Split, opts ReadOptions, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	p := f.Path()
	pl, err := j.plan(ctx, f, opts)
	if err != nil {
		return err
	}
	bb := newBatchBuilder(pl.fields, opts, mem)
	defer bb.release()
	slots := make([]jsonValue, len(pl.fields))
	var (
		newKey    string // the first key of the line that the schema lacks
		newKeyCol int
	)
	set := func(key []byte, v jsonValue) {
		if i, ok := pl.index[string(key)]; ok {
			slots[i] = v // a repeated key: the last one wins, as in encoding/json
			return
		}
		if pl.known != nil && !pl.known[string(key)] && newKeyCol == 0 {
			newKey, newKeyCol = string(key), v.keyCol
		}
	}
	lr := newLineReader(f, readBuffer)
	var sc jsonScanner
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fileErr(p, err)
		}
		if blank(line) {
			continue
		}
		clear(slots)
		if err := sc.object(line, set); err != nil {
			return jsonErr(p, lr.line, err)
		}
		if newKeyCol != 0 {
			return newKeyErr(p, lr.line, newKeyCol, newKey, opts)
		}
		for i, a := range bb.apps {
			v := slots[i]
			if v.typ == jvNull {
				a.b.AppendNull()
				continue
			}
			if err := a.add(v.text); err != nil {
				if pl.known != nil {
					err = inferredErr(err, opts)
				}
				return &Error{Path: p, Line: lr.line, Col: v.col, RowGroup: -1, Column: a.name, Err: err}
			}
		}
		if err := bb.endRow(ctx, emit); err != nil {
			return err
		}
	}
	return bb.flush(emit)
}

// lineReader yields a file's lines without their line endings.
type lineReader struct {
	r    *bufio.Reader
	long []byte
	line int // 1-based number of the line last returned
}

func newLineReader(f storage.File, buf int) *lineReader {
	buf = int(min(int64(buf), max(f.Size(), 16)))
	return &lineReader{r: bufio.NewReaderSize(io.NewSectionReader(fileReaderAt{f}, 0, f.Size()), buf)}
}

// next returns the next line; it is valid until the following call.
func (lr *lineReader) next() ([]byte, error) {
	b, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.long) > maxLine {
				return nil, mark(ErrParse, "line %d is longer than %d bytes", lr.line+1, maxLine)
			}
			b, err = lr.r.ReadSlice('\n')
			lr.long = append(lr.long, b...)
		}
		b = lr.long
	}
	if err == io.EOF && len(b) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	lr.line++
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

type jvType uint8

const (
	jvNull jvType = iota // also: key absent
	jvBool
	jvInt   // a number without fraction or exponent
	jvFloat // any other number
	jvString
	jvRaw // an object or array, kept as its JSON text
)

// jsonValue is one member's value. text is the number or literal as
// written, the decoded string, or the raw nested JSON; it aliases the line.
type jsonValue struct {
	typ  jvType
	text string
	col  int // 1-based byte column where the value starts
	// keyCol is where the member's key starts.
	keyCol int
}

func (v jsonValue) kind() kind {
	switch v.typ {
	case jvBool:
		return kBool
	case jvInt:
		if _, err := strconv.ParseInt(v.text, 10, 64); err == nil {
			return kInt
		}
		return kFloat
	case jvFloat:
		return kFloat
	case jvString:
		switch v.text {
		case "NaN", "+Inf", "-Inf": // how the writer spells them
			return kFloat
		}
		return timeKind(v.text)
	case jvRaw:
		return kString
	}
	return kNull
}

type scanError struct {
	col int
	msg string
}

func (e *scanError) Error() string { return fmt.Sprintf("column %d: %s", e.col, e.msg) }

// jsonScanner reads one line holding one JSON object, without building a
// map: each member goes to a callback with views into the line.
type jsonScanner struct {
	b     []byte
	i     int
	stack []byte
}

func (s *jsonScanner) fail(format string, args ...any) error {
	return &scanError{col: s.i + 1, msg: fmt.Sprintf(format, args...)}
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) found() string {
	if s.i >= len(s.b) {
		return "end of line"
	}
	r, _ := utf8.DecodeRune(s.b[s.i:])
	return strconv.QuoteRune(r)
}

// object scans b as one object, calling fn for each member in order.
func (s *jsonScanner) object(b []byte, fn func(key []byte, v jsonValue)) error {
	s.b, s.i = b, 0
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return s.fail("want an object, found %s", s.found())
	}
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		s.ws()
		if s.i >= len(b) || b[s.i] != '"' {
			return s.fail("want a quoted key, found %s", s.found())
		}
		keyCol := s.i + 1
		key, escaped, err := s.str()
		if err != nil {
			return err
		}
		if escaped {
			var k string
			if json.Unmarshal(key, &k) != nil {
				return s.fail("invalid key")
			}
			key = []byte(k)
		} else {
			key = key[1 : len(key)-1]
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ':' {
			return s.fail("want ':' after key, found %s", s.found())
		}
		s.i++
		s.ws()
		v, err := s.value()
		if err != nil {
			return err
		}
		v.keyCol = keyCol
		fn(key, v)
		s.ws()
		if s.i >= len(b) {
			return s.fail("unterminated object")
		}
		switch b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return s.fail("want ',' or '}', found %s", s.found())
		}
	}
}

func (s *jsonScanner) end() error {
	s.ws()
	if s.i < len(s.b) {
		return s.fail("unexpected %s after the object (one object per line)", s.found())
	}
	return nil
}

// str scans a string at s.i and returns it with its quotes.
func (s *jsonScanner) str() (raw []byte, escaped bool, err error) {
	start := s.i
	s.i++
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			raw = s.b[start:s.i]
			// Invalid UTF-8 goes through encoding/json, which replaces it,
			// so string columns hold valid UTF-8.
			if !ascii && !utf8.Valid(raw) {
				escaped = true
			}
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				s.i++
				return nil, false, s.fail("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex(s.b[s.i+2:s.i+6]) {
					return nil, false, s.fail(`invalid \u escape`)
				}
				s.i += 6
			default:
				return nil, false, s.fail("invalid escape %q", s.b[s.i:s.i+2])
			}
		case c < 0x20:
			return nil, false, s.fail("control character %q in string", c)
		default:
			if c >= 0x80 {
				ascii = false
			}
			s.i++
		}
	}
	return nil, false, s.fail("unterminated string")
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// view is a string that aliases b; the appenders copy what they keep.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (s *jsonScanner) value() (jsonValue, error) {
	b := s.b
	v := jsonValue{col: s.i + 1}
	if s.i >= len(b) {
		return v, s.fail("want a value, found end of line")
	}
	switch c := b[s.i]; {
	case c == '"':
		raw, escaped, err := s.str()
		if err != nil {
			return v, err
		}
		v.typ = jvString
		if escaped {
			var str string
			if json.Unmarshal(raw, &str) != nil {
				return v, &scanError{col: v.col, msg: "invalid string"}
			}
			v.text = str
		} else {
			v.text = view(raw[1 : len(raw)-1])
		}
	case c == '{' || c == '[':
		start := s.i
		if err := s.nested(); err != nil {
			return v, err
		}
		raw := b[start:s.i]
		if !json.Valid(raw) {
			return v, &scanError{col: v.col, msg: "invalid nested value"}
		}
		v.typ, v.text = jvRaw, view(raw)
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(b)-s.i >= len(lit) && string(b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				v.text = lit
				if lit != "null" {
					v.typ = jvBool
				}
				return v, nil
			}
		}
		return v, s.fail("invalid literal")
	case c == '-' || '0' <= c && c <= '9':
		start := s.i
		float, err := s.number()
		if err != nil {
			return v, err
		}
		v.typ, v.text = jvInt, view(b[start:s.i])
		if float {
			v.typ = jvFloat
		}
	default:
		return v, s.fail("want a value, found %s", s.found())
	}
	return v, nil
}

// number scans a JSON number; float reports a fraction or exponent.
func (s *jsonScanner) number() (float bool, err error) {
	b := s.b
	digitsFrom := func() int {
		n := 0
		for s.i < len(b) && '0' <= b[s.i] && b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case digitsFrom() == 0:
		return false, s.fail("invalid number")
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		float = true
		if digitsFrom() == 0 {
			return false, s.fail("invalid number: no digits after '.'")
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		float = true
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if digitsFrom() == 0 {
			return false, s.fail("invalid number: no digits in exponent")
		}
	}
	return float, nil
}

// nested skips a balanced object or array (strings included); json.Valid
// checks the rest.
func (s *jsonScanner) nested() error {
	s.stack = s.stack[:0]
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '{', '[':
			s.stack = append(s.stack, c)
			s.i++
		case '}', ']':
			open := byte('{')
			if c == ']' {
				open = '['
			}
			if len(s.stack) == 0 || s.stack[len(s.stack)-1] != open {
				return s.fail("mismatched %q", c)
			}
			s.stack = s.stack[:len(s.stack)-1]
			s.i++
			if len(s.stack) == 0 {
				return nil
			}
		case '"':
			if _, _, err := s.str(); err != nil {
				return err
			}
		default:
			s.i++
		}
	}
	return s.fail("unterminated nested value")
}

// jsonlWriter writes one object per line, keys in schema order.
type jsonlWriter struct {
	u      storage.Upload
	cw     *countingWriter
	schema *arrow.Schema
	keys   [][]byte // `"name":` for each column, with the separating comma
	encs   []func(dst []byte, a arrow.Array, i int) ([]byte, error)
	buf    []byte
	rows   int64
	closed bool
}

var _ Writer = (*jsonlWriter)(nil)

func newJSONLWriter(u storage.Upload, schema *arrow.Schema) (*jsonlWriter, error) {
	w := &jsonlWriter{u: u, cw: &countingWriter{w: u}, schema: schema}
	for i, f := range schema.Fields() {
		var k []byte
		if i > 0 {
			k = append(k, ',')
		}
		k = appendJSONString(k, f.Name)
		k = append(k, ':')
		w.keys = append(w.keys, k)
		w.encs = append(w.encs, jsonEncoder(f.Type))
	}
	return w, nil
}

// jsonEncoder renders one value of type t as JSON: timestamps as RFC 3339
// UTC strings, dates as "2006-01-02", NaN and infinities as the strings
// "NaN", "+Inf", "-Inf", nested types as arrow's JSON.
func jsonEncoder(t arrow.DataType) func(dst []byte, a arrow.Array, i int) ([]byte, error) {
	switch t.ID() {
	case arrow.STRING:
		return func(d []byte, a arrow.Array, i int) ([]byte, error) {
			return appendJSONString(d, a.(*array.String).Value(i)), nil
		}
	case arrow.LARGE_STRING:
		return func(d []byte, a arrow.Array, i int) ([]byte, error) {
			return appendJSONString(d, a.(*array.LargeString).Value(i)), nil
		}
	case arrow.FLOAT32, arrow.FLOAT64:
		bits := 64
		if t.ID() == arrow.FLOAT32 {
			bits = 32
		}
		return func(d []byte, a arrow.Array, i int) ([]byte, error) {
			var v float64
			if bits == 32 {
				v = float64(a.(*array.Float32).Value(i))
			} else {
				v = a.(*array.Float64).Value(i)
			}
			start := len(d)
			d = appendFloatText(d, v, bits)
			if c := d[start]; c == 'N' || c == '+' || (c == '-' && d[start+1] == 'I') {
				txt := string(d[start:])
				d = appendJSONString(d[:start], txt)
			}
			return d, nil
		}
	case arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
		f := textFormatter(t)
		return func(d []byte, a arrow.Array, i int) ([]byte, error) {
			d = append(d, '"')
			d = f(d, a, i)
			return append(d, '"'), nil
		}
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64, arrow.BOOL:
		f := textFormatter(t)
		return func(d []byte, a arrow.Array, i int) ([]byte, error) { return f(d, a, i), nil }
	}
	return func(d []byte, a arrow.Array, i int) ([]byte, error) {
		b, err := json.Marshal(a.GetOneForMarshal(i))
		if err != nil {
			return d, err
		}
		return append(d, b...), nil
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(d []byte, s string) []byte {
	d = append(d, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			d = append(d, s[start:i]...)
			switch c {
			case '"', '\\':
				d = append(d, '\\', c)
			case '\n':
				d = append(d, '\\', 'n')
			case '\r':
				d = append(d, '\\', 'r')
			case '\t':
				d = append(d, '\\', 't')
			default:
				d = append(d, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			d = append(d, s[start:i]...)
			d = append(d, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	d = append(d, s[start:]...)
	return append(d, '"')
}

func (w *jsonlWriter) Write(rec arrow.RecordBatch) error {
	if w.closed {
		return errors.New("format: jsonl writer: Write after Close")
	}
	if !rec.Schema().Equal(w.schema) {
		return fmt.Errorf("format: jsonl writer: batch schema %s differs from the writer's %s", rec.Schema(), w.schema)
	}
	cols := rec.Columns()
	w.buf = w.buf[:0]
	for i := 0; i < int(rec.NumRows()); i++ {
		w.buf = append(w.buf, '{')
		for j, c := range cols {
			w.buf = append(w.buf, w.keys[j]...)
			if c.IsNull(i) {
				w.buf = append(w.buf, "null"...)
				continue
			}
			var err error
			if w.buf, err = w.encs[j](w.buf, c, i); err != nil {
				return fmt.Errorf("format: jsonl writer: column %q: %w", w.schema.Field(j).Name, err)
			}
		}
		w.buf = append(w.buf, '}', '\n')
		if len(w.buf) >= 1<<20 {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.rows += rec.NumRows()
	return nil
}

func (w *jsonlWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.cw.Write(w.buf)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("format: jsonl writer: %w", err)
	}
	return nil
}

func (w *jsonlWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.u.Close()
}

func (w *jsonlWriter) Rows() int64  { return w.rows }
func (w *jsonlWriter) Bytes() int64 { return w.cw.n }
