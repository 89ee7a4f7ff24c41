package salesgen

import (
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestUsers: the users table holds every user id once, uses every region
// and tier, is the same for the same seed, and reads back from its file.
func TestUsers(t *testing.T) {
	mem := memory.NewGoAllocator()
	a, b := UsersBatch(mem, 3), UsersBatch(mem, 3)
	defer a.Release()
	defer b.Release()
	if a.NumRows() != Users || !array.RecordEqual(a, b) {
		t.Fatalf("rows %d (want %d), same seed equal %v", a.NumRows(), Users, array.RecordEqual(a, b))
	}
	ids := a.Column(0).(*array.Int64)
	regionsSeen, tiersSeen := map[string]bool{}, map[string]bool{}
	for i := range Users {
		if ids.Value(i) != int64(i) {
			t.Fatalf("row %d has user_id %d", i, ids.Value(i))
		}
		regionsSeen[a.Column(1).(*array.String).Value(i)] = true
		tiersSeen[a.Column(2).(*array.String).Value(i)] = true
	}
	if len(regionsSeen) != len(regions) || len(tiersSeen) != len(tiers) {
		t.Fatalf("%d regions and %d tiers used, want %d and %d", len(regionsSeen), len(tiersSeen), len(regions), len(tiers))
	}
	path := filepath.Join(t.TempDir(), "users", "users.parquet")
	if err := WriteUsers(path, 3); err != nil {
		t.Fatal(err)
	}
	rd, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	fr, err := pqarrow.NewFileReader(rd, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != Users || tbl.NumCols() != 3 {
		t.Fatalf("file has %d rows and %d columns", tbl.NumRows(), tbl.NumCols())
	}
}
