package dataset

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/storage"
)

// ReadOption tunes a file source.
type ReadOption func(*readConfig)

type readConfig struct {
	opts      format.ReadOptions
	columns   []string
	noHive    bool
	partTypes map[string]string
}

// Columns reads only these columns (the optimizer also prunes unused ones).
func Columns(cols ...string) ReadOption { return func(c *readConfig) { c.columns = cols } }

// NoPartitioning turns off hive-style partition columns (key=value/ directories).
func NoPartitioning() ReadOption { return func(c *readConfig) { c.noHive = true } }

// PartitionTypes types hive partition columns (key=value directories),
// which are strings otherwise: column name to a CAST type name (int,
// bigint, double, bool, date, timestamp...). Every file's directory value
// must parse as its type (the error names the file); a
// __HIVE_DEFAULT_PARTITION__ directory is NULL of any type. The column is
// CAST after the scan, so a filter on it is still applied but does not
// skip whole directories as a filter on a string partition column does.
func PartitionTypes(types map[string]string) ReadOption {
	return func(c *readConfig) { c.partTypes = types }
}

// WithReadOptions sets format options (CSV header, delimiter, schema...).
func WithReadOptions(o format.ReadOptions) ReadOption { return func(c *readConfig) { c.opts = o } }

// ReadParquet reads Parquet files: a file, a directory (recursively), or a
// glob (`*`, `?`, `[...]`, `**`), local or s3://. Directories named
// key=value become string columns.
func ReadParquet(path string, opts ...ReadOption) *Dataset { return read(format.Parquet(), path, opts) }

// ReadCSV reads CSV files with a header line; column types are inferred.
func ReadCSV(path string, opts ...ReadOption) *Dataset { return read(format.CSV(), path, opts) }

// ReadJSONL reads files of one JSON object per line; column types are inferred.
func ReadJSONL(path string, opts ...ReadOption) *Dataset { return read(format.JSONL(), path, opts) }

// Read reads files of the named format (parquet, csv, jsonl).
func Read(formatName, path string, opts ...ReadOption) *Dataset {
	f, err := format.ByName(formatName)
	if err != nil {
		return &Dataset{err: fmt.Errorf("dataset: read %s: %w", path, err)}
	}
	return read(f, path, opts)
}

func read(f format.Format, path string, opts []ReadOption) *Dataset {
	var cfg readConfig
	for _, o := range opts {
		o(&cfg)
	}
	n, err := scan(context.Background(), f, path, cfg)
	if err == nil {
		err = checkPartitionTypes(n, cfg.partTypes)
	}
	if err != nil {
		return &Dataset{err: fmt.Errorf("dataset: read %s %s: %w", f.Name(), path, err)}
	}
	d := &Dataset{node: n}
	for _, c := range slices.Sorted(maps.Keys(cfg.partTypes)) {
		if len(n.Schema().FieldIndices(c)) == 0 {
			continue // not read (Columns)
		}
		d = d.WithColumn(c, "CAST("+quoteIdent(c)+" AS "+cfg.partTypes[c]+")")
	}
	return d
}

// checkPartitionTypes checks that each typed column is a partition column
// and that every file's value for it parses as its type.
func checkPartitionTypes(s *plan.Scan, types map[string]string) error {
	for _, c := range slices.Sorted(maps.Keys(types)) {
		t, ok := expr.TypeByName(types[c])
		if !ok {
			return fmt.Errorf("partition column %q: unknown type %q (want one of %s)", c, types[c], strings.Join(expr.TypeNames(), ", "))
		}
		if !slices.Contains(s.PartCols, c) {
			have := "none"
			if len(s.PartCols) > 0 {
				have = strings.Join(s.PartCols, ", ")
			}
			return fmt.Errorf("partition column %q: no key=value directories of that name (partition columns: %s)", c, have)
		}
		for _, f := range s.Files {
			for _, p := range f.Partition {
				if p.Key != c || p.Null {
					continue
				}
				if err := parsesAs(p.Value, t); err != nil {
					return fmt.Errorf("%s: partition %s=%s is not %s: %v", f.Path, c, p.Value, types[c], err)
				}
			}
		}
	}
	return nil
}

// parsesAs checks a partition directory value against a type, as CAST
// from a string reads it.
func parsesAs(v string, t arrow.DataType) error {
	var err error
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		_, err = strconv.ParseInt(strings.TrimSpace(v), 10, t.(arrow.FixedWidthDataType).BitWidth())
	case arrow.FLOAT32, arrow.FLOAT64:
		_, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
	case arrow.BOOL:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "false", "t", "f", "1", "0", "yes", "no":
		default:
			err = fmt.Errorf("want true or false")
		}
	case arrow.DATE32:
		_, err = time.Parse("2006-01-02", strings.TrimSpace(v))
	}
	return err
}

func scan(ctx context.Context, f format.Format, path string, cfg readConfig) (*plan.Scan, error) {
	fs, err := storage.For(path)
	if err != nil {
		return nil, err
	}
	infos, err := storage.Glob(ctx, fs, path)
	if err != nil {
		return nil, err
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("no files match %s", path)
	}
	root := globRoot(path)
	s := &plan.Scan{Format: f, Root: path, ReadOpts: cfg.opts, Limit: -1}
	for i, info := range infos {
		file := plan.File{Path: info.Path, Size: info.Size}
		if !cfg.noHive {
			file.Partition = hivePartition(root, info.Path)
			keys := make([]string, len(file.Partition))
			for j, p := range file.Partition {
				keys[j] = p.Key
			}
			if i == 0 {
				s.PartCols = keys
			} else if !slices.Equal(keys, s.PartCols) {
				return nil, fmt.Errorf("%s: partition directories [%s] differ from [%s] of %s", info.Path, strings.Join(keys, ", "), strings.Join(s.PartCols, ", "), infos[0].Path)
			}
		}
		s.Files = append(s.Files, file)
	}
	if s.FileSchema, err = fileSchema(ctx, fs, f, infos, &s.ReadOpts); err != nil {
		return nil, err
	}
	for _, c := range s.PartCols {
		if len(s.FileSchema.FieldIndices(c)) > 0 {
			return nil, fmt.Errorf("%s: column %q is both in the file and a partition directory", infos[0].Path, c)
		}
	}
	if cfg.columns != nil {
		full := s.FullSchema()
		for _, c := range cfg.columns {
			if len(full.FieldIndices(c)) == 0 {
				return nil, unknownColumn(c, full)
			}
		}
		s.Columns = cfg.columns
	}
	return s, nil
}

// globRoot is the directory part of a path before its first glob character.
func globRoot(p string) string {
	i := strings.IndexAny(p, "*?[")
	if i < 0 {
		return strings.TrimSuffix(p, "/")
	}
	if j := strings.LastIndex(p[:i], "/"); j >= 0 {
		return p[:j]
	}
	return ""
}

// hiveNull is the directory value of a null partition value, as Hive and
// Spark write it (and executor/local's partitioned writes).
const hiveNull = "__HIVE_DEFAULT_PARTITION__"

// hivePartition reads key=value directories between root and the file name.
func hivePartition(root, file string) []plan.PartitionValue {
	rel := strings.TrimPrefix(file, root)
	rel = strings.TrimPrefix(rel, "/")
	dirs := strings.Split(rel, "/")
	var out []plan.PartitionValue
	for _, d := range dirs[:len(dirs)-1] {
		k, v, ok := strings.Cut(d, "=")
		if !ok || k == "" {
			continue
		}
		if v == hiveNull {
			out = append(out, plan.PartitionValue{Key: k, Null: true})
			continue
		}
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		out = append(out, plan.PartitionValue{Key: k, Value: v})
	}
	return out
}

// FromRecords is a Dataset over in-memory batches of one schema. The caller
// keeps ownership: the batches must stay valid until the last consumer of
// the Dataset returns.
func FromRecords(recs ...arrow.RecordBatch) *Dataset {
	if len(recs) == 0 {
		return &Dataset{err: fmt.Errorf("dataset: FromRecords: no records (use FromSchema for an empty dataset)")}
	}
	for i, r := range recs {
		if !r.Schema().Equal(recs[0].Schema()) {
			return &Dataset{err: fmt.Errorf("dataset: FromRecords: record %d has schema %s, want %s", i, r.Schema(), recs[0].Schema())}
		}
	}
	return &Dataset{node: &plan.Values{Records: recs, Sch: recs[0].Schema()}}
}

// FromSchema is an empty Dataset of the given schema.
func FromSchema(s *arrow.Schema) *Dataset {
	return &Dataset{node: &plan.Values{Sch: s}}
}

// Range is a Dataset of one int64 column "id" holding 0 to n-1.
func Range(n int64) *Dataset {
	if n < 0 {
		return &Dataset{err: fmt.Errorf("dataset: Range: n (%d) must not be negative", n)}
	}
	return &Dataset{node: &plan.Range{N: n}}
}
