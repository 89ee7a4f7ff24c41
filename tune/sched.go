package tune

import (
	"fmt"
	"slices"
)

// Action is what a scheduler decides for a trial after one of its results.
type Action int

// The actions.
const (
	// Continue lets the trial run on.
	Continue Action = iota
	// Stop ends the trial early: its status becomes stopped.
	Stop
	// Exploit (PBT) restarts the trial from another trial's checkpoint with
	// a new config.
	Exploit
	// Complete ends a trial that used its whole budget (ASHA's max_t): its
	// status becomes done, not stopped.
	Complete
)

func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Stop:
		return "stop"
	case Exploit:
		return "exploit"
	case Complete:
		return "complete"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Result is one report of a running trial, as schedulers see it.
type Result struct {
	Trial int
	// Iter is the trial's training iteration: 1 for its first report,
	// counting on from a checkpoint's iteration after a restore.
	Iter int
	// Reward is the metric with higher better (negated for Min), as Ray's
	// schedulers compare it.
	Reward float64
	// Checkpoint is the iteration of the trial's latest checkpoint, 0 when
	// it has none.
	Checkpoint int
	// Sample is the trial's current config.
	Sample Sample
}

// Decision is a scheduler's answer to a Result.
type Decision struct {
	Action Action
	// For Exploit: the trial whose checkpoint to restore, the iteration of
	// that checkpoint, and the recipient's new sample.
	Donor, DonorCheckpoint int
	Sample                 Sample
}

// Scheduler decides whether running trials go on. The experiment loop calls
// every method from one goroutine, Init first, then OnResult for each result
// in the order they arrive and OnEnd once per trial that ends (done,
// stopped or failed). Schedulers are deterministic: the same calls give the
// same decisions.
type Scheduler interface {
	Init(s Setup) error
	OnResult(r Result) Decision
	OnEnd(trial int)
}

var (
	_ Scheduler = fifo{}
	_ Scheduler = (*ASHA)(nil)
	_ Scheduler = (*Median)(nil)
	_ Scheduler = (*PBT)(nil)
)

// FIFO returns the scheduler that lets every trial run to its end.
func FIFO() Scheduler { return fifo{} }

type fifo struct{}

func (fifo) Init(Setup) error         { return nil }
func (fifo) OnResult(Result) Decision { return Decision{} }
func (fifo) OnEnd(int)                {}

// percentile is numpy's percentile with linear interpolation, q in [0, 100].
func percentile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 1 {
		return s[0]
	}
	pos := q / 100 * float64(len(s)-1)
	lo := int(pos)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := pos - float64(lo)
	return s[lo] + (s[lo+1]-s[lo])*frac
}
