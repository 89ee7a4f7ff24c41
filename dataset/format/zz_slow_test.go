package format_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset/format"
)

func TestZZSlow(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := t.TempDir()
	cols := allTypes(100, 0)
	recs := batches(mem, cols, 100)
	p := filepath.Join(dir, "seed.parquet")
	writeFile(t, "parquet", p, schemaOf(cols), format.WriteOptions{Compression: "none", RowGroupRows: 40}, mem, recs...)
	data, _ := os.ReadFile(p)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		bad := append([]byte(nil), data...)
		for range 1 + rng.IntN(3) {
			bad[rng.IntN(len(bad))] = byte(rng.IntN(256))
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			readAny(t, format.Parquet(), &memFile{b: bad, path: "x"}, format.ReadOptions{BatchRows: 16})
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			os.WriteFile(fmt.Sprintf("/tmp/slow/slow-%d.parquet", i), bad, 0o644)
			t.Fatalf("input %d slow", i)
		}
	}
}
