package tune

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// tableSchema is trials.parquet's: the columns of trials.jsonl, the
// config as its JSON text (its keys differ between trials of a
// conditional space), last and best NULL when never reported.
var tableSchema = arrow.NewSchema([]arrow.Field{
	{Name: "trial", Type: arrow.BinaryTypes.String},
	{Name: "config", Type: arrow.BinaryTypes.String},
	{Name: "status", Type: arrow.BinaryTypes.String},
	{Name: "iterations", Type: arrow.PrimitiveTypes.Int64},
	{Name: "last", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "best", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "error", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "checkpoint", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// Parquet is the trial table as a Parquet file (trials.parquet): one row
// per trial with the columns of trials.jsonl.
func (e *Experiment) Parquet() ([]byte, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, tableSchema)
	defer b.Release()
	str := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	flt := func(i int, p *float64) {
		if p == nil {
			b.Field(i).AppendNull()
		} else {
			b.Field(i).(*array.Float64Builder).Append(*p)
		}
	}
	opt := func(i int, s string) {
		if s == "" {
			b.Field(i).AppendNull()
		} else {
			str(i).Append(s)
		}
	}
	for _, t := range e.Trials {
		cfg, err := json.Marshal(t.Config)
		if err != nil {
			return nil, fmt.Errorf("tune: trial %s: config: %w", t.ID, err)
		}
		str(0).Append(t.ID)
		str(1).Append(string(cfg))
		str(2).Append(string(t.Status))
		b.Field(3).(*array.Int64Builder).Append(int64(t.Iterations))
		flt(4, t.Last)
		flt(5, t.Best)
		opt(6, t.Error)
		ckpt := ""
		if n := len(t.Checkpoints); n > 0 {
			ckpt = t.Checkpoints[n-1].Path
		}
		opt(7, ckpt)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	w, err := pqarrow.NewFileWriter(tableSchema, &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("tune: trials.parquet: %w", err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("tune: trials.parquet: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("tune: trials.parquet: %w", err)
	}
	return buf.Bytes(), nil
}
