package dist_test

import (
	"fmt"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/cluster/dist"
)

// A group-by then a sort cut into four stages: the source with a partial
// aggregate, the reduce side of the aggregate (which samples for the sort),
// the range split, and the sort, which writes.
func ExamplePlan() {
	d := dataset.Range(100_000).WithColumn("k", "id % 3").
		GroupBy("k").Agg(dataset.Count().As("n")).Sort(dataset.Desc("n"))
	w, err := d.WriteNode("parquet", "out/counts", dataset.WriteOptions{Mode: dataset.Overwrite})
	if err != nil {
		panic(err)
	}
	root, err := plan.Optimize(w)
	if err != nil {
		panic(err)
	}
	l, err := dist.Plan(root, dist.Options{Partitions: 2, SplitBytes: 200_000})
	if err != nil {
		panic(err)
	}
	fmt.Print(l)
	// Output:
	// Stage 0: 4 tasks, 2 partitions: Range 100000 -> Project id % 3 AS k -> partial Aggregate keys=[k] count_all() AS __sluice_p0_0 -> hash partition by [k] into 2
	// Stage 1: 2 tasks, reads stage 0 (all), 1 partition: Aggregate keys=[k] count_all() AS n -> sample [n DESC]
	// Stage 2: 2 tasks, reads stage 1 (one), reads stage 1 (samples), 2 partitions: range partition by [n DESC] into 2
	// Stage 3: 2 tasks, reads stage 2 (all), writes: Sort by n DESC -> Write parquet out/counts mode=overwrite
}
