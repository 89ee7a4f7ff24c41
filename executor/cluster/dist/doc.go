// Package dist runs an optimized logical plan as stages of tasks spread
// over a cluster's workers: Plan cuts the plan into stages at its exchanges
// and splits each stage into tasks; Run runs one task, reading its input
// blocks from the workers that produced them and keeping its output blocks
// (or, in the last stage, writing staged files for the job's commit).
//
// Stages. A source (Scan, Range, Values) and the row-local operators above
// it (Filter, Project, MapBatches, whatever their batch size) are one stage
// whose tasks are splits: Scan files grouped by size in file order (a
// Parquet file larger than Options.SplitBytes cut into row-group ranges),
// Range cut into equal ranges, Values one task. Exchanges cut stages:
//
//   - Aggregate: the producers aggregate their own rows (partial
//     aggregation: one row per group and task crosses the exchange; not for
//     count_distinct, whose rows cross as they are) and hash-partition them
//     by the group keys into Options.Partitions parts (one for a global
//     aggregate); reduce task r merges part r.
//   - Join: both sides hash by their own keys into the same parts (the
//     kernel's row hash depends only on the key values); reduce task r joins
//     the parts r.
//   - Sort: range partitioning with sampled boundaries in three stages: the
//     producers keep their rows in one block and put a sample of their sort
//     keys; split tasks, one per producer, compute the same boundaries from
//     all samples and cut their producer's rows into ranges; reduce task r
//     sorts range r. Read in task order, the sink's files are in order.
//   - Sort with a limit (top-k) and Limit: each producer keeps its own first
//     k rows, one reduce task the global first k, reading producers in task
//     order.
//   - Repartition by keys: a hash exchange into its N parts.
//   - Repartition without keys: each producer cuts its rows into N
//     contiguous slices of nearly equal size; reduce task r takes the r-th
//     slice of every producer, in task order (N blocks of nearly equal size,
//     though not the local executor's N consecutive runs of the input).
//   - RandomShuffle: each producer sends every row to a reduce task drawn at
//     random (seeded by the shuffle's seed, the stage and the task, so a
//     task run again makes the same blocks); each reduce task shuffles what
//     it gets. A uniform permutation, the same for the same seed and layout,
//     but not the local executor's permutation.
//   - Union gathers every row in one task (correct, not parallel).
//   - Write is fused into the last stage (the sink stage); each of its tasks
//     writes its own files under commit.AttemptDir.
//
// Every task of every stage runs its operators with the local executor, in
// order (PreserveOrder), so the output of a plan equals the local
// executor's: row for row where the plan defines an order (a sort's ties
// too: the sort is stable and the exchange keeps input order), as a
// multiset otherwise. Floating-point sums and means may differ in the last
// bits, as the local executor's own do between runs: partial sums add up
// in another order.
//
// Order-picking aggregates. first, last and collect_list do not split
// into partial aggregates: the rows cross the exchange, hash-partitioned
// by the group keys in the order each producer has them, and reduce task
// r reads partition r of every producer in task order, on one goroutine.
// Since scan splits are contiguous in file order (and a sort's ranges are
// in key order), a group's rows reach its aggregate in input order, the
// order the local executor follows with PreserveOrder; both give the same
// first, last and lists (TestMoreAggregates). Row-local operators,
// limits and unions keep that order; the other exchanges (a join, an
// aggregate, a window, a repartition, a shuffle) put rows in partition
// order, not the local executor's, so after them the picks differ unless
// a sort comes between.
//
// Blocks. A task's output partition p is one block, BlockID(job, stage,
// task, attempt, p), put even when empty; a sort's producers also put a
// SampleID block. Env.Fetch hands the caller batches it owns; Env.Put
// retains what it keeps.
//
// Determinism: Plan reads nothing but the plan (file sizes come from the
// Scan's listing), and Run recomputes the stages from the plan it is given
// and refuses a plan that does not cut into the Layout's stages.
//
// This package is unstable: the Layout's JSON changes as the engine grows.
package dist
