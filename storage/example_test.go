package storage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/storage"
)

// Write a file with a staged upload, then find it with Glob and read it.
func Example_local() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "sluice-example")
	defer os.RemoveAll(dir)

	out := storage.Join(dir, "out", "part-0.csv")
	fsys, err := storage.For(out) // a local path: the local FS
	if err != nil {
		panic(err)
	}
	u, err := fsys.Create(ctx, out)
	if err != nil {
		panic(err)
	}
	defer u.Abort(ctx) // does nothing once committed
	fmt.Fprintln(u, "id,prompt")
	fmt.Fprintln(u, "1,hello")
	if err := u.Close(); err != nil {
		panic(err)
	}
	if _, err := fsys.Stat(ctx, out); err != nil {
		fmt.Println("before Commit:", filepath.Base(out), "is not there")
	}
	if err := u.Commit(ctx); err != nil {
		panic(err)
	}

	files, err := storage.Glob(ctx, fsys, storage.Join(dir, "out", "*.csv"))
	if err != nil {
		panic(err)
	}
	for _, fi := range files {
		f, err := fsys.Open(ctx, fi.Path)
		if err != nil {
			panic(err)
		}
		buf := make([]byte, 5)
		f.ReadAt(buf, 3) // bytes 3 to 7
		f.Close()
		fmt.Printf("%s: %d bytes, bytes 3-7 %q\n", filepath.Base(fi.Path), fi.Size, buf)
	}
	// Output:
	// before Commit: part-0.csv is not there
	// part-0.csv: 18 bytes, bytes 3-7 "promp"
}
