package tune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/storage"
)

// Config describes an experiment.
type Config struct {
	Space Space
	// Metric is the reported key to optimize; Mode says which way.
	Metric string
	Mode   Mode
	// NumSamples is how many trials random and TPE search run, and how
	// many times grid search runs its grid (default 1).
	NumSamples int
	Searcher   Searcher  // default Random()
	Scheduler  Scheduler // default FIFO()
	// MaxConcurrent bounds the trials running at once (default GOMAXPROCS).
	MaxConcurrent int
	// MaxT, when above 0, ends every trial (as done) at that iteration.
	MaxT int
	Seed uint64
	// Dir keeps the experiment's state (experiment.json), the trial table
	// (trials.jsonl) and the checkpoints (trials/ID/): a local path or an
	// s3:// URL. Required.
	Dir string
	// Resume continues the experiment in Store, or else in Dir: finished
	// trials are kept, interrupted ones run again from their last
	// checkpoint.
	Resume bool
	// Store, when set, keeps the experiment's record beside Dir (see
	// Store): the cluster's replicated state, say.
	Store Store
	// Progress, when set, gets one line per trial start and end.
	Progress io.Writer
	// Watch, when set, is called with a trial's row each time the trial
	// starts, reports or ends (Live.Update is one), from the experiment
	// loop's goroutine: it must return quickly and not keep the row's
	// Config past the call.
	Watch func(Row)
}

// Func is a trial: it trains with t.Config, calls t.Report after each
// iteration and returns when Report returns an error (ErrStopped when the
// scheduler stopped it) or when it is done. An error or panic fails only
// this trial.
type Func func(ctx context.Context, t *Trial) error

// Trial is the handle a trial function gets. Its methods are called from
// the trial function's goroutine.
type Trial struct {
	ID     string
	Config Values

	r       *runner
	idx     int
	gen     int
	iter    int
	restore string
	dir     string
	w       *remote // set when the trial runs on a worker (RunFunc)
}

// Iteration is the trial's last reported iteration: 0 at a fresh start,
// the checkpoint's iteration after a restore.
func (t *Trial) Iteration() int { return t.iter }

// Restore is the local directory of the checkpoint to continue from ("" to
// start afresh): the trial's own after a resume, another trial's after a
// PBT exploit. Read it, do not change it.
func (t *Trial) Restore() string { return t.restore }

// Dir is a local scratch directory of the trial that lasts as long as the
// experiment's directory when that is local.
func (t *Trial) Dir() string { return t.dir }

// Report records one iteration's metrics and returns nil to go on, or
// ErrStopped (or another error) when the trial must return.
func (t *Trial) Report(metrics map[string]float64) error {
	if t.w != nil {
		return t.w.report(t, metrics)
	}
	reply := make(chan error, 1)
	t.r.events <- event{kind: evReport, idx: t.idx, gen: t.gen, metrics: metrics, reply: reply}
	err := <-reply
	if err == nil {
		t.iter++
	}
	return err
}

// Checkpoint saves the trial's state at its current iteration: write fills
// a fresh local directory, which is then kept under the experiment's Dir
// (uploaded when Dir is s3://). PBT needs checkpoints to exploit.
func (t *Trial) Checkpoint(write func(dir string) error) error {
	return t.checkpointAt(t.iter, write)
}

// checkpointAt saves a checkpoint that holds iteration iter.
func (t *Trial) checkpointAt(iter int, write func(dir string) error) error {
	if t.w != nil {
		return t.w.checkpoint(t, iter, write)
	}
	name := fmt.Sprintf("checkpoint_%06d", iter)
	if t.gen > 0 {
		name += fmt.Sprintf(".g%d", t.gen)
	}
	dest := storage.Join(t.r.cfg.Dir, "trials", t.ID, name)
	ctx := context.Background()
	if !storage.IsURL(t.r.cfg.Dir) {
		tmp := dest + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
		if err := write(tmp); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
		os.RemoveAll(dest)
		if err := os.Rename(tmp, dest); err != nil {
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
	} else {
		tmp, err := os.MkdirTemp("", "sluice-tune-ckpt-")
		if err != nil {
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
		defer os.RemoveAll(tmp)
		if err := write(tmp); err != nil {
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
		if err := upload(ctx, t.r.fsys, tmp, dest); err != nil {
			return fmt.Errorf("tune: trial %s: checkpoint: %w", t.ID, err)
		}
	}
	reply := make(chan error, 1)
	t.r.events <- event{kind: evCheckpoint, idx: t.idx, gen: t.gen, ckpt: CheckpointRef{Iter: iter, Path: dest}, reply: reply}
	return <-reply
}

// upload copies the files under local dir src to dest of fsys.
func upload(ctx context.Context, fsys storage.FS, src, dest string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFile(ctx, fsys, storage.Join(dest, filepath.ToSlash(rel)), b)
	})
}

// download copies the files under src of fsys into local dir dest.
func download(ctx context.Context, fsys storage.FS, src, dest string) error {
	files, err := fsys.List(ctx, strings.TrimSuffix(src, "/")+"/")
	if err != nil {
		return err
	}
	for _, f := range files {
		rel := strings.TrimPrefix(strings.TrimPrefix(f.Path, strings.TrimSuffix(src, "/")), "/")
		b, err := storage.ReadFile(ctx, fsys, f.Path)
		if err != nil {
			return err
		}
		p := filepath.Join(dest, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type eventKind int

const (
	evReport eventKind = iota
	evCheckpoint
	evEnd
)

type event struct {
	kind     eventKind
	idx, gen int
	metrics  map[string]float64
	ckpt     CheckpointRef
	err      error
	reply    chan error
}

// active is a trial whose function is running.
type active struct {
	gen      int
	cancel   context.CancelFunc
	stopping bool      // told to return; its end is awaited
	restart  *Decision // an Exploit to apply once it returned
}

type runner struct {
	cfg     Config
	fn      Func
	fsys    storage.FS
	exp     *Experiment
	events  chan event
	running map[int]*active
	queue   []int // trials to (re)run before new ones: from a resume
	next    int   // the next trial number to ask the searcher for
	noMore  bool  // the searcher is exhausted, or launching stopped
	seen    bool  // some report held the metric
	failure error // what stopped launching
	saved   time.Time
	stored  time.Time // the last save of Store
	saver   *saver    // saves Store's record off the loop
	scratch string    // local trial directories when Dir is remote
}

// Validate checks the config; errors name the field.
func (c *Config) Validate() error {
	switch {
	case c.Metric == "":
		return fmt.Errorf("%w: Metric is empty: name the reported key to optimize", ErrInvalid)
	case c.Mode != Min && c.Mode != Max:
		return fmt.Errorf("%w: Mode %q: want min or max", ErrInvalid, c.Mode)
	case c.NumSamples < 0:
		return fmt.Errorf("%w: NumSamples (%d) cannot be negative", ErrInvalid, c.NumSamples)
	case c.MaxConcurrent < 0:
		return fmt.Errorf("%w: MaxConcurrent (%d) cannot be negative", ErrInvalid, c.MaxConcurrent)
	case c.MaxT < 0:
		return fmt.Errorf("%w: MaxT (%d) cannot be negative", ErrInvalid, c.MaxT)
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is empty: name a directory (local or s3://) for the experiment's state", ErrInvalid)
	}
	return c.Space.Validate()
}

// Run runs an experiment: trials from the searcher, up to MaxConcurrent at
// once, each stopped or perturbed by the scheduler, the state saved in Dir
// as it goes. It returns the experiment when every trial ended (failed
// trials included: see their Status and Error), or an error when the
// experiment itself could not go on: a bad config, Dir unusable, the
// metric never reported (ErrNoMetric), ctx cancelled (the state in Dir
// then resumes).
func Run(ctx context.Context, cfg Config, fn Func) (*Experiment, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NumSamples == 0 {
		cfg.NumSamples = 1
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if cfg.Searcher == nil {
		cfg.Searcher = Random()
	}
	if cfg.Scheduler == nil {
		cfg.Scheduler = FIFO()
	}
	fsys, err := storage.For(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("tune: Dir: %w", err)
	}
	r := &runner{cfg: cfg, fn: fn, fsys: fsys, events: make(chan event), running: map[int]*active{}}
	setup := Setup{Space: cfg.Space, Mode: cfg.Mode, NumSamples: cfg.NumSamples, Seed: cfg.Seed}
	if err := cfg.Searcher.Init(setup); err != nil {
		return nil, fmt.Errorf("tune: searcher: %w", err)
	}
	if err := cfg.Scheduler.Init(setup); err != nil {
		return nil, fmt.Errorf("tune: scheduler: %w", err)
	}
	if storage.IsURL(cfg.Dir) {
		if r.scratch, err = os.MkdirTemp("", "sluice-tune-"); err != nil {
			return nil, fmt.Errorf("tune: %w", err)
		}
		defer os.RemoveAll(r.scratch)
	}
	old, from, err := r.loadOld(ctx)
	switch {
	case err != nil && !errors.Is(err, ErrNoExperiment):
		return nil, err
	case err == nil && !cfg.Resume:
		return nil, fmt.Errorf("%w: %s (resume it, or choose another directory)", ErrExists, from)
	case err != nil && cfg.Resume:
		return nil, fmt.Errorf("tune: resume: %w", err)
	case err == nil:
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "resuming from %s\n", from)
		}
		if err := r.resume(old); err != nil {
			return nil, err
		}
	default:
		r.exp = &Experiment{Metric: cfg.Metric, Mode: cfg.Mode, Seed: cfg.Seed, NumSamples: cfg.NumSamples}
	}
	if err := r.save(ctx, true); err != nil {
		if r.saver != nil {
			r.saver.flush() // its goroutine ends before Run returns
		}
		return nil, err
	}
	for _, t := range r.exp.Trials {
		r.watch(t) // a resumed experiment's trials
	}
	return r.loop(ctx)
}

// loadOld reads the experiment to resume, from the Store when it holds
// one, else from Dir, and says where it came from.
func (r *runner) loadOld(ctx context.Context) (*Experiment, string, error) {
	if s := r.cfg.Store; s != nil {
		e, err := s.Load(ctx)
		if !errors.Is(err, ErrNoExperiment) {
			if err != nil {
				err = fmt.Errorf("tune: reading %v: %w", s, err)
			}
			return e, fmt.Sprint(s), err
		}
	}
	e, err := load(ctx, r.fsys, r.cfg.Dir)
	return e, r.cfg.Dir, err
}

// resume takes back a saved experiment: finished trials are replayed into
// the searcher and scheduler; the others are queued to run again from
// their last checkpoint.
func (r *runner) resume(old *Experiment) error {
	for _, c := range []struct {
		name     string
		was, now any
	}{{"metric", old.Metric, r.cfg.Metric}, {"mode", old.Mode, r.cfg.Mode}, {"seed", old.Seed, r.cfg.Seed}, {"num_samples", old.NumSamples, r.cfg.NumSamples}} {
		if c.was != c.now {
			return fmt.Errorf("%w: resume %s: the experiment's %s was %v, the config says %v", ErrInvalid, r.cfg.Dir, c.name, c.was, c.now)
		}
	}
	r.exp = old
	for _, t := range old.Trials {
		if !t.Status.final() {
			// Run again from the last checkpoint; forget what came after it.
			t.Status, t.Error = Pending, ""
			iter := 0
			if n := len(t.Checkpoints); n > 0 {
				iter = t.Checkpoints[n-1].Iter
			}
			t.Reports = slices.DeleteFunc(t.Reports, func(m map[string]float64) bool { return int(m["iteration"]) > iter })
			t.Iterations = iter
			t.Last, t.Best = nil, nil
			r.queue = append(r.queue, t.Index)
		}
		for _, m := range t.Reports {
			if v, ok := m[r.cfg.Metric]; ok {
				r.seen = true
				if !t.Status.final() {
					r.note(t, v)
				}
				if _, pbt := r.cfg.Scheduler.(*PBT); pbt {
					// PBT ranks running trials only, and its decisions
					// draw from its random stream: replaying would
					// perturb configs no trial runs with.
					continue
				}
				r.cfg.Scheduler.OnResult(Result{Trial: t.Index, Iter: int(m["iteration"]), Reward: r.reward(v), Sample: t.Sample})
			}
		}
		if t.Status.final() {
			r.ended(t)
		}
	}
	r.next = len(old.Trials)
	return nil
}

func (r *runner) reward(v float64) float64 {
	if r.cfg.Mode == Min {
		return -v
	}
	return v
}

// note records a metric value in a trial's last and best.
func (r *runner) note(t *TrialState, v float64) {
	t.Last = &v
	if t.Best == nil || better(r.cfg.Mode, v, *t.Best) {
		b := v
		t.Best = &b
	}
}

func (r *runner) ended(t *TrialState) {
	r.cfg.Scheduler.OnEnd(t.Index)
	if t.Best != nil && t.Status != Failed {
		r.cfg.Searcher.Observe(t.Index, t.Sample, -r.reward(*t.Best))
	}
}

// save writes Dir's files, at most every second unless now, and the
// Store's record, at most every StoreEvery unless now.
func (r *runner) save(ctx context.Context, now bool) error {
	ctx = context.WithoutCancel(ctx)
	var err error
	if now || time.Since(r.saved) >= time.Second {
		r.saved = time.Now()
		err = save(ctx, r.fsys, r.cfg.Dir, r.exp)
	}
	if s := r.cfg.Store; s != nil && (now || time.Since(r.stored) >= StoreEvery) {
		r.stored = time.Now()
		if r.saver == nil {
			r.saver = newSaver(s)
		}
		if serr := r.saver.put(r.exp.clone()); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

func (r *runner) progress(t *TrialState) {
	if r.cfg.Progress == nil {
		return
	}
	msg := fmt.Sprintf("%s %s iter=%d %s=%s best=%s %s", t.ID, t.Status, t.Iterations, r.cfg.Metric, fnum(t.Last), fnum(t.Best), formatConfig(t.Config))
	if t.Error != "" {
		msg += ": " + firstLine(t.Error)
	}
	fmt.Fprintln(r.cfg.Progress, msg)
}

func (r *runner) watch(t *TrialState) {
	if r.cfg.Watch != nil {
		r.cfg.Watch(t.Row())
	}
}

// loop is the experiment's one goroutine that owns all state: it launches
// trials while slots are free and handles their events.
func (r *runner) loop(ctx context.Context) (*Experiment, error) {
	var saveErr error
	for {
		for ctx.Err() == nil && len(r.running) < r.cfg.MaxConcurrent && r.launchNext(ctx) {
		}
		if len(r.running) == 0 {
			break
		}
		ev := <-r.events
		if err := r.handle(ctx, ev); err != nil && saveErr == nil {
			saveErr = err
			r.noMore = true
			for _, a := range r.running {
				a.stopping = true
				a.cancel()
			}
		}
	}
	if err := r.save(ctx, true); err != nil && saveErr == nil {
		saveErr = err
	}
	if r.saver != nil {
		if err := r.saver.flush(); err != nil && saveErr == nil {
			saveErr = err
		}
	}
	if err := saveParquet(context.WithoutCancel(ctx), r.fsys, r.cfg.Dir, r.exp); err != nil && saveErr == nil {
		saveErr = err
	}
	switch {
	case saveErr != nil:
		return r.exp, saveErr
	case ctx.Err() != nil:
		return r.exp, fmt.Errorf("tune: experiment interrupted (resume it from %s): %w", r.cfg.Dir, ctx.Err())
	case r.failure != nil:
		return r.exp, r.failure
	case !r.seen && len(r.exp.Trials) > 0:
		return r.exp, fmt.Errorf("%w: no trial reported %q", ErrNoMetric, r.cfg.Metric)
	}
	return r.exp, nil
}

// launchNext starts the next trial, and says whether it did.
func (r *runner) launchNext(ctx context.Context) bool {
	var t *TrialState
	if r.failure != nil {
		return false
	}
	if len(r.queue) > 0 {
		t = r.exp.Trials[r.queue[0]]
		r.queue = r.queue[1:]
	} else {
		if r.noMore {
			return false
		}
		smp, ok := r.cfg.Searcher.Suggest(r.next)
		if !ok {
			r.noMore = true
			return false
		}
		t = &TrialState{ID: fmt.Sprintf("t%04d", r.next), Index: r.next, Sample: smp, Status: Pending}
		r.exp.Trials = append(r.exp.Trials, t)
		r.next++
	}
	restore := ""
	if n := len(t.Checkpoints); n > 0 {
		restore = t.Checkpoints[n-1].Path
	}
	r.start(ctx, t, 0, restore)
	return true
}

// start runs generation gen of trial t's function from a restore point.
func (r *runner) start(ctx context.Context, t *TrialState, gen int, restore string) {
	tctx, cancel := context.WithCancel(ctx)
	r.running[t.Index] = &active{gen: gen, cancel: cancel}
	t.Status = Running
	r.progress(t)
	r.watch(t)
	r.save(ctx, true)
	dir := storage.Join(r.cfg.Dir, "trials", t.ID)
	if r.scratch != "" {
		dir = filepath.Join(r.scratch, t.ID)
	}
	tr := &Trial{ID: t.ID, Config: t.Config, r: r, idx: t.Index, gen: gen, iter: t.Iterations, restore: restore, dir: dir}
	go func() {
		err := r.runTrial(tctx, tr)
		r.events <- event{kind: evEnd, idx: tr.idx, gen: gen, err: err}
	}()
}

func (r *runner) runTrial(ctx context.Context, t *Trial) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return fmt.Errorf("tune: trial %s: %w", t.ID, err)
	}
	if t.restore != "" && storage.IsURL(t.restore) {
		local := filepath.Join(t.dir, fmt.Sprintf("restore.g%d", t.gen))
		os.RemoveAll(local)
		if err := download(ctx, r.fsys, t.restore, local); err != nil {
			return fmt.Errorf("tune: trial %s: restoring %s: %w", t.ID, t.restore, err)
		}
		t.restore = local
	}
	return r.fn(ctx, t)
}

// handle applies one event; an error is one of saving the state.
func (r *runner) handle(ctx context.Context, ev event) error {
	t := r.exp.Trials[ev.idx]
	a := r.running[ev.idx]
	defer r.watch(t)
	switch ev.kind {
	case evReport:
		if a == nil || a.gen != ev.gen || a.stopping {
			ev.reply <- ErrStopped
			return nil
		}
		if err := ctx.Err(); err != nil {
			ev.reply <- err // interrupted: the trial reruns on resume
			return nil
		}
		t.Iterations++
		m := make(map[string]float64, len(ev.metrics)+1)
		for k, v := range ev.metrics {
			if !math.IsNaN(v) && !math.IsInf(v, 0) { // JSON has no NaN
				m[k] = v
			}
		}
		m["iteration"] = float64(t.Iterations)
		t.Reports = append(t.Reports, m)
		v, ok := ev.metrics[r.cfg.Metric]
		if !ok {
			err := fmt.Errorf("%w: metric %q is not in the report of iteration %d (its keys: %s)", ErrNoMetric, r.cfg.Metric, t.Iterations, strings.Join(sortedKeys(ev.metrics), ", "))
			t.Status, t.Error = Failed, err.Error()
			if !r.seen && r.failure == nil {
				// Likely a misspelt metric: start no more trials.
				r.noMore, r.failure = true, err
			}
			a.stopping = true
			a.cancel()
			ev.reply <- err
			return nil
		}
		r.seen = true
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// A diverged run: nothing to rank it by at this iteration.
			t.Last = nil
			ev.reply <- nil
			return r.save(ctx, false)
		}
		r.note(t, v)
		ckpt := 0
		if n := len(t.Checkpoints); n > 0 {
			ckpt = t.Checkpoints[n-1].Iter
		}
		d := r.cfg.Scheduler.OnResult(Result{Trial: t.Index, Iter: t.Iterations, Reward: r.reward(v), Checkpoint: ckpt, Sample: t.Sample})
		if d.Action == Continue && r.cfg.MaxT > 0 && t.Iterations >= r.cfg.MaxT {
			d.Action = Complete
		}
		switch d.Action {
		case Continue:
			ev.reply <- nil
			return r.save(ctx, false)
		case Stop:
			t.Status = Stopped
		case Complete:
			t.Status = Done
		case Exploit:
			a.restart = &d
		}
		a.stopping = true
		a.cancel()
		ev.reply <- ErrStopped
		return r.save(ctx, d.Action != Exploit)
	case evCheckpoint:
		if a == nil || a.gen != ev.gen {
			ev.reply <- ErrStopped
			return nil
		}
		t.Checkpoints = append(t.Checkpoints, ev.ckpt)
		ev.reply <- nil
		return r.save(ctx, true)
	case evEnd:
		delete(r.running, ev.idx)
		a.cancel()
		if d := a.restart; d != nil && ctx.Err() == nil {
			donor := r.exp.Trials[d.Donor]
			var ref CheckpointRef
			for _, c := range donor.Checkpoints {
				if c.Iter == d.DonorCheckpoint {
					ref = c
				}
			}
			t.Sample = d.Sample
			t.Iterations = ref.Iter
			t.RestoredFrom = ref.Path
			t.Checkpoints = append(t.Checkpoints, ref)
			if r.cfg.Progress != nil {
				fmt.Fprintf(r.cfg.Progress, "%s exploits %s@%d -> %s\n", t.ID, donor.ID, ref.Iter, formatConfig(t.Config))
			}
			r.start(ctx, t, a.gen+1, ref.Path)
			return nil
		}
		switch {
		case t.Status == Stopped || t.Status == Failed || t.Status == Done:
		case ctx.Err() != nil:
			// Interrupted: stays running in the state, so resume reruns it.
			return nil
		case ev.err != nil && !errors.Is(ev.err, ErrStopped):
			t.Status, t.Error = Failed, ev.err.Error()
		case t.Best == nil:
			t.Status, t.Error = Failed, fmt.Sprintf("metric %q never reported", r.cfg.Metric)
		default:
			t.Status = Done
		}
		r.progress(t)
		r.ended(t)
		return r.save(ctx, true)
	}
	return nil
}
