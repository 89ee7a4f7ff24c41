package plan

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluicehq/sluice/dataset/expr"
)

// Optimize rewrites a logical plan: predicate pushdown (into scans, where
// Parquet row groups and hive partitions are pruned), limit pushdown (a
// limit over a sort becomes a top-k), and projection pushdown (scans decode
// only the columns something above them uses). The result computes the same
// rows as n.
func Optimize(n Node) (Node, error) {
	n, err := pushFilters(n)
	if err != nil {
		return nil, err
	}
	n, err = pushLimits(n)
	if err != nil {
		return nil, err
	}
	if n, err = prune(n, nil); err != nil {
		return nil, err
	}
	return fuseProjects(n)
}

// fuseProjects folds a projection that only picks and renames columns
// (Select, Drop, Rename) into the projection below it, so each row is
// projected once.
func fuseProjects(n Node) (Node, error) {
	n, err := mapChildren(n, fuseProjects)
	if err != nil {
		return nil, err
	}
	outer, ok := n.(*Project)
	if !ok {
		return n, nil
	}
	inner, ok := outer.Input.(*Project)
	if !ok {
		return n, nil
	}
	cols := make([]Column, len(outer.Columns))
	for i, c := range outer.Columns {
		src, ok := outer.IsRename(i)
		if !ok {
			return n, nil
		}
		j := slices.IndexFunc(inner.Columns, func(ic Column) bool { return ic.Name == src })
		if j < 0 {
			return n, nil
		}
		cols[i] = Column{Name: c.Name, Expr: inner.Columns[j].Expr}
	}
	return NewProject(inner.Input, cols), nil
}

// rebind binds an expression again against another schema by its canonical text.
func rebind(b *expr.Bound, s *arrow.Schema) (*expr.Bound, error) {
	nb, err := expr.Compile(b.String(), s)
	if err != nil {
		return nil, fmt.Errorf("plan: rebinding %s: %w", b, err)
	}
	return nb, nil
}

// rebuild returns n over new children, rebinding expressions and recomputing
// schemas that depend on the children's.
func rebuild(n Node, children []Node) (Node, error) {
	switch n := n.(type) {
	case *Filter:
		p, err := rebind(n.Pred, children[0].Schema())
		if err != nil {
			return nil, err
		}
		return &Filter{Input: children[0], Pred: p}, nil
	case *Project:
		cols := make([]Column, len(n.Columns))
		for i, c := range n.Columns {
			e, err := rebind(c.Expr, children[0].Schema())
			if err != nil {
				return nil, err
			}
			cols[i] = Column{Name: c.Name, Expr: e}
		}
		return NewProject(children[0], cols), nil
	case *Aggregate:
		a, err := NewAggregate(children[0], n.Keys, n.Aggs)
		if err != nil {
			return nil, err
		}
		a.Label = n.Label
		return a, nil
	case *Join:
		j, err := NewJoin(children[0], children[1], n.LeftKeys, n.RightKeys, n.Kind)
		if err != nil {
			return nil, err
		}
		j.Label = n.Label
		return j, nil
	}
	return n.withChildren(children), nil
}

func mapChildren(n Node, f func(Node) (Node, error)) (Node, error) {
	kids := n.Children()
	if len(kids) == 0 {
		return n, nil
	}
	out := make([]Node, len(kids))
	for i, c := range kids {
		var err error
		if out[i], err = f(c); err != nil {
			return nil, err
		}
	}
	return rebuild(n, out)
}

func hasAll(s *arrow.Schema, cols []string) bool {
	for _, c := range cols {
		if len(s.FieldIndices(c)) == 0 {
			return false
		}
	}
	return true
}

func pushFilters(n Node) (Node, error) {
	n, err := mapChildren(n, pushFilters)
	if err != nil {
		return nil, err
	}
	f, ok := n.(*Filter)
	if !ok {
		return n, nil
	}
	// Each conjunct goes as deep as its own columns allow.
	in := f.Input
	for _, c := range expr.Conjuncts(f.Pred) {
		if in, err = pushFilter(c, in); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// pushFilter places pred as deep under input as it can go and returns the result.
func pushFilter(pred *expr.Bound, input Node) (Node, error) {
	stay := func() (Node, error) {
		p, err := rebind(pred, input.Schema())
		if err != nil {
			return nil, err
		}
		return &Filter{Input: input, Pred: p}, nil
	}
	cols := pred.Columns()
	switch in := input.(type) {
	case *Scan:
		full := in.FullSchema()
		p, err := rebind(pred, full)
		if err != nil {
			return nil, err
		}
		s := in.withChildren(nil).(*Scan)
		// Conjuncts go separately, so one over partition columns alone
		// prunes files and one over a sorted column prunes row groups.
		s.Filters = append(slices.Clone(in.Filters), expr.Conjuncts(p)...)
		return s, nil
	case *Project:
		for _, c := range cols {
			i := slices.IndexFunc(in.Columns, func(pc Column) bool { return pc.Name == c })
			if i < 0 {
				return stay()
			}
			if src, ok := in.IsRename(i); !ok || src != c {
				return stay()
			}
		}
		below, err := pushFilter(pred, in.Input)
		if err != nil {
			return nil, err
		}
		return rebuild(in, []Node{below})
	case *Sort:
		if in.Limit >= 0 {
			return stay()
		}
		return pushBelow(pred, in)
	case *Repartition, *Shuffle:
		return pushBelow(pred, in)
	case *Aggregate:
		for _, c := range cols {
			if !slices.Contains(in.Keys, c) {
				return stay()
			}
		}
		return pushBelow(pred, in)
	case *Union:
		kids := make([]Node, len(in.Inputs))
		for i, c := range in.Inputs {
			var err error
			if kids[i], err = pushFilter(pred, c); err != nil {
				return nil, err
			}
		}
		return &Union{Inputs: kids}, nil
	case *Join:
		// Output columns keep the left side's names, so a predicate over
		// left columns only can run before the join, for both kinds.
		if hasAll(in.Left.Schema(), cols) {
			left, err := pushFilter(pred, in.Left)
			if err != nil {
				return nil, err
			}
			return rebuild(in, []Node{left, in.Right})
		}
	}
	return stay()
}

func pushBelow(pred *expr.Bound, n Node) (Node, error) {
	below, err := pushFilter(pred, n.Children()[0])
	if err != nil {
		return nil, err
	}
	return rebuild(n, []Node{below})
}

func pushLimits(n Node) (Node, error) {
	l, ok := n.(*Limit)
	if !ok {
		return mapChildren(n, pushLimits)
	}
	for inner, ok := l.Input.(*Limit); ok; inner, ok = l.Input.(*Limit) {
		l = &Limit{Input: inner.Input, N: min(l.N, inner.N)}
	}
	in, err := limitInto(l.N, l.Input)
	if err != nil {
		return nil, err
	}
	if s, ok := in.(*Sort); ok && s.Limit >= 0 && s.Limit <= l.N {
		return s, nil // the top-k already yields at most N rows
	}
	return &Limit{Input: in, N: l.N}, nil
}

// MaxTopK is the largest limit over a sort that becomes a top-k; past it a
// full sort is cheaper than the top-k's heap.
const MaxTopK = 1 << 20

// limitInto returns input rewritten so that it produces its first n rows
// early or cheaply; the caller keeps its own Limit above unless noted.
func limitInto(n int64, input Node) (Node, error) {
	switch in := input.(type) {
	case *Sort:
		below, err := pushLimits(in.Input)
		if err != nil {
			return nil, err
		}
		if n > MaxTopK {
			return rebuild(in, []Node{below})
		}
		s := in.withChildren([]Node{below}).(*Sort)
		if s.Limit < 0 || n < s.Limit {
			s.Limit = n
		}
		return s, nil
	case *Project:
		below, err := limitInto(n, in.Input)
		if err != nil {
			return nil, err
		}
		return rebuild(in, []Node{below})
	case *Scan:
		s := in.withChildren(nil).(*Scan)
		if s.Limit < 0 || n < s.Limit {
			s.Limit = n
		}
		return s, nil
	case *Union:
		kids := make([]Node, len(in.Inputs))
		for i, c := range in.Inputs {
			k, err := limitInto(n, c)
			if err != nil {
				return nil, err
			}
			kids[i] = &Limit{Input: k, N: n}
		}
		return &Union{Inputs: kids}, nil
	}
	return pushLimits(input)
}

// colset is a set of column names; nil means every column.
type colset map[string]bool

func (c colset) with(names ...string) colset {
	if c == nil {
		return nil
	}
	out := make(colset, len(c)+len(names))
	for k := range c {
		out[k] = true
	}
	for _, n := range names {
		out[n] = true
	}
	return out
}

func allOf(s *arrow.Schema) colset {
	c := colset{}
	for _, f := range s.Fields() {
		c[f.Name] = true
	}
	return c
}

// prune narrows n to the columns in need (nil: all) where that saves work.
// The returned node's schema contains at least need, in n's order.
func prune(n Node, need colset) (Node, error) {
	switch n := n.(type) {
	case *Scan:
		if need == nil {
			return n, nil
		}
		s := n.withChildren(nil).(*Scan)
		s.Columns = nil
		for _, f := range n.Schema().Fields() {
			if need[f.Name] {
				s.Columns = append(s.Columns, f.Name)
			}
		}
		if s.Columns == nil {
			s.Columns = []string{} // only the row count is needed
		}
		return s, nil
	case *Project:
		var cols []Column
		var inNeed = colset{}
		for _, c := range n.Columns {
			if need == nil || need[c.Name] {
				cols = append(cols, c)
				for _, r := range c.Expr.Columns() {
					inNeed[r] = true
				}
			}
		}
		in, err := prune(n.Input, inNeed)
		if err != nil {
			return nil, err
		}
		return rebuild(&Project{Columns: cols}, []Node{in})
	case *Filter:
		return pruneOne(n, need.with(n.Pred.Columns()...))
	case *Sort:
		keys := make([]string, len(n.Keys))
		for i, k := range n.Keys {
			keys[i] = k.Column
		}
		return pruneOne(n, need.with(keys...))
	case *Repartition:
		return pruneOne(n, need.with(n.Keys...))
	case *Limit, *Shuffle, *Union:
		return mapChildren(n, func(c Node) (Node, error) { return prune(c, need) })
	case *Aggregate:
		in := colset{}
		for _, k := range n.Keys {
			in[k] = true
		}
		for _, a := range n.Aggs {
			if a.Column != "" {
				in[a.Column] = true
			}
		}
		return pruneOne(n, in)
	case *Join:
		return pruneJoin(n, need)
	}
	// Opaque operators (MapBatches, Write) need all their input columns.
	return mapChildren(n, func(c Node) (Node, error) { return prune(c, nil) })
}

func pruneOne(n Node, need colset) (Node, error) {
	in, err := prune(n.Children()[0], need)
	if err != nil {
		return nil, err
	}
	return rebuild(n, []Node{in})
}

// pruneJoin narrows a join's inputs to the columns the output needs plus
// the join keys. The join names a right column that clashes with a left
// one by appending "_right", so dropping a left column could rename a
// right one: where the narrowed join would name a kept column differently
// from n, the left input keeps all its columns (and if that is not enough,
// the right one too).
func pruneJoin(n *Join, need colset) (Node, error) {
	if need == nil {
		return mapChildren(n, func(c Node) (Node, error) { return prune(c, nil) })
	}
	ls, rs := n.Left.Schema(), n.Right.Schema()
	left, right := colset{}, colset{}
	for _, k := range n.LeftKeys {
		left[k] = true
	}
	for _, k := range n.RightKeys {
		right[k] = true
	}
	// n's output is every left column, then the right non-key columns.
	out := n.Schema().Fields()
	for i, f := range ls.Fields() {
		if need[out[i].Name] {
			left[f.Name] = true
		}
	}
	o := ls.NumFields()
	for _, f := range rs.Fields() {
		if slices.Contains(n.RightKeys, f.Name) {
			continue
		}
		if need[out[o].Name] {
			right[f.Name] = true
		}
		o++
	}
	if !joinKeepsNames(n, left, right) {
		left = allOf(ls) // the clashing left columns stay
		if !joinKeepsNames(n, left, right) {
			return mapChildren(n, func(c Node) (Node, error) { return prune(c, nil) })
		}
	}
	l, err := prune(n.Left, left)
	if err != nil {
		return nil, err
	}
	r, err := prune(n.Right, right)
	if err != nil {
		return nil, err
	}
	return rebuild(n, []Node{l, r})
}

// joinKeepsNames reports whether n, over inputs narrowed to the columns in
// left and right, names each kept output column as n does.
func joinKeepsNames(n *Join, left, right colset) bool {
	ls, rs := n.Left.Schema(), n.Right.Schema()
	out := n.Schema().Fields()
	taken := map[string]bool{}
	for _, f := range ls.Fields() {
		if left[f.Name] {
			taken[f.Name] = true
		}
	}
	o := ls.NumFields()
	for _, f := range rs.Fields() {
		if slices.Contains(n.RightKeys, f.Name) {
			continue
		}
		if right[f.Name] {
			name := f.Name
			for taken[name] {
				name += "_right"
			}
			if name != out[o].Name {
				return false
			}
			taken[name] = true
		}
		o++
	}
	return true
}
