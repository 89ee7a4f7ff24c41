package local

import (
	"context"
	"testing"
)

func TestBudget(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// 60 + 60 > 100: a second source must wait for a release.
	ok, wait := b.tryAcquire(60)
	if ok {
		t.Fatal("acquired past the budget")
	}
	b.release(60)
	<-wait // the release woke waiters
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// A block larger than the whole budget may go when nothing else is in flight.
	b.release(60)
	if err := b.acquire(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	// Adjustments never block, and cancellation ends a wait.
	b.adjust(5)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(cctx, 10); err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
	if p := b.peak.Load(); p != 1005 {
		t.Fatalf("peak %d, want 1005", p)
	}
}
