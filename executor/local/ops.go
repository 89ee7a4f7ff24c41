package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/format"
	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/internal/kernel"
)

// compile turns an optimized logical plan into operators. Chains of
// row-local nodes (Filter, Project, MapBatches) fuse into one mapOp.
func (x *exec) compile(n plan.Node) (op, error) {
	switch n := n.(type) {
	case *plan.Scan:
		return &scanOp{node: n, st: x.newStats(n)}, nil
	case *plan.Values:
		return &valuesOp{node: n, st: x.newStats(n)}, nil
	case *plan.Range:
		return &rangeOp{node: n, st: x.newStats(n)}, nil
	case *plan.Filter, *plan.Project, *plan.MapBatches:
		return x.compileChain(n)
	case *plan.Limit:
		in, err := x.compile(n.Input)
		return &limitOp{n: n.N, in: in, st: x.newStats(n)}, err
	case *plan.Sort:
		in, err := x.compile(n.Input)
		s := &sortOp{node: n, in: in, st: x.newStats(n)}
		if err == nil {
			s.bound = topKBound(n, in)
		}
		return s, err
	case *plan.Aggregate:
		in, err := x.compile(n.Input)
		if err == nil {
			keepDict(n, in)
			joinDict(n, in)
		}
		return &aggOp{node: n, in: in, st: x.newStats(n)}, err
	case *plan.Repartition:
		in, err := x.compile(n.Input)
		return &collectOp{node: n, in: in, st: x.newStats(n), finish: x.repartition(n)}, err
	case *plan.Shuffle:
		in, err := x.compile(n.Input)
		return &collectOp{node: n, in: in, st: x.newStats(n), finish: x.shuffle(n)}, err
	case *plan.Union:
		u := &unionOp{st: x.newStats(n)}
		for _, c := range n.Inputs {
			in, err := x.compile(c)
			if err != nil {
				return nil, err
			}
			u.ins = append(u.ins, in)
		}
		return u, nil
	case *plan.Join:
		l, err := x.compile(n.Left)
		if err != nil {
			return nil, err
		}
		r, err := x.compile(n.Right)
		return &joinOp{node: n, left: l, right: r, st: x.newStats(n)}, err
	case *plan.Write:
		in, err := x.compile(n.Input)
		return &writeOp{node: n, in: in, st: x.newStats(n)}, err
	}
	return nil, errf("no operator for %T", n)
}

// step is one fused row-local function.
type step func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error)

// compileChain fuses the row-local nodes from n down. A MapBatches that asks
// for a batch size starts a new chain behind a rebatching operator.
func (x *exec) compileChain(n plan.Node) (op, error) {
	var chain []plan.Node
	cur := n
	for {
		switch c := cur.(type) {
		case *plan.Filter, *plan.Project:
			chain = append(chain, c)
			cur = c.Children()[0]
			continue
		case *plan.MapBatches:
			chain = append(chain, c)
			cur = c.Input
			if c.BatchRows == 0 {
				continue
			}
		}
		break
	}
	in, err := x.compile(cur)
	if err != nil {
		return nil, err
	}
	if m, ok := chain[len(chain)-1].(*plan.MapBatches); ok && m.BatchRows > 0 {
		in = &rebatchOp{rows: m.BatchRows, in: in, st: x.namedStats(fmt.Sprintf("Rebatch %d", m.BatchRows))}
	}
	m := &mapOp{in: in, conc: x.cfg.Concurrency}
	names := ""
	for i := len(chain) - 1; i >= 0; i-- {
		s, conc, err := x.step(chain[i])
		if err != nil {
			return nil, err
		}
		if conc > 0 {
			m.conc = conc
		}
		m.steps = append(m.steps, s)
		if names != "" {
			names += " -> "
		}
		names += chain[i].Describe()
	}
	m.st = x.namedStats(names)
	return m, nil
}

func (x *exec) step(n plan.Node) (step, int, error) {
	switch n := n.(type) {
	case *plan.Filter:
		return func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			return n.Pred.Filter(ctx, x.mem, rec)
		}, 0, nil
	case *plan.Project:
		return func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			return project(ctx, x, n, rec)
		}, 0, nil
	case *plan.MapBatches:
		return func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
			out, err := n.Fn(ctx, x.mem, rec)
			if err != nil {
				return nil, err
			}
			if out != nil && !out.Schema().Equal(n.Out) {
				out.Release()
				return nil, fmt.Errorf("MapBatches %s returned schema %s, want %s", n.Name, out.Schema(), n.Out)
			}
			return out, nil
		}, n.Concurrency, nil
	}
	return nil, 0, errf("%T is not row-local", n)
}

func project(ctx context.Context, x *exec, n *plan.Project, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, len(n.Columns))
	release := func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}
	for i, c := range n.Columns {
		if a := dictColumn(c, rec); a != nil {
			a.Retain()
			cols[i] = a
			continue
		}
		a, err := c.Expr.Eval(ctx, x.mem, rec)
		if err != nil {
			release()
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		cols[i] = a
	}
	out := array.NewRecordBatch(format.BatchSchema(n.Schema(), cols), cols, rec.NumRows())
	release()
	return out, nil
}

// keepDict lets the scan under an aggregate leave its string group keys
// dictionary-encoded where the Parquet file has them so (the hash aggregate
// then hashes each distinct value once per batch instead of every row's
// string). Only when nothing between reads the key but to pass it on (see
// dictKeys), the input is a scan without filters, and the key is a string
// column of the file. Everything else sees plain strings as before.
func keepDict(n *plan.Aggregate, in op) {
	below, in, keys := dictKeys(n, in)
	scan, ok := below.(*plan.Scan)
	if !ok || len(scan.Filters) > 0 || scan.Format == nil || scan.Format.Name() != "parquet" {
		return
	}
	sop, ok := in.(*scanOp)
	if !ok || sop.node != scan {
		return
	}
	sop.dict = slices.DeleteFunc(keys, func(k string) bool {
		i := scan.FileSchema.FieldIndices(k)
		return len(i) != 1 || scan.FileSchema.Field(i[0]).Type.ID() != arrow.STRING
	})
	if dictChosen != nil {
		dictChosen("scan", sop.dict)
	}
}

// dictChosen, set by tests only, is told the group keys keepDict ("scan")
// and joinDict ("join") leave dictionary-encoded, so that a test sees the
// dictionary path taken and not only its results (which equal the plain
// path's).
var dictChosen func(where string, keys []string)

// joinDict lets a hash join under an aggregate emit the right side's
// string group keys as dictionary arrays into the build side (no copy of
// the bytes per probe row; the aggregate keys each build row once). Only
// when nothing between reads the key but to pass it on, as in keepDict.
func joinDict(n *plan.Aggregate, in op) {
	below, in, keys := dictKeys(n, in)
	join, ok := below.(*plan.Join)
	if !ok {
		return
	}
	if jop, ok := in.(*joinOp); ok && jop.node == join {
		jop.dict = keys
		if dictChosen != nil {
			dictChosen("join", keys)
		}
	}
}

// topKBound lets the Parquet scan under a top-k (a Sort with a Limit, on
// Projects over the scan) drop the rows whose first sort key sorts after
// the k-th row seen so far, before it decodes their other columns: the
// partial top-k's tell the returned bound their worst row, and the scan's
// late materialization evaluates the key over the columns it is computed
// from (a file column, or the one Project expression defining it over file
// columns the Projects below only copy). nil when the plan is not of that
// shape or the key has no fixed-width order.
func topKBound(n *plan.Sort, in op) *kernel.TopKBound {
	if n.Limit <= 0 || len(n.Keys) == 0 {
		return nil
	}
	projects, below, in := belowProjects(n.Input, in)
	scan, ok := below.(*plan.Scan)
	if !ok || scan.Format == nil || scan.Format.Name() != "parquet" {
		return nil
	}
	sop, ok := in.(*scanOp)
	if !ok || sop.node != scan {
		return nil
	}
	key := n.Keys[0]
	src, cols := key.Column, []string{key.Column}
	for i, p := range projects {
		j := slices.IndexFunc(p.Columns, func(c plan.Column) bool { return c.Name == key.Column })
		if j < 0 {
			return nil
		}
		if e, ok := p.Columns[j].Expr.Expr().(*expr.Column); ok && e.Name == key.Column {
			continue // a copy: the key comes from below
		}
		src, cols = p.Columns[j].Expr.String(), p.Columns[j].Expr.Columns()
		for _, q := range projects[i+1:] {
			for _, c := range cols {
				if !passesOn(q, c) {
					return nil
				}
			}
		}
		break
	}
	f, ok := n.Schema().FieldsByName(key.Column)
	if !ok || len(f) != 1 {
		return nil
	}
	b := kernel.NewTopKBound(key, f[0].Type)
	if b != nil {
		sop.topk = &scanTopK{key: src, cols: cols, bound: b}
	}
	return b
}

// dictKeys walks down from aggregate n through the Projects under it and
// returns the plan node below them, the operator that runs it (in, the
// aggregate's input, with a mapOp of exactly those Projects skipped; nil
// when the operators do not line up with the plan), and the group keys that
// may stay dictionary-encoded up to n: no aggregate reads them and every
// Project only copies them under their own names.
func dictKeys(n *plan.Aggregate, in op) (plan.Node, op, []string) {
	projects, below, in := belowProjects(n.Input, in)
	var keys []string
	for _, k := range n.Keys {
		if slices.ContainsFunc(n.Aggs, func(a kernel.Agg) bool { return a.Column == k }) {
			continue
		}
		if !slices.ContainsFunc(projects, func(p *plan.Project) bool { return !passesOn(p, k) }) {
			keys = append(keys, k)
		}
	}
	return below, in, keys
}

// belowProjects walks down from node top, run by operator in, through the
// Projects at its top: it returns them (top first), the node below them,
// and the operator that runs that node (in, with a mapOp of exactly those
// Projects skipped; nil when the operators do not line up with the plan).
func belowProjects(top plan.Node, in op) ([]*plan.Project, plan.Node, op) {
	var projects []*plan.Project
	for {
		p, ok := top.(*plan.Project)
		if !ok {
			break
		}
		projects = append(projects, p)
		top = p.Input
	}
	if o, ok := in.(*mapOp); ok {
		if len(o.steps) != len(projects) {
			return projects, top, nil
		}
		in = o.in
	}
	return projects, top, in
}

// passesOn reports whether p reads column k only to copy it, under its own
// name, and does copy it.
func passesOn(p *plan.Project, k string) bool {
	copied := false
	for _, c := range p.Columns {
		if !slices.Contains(c.Expr.Columns(), k) {
			continue
		}
		e, ok := c.Expr.Expr().(*expr.Column)
		if !ok || e.Name != k || c.Name != k {
			return false
		}
		copied = true
	}
	return copied
}

// dictColumn returns the batch's dictionary-encoded column that c copies,
// or nil: the expression would reject it for not being of its bound type.
func dictColumn(c plan.Column, rec arrow.RecordBatch) arrow.Array {
	e, ok := c.Expr.Expr().(*expr.Column)
	if !ok {
		return nil
	}
	idx := rec.Schema().FieldIndices(e.Name)
	if len(idx) != 1 {
		return nil
	}
	a := rec.Column(idx[0])
	if d, ok := a.DataType().(*arrow.DictionaryType); ok && arrow.TypeEqual(d.ValueType, c.Expr.Type()) {
		return a
	}
	return nil
}

type mapOp struct {
	in    op
	steps []step
	conc  int
	st    *OpStats
}

func (m *mapOp) run(ctx context.Context, x *exec, out chan<- block) error {
	g, gctx := errgroup.WithContext(ctx)
	in := x.start(gctx, g, m.in)
	g.Go(func() error {
		m.st.begin()
		defer m.st.end()
		return wrapOp(m.st.Name, x.pmap(gctx, in, out, m.conc, x.cfg.PreserveOrder, func(b block) (block, error) {
			m.st.RowsIn.Add(b.rec.NumRows())
			rec := b.rec
			rec.Retain()
			err := m.st.work(func() error {
				for _, s := range m.steps {
					next, err := s(gctx, rec)
					rec.Release()
					rec = next
					if err != nil || rec == nil {
						return err
					}
				}
				return nil
			})
			nb := x.replace(b, rec)
			if err != nil {
				x.drop(nb)
				return block{}, err
			}
			m.st.out(rec)
			return nb, nil
		}))
	})
	return g.Wait()
}

// rebatchOp cuts its input into batches of exactly rows rows (the last may be shorter).
type rebatchOp struct {
	rows int
	in   op
	st   *OpStats
}

func (r *rebatchOp) run(ctx context.Context, x *exec, out chan<- block) error {
	g, gctx := errgroup.WithContext(ctx)
	in := x.start(gctx, g, r.in)
	g.Go(func() error {
		var pending []arrow.RecordBatch
		var have int64
		var acct int64
		flush := func(n int64) error {
			recs, rest := takeRows(pending, n)
			pending = rest
			have -= n
			rec, err := kernel.Concat(x.mem, recs[0].Schema(), recs)
			for _, r := range recs {
				r.Release()
			}
			if err != nil {
				return err
			}
			nb := x.replace(block{acct: acct}, rec)
			acct = 0
			for _, p := range pending {
				acct += kernel.BatchBytes(p)
			}
			x.budget.adjust(acct)
			r.st.out(rec)
			return x.send(gctx, out, nb)
		}
		defer func() {
			for _, p := range pending {
				p.Release()
			}
			x.budget.release(acct)
		}()
		for b := range in {
			r.st.RowsIn.Add(b.rec.NumRows())
			pending = append(pending, b.rec)
			have += b.rec.NumRows()
			acct += b.acct
			for have >= int64(r.rows) {
				if err := flush(int64(r.rows)); err != nil {
					return err
				}
			}
		}
		if have > 0 {
			return flush(have)
		}
		return nil
	})
	return g.Wait()
}

// takeRows splits recs into the first n rows and the rest, by slicing.
// It consumes recs' references.
func takeRows(recs []arrow.RecordBatch, n int64) (head, rest []arrow.RecordBatch) {
	for i, r := range recs {
		if n == 0 {
			return head, append(rest, recs[i:]...)
		}
		if r.NumRows() <= n {
			head = append(head, r)
			n -= r.NumRows()
			continue
		}
		head = append(head, r.NewSlice(0, n))
		rest = append(rest, r.NewSlice(n, r.NumRows()))
		r.Release()
		n = 0
	}
	return head, rest
}

type limitOp struct {
	n  int64
	in op
	st *OpStats
}

func (l *limitOp) run(ctx context.Context, x *exec, out chan<- block) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(cctx)
	in := x.start(gctx, g, l.in)
	var got int64
	var sendErr error
	for b := range in {
		if got >= l.n || sendErr != nil {
			x.drop(b)
			continue
		}
		l.st.RowsIn.Add(b.rec.NumRows())
		if rest := l.n - got; b.rec.NumRows() > rest {
			b = x.replace(b, b.rec.NewSlice(0, rest))
		}
		got += b.rec.NumRows()
		l.st.out(b.rec)
		if sendErr = x.send(ctx, out, b); sendErr != nil {
			cancel()
		}
		if got >= l.n {
			cancel()
		}
	}
	err := g.Wait()
	if sendErr != nil {
		return sendErr
	}
	if got >= l.n && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = nil
	}
	return err
}

type valuesOp struct {
	node *plan.Values
	st   *OpStats
}

func (v *valuesOp) run(ctx context.Context, x *exec, out chan<- block) error {
	for _, r := range v.node.Records {
		r.Retain()
		v.st.out(r)
		if err := x.produce(ctx, out, r); err != nil {
			return err
		}
	}
	return nil
}

type rangeOp struct {
	node *plan.Range
	st   *OpStats
}

func (r *rangeOp) run(ctx context.Context, x *exec, out chan<- block) error {
	step := int64(x.cfg.BatchRows)
	if r.node.BatchRows > 0 {
		step = int64(r.node.BatchRows)
	}
	for start := int64(0); start < r.node.N; start += step {
		n := min(step, r.node.N-start)
		b := array.NewInt64Builder(x.mem)
		b.Reserve(int(n))
		for i := start; i < start+n; i++ {
			b.UnsafeAppend(i)
		}
		col := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(plan.RangeSchema, []arrow.Array{col}, n)
		col.Release()
		r.st.out(rec)
		if err := x.produce(ctx, out, rec); err != nil {
			return err
		}
	}
	return nil
}

// collectOp gathers its whole input, then finish turns it into output batches.
type collectOp struct {
	node   plan.Node
	in     op
	st     *OpStats
	finish func(ctx context.Context, recs []arrow.RecordBatch) ([]arrow.RecordBatch, error)
}

func (c *collectOp) run(ctx context.Context, x *exec, out chan<- block) error {
	recs, err := x.collect(ctx, c.in, c.st)
	if err != nil {
		return err
	}
	var res []arrow.RecordBatch
	err = c.st.work(func() error {
		var err error
		res, err = c.finish(ctx, recs)
		return err
	})
	for _, r := range recs {
		r.Release()
	}
	if err != nil {
		return wrapOp(c.st.Name, err)
	}
	return x.emitAll(ctx, out, c.st, res)
}

// collect runs in and keeps every batch it sends, outside the budget.
func (x *exec) collect(ctx context.Context, in op, st *OpStats) ([]arrow.RecordBatch, error) {
	g, gctx := errgroup.WithContext(ctx)
	ch := x.start(gctx, g, in)
	var recs []arrow.RecordBatch
	st.begin()
	for b := range ch {
		st.RowsIn.Add(b.rec.NumRows())
		x.budget.release(b.acct)
		recs = append(recs, b.rec)
	}
	if err := g.Wait(); err != nil {
		for _, r := range recs {
			r.Release()
		}
		return nil, err
	}
	return recs, nil
}

// emitAll sends batches that are outside the budget; it owns res.
func (x *exec) emitAll(ctx context.Context, out chan<- block, st *OpStats, res []arrow.RecordBatch) error {
	defer st.end()
	for i, r := range res {
		if r.NumRows() == 0 {
			r.Release()
			continue
		}
		st.out(r)
		b := x.replace(block{}, r)
		if err := x.send(ctx, out, b); err != nil {
			for _, r := range res[i+1:] {
				r.Release()
			}
			return err
		}
	}
	return nil
}

func (x *exec) repartition(n *plan.Repartition) func(context.Context, []arrow.RecordBatch) ([]arrow.RecordBatch, error) {
	return func(ctx context.Context, recs []arrow.RecordBatch) ([]arrow.RecordBatch, error) {
		if len(n.Keys) > 0 {
			parts := make([][]arrow.RecordBatch, n.N)
			defer func() {
				for _, p := range parts {
					for _, r := range p {
						r.Release()
					}
				}
			}()
			for _, r := range recs {
				ps, err := kernel.HashPartition(x.mem, r, n.Keys, n.N)
				if err != nil {
					return nil, err
				}
				for i, p := range ps {
					if p != nil {
						parts[i] = append(parts[i], p)
					}
				}
			}
			out := make([]arrow.RecordBatch, 0, n.N)
			for _, p := range parts {
				if len(p) == 0 {
					continue
				}
				r, err := kernel.Concat(x.mem, n.Schema(), p)
				if err != nil {
					releaseAll(out)
					return nil, err
				}
				out = append(out, r)
			}
			return out, nil
		}
		var total int64
		for _, r := range recs {
			total += r.NumRows()
			r.Retain()
		}
		rest := recs
		var out []arrow.RecordBatch
		for i := range n.N {
			rows := total / int64(n.N)
			if int64(i) < total%int64(n.N) {
				rows++
			}
			var head []arrow.RecordBatch
			head, rest = takeRows(rest, rows)
			if len(head) == 0 {
				continue
			}
			r, err := kernel.Concat(x.mem, n.Schema(), head)
			releaseAll(head)
			if err != nil {
				releaseAll(rest)
				releaseAll(out)
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
}

func (x *exec) shuffle(n *plan.Shuffle) func(context.Context, []arrow.RecordBatch) ([]arrow.RecordBatch, error) {
	return func(ctx context.Context, recs []arrow.RecordBatch) ([]arrow.RecordBatch, error) {
		if len(recs) == 0 {
			return nil, nil
		}
		all, err := kernel.Concat(x.mem, n.Schema(), recs)
		if err != nil {
			return nil, err
		}
		defer all.Release()
		rng := rand.New(rand.NewPCG(uint64(n.Seed), 0x5eed))
		sh, err := kernel.Shuffle(x.mem, all, rng)
		if err != nil {
			return nil, err
		}
		defer sh.Release()
		return sliceRows(sh, int64(x.cfg.BatchRows)), nil
	}
}

// sliceRows cuts rec into batches of at most n rows, each holding its own reference.
func sliceRows(rec arrow.RecordBatch, n int64) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	for i := int64(0); i < rec.NumRows(); i += n {
		out = append(out, rec.NewSlice(i, min(i+n, rec.NumRows())))
	}
	return out
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

type sortOp struct {
	node  *plan.Sort
	in    op
	st    *OpStats
	bound *kernel.TopKBound // a top-k's cut-off, shared with the scan under it (topKBound), or nil
}

func (s *sortOp) run(ctx context.Context, x *exec, out chan<- block) error {
	if s.node.Limit >= 0 {
		return s.topK(ctx, x, out)
	}
	recs, err := x.collect(ctx, s.in, s.st)
	if err != nil {
		return err
	}
	var res []arrow.RecordBatch
	err = s.st.work(func() error {
		var err error
		res, err = kernel.Sort(ctx, x.mem, s.node.Schema(), recs, s.node.Keys, x.cfg.BatchRows)
		return err
	})
	releaseAll(recs)
	if err != nil {
		return wrapOp(s.st.Name, err)
	}
	return x.emitAll(ctx, out, s.st, res)
}

func (s *sortOp) topK(ctx context.Context, x *exec, out chan<- block) error {
	tops, err := pushParts(ctx, x, s.in, s.st, x.cfg.Concurrency, func() (*kernel.TopK, error) {
		t, err := kernel.NewTopK(x.mem, s.node.Schema(), s.node.Keys, int(s.node.Limit))
		if err == nil {
			t.SetBound(s.bound)
		}
		return t, err
	})
	defer releaseParts(tops)
	if err != nil {
		return err
	}
	// Merge the partial top-k's by pushing their results into the first.
	for _, t := range tops[1:] {
		r, err := t.Finish()
		if err != nil {
			return wrapOp(s.st.Name, err)
		}
		err = tops[0].Push(r)
		r.Release()
		if err != nil {
			return wrapOp(s.st.Name, err)
		}
	}
	res, err := tops[0].Finish()
	if err != nil {
		return wrapOp(s.st.Name, err)
	}
	return x.emitAll(ctx, out, s.st, []arrow.RecordBatch{res})
}

type aggOp struct {
	node *plan.Aggregate
	in   op
	st   *OpStats
}

func (a *aggOp) run(ctx context.Context, x *exec, out chan<- block) error {
	n := x.cfg.Concurrency
	if x.cfg.PreserveOrder && orderPicks(a.node) {
		// first, last and collect_list pick rows in the order they come:
		// one goroutine, so that is the input's order (as on a cluster,
		// whose tasks run one goroutine an operator).
		n = 1
	}
	parts, err := pushParts(ctx, x, a.in, a.st, n, func() (*kernel.HashAgg, error) {
		return kernel.NewHashAgg(x.mem, a.node.Input.Schema(), a.node.Keys, a.node.Aggs)
	})
	defer releaseParts(parts)
	if err != nil {
		return err
	}
	var res arrow.RecordBatch
	err = a.st.work(func() error {
		for _, p := range parts[1:] {
			if err := parts[0].Merge(p); err != nil {
				return err
			}
		}
		var err error
		res, err = parts[0].Finish()
		return err
	})
	if err != nil {
		return wrapOp(a.st.Name, err)
	}
	return x.emitAll(ctx, out, a.st, []arrow.RecordBatch{res})
}

// pusher is a partial state that input batches are pushed into: a top-k or
// a hash aggregate.
type pusher interface {
	Push(arrow.RecordBatch) error
	Release()
}

// pushParts starts child and pushes its batches into n partial states made
// by newPart, one goroutine each, counting rows in and time on st. It
// returns the states (nil entries past a failed newPart) for the caller to
// merge, and to release with releaseParts whatever the error.
func pushParts[P pusher](ctx context.Context, x *exec, child op, st *OpStats, n int, newPart func() (P, error)) ([]P, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	in := x.start(gctx, g, child)
	parts := make([]P, 0, n)
	st.begin()
	for range n {
		p, err := newPart()
		if err != nil {
			// Stop the started child and wait for it.
			cancel()
			_ = g.Wait()
			return parts, wrapOp(st.Name, err)
		}
		parts = append(parts, p)
		g.Go(func() error {
			for b := range in {
				st.RowsIn.Add(b.rec.NumRows())
				err := st.work(func() error { return p.Push(b.rec) })
				x.drop(b)
				if err != nil {
					return wrapOp(st.Name, err)
				}
			}
			return nil
		})
	}
	return parts, g.Wait()
}

func releaseParts[P pusher](parts []P) {
	for _, p := range parts {
		p.Release()
	}
}

// orderPicks reports whether an aggregate's result depends on the order of
// its input rows.
func orderPicks(n *plan.Aggregate) bool {
	for _, a := range n.Aggs {
		switch a.Func {
		case kernel.First, kernel.Last, kernel.CollectList, kernel.CollectAll:
			return true
		}
	}
	return false
}

type unionOp struct {
	ins []op
	st  *OpStats
}

func (u *unionOp) run(ctx context.Context, x *exec, out chan<- block) error {
	g, gctx := errgroup.WithContext(ctx)
	chans := make([]<-chan block, len(u.ins))
	for i, in := range u.ins {
		chans[i] = x.start(gctx, g, in)
	}
	forward := func(ch <-chan block) error {
		for b := range ch {
			u.st.RowsIn.Add(b.rec.NumRows())
			u.st.out(b.rec)
			if err := x.send(gctx, out, b); err != nil {
				return err
			}
		}
		return nil
	}
	if x.cfg.PreserveOrder {
		g.Go(func() error {
			for _, ch := range chans {
				if err := forward(ch); err != nil {
					return err
				}
			}
			return nil
		})
	} else {
		for _, ch := range chans {
			g.Go(func() error { return forward(ch) })
		}
	}
	return g.Wait()
}

type joinOp struct {
	node        *plan.Join
	left, right op
	st          *OpStats
	dict        []string // right string columns the consumer takes dictionary-encoded (see joinDict)
}

func (j *joinOp) run(ctx context.Context, x *exec, out chan<- block) error {
	h, err := kernel.NewHashJoin(x.mem, j.node.Left.Schema(), j.node.Right.Schema(), j.node.LeftKeys, j.node.RightKeys, j.node.Kind)
	if err != nil {
		return wrapOp(j.st.Name, err)
	}
	defer h.Release()
	if len(j.dict) > 0 {
		if err := h.EmitDict(j.dict); err != nil {
			return wrapOp(j.st.Name, err)
		}
	}
	right, err := x.collect(ctx, j.right, j.st)
	if err != nil {
		return err
	}
	err = j.st.work(func() error {
		for _, r := range right {
			if err := h.Build(r); err != nil {
				return err
			}
		}
		return nil
	})
	releaseAll(right)
	if err != nil {
		return wrapOp(j.st.Name, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	in := x.start(gctx, g, j.left)
	g.Go(func() error {
		defer j.st.end()
		return wrapOp(j.st.Name, x.pmap(gctx, in, out, x.cfg.Concurrency, x.cfg.PreserveOrder, func(b block) (block, error) {
			j.st.RowsIn.Add(b.rec.NumRows())
			var rec arrow.RecordBatch
			err := j.st.work(func() error {
				var err error
				rec, err = h.Probe(b.rec)
				return err
			})
			nb := x.replace(b, rec)
			if err != nil {
				x.drop(nb)
				return block{}, err
			}
			j.st.out(rec)
			return nb, nil
		}))
	})
	return g.Wait()
}
