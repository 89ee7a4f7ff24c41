// Package salesgen generates the etl/sales-10m workload's data (see
// WORKLOADS.md): seeded, and a pure function of the row index, so any split
// of the rows into files and batches yields the same data.
package salesgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"golang.org/x/sync/errgroup"
)

// Schema is the sales table's schema.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "user_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "category", Type: arrow.BinaryTypes.String},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64},
	{Name: "qty", Type: arrow.PrimitiveTypes.Int32},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
	{Name: "note", Type: arrow.BinaryTypes.String},
}, nil)

const (
	// Users is the number of distinct user ids.
	Users = 100_000
	// Categories is the number of distinct categories, c0 to c49.
	Categories = 50
	// tsBase is 2024-01-01T00:00:00Z in microseconds.
	tsBase = 1704067200_000000
	tsSpan = 365 * 24 * 3600 * 1_000_000
)

// text is the source of notes: mixed case, so lower() has work to do.
var text = func() string {
	words := []string{"Alpha", "BRAVO", "charlie", "Delta", "ECHO", "foxtrot", "Golf", "HOTEL", "india", "Juliet", "KILO", "lima", "Mike", "NOVEMBER", "oscar", "Papa"}
	b := make([]byte, 0, 8192)
	for i := 0; len(b) < 8000; i++ {
		b = append(b, words[mix(uint64(i), 99)%uint64(len(words))]...)
		b = append(b, ' ')
	}
	return string(b)
}()

// mix is splitmix64 of a row and a stream number.
func mix(row, stream uint64) uint64 {
	z := row*0x9e3779b97f4a7c15 + stream*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

var categories = func() []string {
	c := make([]string, Categories)
	for i := range c {
		c[i] = "c" + strconv.Itoa(i)
	}
	return c
}()

// Batch returns rows [start, start+n) of the table for a seed.
func Batch(mem memory.Allocator, seed uint64, start, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, Schema)
	defer b.Release()
	id := b.Field(0).(*array.Int64Builder)
	user := b.Field(1).(*array.Int64Builder)
	cat := b.Field(2).(*array.StringBuilder)
	price := b.Field(3).(*array.Float64Builder)
	qty := b.Field(4).(*array.Int32Builder)
	ts := b.Field(5).(*array.TimestampBuilder)
	note := b.Field(6).(*array.StringBuilder)
	for _, f := range b.Fields() {
		f.Reserve(int(n))
	}
	cat.ReserveData(int(n) * 3)
	note.ReserveData(int(n) * 60)
	for r := start; r < start+n; r++ {
		row := uint64(r) ^ seed*0x632be59bd9b4e019
		id.UnsafeAppend(r)
		user.UnsafeAppend(int64(mix(row, 1) % Users))
		cat.Append(categories[mix(row, 2)%Categories])
		price.UnsafeAppend(1 + float64(mix(row, 3)%99_000_000)/1_000_000)
		qty.UnsafeAppend(int32(1 + mix(row, 4)%10))
		ts.UnsafeAppend(arrow.Timestamp(tsBase + int64(mix(row, 5)%tsSpan)))
		l := 10 + mix(row, 6)%101
		off := mix(row, 7) % uint64(len(text)-110)
		note.Append(text[off : off+l])
	}
	return b.NewRecordBatch()
}

// WriteFiles writes rows rows as files zstd Parquet files named
// part-N.parquet in dir, with row groups of at most rowGroup rows.
func WriteFiles(ctx context.Context, dir string, seed uint64, rows int64, files int, rowGroup int64) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := make([]string, files)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	per := (rows + int64(files) - 1) / int64(files)
	for f := range files {
		start, end := int64(f)*per, min(int64(f+1)*per, rows)
		paths[f] = filepath.Join(dir, fmt.Sprintf("part-%d.parquet", f))
		g.Go(func() error { return writeFile(ctx, paths[f], seed, start, end, rowGroup) })
	}
	return paths, g.Wait()
}

func writeFile(ctx context.Context, path string, seed uint64, start, end, rowGroup int64) error {
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(rowGroup), parquet.WithStats(true))
	w, err := pqarrow.NewFileWriter(Schema, fh, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		fh.Close()
		return err
	}
	mem := memory.NewGoAllocator()
	for s := start; s < end; s += rowGroup {
		if err := ctx.Err(); err != nil {
			w.Close()
			return err
		}
		rec := Batch(mem, seed, s, min(rowGroup, end-s))
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// UsersSchema is the users table's schema: one row per user id, 0 to
// Users-1, joined to the sales table on user_id (etl/sales-10m Q4).
var UsersSchema = arrow.NewSchema([]arrow.Field{
	{Name: "user_id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "region", Type: arrow.BinaryTypes.String},
	{Name: "tier", Type: arrow.BinaryTypes.String},
}, nil)

var (
	regions = []string{"north", "south", "east", "west", "central", "pacific", "atlantic", "mountain"}
	tiers   = []string{"free", "basic", "pro", "enterprise"}
)

// UsersBatch returns the whole users table for a seed: user_id i has a
// region and a tier that are a pure function of i and the seed.
func UsersBatch(mem memory.Allocator, seed uint64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, UsersSchema)
	defer b.Release()
	id := b.Field(0).(*array.Int64Builder)
	region := b.Field(1).(*array.StringBuilder)
	tier := b.Field(2).(*array.StringBuilder)
	for _, f := range b.Fields() {
		f.Reserve(Users)
	}
	for u := range uint64(Users) {
		row := u ^ seed*0x632be59bd9b4e019
		id.UnsafeAppend(int64(u))
		region.Append(regions[mix(row, 11)%uint64(len(regions))])
		tier.Append(tiers[mix(row, 12)%uint64(len(tiers))])
	}
	return b.NewRecordBatch()
}

// WriteUsers writes the users table for a seed as one zstd Parquet file
// at path (written to path.tmp, then renamed).
func WriteUsers(path string, seed uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithStats(true))
	w, err := pqarrow.NewFileWriter(UsersSchema, fh, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		fh.Close()
		return err
	}
	rec := UsersBatch(memory.NewGoAllocator(), seed)
	err = w.Write(rec)
	rec.Release()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
