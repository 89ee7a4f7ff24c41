package dist

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// rowGroup is one non-empty row group of a Parquet file and its compressed size.
type rowGroup struct {
	index int
	size  int64
}

// rowGroups reads a Parquet file's footer and lists its non-empty row groups.
func rowGroups(ctx context.Context, fs storage.FS, path string) ([]rowGroup, error) {
	fh, err := fs.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r, err := file.NewParquetReader(io.NewSectionReader(fh, 0, fh.Size()))
	if err != nil {
		return nil, fmt.Errorf("dist: %s: reading the Parquet footer: %w", path, err)
	}
	defer r.Close()
	md := r.MetaData()
	var out []rowGroup
	for i := range md.NumRowGroups() {
		rg := md.RowGroup(i)
		if rg.NumRows() == 0 {
			continue
		}
		size := rg.TotalCompressedSize()
		if size <= 0 {
			for c := range rg.NumColumns() {
				if cc, err := rg.ColumnChunk(c); err == nil {
					size += cc.TotalCompressedSize()
				}
			}
		}
		out = append(out, rowGroup{index: i, size: size})
	}
	return out, nil
}

// rowGroupFormat is a scan's format restricted to some row groups of its
// files: keep maps every file of the task's split to its row groups (nil:
// all). A file it does not know is an error rather than a whole read, so
// that a path spelled differently cannot read rows twice.
type rowGroupFormat struct {
	format.Format
	keep map[string][]int
}

func (f rowGroupFormat) Splits(ctx context.Context, fh storage.File, opts format.ReadOptions) ([]format.Split, error) {
	keep, ok := f.keep[fh.Path()]
	if !ok {
		return nil, fmt.Errorf("dist: %s is not in the task's split", fh.Path())
	}
	splits, err := f.Format.Splits(ctx, fh, opts)
	if err != nil || keep == nil {
		return splits, err
	}
	in := map[int]bool{}
	for _, rg := range keep {
		in[rg] = true
	}
	var out []format.Split
	for _, s := range splits {
		var rgs []int
		for _, rg := range s.RowGroups {
			if in[rg] {
				rgs = append(rgs, rg)
			}
		}
		if len(rgs) == 0 {
			continue
		}
		if len(rgs) < len(s.RowGroups) {
			s.RowGroups, s.Rows = rgs, -1
		}
		out = append(out, s)
	}
	return out, nil
}

func (f rowGroupFormat) Read(ctx context.Context, fh storage.File, s format.Split, opts format.ReadOptions, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	return f.Format.Read(ctx, fh, s, opts, mem, emit)
}
