package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/executor/cluster/api"
)

// A worker registers with the token once; the coordinators answer its own
// credential, which it keeps in DataDir/worker-credential (mode 0600) and
// uses for every later call, registrations included. The coordinators
// accept a worker's heartbeats and reports only with its credential.

const credentialFile = "worker-credential"

func loadCredential(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, credentialFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// keepCredential stores cred and makes it the bearer of every later call.
func (w *Worker) keepCredential(cred string) error {
	if cred == "" {
		return nil // a coordinator that gives none takes the token (an older version)
	}
	if cred != loadCredential(w.cfg.DataDir) {
		file := filepath.Join(w.cfg.DataDir, credentialFile)
		if err := os.WriteFile(file, []byte(cred+"\n"), 0o600); err != nil {
			return fmt.Errorf("worker: keeping the credential: %w", err)
		}
	}
	w.cl.SetToken(cred)
	return nil
}

// registerFailure is the error that stops the worker for err, a failed
// registration, or nil when registering again may succeed.
func registerFailure(dir string, err error) error {
	file := filepath.Join(dir, credentialFile)
	switch {
	case errors.Is(err, api.ErrUnauthorized) && loadCredential(dir) != "":
		return fmt.Errorf("worker: register: %w: the credential in %s is not this cluster's (its cluster secret changed?): remove the file to register with the token again", err, file)
	case errors.Is(err, api.ErrUnauthorized):
		return fmt.Errorf("worker: register: %w", err)
	case errors.Is(err, api.ErrConflict):
		return fmt.Errorf("worker: register: %w (this --data-dir's worker id is registered, and %s does not hold its credential)", err, file)
	}
	return nil
}
