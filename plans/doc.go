// Package plans reads YAML plan files: a source, steps and a write,
// optionally on a cron schedule. It checks them with errors that name the
// file, line:column and key path, expands their templates, computes their
// schedules across DST changes, and compiles them to a dataset graph that
// the local executor runs (the `sluice run`, `validate`, `explain`,
// `plan schema` and `schedule next` commands).
//
// # The format
//
//	name: nightly-sales            # required, [a-z0-9-]+
//	description: optional text
//	schedule:                      # optional
//	  cron: "0 2 * * *"            # minute hour day-of-month month day-of-week, or @daily...
//	  timezone: Europe/Paris       # IANA name, default UTC
//	  catch_up: latest             # latest (default) | all | none
//	params:                        # optional; override with --param name=value
//	  day: '{{ .ScheduledTime | date "2006-01-02" }}'
//	read:
//	  parquet: s3://bucket/raw/day={{ .Params.day }}/   # or csv:, jsonl:
//	  columns: [id, price, category, qty]               # optional projection
//	  # csv only: header: false, delimiter: ";"
//	steps:                         # applied in order
//	  - filter: "price > 50 AND category IN ('c1','c7')"
//	  - with_column: {name: revenue, expr: "price * qty"}
//	  - select: [id, category, revenue]
//	  - drop: [note]
//	  - rename: {old: new}
//	  - limit: 1000
//	  - repartition: 8                      # or {n: 8, keys: [category]}
//	  - random_shuffle: 42                  # or {seed: 42}
//	  - sort: [{column: revenue, descending: true}, id]
//	  - group_by: {keys: [category], aggs: [{fn: sum, column: revenue, as: total}, {fn: count, as: n}]}
//	  - union: [{parquet: s3://bucket/more/}]   # sources with the same columns
//	  - join: {read: {csv: dims/}, on: [category], how: left}   # or left_on/right_on; how inner|left|right|full|semi|anti
//	  - explode: tags                       # one row per element of a list column
//	  - window: {partition_by: [user_id], order_by: [ts], fns: [{fn: row_number, as: n}, {fn: lag, column: price, offset: 1}, {fn: sum, column: price, as: running}]}
//	  - distinct: [user_id, category]       # [] : every column
//	  - drop_null: [price]                  # [] : any column
//	  - fill_null: {category: unknown, qty: 0}
//	  - sample: {fraction: 0.1, seed: 7}
//	  - infer: {model: ./models/x, input: prompt, output: completion, max_tokens: 128, on_null: skip}
//	  - map_batches: {fn: add_tax, batch_rows: 1024}   # a registered Go function; concurrency: N
//	  - split: {fractions: [0.8, 0.2], seed: 1, names: [train, test]}  # last step: writes DEST/train/ and DEST/test/
//	write:
//	  parquet: s3://bucket/out/day={{ .Params.day }}/   # or csv:, jsonl:
//	  mode: overwrite              # overwrite | error (default) | append
//	  partition_by: [category]     # optional
//	  rows_per_file: 1000000       # optional
//	  compression: zstd            # parquet only: zstd | snappy | gzip | none
//	  # csv only: header: false
//
// Every step kind maps to the dataset operator of the same name. A
// map_batches step names a Go function that the program compiling the plan
// registered (Register, at init); on a cluster every worker compiles the
// plan, so the workers must run a program that registers it (start them
// from the program's own binary: examples/cluster-udf). Plans use only
// registered or built-in steps. Aggregates are count
// (of rows without a column), sum, mean (or avg), min, max,
// count_distinct, var, std, median, quantile (with q: the fraction), first,
// last and collect_list; an aggregate's output is named by as, or
// fn_column. Window functions are row_number, rank, dense_rank, lag, lead
// (offset: rows away, default 1) and the running sum, count and mean.
// A split step (the last step) divides the rows by a seeded hash of each
// row, as sample does, into parts of about its fractions (names default
// to train, test for two and train, validation, test for three), and the
// one write puts each part in a directory of its own: DEST/train/,
// DEST/test/, partition_by's key=value directories below them, one
// _SUCCESS at DEST. The first part is what sample keeps with its fraction
// and seed.
// infer steps run package infer's dataset stage (the model is loaded once
// per process; every batch joins one continuous batch). Paths are local (relative to the
// current directory, not to the plan file) or s3:// URLs; sluice submit
// resolves relative ones against the directory it runs in (AbsPaths)
// before the plan goes to the cluster. JSONSchema gives the format as a
// JSON Schema.
//
// # Validation
//
// Parse checks what needs nothing but the file: YAML syntax, unknown keys
// (with a suggestion), types, enums, required keys, the name, the cron
// expression, the time zone, and the templates' syntax and names. Validate
// renders the templates and compiles the steps one by one against the
// source's schema, reporting the first error of each step at its position:
// an expression error points at the character the expression parser names
// (exact for plain and single-line quoted scalars, found by matching
// characters for folded, block and escaped ones; inside text a template
// produced, at the start of the template action). Later steps are checked
// against the schema as it is at their point; a step that fails leaves the
// schema as it was (a failed with_column adds its column as NULL, and later
// errors that use it are not reported). A source that does not exist (a
// missing file, object or bucket, a glob that matches nothing) is an error;
// a remote one that cannot be reached or may not be read gives a note. Lints are sorted by position and
// printed as
//
//	plan.yaml:12:11: steps[2].filter: expr: unknown column "pirce" (did you mean "price"?)
//
// YAML syntax errors carry the line yaml.v3 reports (the start of the
// construct that failed) and column 1.
//
// # Templates
//
// Strings in params values and under read, steps and write are Go
// templates; see Plan.Render for the variables and functions. A value that
// starts with {{ must be quoted in YAML. An integer or boolean may be given
// as a template string ("{{ .Params.n }}"); it is typed once rendered.
//
// # Schedules
//
// See Schedule for the DST rules: fixed-hour jobs run once per wall-clock
// time (a time in the spring-forward gap runs when the gap ends, a
// repeated time at its first occurrence); jobs whose hour field starts
// with '*' run at every matching instant.
//
// This package is unstable: the format may still grow.
package plans
