package blocks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/internal/kernel"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

// makeBatch builds rows rows of testSchema starting at row first, with
// nulls in every nullable column.
func makeBatch(mem memory.Allocator, first, rows int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	ids := b.Field(0).(*array.Int64Builder)
	scores := b.Field(1).(*array.Float64Builder)
	names := b.Field(2).(*array.StringBuilder)
	ats := b.Field(3).(*array.TimestampBuilder)
	oks := b.Field(4).(*array.BooleanBuilder)
	var name []byte
	for i := first; i < first+rows; i++ {
		ids.Append(int64(i))
		if i%7 == 0 {
			scores.AppendNull()
		} else {
			scores.Append(float64(i) / 3)
		}
		if i%11 == 0 {
			names.AppendNull()
		} else {
			name = strconv.AppendInt(append(name[:0], "name-"...), int64(i), 10)
			names.BinaryBuilder.Append(name)
		}
		ats.Append(arrow.Timestamp(1_700_000_000_000_000 + int64(i)*1_000))
		if i%5 == 0 {
			oks.AppendNull()
		} else {
			oks.Append(i%2 == 0)
		}
	}
	return b.NewRecordBatch()
}

// makeBlock builds a block of batches of the given row counts.
func makeBlock(mem memory.Allocator, rows ...int) []arrow.RecordBatch {
	recs := make([]arrow.RecordBatch, len(rows))
	first := 0
	for i, n := range rows {
		recs[i] = makeBatch(mem, first, n)
		first += n
	}
	return recs
}

func release(recs []arrow.RecordBatch) {
	for _, rec := range recs {
		rec.Release()
	}
}

func blockBytes(recs []arrow.RecordBatch) int64 {
	var n int64
	for _, rec := range recs {
		n += kernel.BatchBytes(rec)
	}
	return n
}

// checkEqual fails t unless got holds the same rows as want, however the
// two are cut into batches.
func checkEqual(t testing.TB, schema *arrow.Schema, want, got []arrow.RecordBatch) {
	t.Helper()
	if err := sameRows(schema, want, got); err != nil {
		t.Fatal(err)
	}
}

func sameRows(schema *arrow.Schema, want, got []arrow.RecordBatch) error {
	tw := array.NewTableFromRecords(schema, want)
	defer tw.Release()
	tg := array.NewTableFromRecords(schema, got)
	defer tg.Release()
	if tw.NumRows() != tg.NumRows() {
		return fmt.Errorf("got %d rows, want %d", tg.NumRows(), tw.NumRows())
	}
	for i := range int(tw.NumCols()) {
		if !array.ChunkedEqual(tw.Column(i).Data(), tg.Column(i).Data()) {
			return fmt.Errorf("column %q differs", schema.Field(i).Name)
		}
	}
	return nil
}

func newStore(t *testing.T, budget int64, mem memory.Allocator) *Store {
	t.Helper()
	s, err := NewStore(filepath.Join(t.TempDir(), "spill"), budget, mem)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func spillFiles(t *testing.T, s *Store) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(s.dir, spillPrefix+"*"+spillSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// serve starts a Server of store on a loopback port and returns its
// address; the server stops when the test ends.
func serve(t *testing.T, store *Store, opts ...ServerOption) (*Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, opts...)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

func TestStoreRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := newStore(t, 1<<30, mem)

	want := makeBlock(mem, 100, 1, 37)
	defer release(want)
	in := makeBlock(mem, 100, 1, 37)
	if err := s.Put("j-000001/s0/t0/a0/p0", testSchema, in); err != nil {
		t.Fatal(err)
	}
	release(in) // the store keeps its own references

	schema, got, err := s.Get("j-000001/s0/t0/a0/p0")
	if err != nil {
		t.Fatal(err)
	}
	if !schema.Equal(testSchema) {
		t.Fatalf("schema %s, want %s", schema, testSchema)
	}
	if len(got) != 3 {
		t.Fatalf("got %d batches, want 3", len(got))
	}
	for i := range got {
		if !array.RecordEqual(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	release(got)

	// A block of no batches keeps its schema.
	empty := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int32}}, nil)
	if err := s.Put("j-000001/s0/t0/a0/p1", empty, nil); err != nil {
		t.Fatal(err)
	}
	schema, got, err = s.Get("j-000001/s0/t0/a0/p1")
	if err != nil || !schema.Equal(empty) || len(got) != 0 {
		t.Fatalf("empty block: schema %v, %d batches, err %v", schema, len(got), err)
	}

	// Putting an id again replaces the block.
	repl := makeBlock(mem, 5)
	if err := s.Put("j-000001/s0/t0/a0/p1", testSchema, repl); err != nil {
		t.Fatal(err)
	}
	schema, got, err = s.Get("j-000001/s0/t0/a0/p1")
	if err != nil || !schema.Equal(testSchema) {
		t.Fatalf("replaced block: schema %v, err %v", schema, err)
	}
	checkEqual(t, testSchema, repl, got)
	release(got)
	release(repl)

	if st := s.Stats(); st.Blocks != 2 || st.OnDisk != 0 || st.MemoryBytes <= 0 {
		t.Fatalf("stats %+v", st)
	}

	s.Delete("j-000001/s0/t0/a0/p0")
	_, _, err = s.Get("j-000001/s0/t0/a0/p0")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "j-000001/s0/t0/a0/p0") {
		t.Fatalf("Get after Delete: %v, want ErrNotFound naming the id", err)
	}
	s.Delete("j-000001/s0/t0/a0/p0") // again: nothing to do

	if n := s.DeletePrefix("j-000001/"); n != 1 {
		t.Fatalf("DeletePrefix freed %d blocks, want 1", n)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("stats after deleting all: %+v", st)
	}
}

func TestStorePutRejects(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := newStore(t, 1<<30, mem)
	recs := makeBlock(mem, 3)
	defer release(recs)

	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int32}}, nil)
	for _, tc := range []struct {
		name, id string
		schema   *arrow.Schema
		want     string
	}{
		{"empty id", "", testSchema, "empty block id"},
		{"nil schema", "a", nil, `put "a": nil schema`},
		{"wrong schema", "a", other, `put "a": batch 0 has schema`},
	} {
		err := s.Put(tc.id, tc.schema, recs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if st := s.Stats(); st.Blocks != 0 {
		t.Fatalf("rejected puts stored %d blocks", st.Blocks)
	}
	if _, err := NewStore(t.TempDir(), -1, mem); err == nil || !strings.Contains(err.Error(), "(-1)") {
		t.Fatalf("negative budget: %v", err)
	}
}

func TestStoreSpills(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	// Eight blocks of ~40 KiB under a budget of two and a half.
	want := make([][]arrow.RecordBatch, 8)
	for i := range want {
		want[i] = makeBlock(mem, 600, 400)
	}
	defer func() {
		for _, b := range want {
			release(b)
		}
	}()
	one := blockBytes(want[0])
	s := newStore(t, one*5/2, mem)
	id := func(i int) string { return fmt.Sprintf("j-000002/s%d/t%d/a0/p0", i%2, i) }
	for i, b := range want {
		if err := s.Put(id(i), testSchema, b); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Blocks != 8 || st.OnDisk != 6 || st.Spills != 6 || st.MemoryBytes != 2*one || st.DiskBytes <= 0 {
		t.Fatalf("stats %+v, want 8 blocks, 6 on disk, %d bytes in memory", st, 2*one)
	}
	if files := spillFiles(t, s); len(files) != 6 {
		t.Fatalf("%d spill files, want 6: %v", len(files), files)
	}
	// The two most recent stay in memory.
	for i := range 8 {
		if onDisk := s.blocks[id(i)].recs == nil; onDisk != (i < 6) {
			t.Fatalf("block %d on disk: %v", i, onDisk)
		}
	}

	for round := range 2 { // spilled blocks read back every time
		for i, b := range want {
			schema, got, err := s.Get(id(i))
			if err != nil {
				t.Fatal(err)
			}
			if !schema.Equal(testSchema) {
				t.Fatalf("block %d: schema %s", i, schema)
			}
			checkEqual(t, testSchema, b, got)
			release(got)
		}
		if st := s.Stats(); st.OnDisk != 6 || st.MemoryBytes != 2*one {
			t.Fatalf("round %d: Get changed what is in memory: %+v", round, st)
		}
	}

	s.Delete(id(0))
	if files := spillFiles(t, s); len(files) != 5 {
		t.Fatalf("%d spill files after Delete, want 5", len(files))
	}
	if n := s.DeletePrefix("j-000002/s1/"); n != 4 {
		t.Fatalf("DeletePrefix freed %d, want 4", n)
	}
	if files := spillFiles(t, s); len(files) != 2 { // blocks 2 and 4
		t.Fatalf("%d spill files after DeletePrefix, want 2", len(files))
	}
	if n := s.DeletePrefix(""); n != 3 {
		t.Fatalf("DeletePrefix(\"\") freed %d, want 3", n)
	}
	if files := spillFiles(t, s); len(files) != 0 {
		t.Fatalf("spill files left: %v", files)
	}
	if st := s.Stats(); st.Blocks != 0 || st.MemoryBytes != 0 || st.DiskBytes != 0 || st.Spills != 6 {
		t.Fatalf("stats after deleting all: %+v", st)
	}
}

func TestStoreSpillsLeastRecentlyUsed(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	small := makeBlock(mem, 1000)
	defer release(small)
	one := blockBytes(small)
	s := newStore(t, one*5/2, mem)
	defer s.DeletePrefix("")

	for _, id := range []string{"a", "b"} {
		if err := s.Put(id, testSchema, small); err != nil {
			t.Fatal(err)
		}
	}
	_, got, err := s.Get("a") // a is now more recent than b
	if err != nil {
		t.Fatal(err)
	}
	release(got)
	if err := s.Put("c", testSchema, small); err != nil {
		t.Fatal(err)
	}
	if s.blocks["b"].recs != nil || s.blocks["a"].recs == nil || s.blocks["c"].recs == nil {
		t.Fatal("want b, the least recently used, spilled and a, c in memory")
	}

	// A block alone over budget goes to disk itself; the others stay.
	big := makeBlock(mem, 4000)
	defer release(big)
	if err := s.Put("d", testSchema, big); err != nil {
		t.Fatal(err)
	}
	if s.blocks["d"].recs != nil || s.blocks["a"].recs == nil || s.blocks["c"].recs == nil {
		t.Fatal("want only d spilled")
	}
	_, got, err = s.Get("d")
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, testSchema, big, got)
	release(got)
}

func TestNewStoreRemovesLeftovers(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()

	// An earlier store that spilled and was never cleaned up.
	old, err := NewStore(dir, 0, mem)
	if err != nil {
		t.Fatal(err)
	}
	recs := makeBlock(mem, 50)
	defer release(recs)
	for i := range 3 {
		if err := old.Put(fmt.Sprintf("old/%d", i), testSchema, recs); err != nil {
			t.Fatal(err)
		}
	}
	if files := spillFiles(t, old); len(files) != 3 {
		t.Fatalf("%d spill files, want 3", len(files))
	}
	for _, name := range []string{"blk-stale.tmp", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s, err := NewStore(dir, 0, mem)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "notes.txt" {
		t.Fatalf("left in the spill directory: %v, want only notes.txt", ents)
	}
	if _, _, err := s.Get("old/0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an earlier store's block: %v", err)
	}
	old.DeletePrefix("") // releases its memory; its files are gone already
}

func TestFetchLargeBlock(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cmem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer cmem.AssertSize(t, 0)

	want := makeBlock(mem, 450_000, 50_000, 550_000, 700_000)
	defer release(want)
	var largest int64
	for _, rec := range want {
		largest = max(largest, kernel.BatchBytes(rec))
	}
	if total := blockBytes(want); total < 64<<20 || largest < 16<<20 {
		t.Fatalf("test block is %d bytes, largest batch %d: want >= 64 MiB and >= 16 MiB", total, largest)
	}

	s := newStore(t, 1<<30, mem)
	defer s.DeletePrefix("")
	if err := s.Put("j-000003/s0/t0/a0/p0", testSchema, want); err != nil {
		t.Fatal(err)
	}
	_, addr := serve(t, s, WithToken("s3cret"))
	c := NewClient("s3cret", WithAllocator(cmem))
	defer c.Close()

	schema, got, err := c.Fetch(context.Background(), addr, "j-000003/s0/t0/a0/p0")
	if err != nil {
		t.Fatal(err)
	}
	defer release(got)
	if !schema.Equal(testSchema) {
		t.Fatalf("schema %s", schema)
	}
	if len(got) <= len(want) {
		t.Fatalf("got %d batches, want the large ones cut into more than %d", len(got), len(want))
	}
	for i, rec := range got {
		if b := kernel.BatchBytes(rec); b > 2*chunkBytes {
			t.Fatalf("batch %d arrived with %d bytes, want about %d at most", i, b, chunkBytes)
		}
	}
	checkEqual(t, testSchema, want, got)
}

func TestFetchErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := newStore(t, 1<<30, mem)
	defer s.DeletePrefix("")
	recs := makeBlock(mem, 10)
	defer release(recs)
	if err := s.Put("j-4/p0", testSchema, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("j-4/empty", testSchema, nil); err != nil {
		t.Fatal(err)
	}
	srv, addr := serve(t, s, WithToken("s3cret"))
	ctx := context.Background()
	c := NewClient("s3cret")
	defer c.Close()

	// A block of no batches arrives as its schema.
	schema, got, err := c.Fetch(ctx, addr, "j-4/empty")
	if err != nil || !schema.Equal(testSchema) || len(got) != 0 {
		t.Fatalf("empty block: schema %v, %d batches, err %v", schema, len(got), err)
	}

	_, _, err = c.Fetch(ctx, addr, "j-4/missing")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("missing block: %v, want ErrNotFound", err)
	}
	if msg := err.Error(); !strings.Contains(msg, addr) || !strings.Contains(msg, "j-4/missing") {
		t.Fatalf("missing block: %q does not name the address and the id", msg)
	}
	t.Logf("missing block: %v", err)

	for _, token := range []string{"wrong", ""} {
		bad := NewClient(token)
		_, _, err := bad.Fetch(ctx, addr, "j-4/p0")
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnreachable) || status.Code(err) != codes.Unauthenticated {
			t.Fatalf("token %q: %v, want Unauthenticated", token, err)
		}
		t.Logf("token %q: %v", token, err)
		bad.Close()
	}

	// The connection works, then the worker goes away.
	_, got, err = c.Fetch(ctx, addr, "j-4/p0")
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, testSchema, recs, got)
	release(got)
	srv.Stop()
	_, _, err = c.Fetch(ctx, addr, "j-4/p0")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "j-4/p0") {
		t.Fatalf("stopped server: %v, want ErrUnreachable naming the address and the id", err)
	}

	t.Logf("stopped server: %v", err)

	// A worker restarted on the same address has lost its blocks: once the
	// client has reconnected, the answer is ErrNotFound.
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	restarted := NewServer(newStore(t, 1<<30, mem), WithToken("s3cret"))
	served := make(chan error, 1)
	go func() { served <- restarted.Serve(lis) }()
	defer func() {
		restarted.Stop()
		<-served
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		_, _, err = c.Fetch(ctx, addr, "j-4/p0")
		if !errors.Is(err, ErrUnreachable) {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("restarted server still unreachable: %v", err)
		}
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("restarted server: %v, want ErrNotFound", err)
	}

	// An address nothing listens on.
	lis, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	if _, _, err := c.Fetch(ctx, dead, "j-4/p0"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("closed port: %v, want ErrUnreachable", err)
	}

	c.Close()
	if _, _, err := c.Fetch(ctx, addr, "j-4/p0"); err == nil || !strings.Contains(err.Error(), "client closed") {
		t.Fatalf("Fetch after Close: %v", err)
	}
}

// TestFetchConcurrent fetches spilled and in-memory blocks from 8
// goroutines over one client while the store takes puts and deletes.
func TestFetchConcurrent(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cmem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer cmem.AssertSize(t, 0)

	want := make([][]arrow.RecordBatch, 12)
	for i := range want {
		want[i] = makeBlock(mem, 2000+100*i, 3000)
	}
	defer func() {
		for _, b := range want {
			release(b)
		}
	}()
	s := newStore(t, blockBytes(want[0])*4, mem)
	defer s.DeletePrefix("")
	for i, b := range want {
		if err := s.Put(fmt.Sprintf("j-5/p%d", i), testSchema, b); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.OnDisk == 0 {
		t.Fatalf("nothing spilled: %+v", st)
	}
	_, addr := serve(t, s)
	c := NewClient("", WithAllocator(cmem))
	defer c.Close()

	var g errgroup.Group
	for w := range 8 {
		g.Go(func() error {
			for k := range 3 * len(want) {
				i := (w + k) % len(want)
				_, got, err := c.Fetch(context.Background(), addr, fmt.Sprintf("j-5/p%d", i))
				if err != nil {
					return err
				}
				err = sameRows(testSchema, want[i], got)
				release(got)
				if err != nil {
					return fmt.Errorf("block %d: %w", i, err)
				}
			}
			return nil
		})
	}
	// Churn other blocks meanwhile, so spills and deletes race the reads.
	g.Go(func() error {
		for k := range 20 {
			id := fmt.Sprintf("j-6/p%d", k%4)
			if err := s.Put(id, testSchema, want[k%len(want)]); err != nil {
				return err
			}
			if k%3 == 0 {
				s.DeletePrefix("j-6/")
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFetchHugeRow sends a row that cannot be cut below 4 MiB: the message
// size limits on both ends must let it through.
func TestFetchHugeRow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{{Name: "blob", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewStringBuilder(mem)
	b.Append(strings.Repeat("x", 20<<20))
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1)
	col.Release()
	defer rec.Release()

	s := newStore(t, 1<<30, mem)
	defer s.DeletePrefix("")
	if err := s.Put("huge", schema, []arrow.RecordBatch{rec}); err != nil {
		t.Fatal(err)
	}
	_, addr := serve(t, s)
	c := NewClient("")
	defer c.Close()
	_, got, err := c.Fetch(context.Background(), addr, "huge")
	if err != nil {
		t.Fatal(err)
	}
	defer release(got)
	checkEqual(t, schema, []arrow.RecordBatch{rec}, got)
}
