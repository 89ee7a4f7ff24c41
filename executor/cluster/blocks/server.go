package blocks

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/internal/kernel"
)

const (
	// chunkBytes is the size the server cuts batches down to before
	// sending: one gRPC message per slice keeps messages far below
	// maxMessage and lets the receiver start decoding early.
	chunkBytes = 4 << 20
	// maxMessage bounds one gRPC message both ways. Slices aim at
	// chunkBytes, but a batch cannot be cut below one row, so a single
	// huge row (a long string, a big list) still needs headroom.
	maxMessage = 512 << 20
	// keepaliveTime is how often a client pings a connection with a call
	// in progress; the server must allow pings that often.
	keepaliveTime = 30 * time.Second
)

// Server serves a Store's blocks over Arrow Flight: DoGet with the block
// id as the ticket streams the block's schema and batches.
type Server struct {
	store *Store
	token string
	tls   *tls.Config
	grpc  *grpc.Server
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithToken makes the server refuse calls that lack the metadata
// "authorization: Bearer <token>" with codes.Unauthenticated. An empty
// token leaves the server open.
func WithToken(token string) ServerOption {
	return func(s *Server) { s.token = token }
}

// WithServerTLS serves over TLS with cfg (which may require and verify
// client certificates); nil keeps plain TCP.
func WithServerTLS(cfg *tls.Config) ServerOption {
	return func(s *Server) { s.tls = cfg }
}

// NewServer returns a server of store's blocks; Serve starts it.
func NewServer(store *Store, opts ...ServerOption) *Server {
	s := &Server{store: store}
	for _, o := range opts {
		o(s)
	}
	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessage),
		grpc.MaxSendMsgSize(maxMessage),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2}),
	}
	if s.tls != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	if s.token != "" {
		gopts = append(gopts,
			grpc.ChainUnaryInterceptor(s.authUnary),
			grpc.ChainStreamInterceptor(s.authStream))
	}
	s.grpc = grpc.NewServer(gopts...)
	flight.RegisterFlightServiceServer(s.grpc, &service{store: store})
	return s
}

// Serve accepts connections on lis until Stop; it returns nil after Stop.
func (s *Server) Serve(lis net.Listener) error {
	return s.grpc.Serve(lis)
}

// Stop closes the listeners and every connection at once; transfers in
// progress fail on the client with ErrUnreachable.
func (s *Server) Stop() {
	s.grpc.Stop()
}

func (s *Server) authorized(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if subtle.ConstantTimeCompare([]byte(v), []byte("Bearer "+s.token)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "blocks: missing or wrong bearer token")
}

func (s *Server) authUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorized(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorized(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

// service implements the Flight methods; every one but DoGet answers
// Unimplemented.
type service struct {
	flight.BaseFlightServer
	store *Store
}

var _ flight.FlightServer = (*service)(nil)

func (f *service) DoGet(t *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	id := string(t.GetTicket())
	schema, recs, err := f.store.Get(id)
	if errors.Is(err, ErrNotFound) {
		return status.Errorf(codes.NotFound, "blocks: block %q not found", id)
	}
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()

	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema), ipc.WithAllocator(f.store.mem))
	for _, rec := range recs {
		if err := writeChunked(w, rec, chunkBytes); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}

// writeChunked writes rec as slices of about limit bytes each (at least
// one row), in order.
func writeChunked(w *flight.Writer, rec arrow.RecordBatch, limit int64) error {
	rows := rec.NumRows()
	size := kernel.BatchBytes(rec)
	if size <= limit || rows <= 1 {
		return w.Write(rec)
	}
	step := max(1, rows*limit/size)
	for off := int64(0); off < rows; off += step {
		sl := rec.NewSlice(off, min(off+step, rows))
		err := w.Write(sl)
		sl.Release()
		if err != nil {
			return err
		}
	}
	return nil
}
