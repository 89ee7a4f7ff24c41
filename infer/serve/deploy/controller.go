package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/executor/cluster/api"
	"github.com/sluicehq/sluice/executor/cluster/state"
	"github.com/sluicehq/sluice/infer/serve/router"
	"github.com/sluicehq/sluice/plans"
)

// ControllerConfig tunes a Controller. Start from DefaultControllerConfig.
type ControllerConfig struct {
	API        *api.Client
	Deployment string
	// Interval is how often the controller reads the deployment.
	Interval time.Duration
	// UpQueue: the deployment is short of replicas while its replicas'
	// waiting requests are more than UpQueue per serving replica.
	UpQueue int
	// UpAfter and DownAfter are how many readings in a row scale up
	// (short of replicas) and down (no request running or waiting).
	UpAfter, DownAfter int
	// Logger receives the controller's events; nil is slog.Default().
	Logger *slog.Logger
}

// DefaultControllerConfig reads the deployment every second, scales up
// after 3 readings in a row of more than 4 waiting requests per replica
// and down after 30 idle ones.
func DefaultControllerConfig() ControllerConfig {
	return ControllerConfig{Interval: time.Second, UpQueue: 4, UpAfter: 3, DownAfter: 30}
}

// Validate checks the fields.
func (c ControllerConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...)
	}
	switch {
	case c.API == nil:
		return bad("API is nil")
	case !nameRE.MatchString(c.Deployment):
		return bad("Deployment (--deployment) %q must be lowercase letters, digits and dashes", c.Deployment)
	case c.Interval <= 0:
		return bad("Interval must be positive, got %s", c.Interval)
	case c.UpQueue < 0:
		return bad("UpQueue must not be negative, got %d", c.UpQueue)
	case c.UpAfter < 1 || c.DownAfter < 1:
		return bad("UpAfter (%d) and DownAfter (%d) must be at least 1", c.UpAfter, c.DownAfter)
	}
	return nil
}

// Controller keeps a router's replicas those of a deployment that the
// coordinators report, and scales the deployment between its bounds on
// their queue: it submits a replica job while the replicas are short
// (UpQueue, UpAfter) and cancels one while they are idle (DownAfter).
// Hysteresis: it scales up only once every replica job serves (one that
// is still starting will take part of the queue), and the two counts
// start again after each change.
type Controller struct {
	cfg ControllerConfig
	r   *router.Router
	log *slog.Logger
	sc  scaler

	tmpl *template // from a replica job of the deployment, once found

	mu    sync.Mutex
	stats Stats
}

// Stats counts what a controller did.
type Stats struct {
	Readings, ScaleUps, ScaleDowns int
	// Jobs and Serving are the replica jobs and the serving replicas at
	// the last reading.
	Jobs, Serving int
}

// template is how to make another replica: a replica job's plan and needs.
type template struct {
	plan     string
	needs    state.Resources
	retries  int
	min, max int
}

// NewController returns a controller of cfg.Deployment feeding r (made
// with router.Config.Dynamic).
func NewController(cfg ControllerConfig, r *router.Router) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, r: r, log: cfg.Logger, sc: scaler{upQueue: cfg.UpQueue, upAfter: cfg.UpAfter, downAfter: cfg.DownAfter}}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("deployment", cfg.Deployment)
	return c, nil
}

// Stats returns the controller's counts.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Run reads the deployment every Interval until ctx ends; a reading that
// fails is logged and the next one tried.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		if err := c.Step(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("deploy: reading the deployment failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step reads the deployment once: the router gets its serving replicas,
// and the deployment is scaled when the readings say so.
func (c *Controller) Step(ctx context.Context) error {
	var d api.Deployment
	if err := c.cfg.API.Do(ctx, http.MethodGet, "/v1/deployments/"+c.cfg.Deployment, nil, &d); err != nil && !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("reading the deployment: %w", err)
	}
	live := d.Jobs
	// The serving replicas of live jobs (a cancelled one drains, unrouted).
	jobs := map[string]bool{}
	for _, j := range live {
		jobs[j.ID] = true
	}
	var targets []router.Target
	url := map[string]string{}
	load := map[string]int{}
	waiting, busy := 0, 0
	for _, r := range d.Replicas {
		if !jobs[r.ID] {
			continue
		}
		targets = append(targets, router.Target{URL: r.URL, Load: r.Running + r.Waiting})
		load[r.ID] = r.Running + r.Waiting
		url[r.ID] = r.URL
		waiting += r.Waiting
		busy += r.Running + r.Waiting
	}
	if len(targets) > 0 || len(live) == 0 {
		c.r.SetReplicas(targets)
	} else {
		// Replica jobs but no replica reported: a coordinator that just
		// took the lead hears the heartbeats within one; until then the
		// router keeps the replicas it has (a dead one it retries past).
		c.log.Debug("deploy: no replica reported; keeping the router's", "jobs", len(live))
	}
	if c.tmpl == nil {
		id, err := c.someJob(ctx, live)
		if err != nil {
			return err
		}
		t, err := c.template(ctx, id)
		if err != nil {
			return err
		}
		c.tmpl = t
	}
	n := c.sc.decide(observation{jobs: len(live), serving: len(targets), waiting: waiting, busy: busy, min: c.tmpl.min, max: c.tmpl.max})
	c.mu.Lock()
	c.stats.Readings++
	c.stats.Jobs, c.stats.Serving = len(live), len(targets)
	c.mu.Unlock()
	for ; n > 0; n-- {
		id, err := submit(ctx, c.cfg.API, c.tmpl.plan, c.tmpl.needs, c.tmpl.retries, "serve-"+c.cfg.Deployment+"-up-"+randomID())
		if err != nil {
			return err
		}
		c.log.Info("deploy: scaled up", "replica", id, "jobs", len(live)+1, "waiting", waiting, "serving", len(targets))
		c.count(func(s *Stats) { s.ScaleUps++ })
	}
	if n < 0 {
		// Cancel the replicas that do not serve yet first, then the least
		// loaded, the newest among equals.
		slices.SortFunc(live, func(a, b api.DeploymentJob) int {
			_, sa := load[a.ID]
			_, sb := load[b.ID]
			if sa != sb {
				return map[bool]int{false: -1, true: 1}[sa]
			}
			if x := cmp.Compare(load[a.ID], load[b.ID]); x != 0 {
				return x
			}
			return b.Submitted.Compare(a.Submitted)
		})
		for _, j := range live[:-n] {
			// Out of the router first: the cancelled replica drains what it
			// has, and gets nothing new.
			targets = slices.DeleteFunc(targets, func(t router.Target) bool { return t.URL == url[j.ID] })
			c.r.SetReplicas(targets)
			if err := c.cfg.API.Do(ctx, http.MethodPost, "/v1/jobs/"+j.ID+"/cancel", nil, nil); err != nil {
				return fmt.Errorf("cancelling replica %s: %w", j.ID, err)
			}
			c.log.Info("deploy: scaled down", "replica", j.ID, "jobs", len(live)-1)
			c.count(func(s *Stats) { s.ScaleDowns++ })
		}
	}
	return nil
}

func (c *Controller) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// someJob is the id of the newest replica job of the deployment: of live,
// or, when none lives (they all failed, say), of any state.
func (c *Controller) someJob(ctx context.Context, live []api.DeploymentJob) (string, error) {
	newest := func(ids []string, at []time.Time) string {
		k := -1
		for i := range ids {
			if k < 0 || at[i].After(at[k]) {
				k = i
			}
		}
		if k < 0 {
			return ""
		}
		return ids[k]
	}
	var ids []string
	var at []time.Time
	for _, j := range live {
		ids, at = append(ids, j.ID), append(at, j.Submitted)
	}
	if len(ids) == 0 {
		var all []state.Job
		if err := c.cfg.API.Do(ctx, http.MethodGet, "/v1/jobs", nil, &all); err != nil {
			return "", fmt.Errorf("listing jobs: %w", err)
		}
		for _, j := range all {
			if j.Name == JobPrefix+c.cfg.Deployment {
				ids, at = append(ids, j.ID), append(at, j.Submitted)
			}
		}
	}
	if id := newest(ids, at); id != "" {
		return id, nil
	}
	return "", fmt.Errorf("no job %s%s: create the deployment with sluice serve --coordinators ... --deployment %s", JobPrefix, c.cfg.Deployment, c.cfg.Deployment)
}

// template reads how to make a replica from the replica job id.
func (c *Controller) template(ctx context.Context, id string) (*template, error) {
	var js api.JobStatus
	if err := c.cfg.API.Do(ctx, http.MethodGet, "/v1/jobs/"+id, nil, &js); err != nil {
		return nil, fmt.Errorf("reading replica job %s: %w", id, err)
	}
	t := &template{plan: string(js.Job.Plan), retries: js.Job.MaxRetries}
	if len(js.Job.Stages) > 0 {
		t.needs = js.Job.Stages[0].Needs
	}
	p, lints := plans.Parse(js.Job.File, js.Job.Plan)
	if err := lints.Err(); err != nil {
		return nil, fmt.Errorf("replica job %s's plan: %w", id, err)
	}
	bound := map[string]*int{"min_replicas": &t.min, "max_replicas": &t.max}
	for _, pr := range p.Params {
		if v, ok := bound[pr.Name]; ok {
			n, err := strconv.Atoi(pr.Value)
			if err != nil {
				return nil, fmt.Errorf("replica job %s's plan: param %s %q: %w", id, pr.Name, pr.Value, err)
			}
			*v = n
			delete(bound, pr.Name)
		}
	}
	if len(bound) > 0 {
		return nil, fmt.Errorf("replica job %s's plan has no min_replicas and max_replicas params: not a plan of deploy.Plan", id)
	}
	return t, nil
}

// observation is one reading of a deployment.
type observation struct {
	jobs    int // replica jobs not done (serving, or still starting)
	serving int // replicas serving, as reported
	waiting int // their requests waiting
	busy    int // their requests running or waiting
	min     int
	max     int
}

// scaler decides from readings how many replicas to add (or, negative,
// remove). It is a state machine of two counts; tests drive it.
type scaler struct {
	upQueue, upAfter, downAfter int
	up, down                    int // readings in a row short of replicas, idle
}

func (s *scaler) decide(o observation) int {
	switch {
	case o.jobs < o.min:
		s.up, s.down = 0, 0
		return o.min - o.jobs
	case o.jobs > o.max:
		s.up, s.down = 0, 0
		return o.max - o.jobs
	}
	if o.serving > 0 && o.waiting > s.upQueue*o.serving {
		s.up++
	} else {
		s.up = 0
	}
	// Idle counts only with replicas reporting: none (a new leader that
	// has not heard the heartbeats yet, say) says nothing of the load.
	if o.serving > 0 && o.busy == 0 {
		s.down++
	} else {
		s.down = 0
	}
	switch {
	case s.up >= s.upAfter && o.jobs < o.max && o.serving == o.jobs:
		s.up, s.down = 0, 0
		return 1
	case s.down >= s.downAfter && o.jobs > o.min:
		s.up, s.down = 0, 0
		return -1
	}
	return 0
}
