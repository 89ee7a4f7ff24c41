package dist

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/dataset/plan"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/storage"
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
	// GPU is the GPUs a task asks for: 1 when a MapBatches of the stage
	// asks for one (an infer step does). The device is still "auto" (the
	// model runs on a GPU only if the worker has one), so a cluster
	// without GPU workers runs the stage on CPUs (see the worker).
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
	RowGroups []int `json:",omitempty"` // Parquet row groups to read, in file order; nil: all
	// Partition is the hive partition values of the file's path.
	Partition []plan.PartitionValue `json:",omitempty"`
}

// Options tune Plan.
type Options struct {
	// Partitions is the number of reduce tasks of each exchange.
	Partitions int
	// SplitBytes is the target bytes of input per scan task (and, counting
	// 8 bytes a row, rows per Range task). A Parquet file larger than this
	// splits by row groups.
	SplitBytes int64
	// MinTasks, when positive, cuts each scan into at least that many
	// tasks where its input allows (the split target shrinks to the
	// input's bytes over MinTasks, not below 64 KiB): a cluster passes its
	// CPUs, so that every CPU has a share of the scan.
	MinTasks int
	// FS serves the Parquet footers Plan reads; nil means storage.For.
	FS func(path string) (storage.FS, error)
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
// tasks: PlanContext without a deadline.
func Plan(root plan.Node, opts Options) (*Layout, error) {
	return PlanContext(context.Background(), root, opts)
}

// PlanContext lays out an optimized plan (usually a *plan.Write) as stages
// of tasks. Scan splits come from the file sizes the Scan nodes carry; it
// reads only the footers of Parquet files larger than SplitBytes, to split
// them by row groups. The Layout is the one source of the splits: tasks
// read what it says, not what their own listing finds.
func PlanContext(ctx context.Context, root plan.Node, opts Options) (*Layout, error) {
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
		if s.gpu {
			spec.GPU = 1
		}
		switch src := s.source.(type) {
		case *plan.Scan:
			if spec.Splits, err = splitFiles(ctx, src, opts); err != nil {
				return nil, err
			}
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

// unit is the smallest piece of scan work: a whole file, or one row group
// of a large Parquet file.
type unit struct {
	file plan.File
	rgs  []int
	size int64
}

// splitFiles groups the scan's files into splits of about SplitBytes,
// greedily and in file order, so reading the tasks in order reads the rows
// in file order. A Parquet file larger than SplitBytes splits into row
// groups; other files larger than it are a split of their own. There is
// always at least one split (maybe empty), so the stage has a task.
// minSplit is the smallest split target MinTasks makes.
var minSplit int64 = 64 << 10

func splitFiles(ctx context.Context, s *plan.Scan, opts Options) ([]Split, error) {
	target := opts.SplitBytes
	if opts.MinTasks > 1 {
		var total int64
		for _, f := range s.Files {
			if keepFile(s, f) {
				total += f.Size
			}
		}
		target = min(target, max(minSplit, (total+int64(opts.MinTasks)-1)/int64(opts.MinTasks)))
	}
	var units []unit
	for _, f := range s.Files {
		if !keepFile(s, f) {
			continue
		}
		if f.Size <= target || s.Format.Name() != "parquet" {
			units = append(units, unit{file: f, size: f.Size})
			continue
		}
		fs, err := fsFor(local.Config{FS: opts.FS}, f.Path)
		if err != nil {
			return nil, err
		}
		rgs, err := rowGroups(ctx, fs, f.Path)
		if err != nil {
			return nil, err
		}
		for _, rg := range rgs {
			units = append(units, unit{file: f, rgs: []int{rg.index}, size: rg.size})
		}
	}
	if opts.MinTasks > 1 {
		// Again over what the units hold (a row group's bytes are its
		// column chunks'): every split but one big unit stays within the
		// target, so there are at least MinTasks where the units allow.
		var total int64
		for _, u := range units {
			total += u.size
		}
		target = min(target, max(minSplit, (total+int64(opts.MinTasks)-1)/int64(opts.MinTasks)))
	}
	// k splits of nearly equal bytes, contiguous in file order: unit i
	// goes to the split its middle byte falls in.
	var total int64
	for _, u := range units {
		total += u.size
	}
	k := 1
	if total > 0 {
		k = int(min(int64(len(units)), max(1, (total+target-1)/target)))
	}
	var out []Split
	var cur Split
	splitsOf := map[string]int{} // how many splits read some of a file
	flush := func() {
		for _, f := range cur.Files {
			splitsOf[f.Path]++
		}
		out = append(out, cur)
		cur = Split{}
	}
	var at int64
	group := 0
	for _, u := range units {
		g := 0
		if total > 0 {
			g = int(min(int64(k-1), (2*at+u.size)*int64(k)/(2*total)))
		}
		at += u.size
		if g != group && len(cur.Files) > 0 {
			flush()
		}
		group = g
		if n := len(cur.Files) - 1; n >= 0 && u.rgs != nil && cur.Files[n].Path == u.file.Path {
			cur.Files[n].RowGroups = append(cur.Files[n].RowGroups, u.rgs...)
		} else {
			cur.Files = append(cur.Files, SplitFile{Path: u.file.Path, Size: u.file.Size, RowGroups: u.rgs, Partition: u.file.Partition})
		}
	}
	if len(cur.Files) > 0 || len(out) == 0 {
		flush()
	}
	// A file read by one split reads all of it.
	for i := range out {
		for j, f := range out[i].Files {
			if splitsOf[f.Path] == 1 {
				out[i].Files[j].RowGroups = nil
			}
		}
	}
	return out, nil
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
		if !f.MayMatch(b) {
			return false
		}
	}
	return true
}

// String prints the layout one stage a line, as Explain and job status show it.
func (l *Layout) String() string {
	var b strings.Builder
	for i, s := range l.Stages {
		fmt.Fprintf(&b, "Stage %d: %s", i, count(s.Tasks, "task"))
		for _, in := range s.Inputs {
			fmt.Fprintf(&b, ", reads stage %d (%s)", in.Stage, in.Mode)
		}
		switch {
		case s.Sink:
			b.WriteString(", writes")
		default:
			fmt.Fprintf(&b, ", %s", count(s.Partitions, "partition"))
		}
		if s.Stateful {
			b.WriteString(", stateful")
		}
		fmt.Fprintf(&b, ": %s\n", s.Name)
	}
	return b.String()
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Rewrite applies f to every text of the layout that comes from the plan
// (stage names, split paths, partition values), in place: a worker hides
// the environment values a plan read before the layout leaves it
// (plans.EnvRefs) and shows them again before running a task.
func (l *Layout) Rewrite(f func(string) string) {
	for i := range l.Stages {
		s := &l.Stages[i]
		s.Name = f(s.Name)
		for j := range s.Splits {
			files := slices.Clone(s.Splits[j].Files) // a decoded layout may share them
			for k := range files {
				files[k].Path = f(files[k].Path)
				if p := files[k].Partition; p != nil {
					p = slices.Clone(p)
					for m := range p {
						p[m].Value = f(p[m].Value)
					}
					files[k].Partition = p
				}
			}
			s.Splits[j].Files = files
		}
	}
}
