package dataset

import (
	"fmt"
	"strings"
)

// joinMark is the column SemiJoin and AntiJoin add to the right side to
// see which left rows found a match.
const joinMark = "__sluice_join_match"

// SemiJoin keeps the rows of d that have at least one match in right on
// the keys of opts (How is ignored), each once, with d's columns only (SQL
// WHERE EXISTS). NULL keys match nothing. It is a join with right's
// distinct keys, so Explain and the cluster treat it as one.
func (d *Dataset) SemiJoin(right *Dataset, opts JoinOptions) *Dataset {
	return d.markJoin("SemiJoin", right, opts, "inner", "")
}

// AntiJoin keeps the rows of d that have no match in right on the keys of
// opts (SQL WHERE NOT EXISTS); a row with a NULL key is kept, as it
// matches nothing.
func (d *Dataset) AntiJoin(right *Dataset, opts JoinOptions) *Dataset {
	return d.markJoin("AntiJoin", right, opts, "left", quoteIdent(joinMark)+" IS NULL")
}

func (d *Dataset) markJoin(op string, right *Dataset, opts JoinOptions, how, filter string) *Dataset {
	if d.err != nil {
		return d
	}
	if right.err != nil {
		return &Dataset{err: fmt.Errorf("dataset: %s: %w", op, right.err), cfg: d.cfg}
	}
	rk := opts.RightOn
	if len(opts.On) > 0 {
		rk = opts.On
	}
	left := names(d.node.Schema())
	r := right.Distinct(rk...).WithColumn(joinMark, "TRUE")
	opts.How = how
	lk := opts.LeftOn
	if len(opts.On) > 0 {
		lk = opts.On
	}
	out := label(d.Join(r, opts), fmt.Sprintf("%s on [%s] = [%s]", op, strings.Join(lk, ", "), strings.Join(rk, ", ")))
	if filter != "" {
		out = out.Filter(filter)
	}
	out = out.Select(left...)
	if out.err != nil {
		return &Dataset{err: fmt.Errorf("dataset: %s: %w", op, out.err), cfg: d.cfg}
	}
	return out
}
