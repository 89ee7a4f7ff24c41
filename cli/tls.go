package cli

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
)

// TLSFlags are the certificate flags; without them everything is plain
// TCP and HTTP.
type TLSFlags struct{ cert, key, ca string }

// Declare adds --tls-ca, and with server --tls-cert and --tls-key, to fs.
func (t *TLSFlags) Declare(fs *flag.FlagSet, server bool) {
	*t = TLSFlags{}
	if server {
		fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate: serve over TLS (a coordinator's API and Raft, a worker's block server)")
		fs.StringVar(&t.key, "tls-key", "", "PEM private key of --tls-cert")
	}
	fs.StringVar(&t.ca, "tls-ca", "", "PEM CA bundle that signs the coordinators' certificates (or SLUICE_TLS_CA; default: the system's)")
}

// Configs are the server config (nil without --tls-cert) and the client
// config (nil when no TLS flag is given).
func (t *TLSFlags) Configs() (server, client *tls.Config, err error) {
	ca := t.ca
	if ca == "" {
		ca = os.Getenv("SLUICE_TLS_CA")
	}
	if (t.cert == "") != (t.key == "") {
		return nil, nil, fmt.Errorf("--tls-cert (%q) and --tls-key (%q) go together", t.cert, t.key)
	}
	if t.cert != "" {
		pair, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-cert: %w", err)
		}
		server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	if t.cert == "" && ca == "" {
		return nil, nil, nil
	}
	client = &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-ca: %w", err)
		}
		client.RootCAs = x509.NewCertPool()
		if !client.RootCAs.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", ca)
		}
	}
	return server, client, nil
}
