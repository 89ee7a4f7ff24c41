package tune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Function trials on a worker.
//
// A run of a trial that names a registered function (TrialSpec.Function)
// runs it in the worker's process with a Trial whose Report and
// Checkpoint write to the run's metrics file instead of talking to the
// experiment loop, one JSON object a line:
//
//	{"iteration": 3, "report": {"loss": 0.25}}
//	{"iteration": 3, "checkpoint": "/shared/exp/trials/t0001/run-1/ckpt/checkpoint_000003"}
//
// The driver (Cluster's trial function) reads the lines in order: a report
// is the trial's Report, a checkpoint is copied into the experiment as the
// trial's checkpoint of that iteration. When the worker dies, the task
// runs again elsewhere: the function restarts from the run's last
// checkpoint line (Restore, Iteration), the reports of iterations the
// file already holds are not written again (Report returns nil for them
// so the function goes on), nor checkpoints of iterations up to the last
// one written.

// funcLine is one line of a function run's metrics file.
type funcLine struct {
	Iter       int            `json:"iteration"`
	Report     map[string]any `json:"report,omitempty"`
	Checkpoint string         `json:"checkpoint,omitempty"`
}

// remote is the worker side of a function trial's Trial.
type remote struct {
	ctx      context.Context
	spec     TrialSpec
	file     *os.File
	lastIter int // the last report in the file
	lastCkpt int // the iteration of the last checkpoint in the file
	written  int
}

// RunFunc runs one run of a trial whose spec names a registered function,
// as TrialFunc does on a worker (see the notes above). It returns the
// lines it appended to the metrics file.
func RunFunc(ctx context.Context, s TrialSpec) (n int, err error) {
	fn, ok := Lookup(s.Function)
	if !ok {
		return 0, fmt.Errorf("tune: trial %s: %w", s.Trial, lookupErr(s.Function))
	}
	cfg, err := decodeConfig(s.Config)
	if err != nil {
		return 0, fmt.Errorf("tune: trial %s: its config: %w", s.Trial, err)
	}
	lines, err := readFuncLines(s.Metrics)
	if err != nil {
		return 0, fmt.Errorf("tune: trial %s: %w", s.Trial, err)
	}
	rm := &remote{ctx: ctx, spec: s, lastIter: -1, lastCkpt: -1}
	t := &Trial{ID: s.Trial, Config: cfg, iter: s.Iter, restore: s.Restore, dir: filepath.Dir(s.Metrics), w: rm}
	for _, l := range lines {
		if l.Report != nil {
			rm.lastIter = max(rm.lastIter, l.Iter)
		}
		if l.Checkpoint != "" {
			if _, err := os.Stat(l.Checkpoint); err == nil {
				rm.lastCkpt = l.Iter
				t.iter, t.restore = l.Iter, l.Checkpoint // an earlier attempt's: go on from it
			}
		}
	}
	if rm.file, err = os.OpenFile(s.Metrics, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
		return 0, fmt.Errorf("tune: trial %s: %w", s.Trial, err)
	}
	defer rm.file.Close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tune: trial %s: function %s panicked: %v\n%s", s.Trial, s.Function, p, debug.Stack())
		}
	}()
	err = fn(ctx, t)
	switch {
	case err == nil, errors.Is(err, ErrStopped) && ctx.Err() == nil:
		return rm.written, nil
	case ctx.Err() != nil:
		return rm.written, ctx.Err()
	}
	return rm.written, fmt.Errorf("tune: trial %s: function %s: %w", s.Trial, s.Function, err)
}

// readFuncLines reads a function run's metrics file, cutting it back to
// its last whole line (an attempt that died mid-write).
func readFuncLines(path string) ([]funcLine, error) {
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
	var out []funcLine
	for i, line := range strings.Split(string(b[:end]), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var l funcLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func (rm *remote) append(l funcLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := rm.file.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("tune: trial %s: %s: %w", rm.spec.Trial, rm.spec.Metrics, err)
	}
	rm.written++
	return nil
}

func (rm *remote) report(t *Trial, metrics map[string]float64) error {
	if rm.ctx.Err() != nil {
		return ErrStopped // the job was cancelled: the scheduler stopped the trial
	}
	next := t.iter + 1
	if next > rm.lastIter {
		m := make(map[string]any, len(metrics))
		for k, v := range metrics {
			m[k] = encodeMetric(v)
		}
		if err := rm.append(funcLine{Iter: next, Report: m}); err != nil {
			return err
		}
	}
	t.iter = next
	if rm.spec.MaxT > 0 && t.iter >= rm.spec.MaxT {
		return ErrStopped
	}
	return nil
}

func (rm *remote) checkpoint(t *Trial, iter int, write func(dir string) error) error {
	if iter <= rm.lastCkpt {
		return nil // an earlier attempt wrote it
	}
	dest := filepath.Join(filepath.Dir(rm.spec.Metrics), "ckpt", fmt.Sprintf("checkpoint_%06d", iter))
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
	if err := rm.append(funcLine{Iter: iter, Checkpoint: dest}); err != nil {
		return err
	}
	rm.lastCkpt = iter
	return nil
}

// encodeMetric is a metric as JSON takes it: non-finite values as strings.
func encodeMetric(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return v
}

func decodeMetrics(m map[string]any) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case float64:
			out[k] = x
		case string:
			if f, err := strconv.ParseFloat(x, 64); err == nil {
				out[k] = f
			}
		}
	}
	return out
}

// encodeConfig writes a trial's config as JSON that keeps its numbers'
// kinds: a float always has a point or an exponent (2.0), an integer never,
// so decodeConfig gives float64 and int64 back.
func encodeConfig(v Values) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := encodeValue(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeValue(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(x) {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			if err := encodeValue(b, x[k]); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: a config value is %v", ErrInvalid, x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		b.WriteString(s)
	case float32:
		return encodeValue(b, float64(x))
	default:
		js, err := json.Marshal(x)
		if err != nil {
			return err
		}
		b.Write(js)
	}
	return nil
}

// decodeConfig reads encodeConfig's JSON: integers as int64, other
// numbers as float64, mappings as Values.
func decodeConfig(raw json.RawMessage) (Values, error) {
	if len(raw) == 0 {
		return Values{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return typed(v).(Values), nil
}

func typed(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(Values, len(x))
		for k, e := range x {
			out[k] = typed(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = typed(e)
		}
		return x
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if n, err := x.Int64(); err == nil {
				return n
			}
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
