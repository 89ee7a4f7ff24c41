package dist

import (
	"fmt"

	"github.com/sluicehq/sluice/dataset/expr"
	"github.com/sluicehq/sluice/dataset/plan"
)

// Layout is the physical plan of a job: made once by Plan (on one worker:
// the job's planning task), stored by the coordinator in its replicated
// state as JSON, and handed to every task.
type Layout struct {
	Stages []StageSpec `json:"stages"`
	// Partitions is the Options.Partitions the layout was made with; Run
	// needs it to recompute the stages.
	Partitions int `json:"partitions"`
}

// StageSpec is one stage: what its tasks run, how many, and what they read.
type StageSpec struct {
	Name       string  `json:"name"` // operators, e.g. "Scan parquet ... -> Filter ... -> hash partition by [category] into 4"
	Tasks      int     `json:"tasks"`
	Inputs     []Input `json:"inputs,omitempty"`
	Partitions int     `json:"partitions"`         // output partitions each task produces (0 for the sink stage)
	Sink       bool    `json:"sink,omitempty"`     // its tasks write staged files (only the last stage)
	Stateful   bool    `json:"stateful,omitempty"` // holds user state (a MapBatches/infer stage): prefer workers that ran it before
	// GPU is the GPUs a task needs. Always 0 for now: an infer step's
	// device is "auto" in the plan (the model runs on a GPU only if the
	// worker has one), so the plan does not say that a task needs one.
	GPU    int     `json:"gpu,omitempty"`
	Splits []Split `json:"splits,omitempty"` // scan stages: one per task
	// Sample is true for a stage whose tasks also put a sample block
	// (SampleID) for the range partitioning of a sort.
	Sample bool `json:"sample,omitempty"`
}

// Input is one producer stage a stage reads.
type Input struct {
	Stage int    `json:"stage"`
	Mode  string `json:"mode"` // ModeOne, ModeAll or ModeSamples
}

// Split is a scan task's share of the scan: whole files, in the scan's order.
type Split struct {
	Files []SplitFile `json:"files"`
}

// SplitFile is one file of a split.
type SplitFile struct {
	Path      string
	Size      int64
	RowGroups []int `json:",omitempty"` // nil: all (row-group ranges are not made yet)
	// Partition is the hive partition values of the file's path.
	Partition []plan.PartitionValue `json:",omitempty"`
}

// Options tune Plan.
type Options struct {
	// Partitions is the number of reduce tasks of each exchange.
	Partitions int
	// SplitBytes is the target bytes of input per scan task (and, counting
	// 8 bytes a row, rows per Range task).
	SplitBytes int64
}

// DefaultOptions returns 8 partitions and 256 MiB splits.
func DefaultOptions() Options { return Options{Partitions: 8, SplitBytes: 256 << 20} }

// Validate reports the first field that cannot work.
func (o Options) Validate() error {
	switch {
	case o.Partitions < 1:
		return fmt.Errorf("dist: Partitions (%d) must be at least 1", o.Partitions)
	case o.SplitBytes < 1:
		return fmt.Errorf("dist: SplitBytes (%d) must be at least 1", o.SplitBytes)
	}
	return nil
}

// Plan lays out an optimized plan (usually a *plan.Write) as stages of
// tasks. It reads nothing: scan splits come from the file sizes the Scan
// nodes carry, so every worker that recompiles the plan agrees with it.
func Plan(root plan.Node, opts Options) (*Layout, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	stages, err := cut(root, opts.Partitions)
	if err != nil {
		return nil, err
	}
	l := &Layout{Partitions: opts.Partitions}
	for i, s := range stages {
		spec := StageSpec{Name: s.name(), Inputs: s.inputs, Partitions: s.parts, Sink: s.sink, Stateful: s.stateful, Sample: s.out == outSample}
		switch src := s.source.(type) {
		case *plan.Scan:
			spec.Splits = splitFiles(src, opts.SplitBytes)
			spec.Tasks = len(spec.Splits)
		case *plan.Range:
			spec.Tasks = int(min(max((src.N*8+opts.SplitBytes-1)/opts.SplitBytes, 1), 1<<16))
		case *plan.Values:
			spec.Tasks = 1
		default:
			in := s.inputs[0]
			if in.Mode == ModeOne {
				spec.Tasks = l.Stages[in.Stage].Tasks
			} else {
				spec.Tasks = l.Stages[in.Stage].Partitions
			}
			for _, in := range s.inputs {
				if p := l.Stages[in.Stage]; in.Mode == ModeAll && p.Partitions != spec.Tasks {
					return nil, fmt.Errorf("dist: stage %d reads %d partitions of stage %d but has %d tasks", i, p.Partitions, in.Stage, spec.Tasks)
				}
			}
		}
		l.Stages = append(l.Stages, spec)
	}
	return l, nil
}

// splitFiles groups the scan's files into splits of about target bytes,
// greedily and in file order, so reading the tasks in order reads the files
// in order. A file larger than target is a split of its own. There is
// always at least one split (maybe empty), so the stage has a task.
func splitFiles(s *plan.Scan, target int64) []Split {
	var out []Split
	var cur Split
	var size int64
	for _, f := range s.Files {
		if !keepFile(s, f) {
			continue
		}
		if len(cur.Files) > 0 && size+f.Size > target {
			out = append(out, cur)
			cur, size = Split{}, 0
		}
		cur.Files = append(cur.Files, SplitFile{Path: f.Path, Size: f.Size, Partition: f.Partition})
		size += f.Size
	}
	if len(cur.Files) > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out
}

// keepFile reports whether a file's hive partition values may satisfy the
// scan's filters over partition columns only (as the local scan prunes).
func keepFile(s *plan.Scan, f plan.File) bool {
	if len(s.PartCols) == 0 {
		return true
	}
	isPart := func(c string) bool {
		for _, p := range s.PartCols {
			if p == c {
				return true
			}
		}
		return false
	}
	for _, b := range s.Filters {
		only := true
		for _, c := range b.Columns() {
			only = only && isPart(c)
		}
		if !only {
			continue
		}
		if !b.MayMatch(func(c string) (expr.Stats, bool) {
			for _, p := range f.Partition {
				if p.Key == c {
					return expr.Stats{Min: p.Value, Max: p.Value, HasMinMax: true, RowCount: 1}, true
				}
			}
			return expr.Stats{}, false
		}) {
			return false
		}
	}
	return true
}
