package trainjob

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/storage"
)

// TestPrintMetricsOnce: steps a broken generation wrote and the next wrote
// again are printed once, as the later line; printing goes on from where
// it stopped and stops at a gap.
func TestPrintMetricsOnce(t *testing.T) {
	dir := t.TempDir()
	lines := []string{`{"step":1,"loss":3}`, `{"step":2,"loss":2.5}`, `{"step":3,"loss":2.2}`, "not json",
		`{"step":3,"loss":2.2,"again":1}`, `{"step":4,"loss":2}`, `{"step":6,"loss":1}`}
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	n, err := printMetrics(context.Background(), storage.NewLocal(), dir, 1, &b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"step":2,"loss":2.5}` + "\n" + `{"step":3,"loss":2.2,"again":1}` + "\n" + `{"step":4,"loss":2}` + "\n"
	if n != 4 || b.String() != want {
		t.Errorf("printed through step %d:\n%s\nwant through 4:\n%s", n, b.String(), want)
	}
	if n, err := printMetrics(context.Background(), storage.NewLocal(), t.TempDir(), 2, &b); n != 2 || err != nil {
		t.Errorf("no metrics file: %d, %v; want 2, nil", n, err)
	}
}

func TestWithoutFlag(t *testing.T) {
	got := withoutFlag([]string{"--resume=/a", "--lr=1", "--resume", "/b", "-resume=/c", "--resumex=1", "plan.yaml"}, "resume")
	if want := []string{"--lr=1", "--resumex=1", "plan.yaml"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRendezvousTimeout: a rank whose peers never come says which one is
// missing and where it waited; a run without --out is refused.
func TestRendezvousTimeout(t *testing.T) {
	out := t.TempDir()
	_, err := RunRank(context.Background(), Spec{Out: out, Rank: 0, Ranks: 2, Host: "127.0.0.1", RendezvousSeconds: 1})
	if err == nil || !strings.Contains(err.Error(), "rank 1 did not arrive") || !strings.Contains(err.Error(), filepath.Join(out, ".rendezvous", "g0")) {
		t.Errorf("got %v, want rank 1 missing in the rendezvous directory", err)
	}
	b, rerr := os.ReadFile(filepath.Join(out, ".rendezvous", "g0", "rank-0"))
	if rerr != nil || !strings.HasPrefix(string(b), "127.0.0.1:") {
		t.Errorf("rank 0's address file: %q, %v", b, rerr)
	}
	if err := Run(context.Background(), Config{Ranks: 2, Poll: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "--out is required") {
		t.Errorf("Run without --out: %v", err)
	}
}
