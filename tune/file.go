package tune

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is an experiment file of `sluice tune`: a tune: section that
// describes the search over a train: section whose keys are the flags of
// the training command in snake_case.
//
//	tune:
//	  metric: loss
//	  mode: min
//	  searcher: tpe
//	  scheduler: asha
//	  num_samples: 16
//	  max_concurrent: 2
//	  max_t: 100
//	  space:
//	    lr: {loguniform: [1e-5, 1e-2]}
//	    lora_rank: {choice: [4, 8, 16]}
//	train:
//	  model: infer/model/testdata/fixtures/llama3
//	  data: examples/data/tune/train.jsonl
//	  steps: 100
type File struct {
	Path  string
	Name  string
	Tune  Settings
	Train Values
	// Plan, instead of Train, runs a plan file per trial (nil: none).
	Plan *PlanTrials

	nodes map[string]*yaml.Node // key path -> value node
}

// PlanTrials are the plan: section: each trial runs the plan file with
// the space's values as --param name=value (over Params), and its report
// is the plan's run: see `sluice tune`.
//
//	plan:
//	  file: examples/plans/quickstart.yaml
//	  params: {region: eu}       # fixed --param values (optional)
type PlanTrials struct {
	File   string
	Params map[string]string
}

// Settings are the tune: section. Zero values mean the defaults.
type Settings struct {
	Metric        string
	Mode          Mode   // default min
	Searcher      string // random (default), grid, tpe
	Scheduler     string // fifo (default), asha, median, pbt
	NumSamples    int    // default 1
	MaxConcurrent int    // default 1: a training run uses the whole machine
	Seed          uint64
	// MaxT ends trials at that iteration (ASHA's max_t, default 100 with asha).
	MaxT int
	// ASHA and median.
	GracePeriod     int
	ReductionFactor float64
	MinSamples      int
	// PBT.
	PerturbationInterval int
	QuantileFraction     float64
	ResampleProbability  float64
	Space                Space
	// Command replaces `sluice train` as the program each trial runs.
	Command []string
	// CPU, GPU and Memory are each trial's resources on a cluster (cpu,
	// gpu, memory keys; memory as `sluice worker --resources` takes it:
	// 4GiB, 512MiB or bytes). Zero: the defaults (1 CPU).
	CPU, GPU int
	Memory   string
}

// schedulerKeys are the keys that apply to some schedulers only.
var schedulerKeys = map[string][]string{
	"grace_period":          {"asha", "median"},
	"reduction_factor":      {"asha"},
	"min_samples":           {"median"},
	"perturbation_interval": {"pbt"},
	"quantile_fraction":     {"pbt"},
	"resample_probability":  {"pbt"},
}

// reservedTrainKeys are flags tune sets itself per trial.
var reservedTrainKeys = []string{"resume", "checkpoint_every"}

// LoadFile reads and parses an experiment file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	return ParseFile(path, b)
}

// ParseFile parses an experiment file; every problem comes back at once as
// [Errors], each naming file:line:column and the key.
func ParseFile(name string, data []byte) (*File, error) {
	f := &File{Path: name, nodes: map[string]*yaml.Node{}, Train: Values{}}
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
	}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = deref(doc.Content[0])
	}
	if root == nil || root.Kind != yaml.MappingNode {
		p.errorf(root, "", "want a mapping with tune: and train: sections")
		return nil, p.errs
	}
	f.index(root, "")
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		switch k.Value {
		case "name", "description":
			if k.Value == "name" {
				f.Name = v.Value
			}
		case "tune":
			f.parseTune(p, v)
		case "train":
			f.parseTrain(p, v)
		case "plan":
			f.parsePlan(p, v)
		default:
			p.errorf(k, k.Value, "unknown key: a tune file has name, description, tune, and train or plan")
		}
	}
	if f.nodes["tune"] == nil {
		p.errorf(root, "tune", "missing: the tune: section describes the search")
	}
	switch {
	case f.nodes["plan"] != nil && f.nodes["train"] != nil:
		p.errorf(f.keyNode(root, "plan"), "plan", "a tune file's trials run a train: section or a plan:, not both")
	case f.nodes["plan"] != nil:
		if n := f.nodes["tune.command"]; n != nil {
			p.errorf(n, "tune.command", "applies to train: trials; a plan: trial runs its plan")
		}
		if n := f.nodes["tune.scheduler"]; n != nil && n.Value == "pbt" {
			p.errorf(n, "tune.scheduler", "pbt needs checkpoints, which a plan: trial has none of (it reports once)")
		}
	case f.nodes["train"] == nil && len(f.Tune.Command) == 0:
		p.errorf(root, "train", "missing: the train: section holds the training flags (or plan: names a plan file to run per trial)")
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return f, nil
}

// index remembers where each mapping key's value is.
func (f *File) index(n *yaml.Node, path string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		kp := join(path, k.Value)
		f.nodes[kp] = v
		if v.Kind == yaml.MappingNode && (path == "" && (k.Value == "tune" || k.Value == "train" || k.Value == "plan") || kp == "plan.params" || kp == "tune.space") {
			f.index(v, kp)
		}
	}
}

// ErrorAt is an error at the value of a key path (tune.metric), for
// problems found after parsing.
func (f *File) ErrorAt(path string, err error) error {
	e := &Error{File: f.Path, Path: path, Msg: err.Error(), Err: err}
	// At the key's value, or the nearest enclosing one's.
	for p := path; p != ""; {
		if n := f.nodes[p]; n != nil {
			e.Line, e.Col = n.Line, n.Column
			break
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return e
}

func (f *File) parseTune(p *parser, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "tune", "want a mapping, got %s", describe(n))
		return
	}
	s := &f.Tune
	s.Mode, s.Searcher, s.Scheduler, s.NumSamples, s.MaxConcurrent = Min, "random", "fifo", 1, 1
	s.QuantileFraction, s.ResampleProbability = 0.25, 0.25
	oneOf := func(v *yaml.Node, path string, opts ...string) string {
		if v.Kind != yaml.ScalarNode || !slices.Contains(opts, v.Value) {
			p.errorf(v, path, "unknown %s %s: want %s", strings.TrimPrefix(path, "tune."), describe(v), strings.Join(opts, " | "))
			return opts[0]
		}
		return v.Value
	}
	positive := func(v *yaml.Node, path string, min int) int {
		var x int
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&x) != nil || x < min {
			p.errorf(v, path, "want an integer of at least %d, got %s", min, describe(v))
		}
		return x
	}
	float := func(v *yaml.Node, path string) float64 {
		var x float64
		if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") || v.Decode(&x) != nil {
			p.errorf(v, path, "want a number, got %s", describe(v))
		}
		return x
	}
	var schedNode *yaml.Node
	given := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		path := "tune." + k.Value
		given[k.Value] = k
		switch k.Value {
		case "metric":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || v.Value == "" {
				p.errorf(v, path, "want the name of a reported key (loss), got %s", describe(v))
			}
			s.Metric = v.Value
		case "mode":
			s.Mode = Mode(oneOf(v, path, "min", "max"))
		case "searcher":
			s.Searcher = oneOf(v, path, "random", "grid", "tpe")
		case "scheduler":
			s.Scheduler = oneOf(v, path, "fifo", "asha", "median", "pbt")
			schedNode = v
		case "num_samples":
			s.NumSamples = positive(v, path, 1)
		case "max_concurrent":
			s.MaxConcurrent = positive(v, path, 1)
		case "seed":
			var x uint64
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&x) != nil {
				p.errorf(v, path, "want a non-negative integer, got %s", describe(v))
			}
			s.Seed = x
		case "max_t":
			s.MaxT = positive(v, path, 1)
		case "grace_period":
			s.GracePeriod = positive(v, path, 1)
		case "min_samples":
			s.MinSamples = positive(v, path, 1)
		case "perturbation_interval":
			s.PerturbationInterval = positive(v, path, 1)
		case "reduction_factor":
			if s.ReductionFactor = float(v, path); s.ReductionFactor <= 1 && v.Tag != "!!str" {
				p.errorf(v, path, "must be above 1, got %s", v.Value)
			}
		case "quantile_fraction":
			if s.QuantileFraction = float(v, path); !(s.QuantileFraction > 0 && s.QuantileFraction <= 0.5) {
				p.errorf(v, path, "must be in (0, 0.5], got %s", v.Value)
			}
		case "resample_probability":
			if s.ResampleProbability = float(v, path); !(s.ResampleProbability >= 0 && s.ResampleProbability <= 1) {
				p.errorf(v, path, "must be in [0, 1], got %s", v.Value)
			}
		case "space":
			s.Space = p.space(v, path)
			for _, key := range sortedKeys(s.Space) {
				if !keyPattern.MatchString(key) {
					p.errorf(f.keyNode(v, key), path+"."+key, "a train flag's key is snake_case: lower-case letters, digits and _")
				}
				if slices.Contains(reservedTrainKeys, key) {
					p.errorf(f.keyNode(v, key), path+"."+key, "tune sets --%s itself", kebab(key))
				}
			}
		case "cpu":
			s.CPU = positive(v, path, 1)
		case "gpu":
			s.GPU = positive(v, path, 0)
		case "memory":
			if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!int") || v.Value == "" {
				p.errorf(v, path, "want a size (4GiB, 512MiB or bytes), got %s", describe(v))
			}
			s.Memory = v.Value
		case "command":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 || v.Decode(&s.Command) != nil {
				p.errorf(v, path, "want a list of strings: the program and its first arguments, got %s", describe(v))
			}
		default:
			p.errorf(k, path, "unknown key: want metric, mode, searcher, scheduler, num_samples, max_concurrent, seed, max_t, grace_period, reduction_factor, min_samples, perturbation_interval, quantile_fraction, resample_probability, space, command, cpu, gpu or memory")
		}
	}
	if given["metric"] == nil {
		p.errorf(n, "tune.metric", "missing: name the reported key to optimize (loss)")
	}
	if given["space"] == nil {
		p.errorf(n, "tune.space", "missing: the parameters to search")
	}
	for _, key := range sortedKeys(schedulerKeys) {
		if schedNode != nil && !slices.Contains([]string{"fifo", "asha", "median", "pbt"}, schedNode.Value) {
			break // already reported
		}
		if k := given[key]; k != nil && !slices.Contains(schedulerKeys[key], s.Scheduler) {
			where := "the default"
			if schedNode != nil {
				where = fmt.Sprintf("at %d:%d", schedNode.Line, schedNode.Column)
			}
			p.errorf(k, "tune."+key, "applies to scheduler %s only; the scheduler is %s (%s)", strings.Join(schedulerKeys[key], " or "), s.Scheduler, where)
		}
	}
}

func (f *File) keyNode(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return m
}

func (f *File) parseTrain(p *parser, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "train", "want a mapping of training flags in snake_case, got %s", describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		path := "train." + k.Value
		switch {
		case !keyPattern.MatchString(k.Value):
			p.errorf(k, path, "a train flag's key is snake_case: lower-case letters, digits and _")
		case slices.Contains(reservedTrainKeys, k.Value):
			p.errorf(k, path, "tune sets --%s itself", kebab(k.Value))
		case v.Kind != yaml.ScalarNode || v.Tag == "!!null":
			p.errorf(v, path, "want a single value (a flag's), got %s", describe(v))
		default:
			var x any
			v.Decode(&x)
			f.Train[k.Value] = x
		}
	}
}

func (f *File) parsePlan(p *parser, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "plan", "want a mapping with file: (the plan to run per trial) and params:, got %s", describe(n))
		return
	}
	f.Plan = &PlanTrials{Params: map[string]string{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		path := "plan." + k.Value
		switch k.Value {
		case "file":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || v.Value == "" {
				p.errorf(v, path, "want the plan file's path, got %s", describe(v))
			}
			f.Plan.File = v.Value
		case "params":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, path, "want a mapping of param names to values, got %s", describe(v))
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				pk, pv := v.Content[j], deref(v.Content[j+1])
				if pv.Kind != yaml.ScalarNode || pv.Tag == "!!null" {
					p.errorf(pv, path+"."+pk.Value, "want a single value (a --param's), got %s", describe(pv))
					continue
				}
				f.Plan.Params[pk.Value] = pv.Value
			}
		default:
			p.errorf(k, path, "unknown key: want file or params")
		}
	}
	if f.Plan.File == "" && f.nodes["plan.file"] == nil {
		p.errorf(n, "plan.file", "missing: the plan file to run per trial")
	}
}

// Config is the experiment's tune.Config, with searcher and scheduler
// built from the settings; Dir is left to the caller.
func (f *File) Config() Config {
	s := f.Tune
	c := Config{Space: s.Space, Metric: s.Metric, Mode: s.Mode, NumSamples: s.NumSamples, MaxConcurrent: s.MaxConcurrent, Seed: s.Seed, MaxT: s.MaxT}
	switch s.Searcher {
	case "grid":
		c.Searcher = GridSearch()
	case "tpe":
		c.Searcher = TPE(TPEOptions{})
	default:
		c.Searcher = Random()
	}
	switch s.Scheduler {
	case "asha":
		a := NewASHA()
		if s.MaxT > 0 {
			a.MaxT = s.MaxT
		}
		if s.GracePeriod > 0 {
			a.GracePeriod = s.GracePeriod
		}
		if s.ReductionFactor > 0 {
			a.ReductionFactor = s.ReductionFactor
		}
		c.Scheduler = a
	case "median":
		m := NewMedian()
		if s.GracePeriod > 0 {
			m.GracePeriod = s.GracePeriod
		}
		if s.MinSamples > 0 {
			m.MinSamples = s.MinSamples
		}
		c.Scheduler = m
	case "pbt":
		p := NewPBT()
		if s.PerturbationInterval > 0 {
			p.Interval = s.PerturbationInterval
		}
		p.QuantileFraction, p.ResampleProbability = s.QuantileFraction, s.ResampleProbability
		c.Scheduler = p
	default:
		c.Scheduler = FIFO()
	}
	return c
}

// kebab turns a snake_case key into its flag name: batch_size -> batch-size.
func kebab(key string) string { return strings.ReplaceAll(key, "_", "-") }
