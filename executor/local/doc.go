// Package local runs an optimized logical plan in one process, streaming
// Arrow batches between operators.
//
// Each physical operator runs in its own goroutines, owned by an errgroup
// of its parent, and sends blocks to its parent through a bounded channel.
// Chains of row-local operators (filters, projections, MapBatches) are
// fused into one operator that runs on Config.Concurrency goroutines, in
// input order when Config.PreserveOrder is set. Exchanges (sort, group-by,
// repartition, shuffle, join's build side) collect their input first.
//
// Memory: sources wait while the bytes of blocks in flight exceed
// Config.MemoryBudget; every other operator only adjusts the count, so a
// full budget always drains and a larger-than-memory input streams in
// bounded memory. Blocking operators hold their state outside the budget
// (they do not spill yet).
//
// Sinks stage their files and publish them only when their whole input
// succeeded, then write a _SUCCESS manifest; a failed or cancelled run
// aborts every staged file.
//
// This package is unstable: its operators change as the engine grows.
package local
