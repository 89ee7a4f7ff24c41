package worker

import (
	"crypto/tls"

	"github.com/sluicehq/sluice/executor/cluster/blocks"
)

// Whenever the cluster uses TLS, the workers' block servers do too, with
// mutual certificates of the cluster's CA, so blocks and the token they
// carry never cross the network in clear.

func blockServerTLS(cfg Config) []blocks.ServerOption {
	if cfg.TLS == nil || cfg.ServerTLS == nil {
		return nil
	}
	s := cfg.ServerTLS.Clone()
	s.ClientAuth = tls.RequireAndVerifyClientCert
	s.ClientCAs = cfg.TLS.RootCAs
	return []blocks.ServerOption{blocks.WithServerTLS(s)}
}

func blockClientTLS(cfg Config) []blocks.ClientOption {
	if cfg.TLS == nil || cfg.ServerTLS == nil {
		return nil
	}
	c := cfg.TLS.Clone()
	c.Certificates = cfg.ServerTLS.Certificates
	return []blocks.ClientOption{blocks.WithClientTLS(c)}
}
