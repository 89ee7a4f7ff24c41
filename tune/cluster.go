package tune

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/storage"
)

// Trials on a cluster.
//
// Each run of a trial is a plan job of one task: the plan reads the run's
// spec.jsonl (one row: the TrialSpec as JSON) and its map_batches step,
// the registered function TrialFunc (package tune/tunejob registers it),
// runs the trial program on the worker that got the task, appending every
// JSON line it prints to the run's metrics.jsonl; the driver (Cluster's
// trial function, in the process that runs the experiment) reads those
// lines as the trial's reports and cancels the job when the scheduler
// stops the trial. All of it lives under the experiment's directory, which
// the driver and the workers must share (a path every machine mounts).
//
// A task whose worker dies goes back to the cluster's queue and runs again
// on another worker (the state's retry; no failure is counted): the
// function then resumes the program from the run's own last checkpoint
// (OUT/checkpoint, --resume) and appends only the lines of steps after the
// last one in metrics.jsonl, so the driver sees each step once.

// TrialFunc is the name of the map_batches function that runs a trial on
// a worker.
const TrialFunc = "sluice_tune_trial"

// Resources are what a trial's task needs of a worker: CPUs, GPUs and
// memory in bytes (the plan job's needs).
type Resources struct {
	CPU, GPU int
	Memory   int64
}

// JobState is what the driver needs of a job's state.
type JobState struct {
	Done, Succeeded bool
	State, Error    string
}

// Jobs are the coordinators' job API as cluster trials use it (package
// tune/tunejob implements it over the HTTP API).
type Jobs interface {
	// Submit submits a plan job; requestID makes a retried submit the same job.
	Submit(ctx context.Context, requestID, plan string, needs Resources) (id string, err error)
	State(ctx context.Context, id string) (JobState, error)
	Cancel(ctx context.Context, id string) error
}

// TrialSpec is what a worker needs to run one run of a trial: the row of
// the job's spec.jsonl.
type TrialSpec struct {
	Trial string `json:"trial"`
	// Command is the program and its first arguments; empty: the worker's
	// own `sluice train`.
	Command []string `json:"command,omitempty"`
	// Flags are the trial's flags (Base with the config over it).
	Flags []string `json:"flags"`
	// Out is the program's --out; Metrics the file its lines go to.
	Out     string `json:"out"`
	Metrics string `json:"metrics"`
	// CheckpointEvery is the program's --checkpoint-every (0: none).
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
	// Restore is the checkpoint the run starts from ("": afresh) when
	// the run has none of its own yet.
	Restore string `json:"restore,omitempty"`
	// Steps is the run's --steps (0: unknown): a run whose own checkpoint
	// is at Steps already is done.
	Steps int `json:"steps,omitempty"`
	// Function names the registered trial function to run instead of a
	// program (see RunFunc); Config is then the trial's config (as
	// encodeConfig writes it), Iter the iteration it starts at and MaxT
	// the iteration its last report ends the run at (0: none).
	Function string          `json:"function,omitempty"`
	Config   json.RawMessage `json:"config,omitempty"`
	Iter     int             `json:"iter,omitempty"`
	MaxT     int             `json:"max_t,omitempty"`
}

// Cluster runs each trial as a job on a cluster's workers (see the
// package's cluster notes above): the program, flags and checkpoints as
// Command's, the reports read from the run's metrics.jsonl.
type Cluster struct {
	Jobs Jobs
	// Command is the program the workers run (nil: their own `sluice train`).
	Command []string
	// Function, when set, names a trial function registered (Register) in
	// the workers' program, which they run in-process with the trial's
	// config (Base's keys where the config lacks them) instead of a
	// program; its Report and Checkpoint reach the experiment through
	// the run's metrics file.
	Function string
	Base     Values
	// CheckpointEvery is the program's --checkpoint-every (default 1): a
	// trial whose worker died resumes from its last checkpoint.
	CheckpointEvery int
	// Needs are each trial's resources (default 1 CPU).
	Needs Resources
	// Poll is how often the driver reads a trial's metrics and job state
	// (default 100ms).
	Poll time.Duration
	// Progress, when set, gets a line per trial job submitted.
	Progress io.Writer
	// Stats, when set, counts the reports and the time the experiment
	// loop took to answer them (scheduler, bookkeeping, state saves).
	Stats *ClusterStats
}

// ClusterStats are counters of a Cluster's trials, safe to read while
// they run.
type ClusterStats struct {
	Reports    atomic.Int64
	ReportTime atomic.Int64 // nanoseconds in Trial.Report
}

// Func is the trial function that runs trials as cluster jobs. The
// experiment's Dir must be a local path every worker reads and writes
// under the same name (an absolute path on shared storage).
func (c Cluster) Func() Func {
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 1
	}
	if c.Needs == (Resources{}) {
		c.Needs.CPU = 1
	}
	if c.Poll == 0 {
		c.Poll = 100 * time.Millisecond
	}
	return func(ctx context.Context, t *Trial) error {
		if storage.IsURL(t.r.cfg.Dir) || !filepath.IsAbs(t.r.cfg.Dir) {
			return fmt.Errorf("tune: trial %s: trials on a cluster need Dir as an absolute path the workers share, not %q", t.ID, t.r.cfg.Dir)
		}
		if c.Jobs == nil {
			return fmt.Errorf("tune: trial %s: Cluster.Jobs is nil", t.ID)
		}
		vals := Values{}
		for k, v := range c.Base {
			vals[k] = v
		}
		var spec TrialSpec
		if c.Function != "" {
			for k, v := range t.Config {
				vals[k] = v
			}
			raw, err := encodeConfig(vals)
			if err != nil {
				return fmt.Errorf("tune: trial %s: its config: %w", t.ID, err)
			}
			spec = TrialSpec{Function: c.Function, Config: raw, Iter: t.Iteration(), MaxT: t.r.cfg.MaxT}
		} else {
			if err := flatten(t.Config, "", vals); err != nil {
				return err
			}
			delete(vals, "out")
			flags, err := Flags(vals)
			if err != nil {
				return err
			}
			spec = TrialSpec{Command: c.Command, Flags: flags, CheckpointEvery: c.CheckpointEvery}
			if s, ok := vals["steps"]; ok {
				spec.Steps, _ = strconv.Atoi(fmt.Sprint(s))
			}
		}
		c.cancelEarlier(ctx, t)
		run, err := newRunDir(t.Dir())
		if err != nil {
			return fmt.Errorf("tune: trial %s: %w", t.ID, err)
		}
		spec.Trial, spec.Out, spec.Metrics, spec.Restore = t.ID, filepath.Join(run, "out"), filepath.Join(run, "metrics.jsonl"), t.Restore()
		js, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		row, _ := json.Marshal(map[string]string{"spec": string(js)})
		if err := os.WriteFile(filepath.Join(run, "spec.jsonl"), append(row, '\n'), 0o644); err != nil {
			return fmt.Errorf("tune: trial %s: %w", t.ID, err)
		}
		sum := sha256.Sum256([]byte(run))
		id, err := c.Jobs.Submit(ctx, "tune-"+hex.EncodeToString(sum[:12]), TrialPlan(filepath.Join(run, "spec.jsonl"), filepath.Join(run, "job")), c.Needs)
		if err != nil {
			return fmt.Errorf("tune: trial %s: submitting its job: %w", t.ID, err)
		}
		if err := os.WriteFile(filepath.Join(run, jobIDFile), []byte(id+"\n"), 0o644); err != nil {
			return fmt.Errorf("tune: trial %s: %w", t.ID, err)
		}
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "%s runs as job %s (%s)\n", t.ID, id, run)
		}
		var last float64
		var handle func(string) error
		if c.Function != "" {
			handle = func(line string) error { return c.funcLine(t, line, &last) }
		} else {
			cmd := Command{CheckpointEvery: c.CheckpointEvery}
			seen := fingerprint(filepath.Join(spec.Out, "checkpoint"))
			handle = func(line string) error {
				m, ok := parseReport(line)
				if !ok {
					return nil
				}
				last = m["step"]
				if err := c.report(t, m); err != nil {
					return err
				}
				ck := filepath.Join(spec.Out, "checkpoint")
				if fp := fingerprint(ck); fp != "" && fp != seen {
					took, err := cmd.takeCheckpoint(t, ck, m)
					if err != nil {
						return err
					}
					if took {
						seen = fp
					}
				}
				return nil
			}
		}
		err = c.follow(ctx, t, id, spec, handle)
		end := spec.Steps
		if c.Function != "" {
			end = spec.MaxT // the function's run ends there by itself
		}
		if err != nil && !(errors.Is(err, ErrStopped) && end > 0 && last >= float64(end)) {
			// (A trial that ends at its last step, as at MaxT, lets its
			// job finish.)
			// Stopped, interrupted or failed here: the job must not go on.
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if st, serr := c.Jobs.State(cctx, id); serr != nil || !st.Done {
				if cerr := c.Jobs.Cancel(cctx, id); cerr != nil && c.Progress != nil {
					fmt.Fprintf(c.Progress, "%s: cancelling job %s: %v\n", t.ID, id, cerr)
				}
			}
		}
		return err
	}
}

// jobIDFile, in a run's directory, names the run's job.
const jobIDFile = "job-id"

// cancelEarlier cancels the jobs of the trial's earlier runs that are
// still going: a driver that died (kill -9) left them running, and this
// run replaces them.
func (c Cluster) cancelEarlier(ctx context.Context, t *Trial) {
	files, _ := filepath.Glob(filepath.Join(t.Dir(), "run-*", jobIDFile))
	for _, f := range files {
		b, err := os.ReadFile(f)
		id := strings.TrimSpace(string(b))
		if err != nil || id == "" {
			continue
		}
		if st, err := c.Jobs.State(ctx, id); err == nil && !st.Done {
			err := c.Jobs.Cancel(ctx, id)
			if c.Progress != nil {
				fmt.Fprintf(c.Progress, "%s: cancelling job %s of an earlier run (%s): %v\n", t.ID, id, filepath.Dir(f), err)
			}
		}
	}
}

// newRunDir makes the next run-N directory of a trial.
func newRunDir(dir string) (string, error) {
	for n := 1; ; n++ {
		p := filepath.Join(dir, fmt.Sprintf("run-%d", n))
		if err := os.Mkdir(p, 0o755); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrExist) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return "", err
			}
			if err := os.Mkdir(p, 0o755); err == nil {
				return p, nil
			} else if !errors.Is(err, os.ErrExist) {
				return "", err
			}
		}
	}
}

// report is t.Report, counted in Stats.
func (c Cluster) report(t *Trial, m map[string]float64) error {
	start := time.Now()
	err := t.Report(m)
	if c.Stats != nil {
		c.Stats.Reports.Add(1)
		c.Stats.ReportTime.Add(int64(time.Since(start)))
	}
	return err
}

// funcLine handles a line of a function run's metrics file: a report, or
// a checkpoint copied into the experiment.
func (c Cluster) funcLine(t *Trial, line string, last *float64) error {
	var l funcLine
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		return fmt.Errorf("tune: trial %s: a line of its metrics: %w", t.ID, err)
	}
	if l.Report != nil {
		*last = float64(l.Iter)
		return c.report(t, decodeMetrics(l.Report))
	}
	if l.Checkpoint != "" {
		return t.checkpointAt(l.Iter, func(dir string) error { return copyDir(l.Checkpoint, dir) })
	}
	return nil
}

// follow hands the run's metrics lines to handle as they come until its
// job ends.
func (c Cluster) follow(ctx context.Context, t *Trial, id string, spec TrialSpec, handle func(line string) error) error {
	var off int64
	var failing time.Time
	for {
		// The state first: every line written before the job ended is
		// read below.
		st, serr := c.Jobs.State(ctx, id)
		if serr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Coordinators failing over: go on reading; give up after a minute.
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > time.Minute {
				return fmt.Errorf("tune: trial %s: job %s: %w", t.ID, id, serr)
			}
		} else {
			failing = time.Time{}
		}
		lines, n, err := readLines(spec.Metrics, off)
		if err != nil {
			return fmt.Errorf("tune: trial %s: %w", t.ID, err)
		}
		off += n
		for _, line := range lines {
			if err := handle(line); err != nil {
				return err
			}
		}
		if serr == nil && st.Done {
			if st.Succeeded {
				return nil
			}
			msg := st.Error
			if msg == "" {
				msg = st.State
			}
			return fmt.Errorf("tune: trial %s: job %s %s: %s", t.ID, id, st.State, msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.Poll):
		}
	}
}

// readLines reads the whole lines of path from off: the lines and the
// bytes they took. A missing file has none yet.
func readLines(path string, off int64) ([]string, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
	if err != nil {
		return nil, 0, err
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil, 0, nil
	}
	return strings.Split(string(b[:end]), "\n"), int64(end + 1), nil
}

// parseReport takes the numeric fields of a JSON object line.
func parseReport(line string) (map[string]float64, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") {
		return nil, false
	}
	var obj map[string]any
	if json.Unmarshal([]byte(line), &obj) != nil {
		return nil, false
	}
	m := map[string]float64{}
	for k, v := range obj {
		if f, ok := v.(float64); ok {
			m[k] = f
		}
	}
	return m, true
}

// TrialPlan is the plan of a trial's job: read the spec, run TrialFunc on
// it, write its one-row result under out.
func TrialPlan(spec, out string) string {
	return fmt.Sprintf("name: tune-trial\nread:\n  jsonl: %s\nsteps:\n  - map_batches: {fn: %s}\nwrite:\n  jsonl: %s\n  mode: overwrite\n",
		strconv.Quote(spec), TrialFunc, strconv.Quote(out+"/"))
}

// RunSpec runs one run of a trial on a worker, as TrialFunc does: the
// program (self when the spec names none) with the spec's flags, --out,
// --checkpoint-every and --resume (the run's own checkpoint when an
// earlier attempt left one, else the spec's Restore); every JSON line it
// prints whose "step" is after the last one in the metrics file is
// appended there. Stderr gets the program's standard error. It returns the
// lines appended.
func RunSpec(ctx context.Context, s TrialSpec, self []string, stderr io.Writer) (int, error) {
	prog := s.Command
	if len(prog) == 0 {
		prog = self
	}
	if len(prog) == 0 {
		return 0, fmt.Errorf("tune: trial %s: no program to run", s.Trial)
	}
	if err := os.MkdirAll(s.Out, 0o755); err != nil {
		return 0, fmt.Errorf("tune: trial %s: %w", s.Trial, err)
	}
	last, err := lastStep(s.Metrics)
	if err != nil {
		return 0, fmt.Errorf("tune: trial %s: %w", s.Trial, err)
	}
	resume := s.Restore
	own := filepath.Join(s.Out, "checkpoint")
	if step, ok := checkpointStep(own); ok {
		if s.Steps > 0 && step >= s.Steps {
			return 0, nil // the earlier attempt finished; its worker died after
		}
		// The program replaces OUT/checkpoint as it goes: resume from a copy.
		tmp, err := os.MkdirTemp("", "sluice-tune-resume-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(tmp)
		if err := copyStable(own, tmp); err != nil {
			return 0, fmt.Errorf("tune: trial %s: copying its checkpoint: %w", s.Trial, err)
		}
		resume = tmp
	}
	args := slices.Concat(prog[1:], s.Flags, []string{"--out=" + s.Out})
	if s.CheckpointEvery > 0 {
		args = append(args, "--checkpoint-every="+strconv.Itoa(s.CheckpointEvery))
	}
	if resume != "" {
		args = append(args, "--resume="+resume)
	}
	mf, err := os.OpenFile(s.Metrics, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("tune: trial %s: %w", s.Trial, err)
	}
	defer mf.Close()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(pctx, prog[0], args...)
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	tail := &tailWriter{prefix: "[" + s.Trial + "] ", w: stderr}
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("tune: trial %s: starting %s: %w", s.Trial, prog[0], err)
	}
	n := 0
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var werr error
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		m, ok := parseReport(line)
		if !ok {
			continue
		}
		if step, ok := m["step"]; ok && last != nil && step <= *last {
			continue // the earlier attempt reported it
		}
		if _, werr = mf.WriteString(line + "\n"); werr != nil {
			break
		}
		n++
	}
	if werr != nil {
		cancel()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		return n, fmt.Errorf("tune: trial %s: %s: %w", s.Trial, s.Metrics, werr)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		return n, fmt.Errorf("tune: trial %s: %s %s: %w%s", s.Trial, filepath.Base(prog[0]), strings.Join(args, " "), err, tail.last())
	}
	return n, sc.Err()
}

// lastStep cuts a metrics file back to its last whole line (an attempt
// that died mid-write) and returns the greatest "step" in it (nil: none).
func lastStep(path string) (*float64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(b, '\n') + 1
	if end < len(b) {
		if err := os.Truncate(path, int64(end)); err != nil {
			return nil, err
		}
	}
	var last *float64
	for _, line := range strings.Split(string(b[:end]), "\n") {
		if m, ok := parseReport(line); ok {
			if s, ok := m["step"]; ok && (last == nil || s > *last) {
				last = &s
			}
		}
	}
	return last, nil
}

// checkpointStep is the step of a checkpoint's state.json.
func checkpointStep(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return 0, false
	}
	var st struct {
		Step *int `json:"step"`
	}
	if json.Unmarshal(b, &st) != nil || st.Step == nil {
		return 0, false
	}
	return *st.Step, true
}
