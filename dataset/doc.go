// Package dataset is Sluice's lazy dataset API: sources, transforms and
// consumers over Arrow record batches, in the style of Ray Data and Spark.
//
// A Dataset is an immutable node of a logical plan. Transforms (Filter,
// WithColumn, Select, Sort, GroupBy, Join, MapBatches...) build new nodes and
// check them against the input schema at once; nothing reads data until a
// consumer (Count, Take, Iter, WriteParquet...) runs the plan. The plan is
// then optimized (predicate, projection and limit pushdown; see package
// plan) and run by the streaming local executor (package executor/local).
//
// Expressions are strings in a small SQL-like language (package
// dataset/expr): "price > 50 AND category IN ('c1','c7')", "price * qty",
// "lower(note)".
//
// Writes are atomic per job: files are staged and published only when the
// whole run succeeded, followed by a _SUCCESS manifest.
package dataset
