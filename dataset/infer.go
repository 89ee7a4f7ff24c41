package dataset

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
)

// inferFiles is how many files a CSV or JSONL source samples to infer its
// schema (each file's first InferRows rows); a negative InferRows samples
// every file, whole.
const inferFiles = 8

// fileSchema is the schema every file of a scan is read with. For CSV and
// JSONL without a user's schema, it is inferred from a sample of files
// spread over the list (first and last included) and fixed in opts, so all
// files read with the same types and a key or column the sample missed
// fails the read, naming its file and line, instead of being dropped.
func fileSchema(ctx context.Context, fs storage.FS, f format.Format, infos []storage.FileInfo, opts *format.ReadOptions) (*arrow.Schema, error) {
	if f.Name() != "parquet" && opts.Schema == nil {
		pick := sampleFiles(len(infos), opts.InferRows < 0)
		files := make([]storage.File, 0, len(pick))
		defer func() {
			for _, fh := range files {
				fh.Close()
			}
		}()
		for _, i := range pick {
			fh, err := fs.Open(ctx, infos[i].Path)
			if err != nil {
				return nil, err
			}
			files = append(files, fh)
		}
		all := *opts
		all.Columns = nil
		sch, err := format.InferSchema(ctx, f, files, all)
		if err != nil {
			return nil, err
		}
		opts.Schema, opts.Inferred = sch, true
	}
	fh, err := fs.Open(ctx, infos[0].Path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return f.Schema(ctx, fh, *opts)
}

// sampleFiles picks the indices of up to inferFiles of n files, evenly
// spread, first and last included; all of them when every is set.
func sampleFiles(n int, every bool) []int {
	if every || n <= inferFiles {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, 0, inferFiles)
	for k := range inferFiles {
		out = append(out, k*(n-1)/(inferFiles-1))
	}
	return out
}
