package train

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	gonet "net"
	"time"
)

// Data-parallel training: every worker reads the same rows and takes its
// share of each micro-batch (row i to worker i mod N); after the backward
// pass the workers sum their gradients and loss with a ring all-reduce, so
// each applies the same update and their weights stay equal. Rank 0 writes
// the checkpoints, metrics and model; a worker that is lost fails the step
// on every worker, and the run continues with --resume from the last
// checkpoint.
//
// Why a ring over plain TCP: no maintained Go library does collectives
// (Gloo, NCCL and MPI are C/C++ and need cgo, which the module avoids; Go
// MPI bindings are cgo and unmaintained), and the ring is the algorithm
// they use across hosts: reduce-scatter then all-gather, each worker
// sending 2·(N−1)/N of the buffer. Within one host's GPUs the same
// interface would be NCCL's all-reduce bound through purego as cuBLAS is
// (not written: no multi-GPU machine).

// ErrPeer: a worker of a data-parallel run is unreachable or left.
var ErrPeer = errors.New("train: data-parallel peer lost")

// ring is one worker's place in the ring: it sends to the next worker and
// receives from the previous one. Chunks are summed in a fixed order for a
// given N, so a run repeats bit for bit.
type ring struct {
	rank, n    int
	next, prev gonet.Conn
	ln         gonet.Listener
	stop       func() bool
	buf        []byte
}

// dialRing listens on addrs[rank], connects to addrs[rank+1] (retrying
// until ctx ends or a minute passes) and accepts the previous worker.
func dialRing(ctx context.Context, addrs []string, rank int) (*ring, error) {
	n := len(addrs)
	r := &ring{rank: rank, n: n}
	lc := gonet.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", addrs[rank])
	if err != nil {
		return nil, fmt.Errorf("train: worker %d: listen on %s: %w: %w", rank, addrs[rank], err, ErrPeer)
	}
	r.ln = ln
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			r.prev = c
		}
		accepted <- err
	}()
	to := addrs[(rank+1)%n]
	deadline := time.Now().Add(time.Minute)
	var d gonet.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", to)
		if err == nil {
			r.next = c
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			ln.Close()
			<-accepted
			return nil, fmt.Errorf("train: worker %d: connect to worker %d at %s: %w: %w", rank, (rank+1)%n, to, err, ErrPeer)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case err = <-accepted:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		r.close()
		return nil, fmt.Errorf("train: worker %d: accept worker %d: %w: %w", rank, (rank+n-1)%n, err, ErrPeer)
	}
	// Cancelling the run closes the connections, which ends a blocked
	// all-reduce here and, through EOF, on the other workers.
	r.stop = context.AfterFunc(ctx, func() { r.close() })
	return r, nil
}

func (r *ring) close() {
	for _, c := range []io.Closer{r.next, r.prev, r.ln} {
		if c != nil {
			c.Close()
		}
	}
}

// Close ends the worker's part in the ring.
func (r *ring) Close() {
	if r.stop != nil {
		r.stop()
	}
	r.close()
}

// chunk is the bounds of chunk i of a buffer of n elements in r.n parts.
func (r *ring) chunk(i, n int) (int, int) {
	i = ((i % r.n) + r.n) % r.n
	return i * n / r.n, (i + 1) * n / r.n
}

// allReduce replaces x by the sum of every worker's x (same length on all).
func (r *ring) allReduce(x []float32) error {
	if r.n == 1 {
		return nil
	}
	n := len(x)
	recv := make([]float32, n/r.n+1)
	step := func(sendIdx, recvIdx int, add bool) error {
		slo, shi := r.chunk(sendIdx, n)
		rlo, rhi := r.chunk(recvIdx, n)
		errc := make(chan error, 1)
		go func() { errc <- r.send(x[slo:shi]) }()
		in := recv[:rhi-rlo]
		if err := r.recv(in); err != nil {
			r.close()
			<-errc
			return err
		}
		if err := <-errc; err != nil {
			return err
		}
		dst := x[rlo:rhi]
		for i, v := range in {
			if add {
				dst[i] += v
			} else {
				dst[i] = v
			}
		}
		return nil
	}
	// Reduce-scatter: after N−1 steps worker r holds the whole sum of
	// chunk r+1; all-gather passes the sums around.
	for s := range r.n - 1 {
		if err := step(r.rank-s, r.rank-s-1, true); err != nil {
			return err
		}
	}
	for s := range r.n - 1 {
		if err := step(r.rank+1-s, r.rank-s, false); err != nil {
			return err
		}
	}
	return nil
}

func (r *ring) send(v []float32) error {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	if _, err := r.next.Write(b); err != nil {
		return fmt.Errorf("train: worker %d: send to worker %d: %w: %w", r.rank, (r.rank+1)%r.n, err, ErrPeer)
	}
	return nil
}

func (r *ring) recv(v []float32) error {
	if cap(r.buf) < 4*len(v) {
		r.buf = make([]byte, 4*len(v))
	}
	b := r.buf[:4*len(v)]
	if _, err := io.ReadFull(r.prev, b); err != nil {
		return fmt.Errorf("train: worker %d: receive from worker %d: %w: %w", r.rank, (r.rank+r.n-1)%r.n, err, ErrPeer)
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// share is the rows of b that worker rank of n computes (row i mod n =
// rank), or nil when it has none.
func (b *batch) share(rank, n int) *batch {
	out := &batch{}
	for i := rank; i < len(b.ids); i += n {
		out.ids = append(out.ids, b.ids[i])
		out.lens = append(out.lens, b.lens[i])
		if b.mask != nil {
			out.mask = append(out.mask, b.mask[i])
		}
	}
	if len(out.ids) == 0 {
		return nil
	}
	for _, l := range out.lens {
		out.T = max(out.T, l)
	}
	for i, r := range out.ids {
		out.ids[i] = r[:out.T]
	}
	return out
}

// reduceGrads sums the trainable gradients and the loss sum over the ring.
// The loss goes as a float32 pair (high and low parts) so the sum keeps
// about float64's precision.
func reduceGrads(r *ring, ps []*param, sum float64) (float64, error) {
	n := 2
	for _, p := range ps {
		n += len(p.g)
	}
	buf := make([]float32, 0, n)
	for _, p := range ps {
		buf = append(buf, p.g...)
	}
	hi := float32(sum)
	buf = append(buf, hi, float32(sum-float64(hi)))
	if err := r.allReduce(buf); err != nil {
		return 0, err
	}
	off := 0
	for _, p := range ps {
		off += copy(p.g, buf[off:])
	}
	return float64(buf[off]) + float64(buf[off+1]), nil
}
