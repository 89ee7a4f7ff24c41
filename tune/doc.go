// Package tune is Sluice's hyperparameter search, Ray Tune's place: search
// spaces, searchers that propose trial configs, schedulers that stop or
// perturb running trials, and an experiment loop whose state survives in a
// directory (local or s3://) so an interrupted search resumes.
//
// # Spaces
//
// A [Space] maps names to domains — [Uniform], [LogUniform], [QUniform],
// [RandInt] (hi exclusive), [Choice], [Grid] — nested spaces, or constants.
// A Choice whose options are spaces is a conditional parameter. In YAML
// (see [ParseSpace]): {lr: {loguniform: [1e-5, 1e-2]}, rank: {choice: [4, 8]}}.
//
// # Searchers and schedulers
//
// [Random], [GridSearch] and [TPE] (Optuna's independent TPE with its
// defaults) propose configs; the same seed gives the same configs with
// Random and GridSearch. [FIFO], [ASHA], [Median] and [PBT] follow Ray
// Tune's schedulers of the same names over training iterations. Both are
// deterministic state machines driven by the experiment loop from one
// goroutine; their tests feed them results and check the decisions
// (testdata/).
//
// # Trials
//
// [Run] runs a function per trial, several at once; the function calls
// [Trial.Report] after each iteration and stops when it returns
// [ErrStopped]. [Command] makes the trial function that runs a program
// (by default `sluice train`) per trial and reads its per-step JSON lines.
// [Live] is the trial table while trials run (Config.Watch feeds it),
// redrawn in place on a terminal.
//
// # Experiment state
//
// Dir holds experiment.json (every trial's sample, reports, status, error
// and checkpoints; rewritten atomically at each trial's start and end, each
// checkpoint, and at most once a second otherwise), trials.jsonl (the
// trial table), trials.parquet (the same table, written when the
// experiment ends) and trials/ID/ (checkpoints, a trial's scratch
// directory). With Config.Resume, finished trials are kept (replayed into
// the searcher and scheduler) and the others run again from their last
// checkpoint.
//
// # On a cluster
//
// [Cluster] is the trial function that runs each trial as a plan job of
// one task on a cluster's workers, with the trial's [Resources] as the
// job's needs: the plan reads the run's spec.jsonl and its map_batches
// step, the registered function [TrialFunc] (package tune/tunejob), runs
// the program ([RunSpec]) on the worker, appending its JSON lines to the
// run's metrics.jsonl under Dir, which the driver reads as reports; a
// trial the scheduler stops has its job cancelled through the
// coordinators. A task whose worker dies runs again on another worker and
// resumes from the run's last checkpoint.
//
// A cluster trial can also name a Go function (Cluster.Function) that the
// workers' program registered with [Register], as plans' map_batches
// functions are registered: the worker runs it in-process ([RunFunc]) with
// the trial's config, its Report and Checkpoint written to the run's
// metrics.jsonl and checkpoint directories, which the driver reads as the
// trial's reports and checkpoints; a dead worker's run goes on elsewhere
// from its last checkpoint. Dir must be an absolute path
// that the driver and every worker share. Config.Store keeps the
// experiment's record beside Dir (tunejob.Store: in the coordinators'
// replicated state, which `sluice tune --coordinators` uses), saved as
// trials start, end and checkpoint; a resume reads it first, so a driver
// whose machine died resumes from the cluster (the run directories, with
// the trials' metrics and checkpoints, stay in Dir).
//
// # Not yet
//
// Cluster trials with Dir on s3://: the worker side appends to a local
// metrics file and checks and copies checkpoints with the os package, and
// the driver reads both as local paths; both sides would move onto
// storage.FS (a whole-object rewrite of metrics.jsonl, checkpoints
// uploaded when they change).
//
// This package is young: its API may still change.
package tune
