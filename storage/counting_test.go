package storage

import (
	"context"
	"path/filepath"
	"testing"
)

func TestCounting(t *testing.T) {
	ctx := context.Background()
	var c Counters
	fsys := Counting(NewLocal(), &c)
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, fsys, path, make([]byte, 1000)) // Create, Commit
	f, err := fsys.Open(ctx, path)               // Open
	if err != nil {
		t.Fatal(err)
	}
	f.ReadAt(make([]byte, 600), 0)   // ReadAt
	f.ReadAt(make([]byte, 600), 600) // ReadAt, 400 bytes and EOF
	f.Close()
	fsys.Stat(ctx, path)   // Stat
	fsys.List(ctx, path)   // List
	fsys.Delete(ctx, path) // Delete
	if got := c.BytesWritten.Load(); got != 1000 {
		t.Errorf("BytesWritten = %d", got)
	}
	if got := c.BytesRead.Load(); got != 1000 {
		t.Errorf("BytesRead = %d", got)
	}
	if got := c.Requests.Load(); got != 8 {
		t.Errorf("Requests = %d, want 8", got)
	}
}
