package dataset_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/miniotest"
)

// s3Objects lists the visible objects under an s3:// prefix.
func s3Objects(t *testing.T, prefix string) []string {
	t.Helper()
	fs, err := storage.For(prefix)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := fs.List(context.Background(), prefix)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, strings.TrimPrefix(i.Path, prefix))
	}
	return out
}

// The dataset engine against a real S3 server: every format round trips,
// partitioned writes are pruned on read, and a failed job leaves neither
// objects nor pending multipart uploads.
func TestS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("lake")
	cfg, _ := testConfig(t)
	ctx := context.Background()
	rows := sales(600)

	for _, format := range []string{"parquet", "csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			dest := "s3://lake/roundtrip/" + format + "/"
			st, err := ds(t, cfg, rows).Write(ctx, format, dest, dataset.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Rows != 600 || !slices.Contains(s3Objects(t, dest), "_SUCCESS") {
				t.Fatalf("%d rows, objects %v", st.Rows, s3Objects(t, dest))
			}
			back := take(t, dataset.Read(format, dest).Configure(cfg).Sort(dataset.Asc("id")))
			ids, prices := col[int64](t, back, "id"), col[float64](t, back, "price")
			for i, s := range rows {
				if ids[i] != s.ID || prices[i] != s.Price {
					t.Fatalf("row %d: (%d, %v), want %+v", i, ids[i], prices[i], s)
				}
			}
		})
	}

	t.Run("partitioned", func(t *testing.T) {
		dest := "s3://lake/part/"
		if _, err := ds(t, cfg, rows).WriteParquet(ctx, dest, dataset.WriteOptions{PartitionBy: []string{"category"}}); err != nil {
			t.Fatal(err)
		}
		var want int
		for _, s := range rows {
			if s.Category == "c3" {
				want++
			}
		}
		all, err := dataset.ReadParquet(dest).Configure(cfg).Write(ctx, "jsonl", t.TempDir(), dataset.WriteOptions{Mode: dataset.Overwrite})
		if err != nil {
			t.Fatal(err)
		}
		one, err := dataset.ReadParquet(dest).Configure(cfg).Filter("category = 'c3'").Write(ctx, "jsonl", t.TempDir(), dataset.WriteOptions{Mode: dataset.Overwrite})
		if err != nil {
			t.Fatal(err)
		}
		if one.Rows != int64(want) {
			t.Fatalf("%d rows of c3, want %d", one.Rows, want)
		}
		// Ops[0] is the scan: operators register inputs first.
		if a, b := all.Ops[0].BytesIn.Load(), one.Ops[0].BytesIn.Load(); b*3 > a {
			t.Fatalf("a pruned read fetched %d bytes, a full read %d", b, a)
		}
	})

	t.Run("failed job", func(t *testing.T) {
		// Random, uncompressed 2 KiB strings in small row groups reach the
		// upload as they are written, so each writer's file outgrows one
		// 8 MiB part and starts a multipart upload long before the job fails.
		dest := "s3://lake/failed/"
		fs, err := storage.For(dest)
		if err != nil {
			t.Fatal(err)
		}
		const rows, failAt, width = 24_000, 18_000, 2048
		boom := errors.New("boom")
		var sawUploads atomic.Int64
		schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "pad", Type: arrow.BinaryTypes.String}}, nil)
		d := dataset.Range(rows).Configure(cfg).MapBatches(func(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			ids := rec.Column(0).(*array.Int64)
			if ids.Len() > 0 && ids.Value(0) >= failAt {
				// Fail only once an upload exists, polling with a deadline.
				for deadline := time.Now().Add(time.Minute); ; {
					ups, err := storage.ListUploads(ctx, fs, dest)
					if err != nil {
						return nil, err
					}
					if len(ups) > 0 {
						sawUploads.Store(int64(len(ups)))
						return nil, boom
					}
					if time.Now().After(deadline) {
						return nil, fmt.Errorf("no multipart upload under %s after %d rows", dest, failAt)
					}
					runtime.Gosched()
				}
			}
			b := array.NewStringBuilder(mem)
			defer b.Release()
			buf := make([]byte, width/2)
			for range ids.Len() {
				rand.Read(buf)
				b.Append(hex.EncodeToString(buf))
			}
			pad := b.NewArray()
			defer pad.Release()
			ids.Retain()
			defer ids.Release()
			return array.NewRecordBatch(schema, []arrow.Array{ids, pad}, rec.NumRows()), nil
		}, dataset.MapOptions{Name: "fail-after-upload", Schema: schema})
		opts := dataset.WriteOptions{Format: format.WriteOptions{Compression: "none", RowGroupRows: 500}}
		if _, err := d.WriteParquet(ctx, dest, opts); !errors.Is(err, boom) {
			t.Fatalf("got %v, want boom", err)
		}
		if sawUploads.Load() == 0 {
			t.Fatal("no multipart upload existed before the job failed")
		}
		if objs := s3Objects(t, dest); len(objs) != 0 {
			t.Fatalf("a failed job left objects %v", objs)
		}
		ups, err := storage.ListUploads(ctx, fs, dest)
		if err != nil || len(ups) != 0 {
			t.Fatalf("pending uploads %v, %v", ups, err)
		}
	})

	t.Run("end to end", func(t *testing.T) {
		in, out := "s3://lake/e2e/in/", "s3://lake/e2e/out/"
		rows := sales(2000)
		if _, err := ds(t, cfg, rows).WriteParquet(ctx, in, dataset.WriteOptions{RowsPerFile: 300}); err != nil {
			t.Fatal(err)
		}
		st, err := dataset.ReadParquet(in).Configure(cfg).
			Filter("price > 50 AND category <> 'c2'").
			WithColumn("revenue", "price * qty").
			WriteParquet(ctx, out, dataset.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			id       int64
			category string
			revenue  float64
		}
		var want []row
		for _, s := range rows {
			if s.Price > 50 && s.Category != "c2" {
				want = append(want, row{s.ID, s.Category, s.Price * float64(s.Qty)})
			}
		}
		if len(want) == 0 || st.Rows != int64(len(want)) || !slices.Contains(s3Objects(t, out), "_SUCCESS") {
			t.Fatalf("wrote %d rows, want %d; objects %v", st.Rows, len(want), s3Objects(t, out))
		}
		back := take(t, dataset.ReadParquet(out).Configure(cfg).Sort(dataset.Asc("id")))
		ids, cats, revs := col[int64](t, back, "id"), col[string](t, back, "category"), col[float64](t, back, "revenue")
		if len(ids) != len(want) {
			t.Fatalf("read back %d rows, want %d", len(ids), len(want))
		}
		for i, w := range want {
			if got := (row{ids[i], cats[i], revs[i]}); got != w {
				t.Fatalf("row %d: %+v, want %+v", i, got, w)
			}
		}
	})

	t.Run("commit", func(t *testing.T) { testCommit(t, "s3://lake/commit/") })

	t.Run("missing bucket", func(t *testing.T) {
		err := dataset.ReadParquet("s3://nope/x/").Err()
		if err == nil || !strings.Contains(err.Error(), `bucket "nope" does not exist`) {
			t.Fatalf("got %v", err)
		}
	})
}
