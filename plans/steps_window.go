package plans

import (
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/dataset"
)

// Explode turns each row into one row per element of its list Column.
type Explode struct {
	Column string
	stepAt
}

// Window adds window function columns over PartitionBy and OrderBy.
type Window struct {
	PartitionBy []string
	OrderBy     []SortKey
	Fns         []WindowFn
	stepAt
}

// WindowFn is one window function: Fn of Column (lag/lead: Offset rows
// away), named As.
type WindowFn struct {
	Fn, Column, As string
	Offset         int64
	Rows           int64 // sum, count, mean: a moving frame of Rows rows (0: running)
}

var (
	_ Step = (*Explode)(nil)
	_ Step = (*Window)(nil)
)

func (*Explode) Kind() string { return "explode" }
func (*Window) Kind() string  { return "window" }

func windowStepDefs(sortKey *spec) []*stepDef {
	fn := object("One window function: the function, its column (lag, lead and the running aggregates) and the name of its output column.",
		req("fn", enum("row_number, rank, dense_rank; lag and lead (the column's value offset rows before or after, null where there is none); sum, count, mean (avg): running over the rows up to the row and its peers (equal order keys), as SQL's default frame.",
			"row_number", "rank", "dense_rank", "lag", "lead", "sum", "count", "mean", "avg")),
		opt("column", str("The column (lag, lead, sum, count, mean).")),
		opt("offset", &spec{kind: kInt, doc: "lag and lead: how many rows away (default 1).", min: ptr[int64](0), def: 1}),
		opt("rows", integer("sum, count, mean: a moving frame of this many rows (the row and those before it in its partition) instead of every row up to the row and its peers.", 1)),
		opt("as", str("The output column's name (default fn, or fn_column).")))
	return []*stepDef{
		{name: "explode", decode: func(d *decoder, n *yaml.Node, path string) Step { return &Explode{Column: scalar(n)} },
			compile: func(c *compiler, s Step) {
				st := s.(*Explode)
				if !c.haveColumns(c.d, []string{st.Column}, func(int) *yaml.Node { return st.node }, func(int) string { return st.path }) {
					c.d = nil
					return
				}
				if !c.then(s, c.d.Explode(st.Column), func(err error) { c.fail(err, st.node, st.path) }) {
					c.d = nil
				}
			},
			spec: str("A list column: each row becomes one row per element of its list, the other columns repeated (a null or empty list gives no row); the column takes the element type.")},
		{name: "window", decode: decodeWindow, compile: compileWindow,
			spec: object("Add window function columns, each computed over the row's partition (rows with equal partition_by values) in order_by order, as SQL's fn() OVER (PARTITION BY ... ORDER BY ...). Rows come out partition by partition, each in order; a partition must fit in one task's memory.",
				opt("partition_by", list("The partition key columns (none: one partition of all rows).", str("A column name."), 0)),
				opt("order_by", list("The order within each partition; ties are peers (same rank and running values).", sortKey, 0)),
				req("fns", list("The window functions.", fn, 1)))},
	}
}

func decodeWindow(d *decoder, n *yaml.Node, path string) Step {
	w := &Window{PartitionBy: strs(get(n, "partition_by"))}
	if o := get(n, "order_by"); o != nil {
		w.OrderBy = decodeSort(d, deref(o), join(path, "order_by")).(*Sort).Keys
	}
	fns := get(n, "fns")
	if fns == nil || fns.Kind != yaml.SequenceNode {
		return w
	}
	for _, f := range fns.Content {
		off, _ := intValue(get(f, "offset"))
		rows, _ := intValue(get(f, "rows"))
		w.Fns = append(w.Fns, WindowFn{Fn: scalar(get(f, "fn")), Column: scalar(get(f, "column")), As: scalar(get(f, "as")), Offset: off, Rows: rows})
	}
	return w
}

func compileWindow(c *compiler, s Step) {
	w := s.(*Window)
	node, path := seqItems(get(w.node, "partition_by"), join(w.path, "partition_by"))
	ok := c.haveColumns(c.d, w.PartitionBy, node, path)
	orderNode, orderPath := get(w.node, "order_by"), join(w.path, "order_by")
	names := make([]string, len(w.OrderBy))
	keys := make([]dataset.SortKey, len(w.OrderBy))
	for i, k := range w.OrderBy {
		names[i] = k.Column
		keys[i] = dataset.Asc(k.Column)
		if k.Descending {
			keys[i] = dataset.Desc(k.Column)
		}
	}
	ok = c.haveColumns(c.d, names, func(i int) *yaml.Node {
		if it := item(orderNode, i); it != nil && it.Kind == yaml.MappingNode {
			return get(it, "column")
		}
		return item(orderNode, i)
	}, func(i int) string {
		if it := item(orderNode, i); it != nil && it.Kind == yaml.MappingNode {
			return join(index(orderPath, i), "column")
		}
		return index(orderPath, i)
	}) && ok
	fnsNode, fnsPath := get(w.node, "fns"), join(w.path, "fns")
	var fns []dataset.WindowFunc
	for i, f := range w.Fns {
		if f.Column != "" && !c.haveColumns(c.d, []string{f.Column}, func(int) *yaml.Node { return get(item(fnsNode, i), "column") },
			func(int) string { return join(index(fnsPath, i), "column") }) {
			ok = false
			continue
		}
		wf, err := dataset.WindowFuncByName(f.Fn, f.Column, int(f.Offset))
		if err != nil {
			c.errorf(item(fnsNode, i), index(fnsPath, i), "%v", err)
			ok = false
			continue
		}
		if f.Rows > 0 {
			wf = wf.Rows(int(f.Rows))
		}
		if f.As != "" {
			wf = wf.As(f.As)
		}
		fns = append(fns, wf)
	}
	if !ok || !c.then(s, c.d.Window(dataset.WindowSpec{PartitionBy: w.PartitionBy, OrderBy: keys}, fns...), func(err error) { c.fail(err, w.node, w.path) }) {
		c.d = nil
	}
}
