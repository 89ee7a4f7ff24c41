package tune

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Command is a trial that runs a program per trial, by default `sluice
// train`, as Ray Tune runs trial processes: the flags come from Base (the
// train: section) with the trial's config over it, each snake_case key a
// --kebab-case flag; every JSON object the program prints on a line of
// standard output is one report (its numeric fields); the program is
// killed when the scheduler stops the trial.
//
// The program gets --out (the trial's directory, or OUT/ID when Base has
// out), with CheckpointEvery above 0 --checkpoint-every, and --resume DIR
// when the trial continues from a checkpoint. A checkpoint is the program's
// OUT/checkpoint directory, copied into the experiment after a report
// finds it changed, and labelled with the "step" of its state.json (as
// `sluice train` writes it, after printing that step's line); a
// checkpoint without one is taken only after the report of a step that is
// a multiple of CheckpointEvery.
type Command struct {
	// Args are the program and its first arguments: [/path/sluice train].
	Args []string
	// Base holds the flags of every trial.
	Base Values
	// CheckpointEvery, above 0, asks the program for a checkpoint every
	// that many steps (PBT and resuming need checkpoints).
	CheckpointEvery int
	// Stderr gets the program's standard error, each line prefixed with
	// the trial's ID; nil discards it.
	Stderr io.Writer
	// Env is the program's environment; nil means this process's.
	Env []string
}

// Flags turns values into command-line flags, sorted by key: batch_size: 8
// gives --batch-size=8; true gives --flag, false --flag=false; a nested map
// (a nested space or a conditional branch) gives its own keys' flags.
func Flags(v Values) ([]string, error) {
	flat := Values{}
	if err := flatten(v, "", flat); err != nil {
		return nil, err
	}
	var out []string
	for _, k := range sortedKeys(flat) {
		if x, ok := flat[k].(bool); ok && x {
			out = append(out, "--"+kebab(k))
			continue
		}
		s, err := flagValue(k, flat[k])
		if err != nil {
			return nil, err
		}
		out = append(out, "--"+kebab(k)+"="+s)
	}
	return out, nil
}

// Params turns values into a plan's --param name=value pairs: the names
// as they are, nested maps flattened as in Flags, the values as Flags
// writes them (true, false, 0.001, 8, adamw).
func Params(v Values) (map[string]string, error) {
	flat := Values{}
	if err := flatten(v, "", flat); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(flat))
	for k, x := range flat {
		s, err := flagValue(k, x)
		if err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, nil
}

func flagValue(k string, v any) (string, error) {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case string:
		return x, nil
	case int, int64, uint64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%w: %s: a flag takes a single value, got %v", ErrInvalid, k, v)
}

func flatten(v Values, path string, out Values) error {
	for _, k := range sortedKeys(v) {
		if sub, ok := v[k].(Values); ok {
			if err := flatten(sub, join(path, k), out); err != nil {
				return err
			}
			continue
		}
		out[k] = v[k]
	}
	return nil
}

// Func is the trial function that runs the program. The trials' lines
// reach Stderr one whole line at a time.
func (c Command) Func() Func {
	if c.Stderr != nil {
		c.Stderr = &syncWriter{w: c.Stderr}
	}
	return func(ctx context.Context, t *Trial) error {
		vals := Values{}
		for k, v := range c.Base {
			vals[k] = v
		}
		if err := flatten(t.Config, "", vals); err != nil {
			return err
		}
		out := filepath.Join(t.Dir(), "out")
		if o, ok := vals["out"].(string); ok && o != "" {
			out = filepath.Join(o, t.ID)
		}
		delete(vals, "out")
		flags, err := Flags(vals)
		if err != nil {
			return err
		}
		args := slices.Concat(c.Args[1:], flags, []string{"--out=" + out})
		if c.CheckpointEvery > 0 {
			args = append(args, "--checkpoint-every="+strconv.Itoa(c.CheckpointEvery))
		}
		if t.Restore() != "" {
			args = append(args, "--resume="+t.Restore())
		}
		return c.run(ctx, t, args, filepath.Join(out, "checkpoint"))
	}
}

// takeCheckpoint copies the program's checkpoint into the experiment,
// labelled with the step its state.json holds (as `sluice train` writes
// it); without one, only at a step that is a multiple of CheckpointEvery,
// labelled with the trial's iteration. A checkpoint ahead of the reports
// read so far waits for them.
func (c Command) takeCheckpoint(t *Trial, src string, m map[string]float64) (bool, error) {
	tmp, err := os.MkdirTemp("", "sluice-tune-copy-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	if err := copyStable(src, tmp); err != nil {
		return false, nil // replaced while read: try again after the next report
	}
	iter := t.Iteration()
	var st struct {
		Step *int `json:"step"`
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "state.json")); err == nil && json.Unmarshal(b, &st) == nil && st.Step != nil {
		if *st.Step > iter {
			return false, nil
		}
		iter = *st.Step
	} else {
		step, ok := m["step"]
		if !ok {
			step = float64(iter)
		}
		if int(step)%c.CheckpointEvery != 0 {
			return false, nil
		}
	}
	return true, t.checkpointAt(iter, func(dir string) error { return copyDir(tmp, dir) })
}

func (c Command) run(ctx context.Context, t *Trial, args []string, ckptDir string) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(pctx, c.Args[0], args...)
	cmd.Env = c.Env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("tune: trial %s: %w", t.ID, err)
	}
	tail := &tailWriter{prefix: "[" + t.ID + "] ", w: c.Stderr}
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("tune: trial %s: starting %s: %w", t.ID, c.Args[0], err)
	}
	var stopped error
	seen := fingerprint(ckptDir)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var obj map[string]any
		if json.Unmarshal([]byte(line), &obj) != nil {
			continue
		}
		m := map[string]float64{}
		for k, v := range obj {
			if f, ok := v.(float64); ok {
				m[k] = f
			}
		}
		if err := t.Report(m); err != nil {
			stopped = err
			break
		}
		if c.CheckpointEvery == 0 {
			continue
		}
		fp := fingerprint(ckptDir)
		if fp == "" || fp == seen {
			continue
		}
		took, err := c.takeCheckpoint(t, ckptDir, m)
		if err != nil {
			stopped = err
			break
		}
		if took {
			seen = fp
		}
	}
	if stopped != nil {
		cancel()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		return stopped
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: %w%s", filepath.Base(c.Args[0]), strings.Join(c.Args[1:], " "), err, tail.last())
	}
	return sc.Err()
}

// fingerprint names the state of a directory's files ("" when absent).
func fingerprint(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			fmt.Fprintf(&b, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// copyStable copies src into dst, again when src changed meanwhile (the
// program replaced its checkpoint while it was read).
func copyStable(src, dst string) error {
	var err error
	for range 3 {
		before := fingerprint(src)
		if err = copyDir(src, dst); err == nil && fingerprint(src) == before {
			return nil
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
	if err == nil {
		err = errors.New("the checkpoint kept changing while it was copied")
	}
	return err
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// tailWriter forwards a program's stderr line by line with a prefix and
// keeps its last lines for the error message.
type tailWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
	lines  []string
}

func (tw *tailWriter) Write(p []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.buf = append(tw.buf, p...)
	for {
		i := slices.Index(tw.buf, '\n')
		if i < 0 {
			break
		}
		line := string(tw.buf[:i])
		tw.buf = tw.buf[i+1:]
		if tw.w != nil {
			tw.w.Write([]byte(tw.prefix + line + "\n"))
		}
		tw.lines = append(tw.lines, line)
		if len(tw.lines) > 5 {
			tw.lines = tw.lines[1:]
		}
	}
	return len(p), nil
}

func (tw *tailWriter) last() string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	lines := tw.lines
	if len(tw.buf) > 0 {
		lines = append(slices.Clone(lines), string(tw.buf))
	}
	if len(lines) == 0 {
		return ""
	}
	return ": " + strings.Join(lines, "\n")
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
