package harness

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/salesgen"
)

// TestRunQuerySameRows runs two etl/sales queries in-process over a small
// generated input and checks that sameRows accepts an output against
// itself and rejects two different outputs.
func TestRunQuerySameRows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "sales")
	if _, err := salesgen.WriteFiles(ctx, data, 1, 20_000, 2, 4096); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(data, "*.parquet")
	for _, q := range []string{"q2", "q3"} {
		if err := RunQuery(ctx, QueryConfig{Query: q, In: in, Out: filepath.Join(dir, q), Stats: filepath.Join(dir, q+".json")}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := sameRows(ctx, filepath.Join(dir, "q2"), filepath.Join(dir, "q2")); err != nil {
		t.Errorf("q2 against itself: %v", err)
	}
	err := sameRows(ctx, filepath.Join(dir, "q2"), filepath.Join(dir, "q3"))
	if err == nil || !strings.Contains(err.Error(), "rows") {
		t.Errorf("q2 against q3: got %v, want a row count difference", err)
	}
	if err := RunQuery(ctx, QueryConfig{Query: "q9", In: in, Out: dir}); err == nil || !strings.Contains(err.Error(), `"q9"`) {
		t.Errorf("q9: got %v, want an error naming it", err)
	}
}

func TestLatencies(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want LatencyStats
	}{
		{nil, LatencyStats{}},
		{[]float64{0.001}, LatencyStats{Mean: 1, P50: 1, P99: 1}},
		{[]float64{0.004, 0.001, 0.003, 0.002}, LatencyStats{Mean: 2.5, P50: 2, P99: 4}},
	} {
		if got := latencies(c.in); got != c.want {
			t.Errorf("latencies(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	rs := []oneResult{
		{ttft: 0.1, e2e: 0.5, outTokens: 5, promptToks: 10, itl: []float64{0.1, 0.1, 0.1, 0.1}},
		{err: context.Canceled},
	}
	res := summarize(rs, 2)
	if res.Completed != 1 || res.Failed != 1 || res.FirstError != context.Canceled.Error() {
		t.Errorf("completed %d failed %d first error %q", res.Completed, res.Failed, res.FirstError)
	}
	if res.OutputThroughput != 2.5 || res.TotalTokenThroughput != 7.5 || res.RequestThroughput != 0.5 {
		t.Errorf("throughputs %+v", res)
	}
	if d := res.TPOT.Mean - 100; d > 1e-9 || d < -1e-9 { // (0.5 - 0.1) / 4 s
		t.Errorf("TPOT mean %v ms, want 100", res.TPOT.Mean)
	}
}
