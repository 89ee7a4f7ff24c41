package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

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

// TestJoinAndDistinctQueries runs q4 (the users join) and q5 (distinct
// users per category and month) on a small generated input and checks
// them against the same answers computed row by row from salesgen.
func TestJoinAndDistinctQueries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "sales")
	const rows = 30_000
	if _, err := salesgen.WriteFiles(ctx, data, 0, rows, 3, 4096); err != nil {
		t.Fatal(err)
	}
	if err := salesgen.WriteUsers(usersFile(data), 0); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(data, "*.parquet")
	if err := RunQuery(ctx, QueryConfig{Query: "q4", In: in, Out: dir}); err == nil || !strings.Contains(err.Error(), "--users") {
		t.Errorf("q4 without users: got %v, want an error naming --users", err)
	}
	for _, q := range []string{"q4", "q5"} {
		if err := RunQuery(ctx, QueryConfig{Query: q, In: in, Users: usersFile(data), Out: filepath.Join(dir, q)}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	mem := memory.NewGoAllocator()
	sales := salesgen.Batch(mem, 0, 0, rows)
	defer sales.Release()
	users := salesgen.UsersBatch(mem, 0)
	defer users.Release()
	type rt struct{ region, tier string }
	type sn struct {
		sum float64
		n   int64
	}
	q4 := map[rt]sn{}
	type cm struct {
		cat   string
		month time.Month
	}
	q5 := map[cm]map[int64]bool{}
	uid := sales.Column(1).(*array.Int64)
	cat := sales.Column(2).(*array.String)
	price := sales.Column(3).(*array.Float64)
	qty := sales.Column(4).(*array.Int32)
	ts := sales.Column(5).(*array.Timestamp)
	for r := range rows {
		u := uid.Value(r)
		k := rt{users.Column(1).(*array.String).Value(int(u)), users.Column(2).(*array.String).Value(int(u))}
		v := q4[k]
		v.sum += price.Value(r) * float64(qty.Value(r))
		v.n++
		q4[k] = v
		m := cm{cat.Value(r), ts.Value(r).ToTime(arrow.Microsecond).Month()}
		if q5[m] == nil {
			q5[m] = map[int64]bool{}
		}
		q5[m][u] = true
	}
	var want4, want5 []string
	for k, v := range q4 {
		want4 = append(want4, fmt.Sprintf("n=%d|region=%s|revenue=%s|tier=%s|", v.n, k.region, strconv.FormatFloat(v.sum, 'g', 9, 64), k.tier))
	}
	for k, v := range q5 {
		want5 = append(want5, fmt.Sprintf("category=%s|month=%d|users=%d|", k.cat, k.month, len(v)))
	}
	for q, want := range map[string][]string{"q4": want4, "q5": want5} {
		got, err := canonicalRows(ctx, filepath.Join(dir, q))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d rows, want %d; first rows %q, want %q", q, len(got), len(want), got[:min(2, len(got))], want[:2])
		}
	}
}
