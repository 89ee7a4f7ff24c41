// Package trainjob runs a data-parallel `sluice train` on a Sluice
// cluster, as Ray Train's TorchTrainer runs N workers: one plan job per
// rank, each running RankFunc on whichever worker takes its task. The
// ranks find each other through files under the run's --out (a file
// rendezvous, like torch.distributed's FileStore): a directory every
// worker mounts or an object store (s3://), where rank 0 writes the model
// and the checkpoints and a restart reads them. Then each runs `sluice
// train` with the run's flags,
// --workers (every rank's address, in rank order) and --rank: the
// train package's TCP ring all-reduces the gradients every step.
//
// A rank that dies (its worker lost, its program failed) breaks the ring,
// so every other rank fails too. Run then cancels what is left of that
// generation and starts a new one, every rank again, with --resume from the
// last checkpoint rank 0 wrote (OUT/checkpoint, --checkpoint-every): the
// train package resumes bit for bit, so the loss curve is the one an
// uninterrupted run gives, each step printed once.
package trainjob

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluicehq/sluice/plans"
	"github.com/sluicehq/sluice/storage"
)

// RankFunc is the name of the map_batches function that runs one rank on
// a worker. A worker's program must call Register (the sluice command does
// in its worker processes).
const RankFunc = "sluice_train_rank"

// Spec is one rank's task, the one row its job's plan reads.
type Spec struct {
	// Out is the run's --out, a directory every worker shares or an
	// object store URL; the rendezvous files live in
	// Out/.rendezvous/g<Generation>.
	Out        string `json:"out"`
	Generation int    `json:"generation"`
	Rank       int    `json:"rank"`
	Ranks      int    `json:"ranks"`
	// Host is the address the other ranks reach this one at; empty: the
	// worker's host name.
	Host string `json:"host,omitempty"`
	// Args are sluice train's flags, --workers and --rank left out.
	Args []string `json:"args"`
	// RendezvousSeconds bounds the wait for every rank to arrive (default
	// 300).
	RendezvousSeconds int `json:"rendezvous_seconds,omitempty"`
}

// Self is the program a rank runs: this executable's train command.
var Self = func() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{exe, "train"}, nil
}

// Stderr gets the ranks' standard error lines on the worker, each prefixed
// by its rank (the worker's own standard error by default).
var Stderr io.Writer = os.Stderr

var outSchema = arrow.NewSchema([]arrow.Field{
	{Name: "rank", Type: arrow.PrimitiveTypes.Int64},
	{Name: "addr", Type: arrow.BinaryTypes.String},
}, nil)

// Register registers RankFunc with plans (once per program; a second call
// is an error).
func Register() error {
	return plans.Register(RankFunc, plans.SpecFunc(RankFunc, "a trainjob.Spec", outSchema,
		func(ctx context.Context, s Spec, b *array.RecordBuilder) error {
			addr, err := RunRank(ctx, s)
			if err != nil {
				return err
			}
			b.Field(0).(*array.Int64Builder).Append(int64(s.Rank))
			b.Field(1).(*array.StringBuilder).Append(addr)
			return nil
		}))
}

// rendezvousDir is where generation gen's ranks leave their addresses.
func rendezvousDir(out string, gen int) string {
	return storage.Join(out, ".rendezvous", "g"+strconv.Itoa(gen))
}

// RunRank runs one rank where it is called: it picks a free port, leaves
// host:port in the rendezvous directory, waits for every rank's address
// and runs the train program with them. It returns its own address.
func RunRank(ctx context.Context, s Spec) (string, error) {
	if s.Ranks < 1 || s.Rank < 0 || s.Rank >= s.Ranks {
		return "", fmt.Errorf("trainjob: rank %d of %d", s.Rank, s.Ranks)
	}
	fsys, err := storage.For(s.Out)
	if err != nil {
		return "", fmt.Errorf("trainjob: rank %d: --out: %w", s.Rank, err)
	}
	dir := rendezvousDir(s.Out, s.Generation)
	// Take a free port and let it go: the train program listens on it.
	// Another process could take it in between; the ring then fails and
	// the generation restarts.
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Host, "0"))
	if err != nil {
		return "", fmt.Errorf("trainjob: rank %d: %w", s.Rank, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	host := s.Host
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("trainjob: rank %d: %w", s.Rank, err)
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if err := writeFile(ctx, fsys, storage.Join(dir, "rank-"+strconv.Itoa(s.Rank)), []byte(addr)); err != nil {
		return "", fmt.Errorf("trainjob: rank %d: %w", s.Rank, err)
	}
	wait := time.Duration(s.RendezvousSeconds) * time.Second
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	addrs, err := awaitRanks(ctx, fsys, dir, s.Ranks, wait)
	if err != nil {
		return "", fmt.Errorf("trainjob: rank %d: %w", s.Rank, err)
	}
	prog, err := Self()
	if err != nil {
		return "", fmt.Errorf("trainjob: rank %d: %w", s.Rank, err)
	}
	args := slices.Concat(prog[1:], s.Args, []string{"--workers=" + strings.Join(addrs, ","), "--rank=" + strconv.Itoa(s.Rank)})
	cmd := exec.CommandContext(ctx, prog[0], args...)
	dieWithParent(cmd)
	tail := &lastLines{prefix: fmt.Sprintf("[rank %d] ", s.Rank), w: Stderr}
	cmd.Stdout = io.Discard // rank 0 writes every step to OUT/metrics.jsonl
	cmd.Stderr = tail
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("trainjob: rank %d: %s %s: %w%s", s.Rank, filepath.Base(prog[0]), strings.Join(args, " "), err, tail.last())
	}
	return addr, nil
}

// awaitRanks polls dir until every rank's address is there.
func awaitRanks(ctx context.Context, fsys storage.FS, dir string, ranks int, wait time.Duration) ([]string, error) {
	deadline := time.Now().Add(wait)
	for {
		addrs := make([]string, ranks)
		missing := -1
		for r := range ranks {
			b, err := storage.ReadFile(ctx, fsys, storage.Join(dir, "rank-"+strconv.Itoa(r)))
			if err != nil {
				missing = r
				break
			}
			addrs[r] = string(b)
		}
		if missing < 0 {
			return addrs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rank %d did not arrive in %s within %s (are %d worker slots free at once?)", missing, dir, wait, ranks)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeFile writes path whole, atomically (a staged upload).
func writeFile(ctx context.Context, fsys storage.FS, path string, b []byte) error {
	u, err := fsys.Create(ctx, path)
	if err != nil {
		return err
	}
	if _, err := u.Write(b); err != nil {
		u.Close()
		u.Abort(ctx)
		return err
	}
	if err := u.Close(); err != nil {
		u.Abort(ctx)
		return err
	}
	return u.Commit(ctx)
}

// removeAll deletes every file under prefix.
func removeAll(ctx context.Context, fsys storage.FS, prefix string) error {
	fis, err := fsys.List(ctx, prefix)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, fi := range fis {
		if err := fsys.Delete(ctx, fi.Path); err != nil {
			return err
		}
	}
	return nil
}

// lastLines copies lines to w with a prefix and keeps the last few for an
// error message.
type lastLines struct {
	prefix string
	w      io.Writer
	buf    bytes.Buffer
	lines  []string
}

func (l *lastLines) Write(p []byte) (int, error) {
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // keep the partial line
			break
		}
		line = strings.TrimRight(line, "\n")
		fmt.Fprintln(l.w, l.prefix+line)
		if l.lines = append(l.lines, line); len(l.lines) > 5 {
			l.lines = l.lines[1:]
		}
	}
	return len(p), nil
}

func (l *lastLines) last() string {
	if len(l.lines) == 0 {
		return ""
	}
	return ": " + strings.Join(l.lines, "; ")
}

// Jobs are the coordinators' job API as Run uses it (tunejob.Client is
// one).
type Jobs interface {
	Submit(ctx context.Context, requestID, plan string, needs Needs) (string, error)
	State(ctx context.Context, id string) (JobState, error)
	Cancel(ctx context.Context, id string) error
}

// Needs are what each rank's task needs of a worker.
type Needs struct {
	CPU, GPU int
	Memory   int64
}

// JobState is what Run needs of a job's state.
type JobState struct {
	Done, Succeeded bool
	State, Error    string
}

// Config is a data-parallel run on a cluster.
type Config struct {
	Jobs  Jobs
	Ranks int    // --num-workers
	Out   string // --out: a directory every worker mounts, or an object store URL
	Args  []string
	Host  string // each rank's address for the others (Spec.Host)
	Needs Needs
	// MaxRestarts is how many times a broken generation starts again
	// from the last checkpoint (default 0: none).
	MaxRestarts int
	// Name makes the jobs' request ids, so a retried submit is the same
	// job (default: Out).
	Name string
	// Stdout gets every step's metrics line once, in order, as rank 0
	// wrote it to OUT/metrics.jsonl; Log gets what Run does.
	Stdout, Log io.Writer
	// Poll is how often job states are read (default 250 ms).
	Poll time.Duration
}

// Run runs the training: generation after generation until one succeeds
// or MaxRestarts is spent.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Ranks < 1 {
		return fmt.Errorf("trainjob: --num-workers %d: want at least 1", cfg.Ranks)
	}
	if cfg.Out == "" {
		return fmt.Errorf("trainjob: --out is required: a directory every worker mounts or an object store URL")
	}
	out := cfg.Out
	if !storage.IsURL(out) {
		var err error
		if out, err = filepath.Abs(out); err != nil {
			return err
		}
	}
	fsys, err := storage.For(out)
	if err != nil {
		return fmt.Errorf("trainjob: --out: %w", err)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	name := cfg.Name
	if name == "" {
		name = out
	}
	// A rendezvous left by an earlier run in this directory would hand
	// this run stale addresses.
	if err := removeAll(ctx, fsys, storage.Join(out, ".rendezvous")+"/"); err != nil {
		return fmt.Errorf("trainjob: %w", err)
	}
	printed := 0
	for gen := 0; ; gen++ {
		args := slices.Clone(cfg.Args)
		if gen > 0 {
			ck := storage.Join(out, "checkpoint")
			if b, err := storage.ReadFile(ctx, fsys, storage.Join(ck, "state.json")); err == nil {
				var st struct {
					Step int `json:"step"`
				}
				json.Unmarshal(b, &st)
				args = append(withoutFlag(args, "resume"), "--resume="+ck)
				fmt.Fprintf(cfg.Log, "trainjob: generation %d resumes from %s (step %d)\n", gen, ck, st.Step)
			} else {
				fmt.Fprintf(cfg.Log, "trainjob: generation %d starts over: no checkpoint in %s\n", gen, ck)
			}
		}
		failed, ferr := runGeneration(ctx, cfg, fsys, out, name, gen, args)
		if printed, err = printMetrics(ctx, fsys, out, printed, cfg.Stdout); err != nil {
			return err
		}
		if ferr == nil {
			removeAll(ctx, fsys, storage.Join(out, ".rendezvous")+"/")
			return nil
		}
		if ctx.Err() != nil || gen >= cfg.MaxRestarts || failed < 0 {
			return ferr
		}
		fmt.Fprintf(cfg.Log, "trainjob: generation %d: rank %d failed (%v); restarting all %d ranks from the last checkpoint (%d restarts left)\n",
			gen, failed, ferr, cfg.Ranks, cfg.MaxRestarts-gen-1)
	}
}

// runGeneration runs one generation's jobs to the end. It returns the
// rank whose job failed first and its error (rank -1 when the error is
// not a rank's, a failed submit say), having cancelled the others and
// waited for them.
func runGeneration(ctx context.Context, cfg Config, fsys storage.FS, out, name string, gen int, args []string) (int, error) {
	dir := rendezvousDir(out, gen)
	ids := make([]string, cfg.Ranks)
	cancelAll := func() {
		for _, id := range ids {
			if id != "" {
				cfg.Jobs.Cancel(context.WithoutCancel(ctx), id)
			}
		}
	}
	for r := range cfg.Ranks {
		spec := Spec{Out: out, Generation: gen, Rank: r, Ranks: cfg.Ranks, Host: cfg.Host, Args: args}
		js, _ := json.Marshal(spec)
		row, _ := json.Marshal(map[string]string{"spec": string(js)})
		specFile := storage.Join(dir, "spec-"+strconv.Itoa(r)+".jsonl")
		if err := writeFile(ctx, fsys, specFile, append(row, '\n')); err != nil {
			cancelAll()
			return -1, fmt.Errorf("trainjob: %w", err)
		}
		plan := rankPlan(specFile, storage.Join(dir, "result-"+strconv.Itoa(r)))
		id, err := cfg.Jobs.Submit(ctx, fmt.Sprintf("train-dp:%s:g%d:r%d", name, gen, r), plan, cfg.Needs)
		if err != nil {
			cancelAll()
			return -1, fmt.Errorf("trainjob: submitting rank %d: %w", r, err)
		}
		ids[r] = id
		fmt.Fprintf(cfg.Log, "trainjob: generation %d rank %d: job %s\n", gen, r, id)
	}
	done := make([]bool, cfg.Ranks)
	failed, ferr := -1, error(nil)
	for {
		left := 0
		for r, id := range ids {
			if done[r] {
				continue
			}
			st, err := cfg.Jobs.State(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					cancelAll()
					return -1, ctx.Err()
				}
				left++ // the coordinators may be electing: ask again
				continue
			}
			if !st.Done {
				left++
				continue
			}
			done[r] = true
			if !st.Succeeded && failed < 0 {
				msg := st.Error
				if msg == "" {
					msg = st.State
				}
				failed, ferr = r, fmt.Errorf("trainjob: rank %d (job %s): %s", r, id, msg)
				cancelAll()
			}
		}
		if left == 0 {
			return failed, ferr
		}
		select {
		case <-ctx.Done():
			cancelAll()
			return -1, ctx.Err()
		case <-time.After(cfg.Poll):
		}
	}
}

// rankPlan is a rank's job: read its spec, run RankFunc, write its row.
func rankPlan(spec, out string) string {
	return fmt.Sprintf("name: train-rank\nread:\n  jsonl: %s\nsteps:\n  - map_batches: {fn: %s}\nwrite:\n  jsonl: %s\n  mode: overwrite\n",
		strconv.Quote(spec), RankFunc, strconv.Quote(out+"/"))
}

// withoutFlag drops --name and --name=value (and --name value) from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--"+name || a == "-"+name {
			i++ // its value
			continue
		}
		if strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// printMetrics writes the steps of OUT/metrics.jsonl after the first
// printed ones to w, once each: a step a broken generation wrote and the
// next wrote again (after its checkpoint) is printed as the later one
// wrote it, which a bit-for-bit resume makes the same. It returns the
// steps printed so far.
func printMetrics(ctx context.Context, fsys storage.FS, out string, printed int, w io.Writer) (int, error) {
	if w == nil {
		return printed, nil
	}
	path := storage.Join(out, "metrics.jsonl")
	b, err := storage.ReadFile(ctx, fsys, path)
	if errors.Is(err, storage.ErrNotExist) {
		return printed, nil
	}
	if err != nil {
		return printed, fmt.Errorf("trainjob: %w", err)
	}
	byStep := map[int]string{}
	last := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m struct {
			Step int `json:"step"`
		}
		line := strings.TrimSpace(sc.Text())
		if json.Unmarshal([]byte(line), &m) != nil || m.Step < 1 {
			continue
		}
		byStep[m.Step] = line
		last = max(last, m.Step)
	}
	if err := sc.Err(); err != nil {
		return printed, fmt.Errorf("trainjob: %s: %w", path, err)
	}
	for s := printed + 1; s <= last; s++ {
		line, ok := byStep[s]
		if !ok {
			break
		}
		fmt.Fprintln(w, line)
		printed = s
	}
	return printed, nil
}
