package plans

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/broken")

// TestBrokenPlans checks the exact lints of each plan in testdata/broken
// against its .golden file, with the source data in data/sales/ of the
// current directory.
func TestBrokenPlans(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("%d broken plans; want at least 25", len(files))
	}
	for i, f := range files {
		if files[i], err = filepath.Abs(f); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	writeSales(t, dir, 200)
	t.Chdir(dir)
	vars := Vars{ScheduledTime: mustTime(t, "2024-01-15T01:00:00Z"), LookupEnv: env(nil)}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, lints := Check(name, data, vars)
			if !lints.HasErrors() {
				t.Errorf("no errors")
			}
			got := lints.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("lints:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
