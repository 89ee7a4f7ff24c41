package format

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/storage"
)

// sample is what type inference saw in one or more files: the columns in
// the order first seen, each with the kind that holds all its values.
type sample struct {
	names []string
	kinds []kind
	at    map[string]int
}

func newSample() *sample { return &sample{at: make(map[string]int)} }

// addKey merges one value's kind into column key, adding the column if new.
func (s *sample) addKey(key []byte, k kind) {
	i, ok := s.at[string(key)]
	if !ok {
		i = len(s.names)
		name := string(key)
		s.at[name] = i
		s.names = append(s.names, name)
		s.kinds = append(s.kinds, kNull)
	}
	s.kinds[i] = mergeKind(s.kinds[i], k)
}

// merge widens s by another file's sample: new columns are appended, and
// a column in both takes the kind that holds both (int and float give
// float, anything else that differs gives string).
func (s *sample) merge(o *sample) {
	for i, n := range o.names {
		s.addKey([]byte(n), o.kinds[i])
	}
}

// fields are the inferred columns, with opts.Types overriding the types
// of those it names; a name the sample lacks is an error.
func (s *sample) fields(p string, opts ReadOptions) ([]arrow.Field, error) {
	for name, t := range opts.Types {
		if _, ok := s.at[name]; !ok {
			return nil, noColumn(p, name, s.names)
		}
		if !textTypeOK(t) {
			return nil, &Error{Path: p, RowGroup: -1, Column: name, Err: mark(ErrUnsupported, "CSV and JSONL cannot hold type %s", t)}
		}
	}
	fields := make([]arrow.Field, len(s.names))
	for i, n := range s.names {
		t, ok := opts.Types[n]
		if !ok {
			t = kindType(s.kinds[i])
		}
		fields[i] = arrow.Field{Name: n, Type: t, Nullable: true}
	}
	return fields, nil
}

// sampler is a format whose schema is inferred from its rows.
type sampler interface {
	sample(ctx context.Context, f storage.File, opts ReadOptions) (*sample, error)
}

var (
	_ sampler = csvFormat{}
	_ sampler = jsonlFormat{}
)

// InferSchema is the one schema of a CSV or JSONL source made of several
// files: each file's first opts.InferRows rows (lines) are sampled, a column
// that is null throughout one file takes its type from the others, and types
// that differ between files widen (int64 and float64 give float64; anything
// else that differs gives utf8). Columns come in the order first seen, file
// by file. For Parquet, and with opts.Schema set, it is the first file's
// Schema.
//
// Pass the result back as opts.Schema with opts.Inferred set: every file
// then reads with the same types, and a file holding a key (JSONL) or a
// header column (CSV) the sample never saw, or a value that does not fit
// the inferred type, fails naming its file and line instead of being
// dropped.
func InferSchema(ctx context.Context, fm Format, files []storage.File, opts ReadOptions) (*arrow.Schema, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("format: InferSchema: no files")
	}
	sm, ok := fm.(sampler)
	if !ok || opts.Schema != nil {
		return fm.Schema(ctx, files[0], opts)
	}
	all := newSample()
	for _, f := range files {
		s, err := sm.sample(ctx, f, opts)
		if err != nil {
			return nil, err
		}
		all.merge(s)
	}
	fields, err := all.fields(files[0].Path(), opts)
	if err != nil {
		return nil, err
	}
	opts.Schema = arrow.NewSchema(fields, nil)
	opts.Inferred = true
	// The projection and the CSV header checks stay the formats' own.
	return fm.Schema(ctx, files[0], opts)
}

// inferredErr adds to err, a value that does not parse as its column's
// inferred type, how to read the file anyway.
func inferredErr(err error, opts ReadOptions) error {
	what := fmt.Sprintf("the first %d rows", opts.inferRows())
	switch {
	case opts.Schema != nil && opts.inferRows() < 0:
		what = "the files sampled"
	case opts.Schema != nil:
		what += " of each file sampled"
	}
	return fmt.Errorf("%w (the type was inferred from %s: raise infer_rows, -1 reads every row, or set the column's type in a schema)", err, what)
}
