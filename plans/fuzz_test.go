package plans

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse: Parse and Render never panic, and every lint has a file and
// a position.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/broken/*.yaml")
	examples, _ := filepath.Glob("../examples/plans/*.yaml")
	for _, s := range append(seeds, examples...) {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(templated))
	f.Add([]byte(fullPlan))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, lints := Parse("f.yaml", data)
		for _, l := range lints {
			if l.File != "f.yaml" || l.Pos.Line < 1 || l.Pos.Col < 1 {
				t.Fatalf("lint without a position: %#v", l)
			}
		}
		if p.Schedule != nil {
			p.Schedule.Next(time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC))
		}
		q, _ := p.Render(Vars{ScheduledTime: time.Unix(0, 0), LookupEnv: env(nil)})
		if q != nil {
			for _, l := range q.lints {
				if l.Pos.Line < 1 {
					t.Fatalf("render lint without a position: %#v", l)
				}
			}
		}
	})
}

// TestAliasBomb: aliases that expand to billions of nodes are walked once.
func TestAliasBomb(t *testing.T) {
	src := "name: x\nread: {parquet: in}\nwrite: {parquet: out}\nsteps:\n  - select: &a0 ['{{ .Name }}', '{{ .Name }}', '{{ .Name }}', '{{ .Name }}', '{{ .Name }}', '{{ .Name }}', '{{ .Name }}', '{{ .Name }}']\n"
	for i := 1; i < 9; i++ {
		src += fmt.Sprintf("  - union: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	start := time.Now()
	p, _ := Parse("bomb.yaml", []byte(src))
	p.Render(Vars{LookupEnv: env(nil)})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}
