// Package worker is a Sluice worker: it registers with the coordinators,
// heartbeats, runs the tasks assigned to it and reports each attempt's
// result. A task it runs that the coordinators no longer assign to it
// (cancelled, or moved after this worker was declared dead) is stopped.
// This package is unstable.
package worker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/blocks"
	"github.com/sluicehq/sluice/executor/cluster/state"
)

// Config configures a worker.
type Config struct {
	Coordinators []string // API addresses
	DataDir      string   // holds the worker's id
	Addr         string   // host:port the worker advertises
	Resources    state.Resources
	Token        string
	Heartbeat    time.Duration // default 1 s
	TLS          *tls.Config   // trusts the coordinators' certificates (nil: plain HTTP)
	// ServerTLS holds the worker's own certificate: with TLS, the block
	// server serves over TLS with it and requires peers' certificates of
	// TLS.RootCAs, and the block client presents it.
	ServerTLS *tls.Config
	Logger    *slog.Logger

	// BlockMemory is the bytes of blocks the worker keeps in memory before
	// it spills them to DataDir/blocks (default 1 GiB).
	BlockMemory int64
	// SplitBytes is the input bytes a scan task reads (0: dist's default),
	// for the jobs this worker lays out.
	SplitBytes int64
	// TaskDelay makes each task of a plan job wait this long before it
	// runs (testing: stretches a short job so that chaos tests can kill
	// processes while its tasks run; 0 in production).
	TaskDelay time.Duration
	// EnvAllow are the environment variables of this worker that plans'
	// templates may read (plans.Vars.EnvAllow; sluice worker --env-allow).
	EnvAllow []string
	// AllowedPaths are the directories and URL prefixes plans may write
	// below (commit.CheckAllowed; sluice worker --allowed-paths). Empty:
	// anywhere.
	AllowedPaths []string

	// Run runs one task, replacing the default (a plan job's planning,
	// one task of its layout, or its commit). Tests and benchmarks
	// replace it; it is the worker's only seam.
	Run func(ctx context.Context, a api.Assignment) (Outcome, error)
}

// Validate checks the config and names the field at fault.
func (c *Config) Validate() error {
	switch {
	case len(c.Coordinators) == 0:
		return errors.New("worker: Coordinators (--coordinators) is empty")
	case c.DataDir == "":
		return errors.New("worker: DataDir (--data-dir) is empty")
	case c.Token == "":
		return errors.New("worker: Token (--token-file) is empty")
	case c.Resources.CPU <= 0:
		return fmt.Errorf("worker: Resources.CPU (%d) must be positive", c.Resources.CPU)
	case c.TLS != nil && c.Addr != "" && (c.ServerTLS == nil || len(c.ServerTLS.Certificates) == 0 || c.TLS.RootCAs == nil):
		return errors.New("worker: the cluster uses TLS (--tls-ca), so the block server at --addr needs the worker's certificate too: give --tls-cert and --tls-key (signed by the --tls-ca CA)")
	case c.Addr == "" && c.Run == nil:
		return errors.New("worker: Addr (--addr) is empty: plan jobs need the host:port where other workers fetch this worker's blocks")
	}
	return nil
}

// Worker is a running worker.
type Worker struct {
	cfg Config
	id  string
	cl  *api.Client
	log *slog.Logger

	mu      sync.Mutex
	running map[string]*run // by task id
	done    map[string]bool // "task/attempt" finished here: never run again
	wg      sync.WaitGroup

	// Reports wait in queue until the reporter sends them, many in one
	// request (one Raft entry).
	rmu   sync.Mutex
	queue []pending
	rwake chan struct{}

	// Blocks: kept in store, served at cfg.Addr, fetched from others by
	// flight. store is nil when the worker has no address.
	store  *blocks.Store
	flight *blocks.Client
	jobs   jobCache
	specs  specCache

	// replicas are the serving replicas its tasks run (Announce), which
	// its heartbeats carry.
	replicas replicaSet
}

// pending is a queued report; ok, when set, hears whether it applied.
type pending struct {
	rep api.TaskReport
	ok  chan answer
}

// answer is what became of a report.
type answer int

const (
	unanswered answer = iota // no coordinator answered it (stopped, or the whole batch refused)
	applied                  // recorded in the replicated state
	refused                  // a coordinator answered that it was not recorded (a stale attempt, say)
)

type run struct {
	attempt int
	cancel  context.CancelFunc
}

// New makes a worker; its id is kept in DataDir so a restarted worker is
// the same worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BlockMemory == 0 {
		cfg.BlockMemory = 1 << 30
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id, err := loadID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cl := api.NewClient(cfg.Coordinators, cfg.Token)
	cl.SetTLS(cfg.TLS)
	keepConns(cl.HTTP)
	if cred := loadCredential(cfg.DataDir); cred != "" {
		cl.SetToken(cred) // registered before: its own credential from now on
	}
	w := &Worker{cfg: cfg, id: id, cl: cl,
		log: cfg.Logger.With("worker", id), running: map[string]*run{}, done: map[string]bool{},
		rwake: make(chan struct{}, 1), flight: blocks.NewClient(cfg.Token, blockClientTLS(cfg)...)}
	w.jobs.envAllow = cfg.EnvAllow
	if cfg.Addr != "" {
		if w.store, err = blocks.NewStore(filepath.Join(cfg.DataDir, "blocks"), cfg.BlockMemory, memory.DefaultAllocator); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
	}
	return w, nil
}

// keepConns keeps a connection to a coordinator for each call a worker
// has in flight at once (a heartbeat's long poll, reportsInFlight report
// batches, a spec): with net/http's default of 2 idle connections per
// host, each burst closed and dialed connections again (5% of the
// cluster's CPU in the noop-100k profile).
func keepConns(c *http.Client) {
	tr, ok := c.Transport.(*http.Transport)
	if c.Transport == nil {
		tr, ok = http.DefaultTransport.(*http.Transport).Clone(), true
		c.Transport = tr
	}
	if ok {
		tr.MaxIdleConnsPerHost = reportsInFlight + 4
	}
}

// serve serves the worker's blocks at its address until ctx ends.
func (w *Worker) serve(ctx context.Context) error {
	lis, err := net.Listen("tcp", w.cfg.Addr)
	if err != nil {
		return fmt.Errorf("worker: block server: %w", err)
	}
	if _, port, _ := net.SplitHostPort(w.cfg.Addr); port == "0" {
		w.cfg.Addr = lis.Addr().String() // advertise the port it got
	}
	srv := blocks.NewServer(w.store, append(blockServerTLS(w.cfg), blocks.WithToken(w.cfg.Token))...)
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		if err := srv.Serve(lis); err != nil {
			w.log.Error("block server stopped", "err", err)
		}
	}()
	go func() {
		defer w.wg.Done()
		<-ctx.Done()
		srv.Stop()
		w.flight.Close()
	}()
	return nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.id }

func loadID(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("worker: %w", err)
	}
	file := filepath.Join(dir, "worker-id")
	if b, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var b [6]byte
	rand.Read(b[:])
	id := "w-" + hex.EncodeToString(b[:])
	if err := os.WriteFile(file, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("worker: %w", err)
	}
	return id, nil
}

// Run registers and heartbeats until ctx ends, then stops its tasks and
// waits for them.
func (w *Worker) Run(ctx context.Context) error {
	defer w.wg.Wait()
	defer w.stopAll()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the wait: stops the reporter
	if w.store != nil {
		if err := w.serve(ctx); err != nil {
			return err
		}
	}
	w.wg.Add(1)
	go func() { defer w.wg.Done(); w.reporter(ctx) }()
	registered := false
	known := "" // the digest of the assignments last heard
	t := time.NewTicker(w.cfg.Heartbeat)
	defer t.Stop()
	for {
		again := false // heartbeat again at once
		if !registered {
			var reg api.RegisterResponse
			err := w.cl.Do(ctx, http.MethodPost, "/v1/workers", api.RegisterRequest{
				ID: w.id, Addr: w.cfg.Addr, Resources: w.cfg.Resources}, &reg)
			if err := registerFailure(w.cfg.DataDir, err); err != nil {
				return err
			}
			if err == nil {
				if err := w.keepCredential(reg.Credential); err != nil {
					return err
				}
				registered = true
				w.log.Info("registered", "resources", w.cfg.Resources)
			} else if ctx.Err() == nil {
				w.log.Warn("register failed; retrying", "err", err)
			}
		}
		if registered {
			// A long poll: the answer comes when the assignments change,
			// or after one heartbeat period.
			var hb api.HeartbeatResponse
			path := "/v1/workers/" + w.id + "/heartbeat"
			if known != "" {
				path += "?wait=" + w.cfg.Heartbeat.String() + "&known=" + known
			}
			start := time.Now()
			err := w.cl.Do(ctx, http.MethodPost, path, api.HeartbeatRequest{Replicas: w.replicas.list()}, &hb)
			switch {
			case errors.Is(err, api.ErrNotFound):
				registered, known = false, ""
			case err != nil:
				known = ""
				if ctx.Err() == nil {
					w.log.Warn("heartbeat failed", "err", err)
				}
			default:
				digest := api.Digest(hb.Tasks)
				// At once after news, or after a poll that waited (a
				// coordinator that answers at once waits for the ticker).
				again = digest != known || time.Since(start) >= w.cfg.Heartbeat/2
				known = digest
				w.sync(ctx, hb.Tasks)
				if w.store != nil {
					for _, p := range hb.Free {
						w.store.DeletePrefix(p)
					}
				}
			}
		}
		if again {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sync starts the assigned tasks it does not run and stops the ones it
// runs that are no longer assigned to it.
func (w *Worker) sync(ctx context.Context, tasks []api.Assignment) {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := map[string]int{}
	for _, a := range tasks {
		want[a.Task.ID] = a.Task.Attempt
		if r, ok := w.running[a.Task.ID]; ok && r.attempt == a.Task.Attempt || w.done[key(a.Task)] {
			continue
		}
		if r, ok := w.running[a.Task.ID]; ok {
			r.cancel()
		}
		rctx, cancel := context.WithCancel(ctx)
		w.running[a.Task.ID] = &run{attempt: a.Task.Attempt, cancel: cancel}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.runTask(ctx, rctx, a)
			cancel()
		}()
	}
	for id, r := range w.running {
		if at, ok := want[id]; !ok || at != r.attempt {
			r.cancel()
		}
	}
}

func key(t state.Task) string { return fmt.Sprintf("%s/%d", t.ID, t.Attempt) }

func (w *Worker) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.running {
		r.cancel()
	}
}

// runTask runs one assigned attempt under ctx, which ends when the task
// is no longer assigned here; root is the worker's own.
func (w *Worker) runTask(root, ctx context.Context, a api.Assignment) {
	t := a.Task
	defer func() {
		w.mu.Lock()
		if r := w.running[t.ID]; r != nil && r.attempt == t.Attempt {
			delete(w.running, t.ID)
		}
		w.done[key(t)] = true
		w.mu.Unlock()
	}()
	log := w.log.With("task", t.ID, "attempt", t.Attempt)
	ctx = context.WithValue(ctx, taskKey{}, taskInfo{w: w, t: Task{Worker: w.id, Addr: w.cfg.Addr, Job: t.Job, ID: t.ID,
		Needs: t.Needs, GPUs: w.cfg.Resources.GPU}})
	rep := api.TaskReport{Worker: w.id, Attempt: t.Attempt, Task: t.ID, Phase: string(state.OpStart)}
	rep.RequestID = fmt.Sprintf("%s/%s/%d/start", w.id, t.ID, t.Attempt)
	if t.State == state.TaskAssigned {
		// A planning or commit task starts once its start is recorded (a
		// commit publishes: never for an attempt taken away already). An
		// exec task runs at once, its start sent beside: its output only
		// counts if its finish is recorded (a refused sink attempt's files
		// are removed), so the wait would only cost a commit round trip.
		wait := a.Kind != state.StageExec
		if w.report(ctx, rep, wait) != applied && wait {
			return
		}
	}
	log.Info("running", "kind", a.Kind)
	var out Outcome
	e, err := w.specs.get(ctx, a, w.fetchSpec)
	if e != nil {
		a.Job = e.spec
	}
	if err != nil {
		// The attempt fails (and is retried) unless it was stopped.
	} else if w.cfg.Run != nil {
		out, err = w.cfg.Run(ctx, a)
	} else {
		out, err = w.execute(ctx, a)
	}
	if ctx.Err() != nil {
		log.Info("stopped: no longer assigned here")
		if out.Staged != "" { // never reported: another attempt will be published
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			w.discard(dctx, a, out.Staged)
			cancel()
		}
		return
	}
	rep.RequestID = fmt.Sprintf("%s/%s/%d/finish", w.id, t.ID, t.Attempt)
	rep.Phase = string(state.OpFinish)
	rep.OK, rep.Rows, rep.Bytes = err == nil, out.Rows, out.Bytes
	rep.Layout, rep.Stages, rep.Lost, rep.Output = out.Layout, out.Stages, out.Lost, out.Output
	if r := w.jobs.refs(t.Job); r != nil {
		// The env values the plan read stay on this worker (the layout
		// and stage names were hidden when made).
		err = hidden(r, err)
		for i, o := range rep.Output {
			rep.Output[i] = r.Hide(o)
		}
	}
	if err != nil {
		rep.Error = err.Error()
	}
	log.Info("finished", "ok", rep.OK, "rows", out.Rows, "err", err)
	if out.Staged == "" {
		w.report(ctx, rep, false)
		return
	}
	// A sink attempt waits for the answer, even once the task is taken
	// away (the refusal and the heartbeat that drops the task come
	// together): refused, its files are litter.
	if w.report(root, rep, true) == refused {
		w.discard(root, a, out.Staged)
	}
}

// report queues rep for the reporter; with wait, it waits for the answer
// (without, it returns unanswered at once).
func (w *Worker) report(ctx context.Context, rep api.TaskReport, wait bool) answer {
	p := pending{rep: rep}
	if wait {
		p.ok = make(chan answer, 1)
	}
	w.rmu.Lock()
	w.queue = append(w.queue, p)
	w.rmu.Unlock()
	select {
	case w.rwake <- struct{}{}:
	default:
	}
	if !wait {
		return unanswered
	}
	select {
	case a := <-p.ok:
		return a
	case <-ctx.Done():
		return unanswered
	}
}

// reportsInFlight is how many report requests a worker keeps in flight:
// the reports that queue while one commits go in the next, which the
// leader's Raft writes together with the others in flight.
const reportsInFlight = 4

// reporter sends the queued reports, all that wait in one request, with
// up to reportsInFlight requests in flight, until ctx ends. Requests in
// flight together apply in any order: a start that applies after its
// task's finish is refused as stale, which changes nothing.
func (w *Worker) reporter(ctx context.Context) {
	slots := make(chan struct{}, reportsInFlight)
	var sends sync.WaitGroup
	defer sends.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.rwake:
		}
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			w.rmu.Lock()
			n := min(len(w.queue), api.MaxReports)
			batch := w.queue[:n:n]
			w.queue = w.queue[n:]
			w.rmu.Unlock()
			if n == 0 {
				<-slots
				break
			}
			sends.Add(1)
			go func() {
				defer sends.Done()
				w.send(ctx, batch)
				<-slots
				select { // reports may have queued while all slots were busy
				case w.rwake <- struct{}{}:
				default:
				}
			}()
		}
	}
}

// send sends one batch until a coordinator answers it, across leader
// changes (the request ids make retries safe), and tells the waiters.
func (w *Worker) send(ctx context.Context, batch []pending) {
	req := api.ReportBatch{Reports: make([]api.TaskReport, len(batch))}
	for i, p := range batch {
		req.Reports[i] = p.rep
	}
	tell := func(i int, a answer) {
		if batch[i].ok != nil {
			batch[i].ok <- a
		}
	}
	for {
		var out api.ReportBatchResponse
		err := w.cl.Do(ctx, http.MethodPost, "/v1/workers/"+w.id+"/reports", req, &out)
		if err == nil && len(out.Results) == len(batch) {
			for i, r := range out.Results {
				if r.Error != "" {
					lvl := slog.LevelWarn
					if batch[i].ok == nil && batch[i].rep.Phase == string(state.OpStart) {
						lvl = slog.LevelDebug // an exec task's start, after its finish
					}
					w.log.Log(ctx, lvl, "report refused", "task", r.Task, "phase", batch[i].rep.Phase, "err", r.Error)
					tell(i, refused)
				} else {
					tell(i, applied)
				}
			}
			return
		}
		if err == nil || errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrUnauthorized) {
			w.log.Warn("reports refused", "n", len(batch), "err", err)
			for i := range batch {
				tell(i, unanswered)
			}
			return
		}
		select {
		case <-ctx.Done():
			for i := range batch {
				tell(i, unanswered)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
