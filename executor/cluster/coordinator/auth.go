package coordinator

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Who may call what. Three credentials reach the API:
//
//   - the cluster secret (Config.Secret): coordinators and operators; any
//     call but another worker's, and the only one that may join, promote or
//     remove a coordinator;
//   - the token (Config.Token): clients (submit, status, cancel) and
//     workers registering for the first time;
//   - a worker's credential, given to it at registration: that worker's own
//     heartbeats, reports and registration, nothing else.
//
// A worker's credential is an HMAC of its id under a key derived from the
// cluster secret, so every coordinator checks it without storing it and
// no secret enters the replicated state.
type role int

const (
	roleNone    role = iota
	roleClient       // the token
	roleWorker       // one worker's credential
	roleCluster      // the cluster secret
)

// caller is who sent a request; worker is set for roleWorker.
type caller struct {
	role   role
	worker string
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// workerCredPrefix starts every worker credential.
const workerCredPrefix = "sw1."

// WorkerCredential is the credential of worker id in the cluster whose
// secret is secret.
func WorkerCredential(secret, id string) string {
	m := hmac.New(sha256.New, deriveKey(secret, "sluice worker credential v1"))
	m.Write([]byte(id))
	return workerCredPrefix + id + "." + hex.EncodeToString(m.Sum(nil))
}

// identify maps a bearer token to its caller.
func (c *Coordinator) identify(bearer string) caller {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch {
	case eq(bearer, c.cfg.secret()):
		return caller{role: roleCluster}
	case eq(bearer, c.cfg.Token):
		return caller{role: roleClient}
	case strings.HasPrefix(bearer, workerCredPrefix):
		rest := bearer[len(workerCredPrefix):]
		if i := strings.LastIndexByte(rest, '.'); i > 0 {
			if id := rest[:i]; eq(bearer, WorkerCredential(c.cfg.secret(), id)) {
				return caller{role: roleWorker, worker: id}
			}
		}
	}
	return caller{}
}

// routes by the credential they need; a route not listed takes the token
// or the secret.
var (
	clusterRoutes = map[string]bool{
		"POST /v1/cluster/join": true, "POST /v1/cluster/remove": true, "POST /v1/cluster/promote": true,
	}
	// Routes of one worker: its credential only (the {id} of the path, or
	// the worker named in the report, checked by the handler).
	workerRoutes = map[string]bool{
		"POST /v1/workers/{id}/heartbeat": true, "POST /v1/workers/{id}/reports": true,
		"POST /v1/workers/{id}/spec": true,
		"POST /v1/tasks/{id}/start":  true, "POST /v1/tasks/{id}/finish": true,
	}
)

var errForbidden = errors.New("this credential may not make this call")

// auth refuses calls without a credential that may make them, and logs
// them without the credential.
func (c *Coordinator) auth(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		who := c.identify(bearer)
		if who.role == roleNone {
			c.log.Warn("unauthorized request", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			writeError(rw, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		_, pattern := mux.Handler(r)
		if err := allowed(who, pattern, r); err != nil {
			c.log.Warn("forbidden request", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(rw, http.StatusForbidden, err)
			return
		}
		r.Body = http.MaxBytesReader(rw, r.Body, api.MaxBody)
		mux.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), callerKey{}, who)))
	})
}

func allowed(who caller, pattern string, r *http.Request) error {
	switch {
	case clusterRoutes[pattern]:
		if who.role != roleCluster {
			return fmt.Errorf("%w: %s needs the cluster secret (--cluster-secret-file)", errForbidden, pattern)
		}
	case workerRoutes[pattern]:
		if who.role != roleWorker {
			return fmt.Errorf("%w: %s needs the worker's own credential (given at registration)", errForbidden, pattern)
		}
		// The mux has not set the path's values yet: /v1/workers/{id}/...
		if parts := strings.Split(r.URL.Path, "/"); strings.HasPrefix(pattern, "POST /v1/workers/") &&
			(len(parts) < 4 || parts[3] != who.worker) {
			return fmt.Errorf("%w: worker %s's credential cannot call %s", errForbidden, who.worker, r.URL.Path)
		}
	case pattern == "POST /v1/workers":
		// Anyone known may register; the handler checks that a worker's
		// credential registers only itself and that the token registers
		// only a new worker.
	case who.role == roleWorker:
		return fmt.Errorf("%w: a worker's credential serves only its own calls, not %s", errForbidden, pattern)
	}
	return nil
}

// register registers a worker and answers its credential. The token
// registers only a new id; a registered id registers again only with its
// own credential, so no one takes over a live worker's id.
func (c *Coordinator) register(rw http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if !decode(rw, r, &req) {
		return
	}
	if req.ID == "" || req.Resources.CPU < 0 || req.Resources.GPU < 0 || req.Resources.Memory < 0 {
		writeError(rw, http.StatusBadRequest, errors.New("register: want a worker id and non-negative resources"))
		return
	}
	who := callerOf(r)
	if who.role == roleWorker && who.worker != req.ID {
		writeError(rw, http.StatusForbidden, fmt.Errorf("%w: worker %s's credential cannot register worker %s", errForbidden, who.worker, req.ID))
		return
	}
	known := false
	c.fsm.read(func(s *state.State) { known = s.Workers[req.ID] != nil })
	if known && who.role != roleWorker {
		writeError(rw, http.StatusConflict, fmt.Errorf("register: worker %s is registered already: it registers again only with its own credential (the worker-credential file in its --data-dir); a new worker needs its own --data-dir", req.ID))
		return
	}
	res, ok := c.applyOrFail(rw, state.Command{Op: state.OpRegister, RequestID: req.RequestID,
		Register: &state.Worker{ID: req.ID, Addr: req.Addr, Resources: req.Resources}})
	switch {
	case !ok:
	case res.Err != nil:
		writeError(rw, http.StatusBadRequest, res.Err)
	default:
		writeJSON(rw, http.StatusOK, api.RegisterResponse{ID: req.ID, Kind: "worker", Credential: WorkerCredential(c.cfg.secret(), req.ID)})
	}
}
