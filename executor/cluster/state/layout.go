package state

// A job's stage 0 is its planning task (StagePlan); the layout the plan
// task reports (package dist) numbers its stages from 0 too, and they
// follow as the job's stages 1, 2, ... then the commit stage. These two
// are the one place that shift happens: the state, the worker and the
// commit task convert through them, never by hand.

// JobStage is the job's stage index of the layout's stage i.
func JobStage(layoutStage int) int { return layoutStage + 1 }

// LayoutStage is the layout's stage index of the job's stage i (-1 for
// the planning stage).
func LayoutStage(jobStage int) int { return jobStage - 1 }
