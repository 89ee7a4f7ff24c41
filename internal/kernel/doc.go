// Package kernel holds the in-memory compute kernels behind Sluice's dataset
// operators: Sort and TopK for ordering, HashAgg for GroupBy/Agg, HashJoin,
// and batch utilities (Concat, Take, HashPartition, Shuffle, BatchBytes).
//
// All of them work on arrow.RecordBatch (arrow.Record is its deprecated
// alias in arrow-go v18.8). Batches passed in stay owned by the caller;
// kernels that keep one past the call (TopK, HashJoin.Build) retain it and
// release it in their Release. Every batch returned is owned by the caller.
// Memory for results comes from the allocator given to each kernel.
//
// Keys (sort, group, join, partition) may be integers, floats, bools,
// strings, large strings, binaries, timestamps, dates, times, durations, or
// dictionary-encoded strings (read through the dictionary; aggregation
// outputs them decoded). Value columns may be any arrow type: the common
// layouts are copied directly, the rest through arrow's take kernel.
//
// Each column is first normalized into plain slices in one pass per batch
// (fixed-width values become one uint64 each, ordered or hashed as the
// kernel needs; strings become byte slices into the arrow buffers), so the
// per-row loops of hashing, comparing and aggregating make no interface
// calls and allocate nothing. Rows are addressed by (batch, row) references
// and copied once, at the end, by a typed gather.
//
// Semantics follow SQL engines such as DuckDB and Spark: nulls sort last
// unless asked otherwise, NaN sorts above +Inf and equals NaN when grouping,
// aggregates skip nulls, null join keys never match, null group keys form
// one group.
//
// This package is internal and its API is not stable; the executor is its
// only intended user.
package kernel
