package coordinator

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrIsolated is what a dial from an isolated node returns.
var ErrIsolated = errors.New("coordinator: isolated")

// streamLayer is the Raft transport's TCP layer, with TLS when configured,
// and failure injection: Isolate cuts every Raft connection of this node
// and refuses new ones until Heal, as a network partition would.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	server    *tls.Config // nil: plain TCP with the cluster-secret handshake (raftauth.go)
	client    *tls.Config
	key       []byte          // the handshake's key, without TLS
	warn      func(err error) // logs a refused connection

	mu       sync.Mutex
	isolated bool
	conns    map[net.Conn]struct{}
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(bind string, advertise net.Addr, server, client *tls.Config, key []byte, warn func(error)) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if server != nil {
		// Raft peers authenticate each other: a connection without a
		// certificate signed by the cluster's CA is refused, and a node
		// dials with its own certificate. (The API authenticates with the
		// bearer token instead.)
		server = server.Clone()
		server.ClientAuth = tls.RequireAndVerifyClientCert
		if client != nil {
			server.ClientCAs = client.RootCAs
			client = client.Clone()
			client.Certificates = server.Certificates
		}
	}
	return &streamLayer{Listener: ln, advertise: advertise, server: server, client: client, key: key, warn: warn,
		conns: map[net.Conn]struct{}{}}, nil
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if s.server != nil {
			c = tls.Server(c, s.server)
		} else {
			c = &authConn{Conn: c, key: s.key, warn: s.warn}
		}
		if c = s.track(c); c != nil {
			return c, nil
		}
	}
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	isolated := s.isolated
	s.mu.Unlock()
	if isolated {
		return nil, ErrIsolated
	}
	d := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if s.client != nil {
		c, err = tls.DialWithDialer(d, "tcp", string(addr), s.client)
	} else if c, err = d.Dial("tcp", string(addr)); err == nil {
		if err = clientHandshake(c, s.key); err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	if c = s.track(c); c == nil {
		return nil, ErrIsolated
	}
	return c, nil
}

// track remembers c so Isolate can cut it; nil when isolated.
func (s *streamLayer) track(c net.Conn) net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isolated {
		c.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	return &trackedConn{Conn: c, s: s}
}

// Isolate cuts this node off from the other coordinators.
func (s *streamLayer) Isolate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.isolated = true
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
}

// Heal ends Isolate.
func (s *streamLayer) Heal() {
	s.mu.Lock()
	s.isolated = false
	s.mu.Unlock()
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c.Conn)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
