package coordinator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The cluster secret is never the client token: a token holder who knew
// it could forge Raft traffic, join coordinators and compute every
// worker's credential. A coordinator that bootstraps a new cluster without
// a secret generates one into its data directory (SecretFile, mode 0600);
// the coordinators that join must be given it (--cluster-secret-file),
// and a restart of the bootstrapping node reads it back. Workers never
// need it.

// SecretFile is the file under a coordinator's data directory that holds
// the cluster secret it generated at bootstrap.
const SecretFile = "cluster-secret"

// minSecret is the shortest secret accepted (cli.LoadSecret asks as much
// of --cluster-secret-file).
const minSecret = 16

// ErrNoSecret is what Start returns when the node needs the cluster's
// secret and was not given it.
var ErrNoSecret = errors.New("coordinator: no cluster secret")

// resolveSecret sets c.cfg.Secret when it is empty: from the data
// directory's SecretFile, or, for a new bootstrap, a fresh random one
// written there. A node that joins, or that holds Raft state without the
// file, needs the secret given.
func (c *Coordinator) resolveSecret() error {
	cfg := &c.cfg
	file := filepath.Join(cfg.DataDir, SecretFile)
	if cfg.Secret == "" {
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			s := strings.TrimSpace(string(b))
			if len(s) < minSecret {
				return fmt.Errorf("%w: %s holds %d characters, want at least %d: restore it, or give --cluster-secret-file", ErrNoSecret, file, len(s), minSecret)
			}
			cfg.Secret = s
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("coordinator: %w", err)
		case cfg.Join != "":
			return fmt.Errorf("%w: a coordinator that joins (--join %s) needs the cluster's secret: give --cluster-secret-file FILE "+
				"(the file the bootstrapping coordinator was given, or the %s it wrote in its --data-dir)", ErrNoSecret, cfg.Join, SecretFile)
		case !cfg.Bootstrap || HasState(cfg.DataDir):
			return fmt.Errorf("%w: %s holds Raft state but no %s: give --cluster-secret-file FILE, the secret of the cluster this node belongs to",
				ErrNoSecret, cfg.DataDir, SecretFile)
		default:
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return fmt.Errorf("coordinator: generating the cluster secret: %w", err)
			}
			s := hex.EncodeToString(key)
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("coordinator: writing the cluster secret: %w", err)
			}
			_, werr := f.WriteString(s + "\n")
			if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
				os.Remove(file)
				return fmt.Errorf("coordinator: writing the cluster secret %s: %w", file, err)
			}
			cfg.Secret = s
			c.log.Info("generated the cluster secret: give this file to the coordinators that join (--cluster-secret-file), to no one else", "file", file)
		}
	}
	if cfg.Secret == cfg.Token {
		return errors.New("coordinator: Secret (--cluster-secret-file) equals Token (--token-file): the cluster secret must differ from the clients' token, which workers and clients hold")
	}
	if len(cfg.Secret) < minSecret {
		return fmt.Errorf("coordinator: Secret (--cluster-secret-file) has %d characters, want at least %d", len(cfg.Secret), minSecret)
	}
	return nil
}

// secret is the cluster secret (set by resolveSecret before Raft starts).
func (c *Config) secret() string { return c.Secret }
