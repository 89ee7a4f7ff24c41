package worker

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// A worker of a TLS cluster does not serve its blocks in clear: without a
// certificate of its own it refuses to start.
func TestWorkerTLSNeedsCertificate(t *testing.T) {
	cfg := Config{Coordinators: []string{"127.0.0.1:1"}, DataDir: t.TempDir(), Addr: "127.0.0.1:0", Token: "tok",
		Resources: state.Resources{CPU: 1}, TLS: &tls.Config{RootCAs: x509.NewCertPool()}}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("TLS worker without a certificate: %v", err)
	}
	cfg.ServerTLS = &tls.Config{Certificates: []tls.Certificate{{}}}
	if len(blockServerTLS(cfg)) != 1 || len(blockClientTLS(cfg)) != 1 {
		t.Fatal("a TLS worker's block server and client are not TLS")
	}
}
