package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Errors of the package; test them with errors.Is.
var (
	// ErrInvalidSpec: a Spec or ControllerConfig field is out of range.
	ErrInvalidSpec = errors.New("deploy: invalid spec")
)

// ReplicaFunc is the map_batches function a replica's job runs (Register).
const ReplicaFunc = "sluice_serve_replica"

// JobPrefix starts the name of every replica job: serve-NAME (the
// coordinators list a deployment's jobs by it).
const JobPrefix = api.DeploymentJobPrefix

// Spec is a deployment: what each replica serves, and how many replicas
// the controller keeps.
type Spec struct {
	// Name names the deployment ([a-z0-9-]+: its jobs are serve-NAME).
	Name string `json:"name"`
	// Model is the model directory, as the workers see it.
	Model string `json:"model"`
	// Args are the flags of `sluice serve` after --model (engine flags,
	// --served-model-name, --api-key...). --host and --port are the
	// replica's: the worker's address and a free port.
	Args []string `json:"args,omitempty"`
	// MinReplicas and MaxReplicas bound what the controller scales to.
	MinReplicas int `json:"min_replicas"`
	MaxReplicas int `json:"max_replicas"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Validate checks the fields.
func (s Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	switch {
	case !nameRE.MatchString(s.Name):
		return bad("Name (--deployment) %q must be lowercase letters, digits and dashes", s.Name)
	case s.Model == "":
		return bad("Model (--model) is empty")
	case s.MinReplicas < 1:
		// The router keeps no queue of its own: a deployment at zero
		// replicas would have no queue to scale up on.
		return bad("MinReplicas (--min-replicas) must be at least 1, got %d", s.MinReplicas)
	case s.MaxReplicas < 1 || s.MaxReplicas < s.MinReplicas:
		return bad("MaxReplicas (--max-replicas, %d) must be at least 1 and at least MinReplicas (--min-replicas, %d)", s.MaxReplicas, s.MinReplicas)
	}
	return nil
}

// Plan is the plan of a replica's job: read the spec file in dir, run
// ReplicaFunc on it (which serves until the job is cancelled), write its
// one-row result under dir/out. Its params carry the replica bounds, which
// the controller reads back from a replica's job.
func Plan(s Spec, dir string) string {
	return fmt.Sprintf("name: %s%s\ndescription: a replica of the sluice serve deployment %s\nparams:\n  min_replicas: %q\n  max_replicas: %q\n"+
		"read:\n  jsonl: %s\nsteps:\n  - map_batches: {fn: %s}\nwrite:\n  jsonl: %s\n  mode: overwrite\n",
		JobPrefix, s.Name, s.Name, strconv.Itoa(s.MinReplicas), strconv.Itoa(s.MaxReplicas),
		strconv.Quote(filepath.Join(dir, "spec.jsonl")), ReplicaFunc, strconv.Quote(filepath.Join(dir, "out")+"/"))
}

// WriteSpec writes the spec as dir/spec.jsonl, the one row a replica's
// job reads; dir must be one the workers share.
func WriteSpec(s Spec, dir string) error {
	b, err := json.Marshal(map[string]string{"spec": string(mustJSON(s))})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "spec.jsonl"), append(b, '\n'), 0o644)
}

// randomID names one run's requests, so that a retried submit applies once.
func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return b
}

// Create writes the spec into dir and submits replicas jobs of it, each
// asking for needs; it returns their ids (the replicas' ids).
func Create(ctx context.Context, cl *api.Client, s Spec, dir string, replicas int, needs state.Resources) ([]string, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if replicas < s.MinReplicas || replicas > s.MaxReplicas {
		return nil, fmt.Errorf("%w: --replicas (%d) must be within --min-replicas (%d) and --max-replicas (%d)", ErrInvalidSpec, replicas, s.MinReplicas, s.MaxReplicas)
	}
	if err := WriteSpec(s, dir); err != nil {
		return nil, err
	}
	plan := Plan(s, dir)
	run := randomID()
	var ids []string
	for i := range replicas {
		id, err := submit(ctx, cl, plan, needs, 0, fmt.Sprintf("serve-%s-%s-%d", s.Name, run, i))
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func submit(ctx context.Context, cl *api.Client, plan string, needs state.Resources, retries int, requestID string) (string, error) {
	var r api.IDResponse
	err := cl.Do(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{RequestID: requestID, File: "serve-replica.yaml", Plan: plan,
		MaxRetries: retries, Needs: needs}, &r)
	if err != nil {
		return "", fmt.Errorf("deploy: submitting a replica: %w", err)
	}
	return r.ID, nil
}
