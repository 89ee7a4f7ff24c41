package blocks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Client fetches blocks from other workers' Servers, keeping one gRPC
// connection per address. It is safe for concurrent use.
type Client struct {
	token string
	mem   memory.Allocator // nil: batches reference the received messages
	tls   *tls.Config      // nil: plain TCP

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithAllocator makes Fetch copy the received batches into buffers from
// mem, so that the worker's memory accounting sees them. Without it the
// batches point into the received gRPC messages (no copy) and the Go heap
// holds them.
func WithAllocator(mem memory.Allocator) ClientOption {
	return func(c *Client) { c.mem = mem }
}

// WithClientTLS dials the block servers over TLS with cfg; nil keeps
// plain TCP.
func WithClientTLS(cfg *tls.Config) ClientOption {
	return func(c *Client) { c.tls = cfg }
}

// NewClient returns a client that sends token as a bearer token when it is
// not empty.
func NewClient(token string, opts ...ClientOption) *Client {
	c := &Client{token: token, conns: make(map[string]*grpc.ClientConn)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Fetch returns the block id held by the worker serving at addr
// (host:port): its schema and batches, which the caller releases. Batches
// larger than a few MiB arrive cut into several slices. An error wraps
// ErrNotFound when that worker does not have the block and ErrUnreachable
// when the worker cannot be reached or goes away during the transfer.
// Fetch tries twice before it reports ErrUnreachable: a connection the
// peer had closed only fails the first call made on it.
func (c *Client) Fetch(ctx context.Context, addr, id string) (*arrow.Schema, []arrow.RecordBatch, error) {
	schema, recs, err := c.fetch(ctx, addr, id)
	if errors.Is(err, ErrUnreachable) {
		schema, recs, err = c.fetch(ctx, addr, id)
	}
	return schema, recs, err
}

func (c *Client) fetch(ctx context.Context, addr, id string) (*arrow.Schema, []arrow.RecordBatch, error) {
	conn, err := c.conn(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("blocks: fetch %q from %s: %w", id, addr, err)
	}
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	stream, err := flight.NewClientFromConn(conn, nil).DoGet(ctx, &flight.Ticket{Ticket: []byte(id)})
	if err != nil {
		return nil, nil, c.fail(ctx, addr, id, err)
	}
	var ropts []ipc.Option
	if c.mem != nil {
		ropts = append(ropts, ipc.WithAllocator(c.mem))
	}
	r, err := flight.NewRecordReader(stream, ropts...)
	if err != nil {
		return nil, nil, c.fail(ctx, addr, id, err)
	}
	defer r.Release()

	var recs []arrow.RecordBatch
	release := func() {
		for _, rec := range recs {
			rec.Release()
		}
	}
	for r.Next() {
		rec := r.RecordBatch()
		if c.mem != nil {
			if rec, err = copyBatch(rec, c.mem); err != nil {
				release()
				return nil, nil, fmt.Errorf("blocks: fetch %q from %s: copy batch: %w", id, addr, err)
			}
		} else {
			rec.Retain()
		}
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil {
		release()
		return nil, nil, c.fail(ctx, addr, id, err)
	}
	return r.Schema(), recs, nil
}

// fail turns a gRPC error into one of the package's errors where the
// status says the block is lost.
func (c *Client) fail(ctx context.Context, addr, id string, err error) error {
	switch status.Code(err) {
	case codes.NotFound:
		// The status only repeats the id.
		return fmt.Errorf("blocks: fetch %q from %s: %w", id, addr, ErrNotFound)
	case codes.Unavailable:
		if ctx.Err() == nil {
			return fmt.Errorf("blocks: fetch %q from %s: %w: %w", id, addr, ErrUnreachable, err)
		}
	}
	return fmt.Errorf("blocks: fetch %q from %s: %w", id, addr, err)
}

// conn returns the connection to addr, making it on first use. gRPC
// connects lazily and reconnects by itself after a failure.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("blocks: client closed")
	}
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if c.tls != nil {
		creds = credentials.NewTLS(c.tls)
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
		// gRPC's default backoff grows to two minutes, during which every
		// call fails at once; a worker that restarts on the same address
		// serves new blocks within seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		// Pings during a transfer notice a peer that vanished without
		// closing the connection (its host died, the network split).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 10 * time.Second}))
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

// Close closes every connection; Fetch fails afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	conns := c.conns
	c.conns, c.closed = nil, true
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// copyBatch copies rec's columns into buffers from mem.
func copyBatch(rec arrow.RecordBatch, mem memory.Allocator) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, 0, rec.NumCols())
	defer func() {
		for _, col := range cols {
			col.Release()
		}
	}()
	for _, col := range rec.Columns() {
		cp, err := array.Concatenate([]arrow.Array{col}, mem)
		if err != nil {
			return nil, err
		}
		cols = append(cols, cp)
	}
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()), nil
}
