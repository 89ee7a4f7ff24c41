// Package api holds the coordinators' HTTP/JSON wire types and the client
// that the CLI and the workers use. Every call carries a bearer
// credential (the clients' token, the cluster secret, or a worker's own
// credential: see the coordinator's auth.go); any coordinator answers any
// call (followers forward writes to the leader).
//
//	POST /v1/jobs                  SubmitRequest → IDResponse
//	GET  /v1/jobs                  → []state.Job
//	GET  /v1/jobs/{id}             → JobStatus
//	POST /v1/jobs/{id}/cancel      → IDResponse
//	POST /v1/workers               RegisterRequest → RegisterResponse
//	POST /v1/workers/{id}/heartbeat HeartbeatRequest (may be empty) → HeartbeatResponse
//	POST /v1/workers/{id}/spec     SpecRequest → JobSpec (a job's plan and layout, once per job and worker)
//	POST /v1/tasks/{id}/start      TaskReport → IDResponse
//	POST /v1/tasks/{id}/finish     TaskReport → IDResponse
//	POST /v1/workers/{id}/reports  ReportBatch → ReportBatchResponse (many reports, one Raft entry)
//	POST /v1/cluster/join          JoinRequest → IDResponse (adds a non-voter)
//	POST /v1/cluster/promote       JoinRequest → IDResponse (a caught-up non-voter becomes a voter)
//	GET  /v1/cluster               → ClusterStatus
//	GET  /v1/deployments           → []Deployment (the leader's, from the heartbeats)
//	GET  /v1/deployments/{name}    → Deployment
//	*    /v1/deployments/{name}/v1/... OpenAI API calls, routed to a replica as /v1/...
//	GET  /metrics                  Prometheus text
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Errors of the client.
var (
	ErrUnauthorized = errors.New("api: unauthorized (check the token)")
	ErrNotFound     = errors.New("api: not found")
	ErrUnavailable  = errors.New("api: no coordinator answered")
	ErrConflict     = errors.New("api: conflict") // a stale task report
)

// MaxBody is the largest request body a coordinator reads.
const MaxBody = 4 << 20

// SubmitRequest submits a plan file.
type SubmitRequest struct {
	RequestID string            `json:"request_id"`
	File      string            `json:"file"`
	Plan      string            `json:"plan"`
	Params    map[string]string `json:"params,omitempty"`
	// ScheduledTime and RunID are the run's .ScheduledTime and .RunID
	// (zero: the time the job was submitted, so that every task of it
	// renders the plan alike; empty: the plan's name and that time).
	ScheduledTime time.Time       `json:"scheduled_time,omitzero"`
	RunID         string          `json:"run_id,omitempty"`
	MaxRetries    int             `json:"max_retries"`
	Needs         state.Resources `json:"needs"`
	Locality      string          `json:"locality,omitempty"`
}

// IDResponse answers a write with the id it made or touched. Kind is
// "job" or "schedule" for a submit.
type IDResponse struct {
	ID   string `json:"id"`
	Kind string `json:"kind,omitempty"`
}

// ErrorResponse is the body of every error status.
type ErrorResponse struct {
	Error string `json:"error"`
}

// JobStatus is a job with its tasks and the progress of each stage.
type JobStatus struct {
	Job    state.Job       `json:"job"`
	Tasks  []state.Task    `json:"tasks"`
	Stages []StageProgress `json:"stages,omitempty"`
}

// StageProgress counts a stage's tasks by state and what they produced.
type StageProgress struct {
	Name      string          `json:"name"`
	Kind      state.StageKind `json:"kind,omitempty"`
	Tasks     int             `json:"tasks"`
	Succeeded int             `json:"succeeded"`
	Running   int             `json:"running"` // assigned or running
	Failed    int             `json:"failed"`
	Rows      int64           `json:"rows"`
	Bytes     int64           `json:"bytes"`
	// RowsPerSec is Rows over the time from the stage's first assignment
	// to its last report (or now, while it runs).
	RowsPerSec float64 `json:"rows_per_sec"`
}

// RegisterRequest registers a worker.
type RegisterRequest struct {
	RequestID string          `json:"request_id"`
	ID        string          `json:"id"`
	Addr      string          `json:"addr"`
	Resources state.Resources `json:"resources"`
}

// MaxHeartbeatWait is the longest a heartbeat's answer waits for a change
// of the worker's assignments (its ?wait=).
const MaxHeartbeatWait = 5 * time.Second

// Digest names a set of assignments by their tasks and attempts, for a
// heartbeat's ?known=: the answer waits while the set is the same.
func Digest(tasks []Assignment) string {
	keys := make([]string, len(tasks))
	for i, a := range tasks {
		keys[i] = fmt.Sprintf("%s/%d", a.Task.ID, a.Task.Attempt)
	}
	slices.Sort(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%d-%x", len(keys), h.Sum64())
}

// HeartbeatRequest is what a heartbeat carries: the serving replicas the
// worker runs, with their load. The leader keeps them in memory (not in
// the Raft log): they are as old as the worker's last heartbeat, and a
// new leader knows them after one heartbeat of each worker.
type HeartbeatRequest struct {
	Replicas []Replica `json:"replicas,omitempty"`
}

// Replica is one server of a deployment (sluice serve --coordinators),
// as its worker reports it.
type Replica struct {
	Deployment string `json:"deployment"`
	// ID is the replica's id: the id of the job it runs as.
	ID  string `json:"id"`
	URL string `json:"url"` // http://host:port, on the worker's address
	// Running and Waiting are the server's requests in its running batch
	// and waiting for it, as the replica last read them.
	Running int `json:"running"`
	Waiting int `json:"waiting"`
	// Worker and Reported are filled in by the coordinator: who reported
	// the replica, and when.
	Worker   string    `json:"worker,omitempty"`
	Reported time.Time `json:"reported,omitzero"`
}

// DeploymentJobPrefix starts the name of a deployment's replica jobs:
// the jobs of deployment NAME are named serve-NAME.
const DeploymentJobPrefix = "serve-"

// Deployment is the replicas of one deployment that live workers report
// and its replica jobs not done (a replica starting, or waiting for a
// worker, has a job but no report yet), each sorted by id.
type Deployment struct {
	Name     string          `json:"name"`
	Replicas []Replica       `json:"replicas"`
	Jobs     []DeploymentJob `json:"jobs"`
}

// DeploymentJob is one replica job of a deployment.
type DeploymentJob struct {
	ID        string         `json:"id"`
	State     state.JobState `json:"state"`
	Submitted time.Time      `json:"submitted"`
}

// HeartbeatResponse lists the tasks assigned to or running on the worker;
// a task it runs that is missing was cancelled or moved.
type HeartbeatResponse struct {
	Tasks []Assignment `json:"tasks"`
	// Free are prefixes of block ids no task needs any more.
	Free []string `json:"free,omitempty"`
}

// Assignment is a task with what a worker needs to run it. The job's plan
// and layout are not in it: Spec names them by their hash, and the worker
// fetches the JobSpec once per job (and once more after planning, when the
// layout joins it) and fills in Job from its cache before the task runs.
type Assignment struct {
	Task state.Task `json:"task"`
	// Spec is the hash of the job's JobSpec (JobSpec.Hash).
	Spec string `json:"spec"`
	// StageTasks is how many tasks the task's stage has.
	StageTasks int `json:"stage_tasks"`
	// Kind is what the task does (its stage's kind).
	Kind state.StageKind `json:"kind,omitempty"`
	// Inputs are, for each stage the task reads, its producers.
	Inputs []Input `json:"inputs,omitempty"`
	// Failing tells a commit task that the job failed: remove the staged
	// output instead of publishing it.
	Failing bool `json:"failing,omitempty"`
	// Workers, CPUs and GPUs are the live workers and what they have, for
	// a planning task to size the exchanges and place GPU stages.
	Workers int `json:"workers,omitempty"`
	CPUs    int `json:"cpus,omitempty"`
	GPUs    int `json:"gpus,omitempty"`

	// Job is the job's spec, which the worker fills in from its cache by
	// Spec (never on the wire).
	Job *JobSpec `json:"-"`
}

// SpecRequest asks for the spec of a job.
type SpecRequest struct {
	Job string `json:"job"`
}

// JobSpec is what every task of a job shares: the plan file as submitted,
// what renders it, and (after planning) the physical layout. A worker keeps
// it, and what it compiles from it, by Hash.
type JobSpec struct {
	Hash          string            `json:"hash"`
	Job           string            `json:"job"`
	File          string            `json:"file"`
	Plan          string            `json:"plan"`
	Params        map[string]string `json:"params,omitempty"`
	ScheduledTime time.Time         `json:"scheduled_time,omitzero"`
	RunID         string            `json:"run_id,omitempty"`
	// Layout is the job's physical plan, for the tasks after planning.
	Layout []byte `json:"layout,omitempty"`
}

// SpecHash is the hash of a spec's content (every field but Hash): the
// same spec always has the same hash, and a spec with a layout another
// than without.
func SpecHash(s JobSpec) string {
	s.Hash = ""
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Input is one stage a task reads, with the succeeded producer tasks of it
// in task order.
type Input struct {
	Stage     int        `json:"stage"` // the job's stage index
	Producers []Producer `json:"producers"`
	// Runs are producers given as runs of consecutive indexes with one
	// attempt, whose output is in storage (no address): a commit task's
	// input, so its assignment stays a few bytes when its stage has a
	// million tasks (it listed each, BENCHMARKS.md, cluster/noop-1m). A
	// reader takes Producers and Runs together (Each).
	Runs []ProducerRun `json:"runs,omitempty"`
}

// ProducerRun is producers Index to Index+Count-1 of a stage, each at
// Attempt.
type ProducerRun struct {
	Index   int `json:"index"`
	Count   int `json:"count"`
	Attempt int `json:"attempt"`
}

// Each calls fn with the index and attempt of each producer of in, those
// of Producers then those of Runs, until fn returns an error.
func (in Input) Each(fn func(index, attempt int) error) error {
	for _, p := range in.Producers {
		if err := fn(p.Index, p.Attempt); err != nil {
			return err
		}
	}
	for _, r := range in.Runs {
		for i := r.Index; i < r.Index+r.Count; i++ {
			if err := fn(i, r.Attempt); err != nil {
				return err
			}
		}
	}
	return nil
}

// Producer is a task whose output a task reads, and where it is.
type Producer struct {
	ID      string `json:"id"`
	Index   int    `json:"index"`
	Attempt int    `json:"attempt"`
	Addr    string `json:"addr"` // the worker's advertised address (its block server)
	// Missing is set when the producer's output does not exist (any
	// more): it runs again before the task can.
	Missing bool `json:"missing,omitempty"`
}

// RegisterResponse answers a registration with the worker's credential:
// the bearer token of its own heartbeats, reports and later
// registrations, and of nothing else. The worker keeps it in its data
// directory; a registered worker id is refused to any other credential.
type RegisterResponse struct {
	ID         string `json:"id"`
	Kind       string `json:"kind,omitempty"`
	Credential string `json:"credential"`
}

// TaskReport is a worker's report on one attempt of a task.
type TaskReport struct {
	RequestID string `json:"request_id"`
	Worker    string `json:"worker"`
	Attempt   int    `json:"attempt"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	// Task and Phase ("start" or "finish") name the report in a
	// ReportBatch; the single-report paths carry them in the URL.
	Task  string `json:"task,omitempty"`
	Phase string `json:"phase,omitempty"`

	Bytes int64 `json:"bytes,omitempty"`
	// A planning task's layout and the stages it makes.
	Layout []byte        `json:"layout,omitempty"`
	Stages []state.Stage `json:"stages,omitempty"`
	// Lost are the producer tasks whose output could not be fetched.
	Lost []string `json:"lost,omitempty"`
	// Output are the files a commit task published.
	Output []string `json:"output,omitempty"`
}

// Command is the report as a state command.
func (r TaskReport) Command(op state.Op, task string) state.Command {
	return state.Command{Op: op, RequestID: r.RequestID, ID: task, Worker: r.Worker, Attempt: r.Attempt,
		OK: r.OK, Error: r.Error, Rows: r.Rows, Bytes: r.Bytes, Layout: r.Layout, Stages: r.Stages, Lost: r.Lost, Output: r.Output}
}

// MaxReports is the most reports one ReportBatch may carry.
const MaxReports = 10_000

// ReportBatch is many task reports of one worker, applied as one Raft
// entry (each report still applies once, by its request id).
type ReportBatch struct {
	Reports []TaskReport `json:"reports"`
}

// ReportBatchResponse answers a ReportBatch, one result per report in
// order: Error is empty when it applied; Stale when it was refused as an
// old attempt's (or another worker's), and must not be sent again.
type ReportBatchResponse struct {
	Results []ReportResult `json:"results"`
}

// ReportResult is the outcome of one report of a batch.
type ReportResult struct {
	Task  string `json:"task"`
	Error string `json:"error,omitempty"`
	Stale bool   `json:"stale,omitempty"`
}

// JoinRequest asks the leader to add a coordinator as a voter.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// ClusterStatus is the coordinators and the workers.
type ClusterStatus struct {
	Node    string         `json:"node"` // the node that answered
	Leader  string         `json:"leader"`
	Term    uint64         `json:"term"`
	Nodes   []NodeStatus   `json:"nodes"`
	Workers []WorkerStatus `json:"workers"`
	Tasks   map[string]int `json:"tasks"`
}

// Voters counts the coordinators that are voters (a joining one is a
// non-voter until it has caught up).
func (s ClusterStatus) Voters() int {
	n := 0
	for _, x := range s.Nodes {
		if x.Suffrage == "Voter" {
			n++
		}
	}
	return n
}

// NodeStatus is one coordinator.
type NodeStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// WorkerStatus is one worker with what it has free.
type WorkerStatus struct {
	state.Worker
	Free  state.Resources `json:"free"`
	Tasks int             `json:"tasks"`
}

// Client calls the coordinators, trying each address in turn.
type Client struct {
	URLs  []string // http://host:port
	Token string
	HTTP  *http.Client
	// Retry is how long Do keeps trying when no coordinator can take the
	// call (during an election, say); 0 tries each address once.
	Retry time.Duration

	mu   sync.Mutex
	next int // the address that answered last
}

// NewClient is a client of the coordinators at urls ("host:port" gets
// http://).
func NewClient(urls []string, token string) *Client {
	c := &Client{Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}, Retry: 30 * time.Second}
	for _, u := range urls {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		c.URLs = append(c.URLs, strings.TrimRight(u, "/"))
	}
	return c
}

// SetTLS makes the client trust the coordinators' certificates with cfg
// (nil keeps the defaults); addresses without a scheme then get https://.
func (c *Client) SetTLS(cfg *tls.Config) {
	if cfg == nil {
		return
	}
	c.HTTP = &http.Client{Timeout: c.HTTP.Timeout, Transport: &http.Transport{TLSClientConfig: cfg}}
	for i, u := range c.URLs {
		c.URLs[i] = strings.Replace(u, "http://", "https://", 1)
	}
}

// SetToken replaces the bearer token, safely while calls are in flight
// (a worker switches to its own credential once registered).
func (c *Client) SetToken(tok string) {
	c.mu.Lock()
	c.Token = tok
	c.mu.Unlock()
}

// Do sends one call; in and out may be nil. A coordinator that cannot be
// reached, or answers 502/503, is skipped for the next one; when none
// takes the call, Do tries them again with backoff for up to Retry. Writes
// that carry a request id are safe to retry.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	deadline := time.Now().Add(c.Retry)
	wait := 50 * time.Millisecond
	for {
		err := c.round(ctx, method, path, in, out)
		if !errors.Is(err, ErrUnavailable) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (c *Client) round(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	ctype := "application/json"
	if w, ok := in.(wireBody); ok { // the hot worker calls (wire.go)
		body, ctype = w.AppendWire(nil), ContentTypeBinary
	} else if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no coordinator addresses", ErrUnavailable)
	}
	c.mu.Lock()
	start := c.next
	c.mu.Unlock()
	var last error
	for i := range c.URLs {
		k := (start + i) % len(c.URLs)
		err := c.do(ctx, c.URLs[k]+path, method, ctype, body, out)
		if err == nil || !retryable(err) {
			if err == nil {
				c.mu.Lock()
				c.next = k
				c.mu.Unlock()
			}
			return err
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, last)
}

type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusServiceUnavailable || se.code == http.StatusBadGateway
	}
	if certificateError(err) {
		return false // no other coordinator, nor a later try, changes the certificate
	}
	var ue *url.Error
	return errors.As(err, &ue) && !errors.Is(err, context.Canceled)
}

// certificateError reports whether err is a TLS certificate failure (an
// unknown authority, a name mismatch, an expired or a refused
// certificate), which retrying cannot cure.
func certificateError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
		ae tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		(errors.As(err, &ae) && (ae == 42 || ae == 43 || ae == 44 || ae == 45 || ae == 46 || ae == 48 || ae == 116))
}

func (c *Client) do(ctx context.Context, url, method, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	c.mu.Lock()
	tok := c.Token
	c.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", ctype)
	wout, binOut := out.(wireAnswer)
	if binOut {
		req.Header.Set("Accept", ContentTypeBinary)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case resp.StatusCode >= 300:
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, e.Error)
		case http.StatusConflict:
			return fmt.Errorf("%w: %s", ErrConflict, e.Error)
		case http.StatusBadRequest:
			return errors.New(e.Error)
		}
		return &statusError{code: resp.StatusCode, msg: e.Error}
	}
	if binOut && resp.Header.Get("Content-Type") == ContentTypeBinary {
		return wout.ReadWire(data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
