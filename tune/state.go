package tune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sluicehq/sluice/storage"
)

// Status is a trial's state.
type Status string

// The statuses. Done, Stopped and Error are final.
const (
	Pending Status = "pending"
	Running Status = "running"
	Done    Status = "done"    // the trial function returned nil
	Stopped Status = "stopped" // the scheduler stopped it early
	Failed  Status = "error"   // it returned an error or panicked
)

func (s Status) final() bool { return s == Done || s == Stopped || s == Failed }

// TrialState is everything the experiment keeps of one trial.
type TrialState struct {
	ID     string `json:"trial"`
	Index  int    `json:"index"`
	Sample        // config and params
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	// Iterations is the trial's last training iteration.
	Iterations int `json:"iterations"`
	// Last and Best are the metric's last and best reported values (nil
	// when never reported).
	Last *float64 `json:"last"`
	Best *float64 `json:"best"`
	// Reports are every report since the trial (re)started from its
	// restore point, each with its iteration under "iteration".
	Reports []map[string]float64 `json:"reports,omitempty"`
	// Checkpoints are the trial's saved checkpoints, oldest first.
	Checkpoints []CheckpointRef `json:"checkpoints,omitempty"`
	// RestoredFrom is the checkpoint a PBT exploit last restarted the trial
	// from (another trial's).
	RestoredFrom string `json:"restored_from,omitempty"`
}

// CheckpointRef is one saved checkpoint: the iteration it holds and where.
type CheckpointRef struct {
	Iter int    `json:"iteration"`
	Path string `json:"path"`
}

// Experiment is an experiment's state, as Run returns it and Load reads it.
type Experiment struct {
	Metric     string        `json:"metric"`
	Mode       Mode          `json:"mode"`
	Seed       uint64        `json:"seed"`
	NumSamples int           `json:"num_samples"`
	Trials     []*TrialState `json:"trials"`
}

// Best is the finished (done or stopped) trial with the best metric, nil
// when none reported it.
func (e *Experiment) Best() *TrialState {
	var best *TrialState
	for _, t := range e.Trials {
		if (t.Status != Done && t.Status != Stopped) || t.Best == nil {
			continue
		}
		if best == nil || better(e.Mode, *t.Best, *best.Best) {
			best = t
		}
	}
	return best
}

// StoppedEarly counts the trials a scheduler stopped.
func (e *Experiment) StoppedEarly() int {
	n := 0
	for _, t := range e.Trials {
		if t.Status == Stopped {
			n++
		}
	}
	return n
}

func better(m Mode, a, b float64) bool {
	if m == Max {
		return a > b
	}
	return a < b
}

// Summary is the one-line result of an experiment, as `sluice tune`
// prints it last.
type Summary struct {
	Best         *BestTrial `json:"best"`
	Trials       int        `json:"trials"`
	StoppedEarly int        `json:"stopped_early"`
}

// BestTrial names the best trial of a Summary.
type BestTrial struct {
	Trial  string  `json:"trial"`
	Config Values  `json:"config"`
	Metric float64 `json:"metric"`
}

// Summary is the experiment's result line.
func (e *Experiment) Summary() Summary {
	s := Summary{Trials: len(e.Trials), StoppedEarly: e.StoppedEarly()}
	if b := e.Best(); b != nil {
		s.Best = &BestTrial{Trial: b.ID, Config: b.Config, Metric: *b.Best}
	}
	return s
}

// Row is one trial of the trial table: a line of trials.jsonl, a line of
// the live table.
type Row struct {
	Trial      string   `json:"trial"`
	Config     Values   `json:"config"`
	Status     Status   `json:"status"`
	Iterations int      `json:"iterations"`
	Last       *float64 `json:"last"`
	Best       *float64 `json:"best"`
	Error      string   `json:"error,omitempty"`
	Checkpoint string   `json:"checkpoint,omitempty"`
}

// JSONL is the trial table, one JSON object a line: trial, config, status,
// iterations, last and best metric, error, latest checkpoint.
func (e *Experiment) JSONL() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, t := range e.Trials {
		enc.Encode(t.Row())
	}
	return b.Bytes()
}

// Row is the trial's line of the trial table. It shares the trial's
// config.
func (t *TrialState) Row() Row {
	r := Row{Trial: t.ID, Config: t.Config, Status: t.Status, Iterations: t.Iterations, Last: t.Last, Best: t.Best, Error: t.Error}
	if n := len(t.Checkpoints); n > 0 {
		r.Checkpoint = t.Checkpoints[n-1].Path
	}
	return r
}

// WriteTable prints the trial table for a terminal.
func (e *Experiment) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TRIAL\tSTATUS\tITER\tLAST %s\tBEST %s\tCONFIG\n", e.Metric, e.Metric)
	for _, t := range e.Trials {
		status := string(t.Status)
		if t.Error != "" {
			status += ": " + firstLine(t.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, status, t.Iterations, fnum(t.Last), fnum(t.Best), formatConfig(t.Config))
	}
	return tw.Flush()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func fnum(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'g', 6, 64)
}

const (
	stateFile   = "experiment.json"
	tableFile   = "trials.jsonl"
	parquetFile = "trials.parquet"
)

// Load reads the experiment kept in dir (local or s3://).
func Load(ctx context.Context, dir string) (*Experiment, error) {
	fsys, err := storage.For(dir)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	return load(ctx, fsys, dir)
}

func load(ctx context.Context, fsys storage.FS, dir string) (*Experiment, error) {
	p := storage.Join(dir, stateFile)
	b, err := storage.ReadFile(ctx, fsys, p)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (no %s)", ErrNoExperiment, dir, stateFile)
	}
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	var e Experiment
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("tune: %s: %w", p, err)
	}
	return &e, nil
}

// save writes the state and the table (trials.jsonl), each replaced
// atomically.
func save(ctx context.Context, fsys storage.FS, dir string, e *Experiment) error {
	b, err := json.MarshalIndent(e, "", " ")
	if err != nil {
		return fmt.Errorf("tune: encoding the experiment state: %w", err)
	}
	if err := writeFile(ctx, fsys, storage.Join(dir, stateFile), b); err != nil {
		return err
	}
	return writeFile(ctx, fsys, storage.Join(dir, tableFile), e.JSONL())
}

// saveParquet writes trials.parquet: once, when the experiment ends (the
// encoder costs more than the rest of a save).
func saveParquet(ctx context.Context, fsys storage.FS, dir string, e *Experiment) error {
	pq, err := e.Parquet()
	if err != nil {
		return err
	}
	return writeFile(ctx, fsys, storage.Join(dir, parquetFile), pq)
}

func writeFile(ctx context.Context, fsys storage.FS, p string, b []byte) error {
	u, err := fsys.Create(ctx, p)
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	defer u.Abort(ctx)
	if _, err := u.Write(b); err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	if err := u.Close(); err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	if err := u.Commit(ctx); err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	return nil
}
