package local

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// pmap runs fn over the blocks of in on n goroutines and sends what fn
// returns (a block with a nil rec is dropped). With ordered set the output
// keeps the input's order: each item carries a one-slot result channel and
// a collector reads those slots in input order.
func (x *exec) pmap(ctx context.Context, in <-chan block, out chan<- block, n int, ordered bool, fn func(block) (block, error)) error {
	g, ctx := errgroup.WithContext(ctx)
	emit := func(b block) error {
		if b.rec == nil || b.rec.NumRows() == 0 {
			x.drop(b)
			return nil
		}
		return x.send(ctx, out, b)
	}
	if !ordered || n == 1 {
		for range n {
			g.Go(func() error {
				for b := range in {
					r, err := fn(b)
					if err != nil {
						return err
					}
					if err := emit(r); err != nil {
						return err
					}
				}
				return nil
			})
		}
		return g.Wait()
	}

	type item struct {
		b    block
		slot chan block
	}
	work := make(chan item)
	order := make(chan chan block, 2*n)
	g.Go(func() error { // dispatcher
		defer close(work)
		defer close(order)
		for b := range in {
			it := item{b: b, slot: make(chan block, 1)}
			select {
			case order <- it.slot:
			case <-ctx.Done():
				x.drop(b)
				return ctx.Err()
			}
			select {
			case work <- it:
			case <-ctx.Done():
				x.drop(b)
				close(it.slot)
				return ctx.Err()
			}
		}
		return nil
	})
	for range n {
		g.Go(func() error {
			for it := range work {
				r, err := fn(it.b)
				if err != nil {
					close(it.slot)
					return err
				}
				it.slot <- r // never blocks: one slot, one value
				close(it.slot)
			}
			return nil
		})
	}
	g.Go(func() error { // collector
		for slot := range order {
			for r := range slot {
				if err := emit(r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	err := g.Wait()
	// On failure, slots may still hold results.
	for slot := range order {
		for r := range slot {
			x.drop(r)
		}
	}
	return err
}
