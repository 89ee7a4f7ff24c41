package coordinator

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Without TLS, every Raft connection opens with a challenge–response
// handshake that proves, in both directions, that the peer knows the
// cluster secret, before hashicorp/raft reads or writes a byte of it:
//
//	server → client  magic, nonceS (32 bytes)
//	client → server  nonceC (32 bytes), HMAC(K, "client" ‖ nonceS ‖ nonceC)
//	server → client  HMAC(K, "server" ‖ nonceS ‖ nonceC)
//
// K is derived from the cluster secret. Each side's nonce is fresh per
// connection, so a recorded handshake cannot be replayed to either side,
// and the two proofs carry different labels, so one cannot be reflected as
// the other. The client proves itself first; the server answers only a
// client it verified. The bytes after the handshake are not encrypted or
// MACed: on a network where someone can inject into a live TCP stream,
// use TLS (mutual certificates).

// ErrRaftAuth is what a Raft connection whose peer failed the handshake
// returns.
var ErrRaftAuth = errors.New("coordinator: raft peer failed the cluster-secret handshake (check that every coordinator has the same --cluster-secret-file)")

const (
	raftMagic        = "SLUICE-RAFT-AUTH-1\n"
	raftNonceLen     = 32
	raftHandshakeFor = 10 * time.Second
)

// raftKey derives the handshake's HMAC key from the cluster secret, so the
// secret itself is used for nothing else.
func raftKey(secret string) []byte {
	return deriveKey(secret, "sluice raft handshake v1")
}

func deriveKey(secret, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

func handshakeMAC(key []byte, label string, ns, nc []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(ns)
	m.Write(nc)
	return m.Sum(nil)
}

// serverHandshake runs the listening side of the handshake on c.
func serverHandshake(c net.Conn, key []byte) error {
	c.SetDeadline(time.Now().Add(raftHandshakeFor))
	defer c.SetDeadline(time.Time{})
	ns := make([]byte, raftNonceLen)
	rand.Read(ns)
	if _, err := c.Write(append([]byte(raftMagic), ns...)); err != nil {
		return fmt.Errorf("%w: %w", ErrRaftAuth, err)
	}
	in := make([]byte, raftNonceLen+sha256.Size)
	if _, err := io.ReadFull(c, in); err != nil {
		return fmt.Errorf("%w: reading the peer's proof: %w", ErrRaftAuth, err)
	}
	nc, proof := in[:raftNonceLen], in[raftNonceLen:]
	if !hmac.Equal(proof, handshakeMAC(key, "client", ns, nc)) {
		return fmt.Errorf("%w: wrong proof from %s", ErrRaftAuth, c.RemoteAddr())
	}
	if _, err := c.Write(handshakeMAC(key, "server", ns, nc)); err != nil {
		return fmt.Errorf("%w: %w", ErrRaftAuth, err)
	}
	return nil
}

// clientHandshake runs the dialing side of the handshake on c.
func clientHandshake(c net.Conn, key []byte) error {
	c.SetDeadline(time.Now().Add(raftHandshakeFor))
	defer c.SetDeadline(time.Time{})
	hello := make([]byte, len(raftMagic)+raftNonceLen)
	if _, err := io.ReadFull(c, hello); err != nil {
		return fmt.Errorf("%w: reading the challenge of %s: %w", ErrRaftAuth, c.RemoteAddr(), err)
	}
	if !bytes.Equal(hello[:len(raftMagic)], []byte(raftMagic)) {
		return fmt.Errorf("%w: %s does not speak the handshake (is it a coordinator with TLS on?)", ErrRaftAuth, c.RemoteAddr())
	}
	ns := hello[len(raftMagic):]
	nc := make([]byte, raftNonceLen)
	rand.Read(nc)
	if _, err := c.Write(append(nc, handshakeMAC(key, "client", ns, nc)...)); err != nil {
		return fmt.Errorf("%w: %w", ErrRaftAuth, err)
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, proof); err != nil {
		return fmt.Errorf("%w: %s refused our proof: %w", ErrRaftAuth, c.RemoteAddr(), err)
	}
	if !hmac.Equal(proof, handshakeMAC(key, "server", ns, nc)) {
		return fmt.Errorf("%w: wrong proof from %s", ErrRaftAuth, c.RemoteAddr())
	}
	return nil
}

// authConn is an accepted connection whose server handshake runs on its
// first Read or Write, in the goroutine that serves it (as tls.Server's
// does), so a slow peer cannot stall the accept loop. A failed handshake
// closes the connection: Raft never sees a byte of it.
type authConn struct {
	net.Conn
	key  []byte
	warn func(err error)
	once sync.Once
	err  error
}

func (c *authConn) handshake() error {
	c.once.Do(func() {
		if c.err = serverHandshake(c.Conn, c.key); c.err != nil {
			c.Conn.Close()
			if c.warn != nil {
				c.warn(c.err)
			}
		}
	})
	return c.err
}

func (c *authConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *authConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
