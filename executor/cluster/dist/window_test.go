package dist_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/cluster/dist"
)

// TestWindowAndOuterJoin: dataset.Window and the right/full joins, laid
// out for a cluster and run stage by stage, give the local executor's rows.
// Window's layout hashes the rows by the partition keys (the collecting
// GroupBy does not split into partial aggregates) and its map runs in the
// reduce stage.
func TestWindowAndOuterJoin(t *testing.T) {
	mem := checked(t)
	dir := salesDir(t, mem)
	right := t.TempDir()
	writeSales(t, right, 2, 40, mem)
	r := dataset.ReadParquet(right).Filter("qty <> 2").Select("qty", "name").Rename(map[string]string{"name": "rname"})
	cases := map[string]*dataset.Dataset{
		"window": dataset.ReadParquet(dir).Window(
			dataset.WindowSpec{PartitionBy: []string{"category"}, OrderBy: []dataset.SortKey{dataset.Desc("price"), dataset.Asc("id")}},
			dataset.RowNumber(), dataset.Rank(), dataset.Lag("qty", 1), dataset.RunningSum("qty")),
		"right join": dataset.ReadParquet(dir).Filter("id % 3 = 0").Join(r, dataset.JoinOptions{On: []string{"qty"}, How: "right"}),
		"full join":  dataset.ReadParquet(dir).Filter("qty < 5").Join(r, dataset.JoinOptions{On: []string{"qty"}, How: "full"}),
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			root := sink(t, d)
			want := sorted(localRows(t, root, mem))
			for _, parts := range []int{1, 4} {
				got, l, _ := runAll(t, root, dist.Options{Partitions: parts, SplitBytes: 1}, mem)
				same(t, sorted(got), want)
				if name == "window" && !strings.Contains(l.String(), "hash partition by [category]") {
					t.Errorf("layout:\n%s", l)
				}
			}
		})
	}
}
