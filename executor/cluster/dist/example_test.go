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
	for i, s := range l.Stages {
		fmt.Printf("%d: %d tasks, %d partitions, inputs %v: %s\n", i, s.Tasks, s.Partitions, s.Inputs, s.Name)
	}
	// Output:
	// 0: 4 tasks, 2 partitions, inputs []: Range 100000 -> Project id % 3 AS k -> partial Aggregate keys=[k] count_all() AS __sluice_p0_0 -> hash partition by [k] into 2
	// 1: 2 tasks, 1 partitions, inputs [{0 all}]: Aggregate keys=[k] count_all() AS n -> sample [n DESC]
	// 2: 2 tasks, 2 partitions, inputs [{1 one} {1 samples}]: range partition by [n DESC] into 2
	// 3: 2 tasks, 0 partitions, inputs [{2 all}]: Sort by n DESC -> Write parquet out/counts mode=overwrite
}
