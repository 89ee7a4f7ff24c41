package dist

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
)

// The input modes of a stage (Input.Mode).
const (
	// ModeOne: task i reads partition 0 of producer task i.
	ModeOne = "one"
	// ModeAll: task i reads partition i of every producer task, in task order.
	ModeAll = "all"
	// ModeSamples: a task reads the sample block of every producer task.
	ModeSamples = "samples"
)

// output says how a stage's tasks cut their rows into blocks.
type output int

const (
	outSink   output = iota // files under the staging dir, no blocks
	outSingle               // partition 0: every row, in order
	outHash                 // parts by a hash of keys
	outSample               // partition 0: every row; and a sample block of the sort keys
	outRange                // ranges of the sort keys, boundaries from the producers' samples
	outRandom               // parts drawn at random per row (seeded by stage and task)
	outSlices               // parts of nearly equal size, each a contiguous run of the task's rows
)

// stage is one stage as the cut sees it. Every worker computes the same
// stages from the same plan: nothing here depends on the files' contents.
type stage struct {
	// frag is what a task runs: the plan's operators of this stage, over
	// leaves that are either the source (a copy of the plan's Scan, Range
	// or Values node) or a placeholder per input.
	frag plan.Node
	// source is the leaf of a source stage, as it appears in frag.
	source plan.Node
	// leaves[i] is the placeholder fed with input i's rows (nil for samples).
	leaves []*plan.Values
	inputs []Input
	ops    []string

	out      output
	keys     []string         // outHash
	sortKeys []kernel.SortKey // outSample, outRange
	parts    int              // output partitions (0 for the sink)
	seed     int64            // outRandom

	sink     bool
	stateful bool
	gpu      bool // a MapBatches asks for a GPU
}

// name is the stage's text in the Layout: its operators and its output.
func (s *stage) name() string {
	ops := append([]string(nil), s.ops...)
	switch s.out {
	case outHash:
		ops = append(ops, fmt.Sprintf("hash partition by [%s] into %d", strings.Join(s.keys, ", "), s.parts))
	case outSample:
		ops = append(ops, "sample "+sortText(s.sortKeys))
	case outRange:
		ops = append(ops, fmt.Sprintf("range partition by %s into %d", sortText(s.sortKeys), s.parts))
	case outRandom:
		ops = append(ops, fmt.Sprintf("random partition into %d seed=%d", s.parts, s.seed))
	case outSlices:
		ops = append(ops, fmt.Sprintf("slice into %d", s.parts))
	}
	return strings.Join(ops, " -> ")
}

func sortText(keys []kernel.SortKey) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.Column
		if k.Descending {
			parts[i] += " DESC"
		}
		if k.NullsFirst {
			parts[i] += " NULLS FIRST"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// cutter splits a plan into stages, producers before consumers.
type cutter struct {
	stages []*stage
	parts  int // partitions of each exchange (Options.Partitions)
}

// cut returns the stages of an optimized plan; the last one is the sink
// when root is a Write.
func cut(root plan.Node, partitions int) ([]*stage, error) {
	c := &cutter{parts: partitions}
	s, err := c.walk(root)
	if err != nil {
		return nil, err
	}
	if !s.sink {
		s.out, s.parts = outSingle, 1
	}
	c.finish(s)
	return c.stages, nil
}

// finish records s as a stage and returns its index.
func (c *cutter) finish(s *stage) int {
	c.stages = append(c.stages, s)
	return len(c.stages) - 1
}

// consumer starts a stage that reads the given producers; its fragment
// starts with one placeholder per non-sample input.
func (c *cutter) consumer(inputs []Input, schemas []*arrow.Schema) *stage {
	s := &stage{inputs: inputs}
	for i, in := range inputs {
		if in.Mode == ModeSamples {
			s.leaves = append(s.leaves, nil)
			continue
		}
		s.leaves = append(s.leaves, &plan.Values{Sch: schemas[i]})
	}
	return s
}

// gather finishes s with every row in partition 0 and starts the one-task
// stage that reads them all, in task order, through n (over one leaf).
func (c *cutter) gather(s *stage, n plan.Node) *stage {
	s.out, s.parts = outSingle, 1
	p := c.finish(s)
	r := c.consumer([]Input{{Stage: p, Mode: ModeAll}}, []*arrow.Schema{n.Children()[0].Schema()})
	r.frag = plan.WithChildren(n, []plan.Node{r.leaves[0]})
	r.ops = []string{n.Describe()}
	return r
}

// hash finishes s hash-partitioned by keys into parts.
func (c *cutter) hash(s *stage, keys []string, parts int) int {
	s.out, s.keys, s.parts = outHash, keys, parts
	return c.finish(s)
}

// walk returns the unfinished stage whose fragment ends at n, after
// finishing the stages below its exchanges.
func (c *cutter) walk(n plan.Node) (*stage, error) {
	switch n := n.(type) {
	case *plan.Scan:
		cp := *n
		return &stage{frag: &cp, source: &cp, ops: []string{scanText(n)}}, nil
	case *plan.Range:
		cp := *n
		return &stage{frag: &cp, source: &cp, ops: []string{n.Describe()}}, nil
	case *plan.Values:
		return &stage{frag: n, source: n, ops: []string{n.Describe()}}, nil

	case *plan.Filter, *plan.Project, *plan.MapBatches, *plan.Write:
		// Row-local operators fuse into their input's stage; a MapBatches
		// with a batch size rebatches inside the task. A Write ends the
		// last stage.
		s, err := c.walk(n.Children()[0])
		if err != nil {
			return nil, err
		}
		if s.sink {
			return nil, fmt.Errorf("dist: %s: a Write can only be the plan's root", n.Describe())
		}
		s.frag = plan.WithChildren(n, []plan.Node{s.frag})
		s.ops = append(s.ops, n.Describe())
		switch n.(type) {
		case *plan.MapBatches:
			s.stateful = true
			s.gpu = s.gpu || n.(*plan.MapBatches).GPU
		case *plan.Write:
			s.sink, s.out, s.parts = true, outSink, 0
		}
		return s, nil

	case *plan.Limit:
		// Each task keeps its first N rows; one task takes the first N of
		// their concatenation, in task order.
		s, err := c.input(n)
		if err != nil {
			return nil, err
		}
		s.frag = plan.WithChildren(n, []plan.Node{s.frag})
		s.ops = append(s.ops, n.Describe())
		return c.gather(s, n), nil

	case *plan.Sort:
		s, err := c.input(n)
		if err != nil {
			return nil, err
		}
		if n.Limit >= 0 {
			// Top-k: each task keeps its own k, one task the global k.
			s.frag = plan.WithChildren(n, []plan.Node{s.frag})
			s.ops = append(s.ops, n.Describe())
			return c.gather(s, n), nil
		}
		// Range partitioning: producers sample their keys; split tasks
		// (one per producer) cut their producer's rows at boundaries
		// every split task computes alike from all samples; reduce task r
		// sorts range r.
		schema := n.Input.Schema()
		s.out, s.sortKeys, s.parts = outSample, n.Keys, 1
		p := c.finish(s)
		split := c.consumer([]Input{{Stage: p, Mode: ModeOne}, {Stage: p, Mode: ModeSamples}}, []*arrow.Schema{schema, nil})
		split.frag = split.leaves[0]
		split.out, split.sortKeys, split.parts = outRange, n.Keys, c.parts
		q := c.finish(split)
		r := c.consumer([]Input{{Stage: q, Mode: ModeAll}}, []*arrow.Schema{schema})
		r.frag = plan.WithChildren(n, []plan.Node{r.leaves[0]})
		r.ops = []string{n.Describe()}
		return r, nil

	case *plan.Aggregate:
		s, err := c.input(n)
		if err != nil {
			return nil, err
		}
		parts := c.parts
		if len(n.Keys) == 0 {
			parts = 1 // one group: one reduce task
		}
		pa, ok := splitAgg(n)
		if !ok {
			p := c.hash(s, n.Keys, parts)
			r := c.consumer([]Input{{Stage: p, Mode: ModeAll}}, []*arrow.Schema{n.Input.Schema()})
			r.frag = plan.WithChildren(n, []plan.Node{r.leaves[0]})
			r.ops = []string{n.Describe()}
			return r, nil
		}
		m, err := pa.mapSide(s.frag)
		if err != nil {
			return nil, err
		}
		s.frag = m
		s.ops = append(s.ops, "partial "+m.Describe())
		p := c.hash(s, n.Keys, parts)
		r := c.consumer([]Input{{Stage: p, Mode: ModeAll}}, []*arrow.Schema{m.Schema()})
		if r.frag, err = pa.reduceSide(r.leaves[0]); err != nil {
			return nil, err
		}
		r.ops = []string{n.Describe()}
		return r, nil

	case *plan.Join:
		// Both sides hash by their own keys into the same partitions (the
		// kernel's hash depends only on the key values), so reduce task r
		// joins the rows of both sides that can match.
		l, err := c.walk(n.Left)
		if err != nil {
			return nil, err
		}
		lp := c.hash(l, n.LeftKeys, c.parts)
		r, err := c.walk(n.Right)
		if err != nil {
			return nil, err
		}
		rp := c.hash(r, n.RightKeys, c.parts)
		j := c.consumer([]Input{{Stage: lp, Mode: ModeAll}, {Stage: rp, Mode: ModeAll}},
			[]*arrow.Schema{n.Left.Schema(), n.Right.Schema()})
		j.frag = plan.WithChildren(n, []plan.Node{j.leaves[0], j.leaves[1]})
		j.ops = []string{n.Describe()}
		return j, nil

	case *plan.Repartition:
		s, err := c.input(n)
		if err != nil {
			return nil, err
		}
		if len(n.Keys) == 0 {
			// Task r takes the r-th slice of every producer's rows, in
			// task order: N blocks of nearly equal size.
			s.out, s.parts = outSlices, max(n.N, 1)
		} else {
			s.out, s.keys, s.parts = outHash, n.Keys, max(n.N, 1)
		}
		p := c.finish(s)
		r := c.consumer([]Input{{Stage: p, Mode: ModeAll}}, []*arrow.Schema{n.Schema()})
		r.frag = r.leaves[0]
		r.ops = []string{n.Describe()}
		return r, nil

	case *plan.Shuffle:
		// Every row goes to a random reduce task, which shuffles what it
		// gets: a uniform permutation, the same for the same seed and
		// layout (not the local executor's, which shuffles in one piece).
		s, err := c.input(n)
		if err != nil {
			return nil, err
		}
		s.out, s.seed, s.parts = outRandom, n.Seed, c.parts
		p := c.finish(s)
		r := c.consumer([]Input{{Stage: p, Mode: ModeAll}}, []*arrow.Schema{n.Schema()})
		r.frag = plan.WithChildren(n, []plan.Node{r.leaves[0]})
		r.ops = []string{n.Describe()}
		return r, nil

	case *plan.Union:
		var inputs []Input
		var schemas []*arrow.Schema
		for _, in := range n.Inputs {
			s, err := c.walk(in)
			if err != nil {
				return nil, err
			}
			if s.sink {
				return nil, fmt.Errorf("dist: %s: a Write can only be the plan's root", n.Describe())
			}
			s.out, s.parts = outSingle, 1
			inputs = append(inputs, Input{Stage: c.finish(s), Mode: ModeAll})
			schemas = append(schemas, in.Schema())
		}
		u := c.consumer(inputs, schemas)
		kids := make([]plan.Node, len(u.leaves))
		for i, l := range u.leaves {
			kids[i] = l
		}
		u.frag = plan.WithChildren(n, kids)
		u.ops = []string{n.Describe()}
		return u, nil
	}
	return nil, fmt.Errorf("dist: no distributed operator for %T (%s)", n, n.Describe())
}

// input walks the single input of n, which must not be a sink.
func (c *cutter) input(n plan.Node) (*stage, error) {
	s, err := c.walk(n.Children()[0])
	if err != nil {
		return nil, err
	}
	if s.sink {
		return nil, fmt.Errorf("dist: %s: a Write can only be the plan's root", n.Describe())
	}
	return s, nil
}

// scanText is Scan.Describe without the file count: a task reads its
// split's files, so a worker whose listing differs still runs the same stage.
func scanText(s *plan.Scan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Scan %s %s", s.Format.Name(), s.Root)
	if s.Columns != nil {
		fmt.Fprintf(&b, " columns=[%s]", strings.Join(s.Columns, ", "))
	}
	for _, f := range s.Filters {
		fmt.Fprintf(&b, " filter=%s", f)
	}
	if s.Limit >= 0 {
		fmt.Fprintf(&b, " limit=%d", s.Limit)
	}
	return b.String()
}
