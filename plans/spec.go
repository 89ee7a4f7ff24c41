package plans

import (
	"regexp"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// A spec describes one value of the plan format. The one tree of specs
// drives the structural checks (unknown keys with suggestions, types, enums,
// required keys) and JSONSchema, so the two cannot disagree.
type spec struct {
	kind kind
	doc  string
	enum []string
	// pattern (anchored) and what it means in words, for messages.
	pattern    *regexp.Regexp
	patternDoc string
	min        *int64 // integers: minimum; lists: minItems; maps: minProperties
	items      *spec  // lists
	fields     []*field
	values     *spec   // maps: the values; keys must match keys.pattern
	keys       *spec   // maps
	alts       []*spec // kOneOf: alternatives told apart by YAML node kind
	// oneKey: an object holds exactly one of these keys (the source format
	// of read, the kind of a step); oneWhat names the choice in messages.
	oneKey  []string
	oneWhat string
	def     any    // documented default
	typeDoc string // overrides the type's name in messages ("a step")
	// templates: strings below may hold {{ }} actions, and scalars of other
	// types may be given as a string holding one, typed after rendering.
	templates bool
}

type kind uint8

const (
	kString kind = iota + 1
	kInt
	kNumber
	kBool
	kScalar // string, number or boolean: param values
	kList
	kObject
	kMap
	kOneOf
)

type field struct {
	name     string
	required bool
	spec     *spec
}

func (s *spec) field(name string) *field {
	for _, f := range s.fields {
		if f.name == name {
			return f
		}
	}
	return nil
}

func (s *spec) fieldNames() []string {
	out := make([]string, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.name
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func str(doc string) *spec                { return &spec{kind: kString, doc: doc} }
func integer(doc string, min int64) *spec { return &spec{kind: kInt, doc: doc, min: &min} }
func boolean(doc string) *spec            { return &spec{kind: kBool, doc: doc} }
func number(doc string) *spec             { return &spec{kind: kNumber, doc: doc} }
func enum(doc string, values ...string) *spec {
	return &spec{kind: kString, doc: doc, enum: values}
}
func list(doc string, items *spec, min int64) *spec {
	return &spec{kind: kList, doc: doc, items: items, min: &min}
}
func object(doc string, fields ...*field) *spec {
	return &spec{kind: kObject, doc: doc, fields: fields}
}
func req(name string, s *spec) *field       { return &field{name: name, required: true, spec: s} }
func opt(name string, s *spec) *field       { return &field{name: name, spec: s} }
func oneOf(doc string, alts ...*spec) *spec { return &spec{kind: kOneOf, doc: doc, alts: alts} }

func columns(doc string) *spec { return list(doc, str("A column name."), 1) }

var (
	namePattern  = regexp.MustCompile(`^[a-z0-9-]+$`)
	identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Source formats, in the order messages list them.
var formats = []string{"parquet", "csv", "jsonl"}

func sourceSpec(doc string) *spec {
	s := object(doc,
		opt("parquet", str("Read Parquet files: a file, a directory (read recursively; key=value directories become string columns) or a glob, local or s3://. Relative paths are relative to the current directory.")),
		opt("csv", str("Read CSV files (a header line by default; column types are inferred): a file, a directory or a glob, local or s3://.")),
		opt("jsonl", str("Read files of one JSON object per line (column types are inferred): a file, a directory or a glob, local or s3://.")),
		opt("columns", columns("Read only these columns, in this order.")),
		opt("header", boolean("CSV only: whether the first line holds the column names (default true).")),
		opt("delimiter", &spec{kind: kString, doc: "CSV only: the field separator, one character (default \",\").",
			pattern: regexp.MustCompile(`^.$`), patternDoc: "one character"}),
		opt("schema", &spec{kind: kMap, doc: "CSV and JSONL: column types by name (int32, int64, float64, string, bool, date, timestamp... as in CAST); the columns it leaves out are inferred.", min: ptr[int64](1),
			keys: str("A column name."), values: str("A type name, as in CAST.")}),
		opt("partition_types", &spec{kind: kMap, doc: "Types of hive partition columns (key=value directories, strings otherwise) by name, as in CAST (int, bigint, double, bool, date...); every directory value must parse as its type.", min: ptr[int64](1),
			keys: str("A partition column."), values: str("A type name, as in CAST.")}),
		opt("null_values", list("CSV only: the field texts read as null (default: the empty field).", str("A text read as null."), 0)),
		opt("infer_rows", integer("CSV and JSONL: how many rows (lines) of each file sampled type inference reads (default 1000); -1 reads every row of every file.", -1)),
		opt("replace_invalid_utf8", boolean("CSV only: replace invalid UTF-8 in string columns with U+FFFD instead of failing the read (default false).")),
	)
	s.oneKey, s.oneWhat = formats, "source format"
	return s
}

// stepDefs are the step kinds, in the order of the documentation. Each
// pairs its spec with its decoder and its compiler (compile.go).
var stepDefs = sync.OnceValue(func() []*stepDef {
	sortKey := oneOf("A column to sort by, ascending; or a mapping with column and descending.",
		str("A column, sorted ascending."),
		object("A sort key.",
			req("column", str("The column.")),
			opt("descending", &spec{kind: kBool, doc: "Sort from largest to smallest (nulls still last).", def: false})))
	agg := object("One aggregate: the function, its column and the name of its output column.",
		req("fn", enum("The aggregate function: var and std are the sample's (n-1); first and last pick a value (NULL included) and collect_list the non-null values, in the order rows reach the group_by (the files' order, or a sort's before it). Aliases: avg (mean), variance and var_samp (var), stddev and stddev_samp (std), list and array_agg (collect_list).",
			"count", "sum", "mean", "avg", "min", "max", "count_distinct", "var", "std", "median", "quantile", "first", "last", "collect_list",
			"variance", "var_samp", "stddev", "stddev_samp", "list", "array_agg")),
		opt("column", str("The column aggregated; count without a column counts rows.")),
		opt("q", number("quantile: the fraction, 0 to 1 (0.5 is the median), interpolated linearly between the nearest two values (DuckDB's quantile_cont).")),
		opt("as", str("The output column's name (default fn_column, or count).")))
	defs := []*stepDef{
		{name: "filter", decode: decodeFilter, compile: compileFilter,
			spec: str("Keep the rows for which this boolean expression is true, e.g. \"price > 50 AND category IN ('c1','c7')\".")},
		{name: "select", decode: decodeSelect, compile: compileSelect,
			spec: columns("Keep these columns, in this order.")},
		{name: "with_column", decode: decodeWithColumn, compile: compileWithColumn,
			spec: object("Add (or replace) a column computed by an expression.",
				req("name", str("The column's name.")),
				req("expr", str("The expression, e.g. \"price * qty\".")))},
		{name: "drop", decode: decodeDrop, compile: compileDrop,
			spec: columns("Remove these columns; each must exist.")},
		{name: "rename", decode: decodeRename, compile: compileRename,
			spec: &spec{kind: kMap, doc: "Rename columns: old name to new name.", min: ptr[int64](1),
				keys: str("The old name."), values: str("The new name.")}},
		{name: "limit", decode: decodeLimit, compile: compileLimit,
			spec: integer("Keep the first N rows.", 0)},
		{name: "repartition", decode: decodeRepartition, compile: compileRepartition,
			spec: oneOf("Redistribute the rows into N blocks of nearly equal size, or by hash of keys.",
				integer("The number of blocks.", 1),
				object("Repartition by hash of key columns, so equal keys share a block.",
					req("n", integer("The number of blocks.", 1)),
					opt("keys", columns("The key columns."))))},
		{name: "random_shuffle", decode: decodeShuffle, compile: compileShuffle,
			spec: oneOf("Permute all rows; the same seed gives the same order.",
				integer("The seed.", -1<<63),
				object("A shuffle with a seed.", opt("seed", &spec{kind: kInt, doc: "The seed (default 0).", def: 0})))},
		{name: "sort", decode: decodeSort, compile: compileSort,
			spec: list("Order all rows by these keys; ties keep their input order; nulls sort last.", sortKey, 1)},
		{name: "group_by", decode: decodeGroupBy, compile: compileGroupBy,
			spec: object("Group rows by key columns and aggregate each group: the output has the keys, then one column per aggregate.",
				opt("keys", list("The key columns (none: one group of all rows).", str("A column name."), 0)),
				req("aggs", list("The aggregates.", agg, 1)))},
		{name: "union", decode: decodeUnion, compile: compileUnion,
			spec: list("Append the rows of other sources, which must have the same columns and types.", sourceSpec("Another source."), 1)},
		{name: "join", decode: decodeJoin, compile: compileJoin,
			spec: object("Hash join with another source (the right side) on equal keys. The output has every left column, then the right's non-key columns (a name already on the left gets the suffix _right).",
				req("read", sourceSpec("The right side.")),
				opt("on", columns("Key columns present on both sides.")),
				opt("left_on", columns("Key columns of the left side (with right_on, instead of on).")),
				opt("right_on", columns("Key columns of the right side, matched in order to left_on.")),
				opt("how", &spec{kind: kString, doc: "inner keeps matching rows only; left keeps every left row; right every right row and full (outer) every row of both, an unmatched right row with nulls in the left's columns and its keys in the left's key columns; semi keeps the left rows with a match and anti those without, with the left's columns only.", enum: []string{"inner", "left", "right", "full", "outer", "semi", "anti"}, def: "inner"}))},
		{name: "infer", decode: decodeInfer, compile: compileInfer,
			spec: object("Generate text with an LLM for each row: adds the output column and prompt_tokens, completion_tokens, finish_reason.",
				req("model", str("The model directory or name.")),
				req("input", str("The column holding the prompt.")),
				req("output", str("The column to write the completion to.")),
				opt("max_tokens", integer("The most tokens to generate per row.", 1)),
				opt("lora", str("A LoRA adapter directory in PEFT's layout (adapter_config.json, adapter_model.safetensors; local or s3://) to generate with; steps of several adapters over one model share its engine and batch together.")),
				opt("speculative_model", str("Speculative decoding (vLLM's option): a draft model directory (local or s3://, the target's vocabulary) that proposes tokens the model verifies, or \"[ngram]\" for prompt lookup; greedy output is unchanged and sampled output keeps its distribution. Needs num_speculative_tokens.")),
				opt("num_speculative_tokens", integer("The most draft tokens proposed per sequence and step, with speculative_model.", 1)),
				opt("temperature", number("The sampling temperature (0: greedy).")),
				opt("device", &spec{kind: kString, doc: "The device: auto (a GPU when there is one), cpu or cuda.", enum: []string{"auto", "cpu", "cuda"}, def: "auto"}),
				opt("dtype", &spec{kind: kString, doc: "The weights' and KV cache's dtype: auto (f32 on the cpu, bf16 on a GPU), f32, bf16 or f16.", enum: []string{"auto", "f32", "bf16", "f16"}, def: "auto"}),
				opt("on_error", &spec{kind: kString, doc: "A row that cannot be served (empty or too long prompt): fail stops the job naming the row; column writes its error to the error column and goes on.", enum: []string{"fail", "column"}, def: "fail"}),
				opt("on_null", &spec{kind: kString, doc: "A null prompt: error makes it an error of its row (see on_error); skip keeps the row with null outputs.", enum: []string{"error", "skip"}, def: "error"}))},
		{name: "map_batches", decode: decodeMapBatches, compile: compileMapBatches, spec: mapBatchesSpec()},
	}
	defs = append(defs, moreStepDefs()...)
	defs = append(defs, windowStepDefs(sortKey)...)
	defs = append(defs, splitStepDef())
	return defs
})

type stepDef struct {
	name    string
	spec    *spec
	decode  func(d *decoder, n *yaml.Node, path string) Step
	compile func(c *compiler, s Step) // see compile.go
}

func stepNames() []string {
	var out []string
	for _, d := range stepDefs() {
		out = append(out, d.name)
	}
	return out
}

func lookupStep(name string) *stepDef {
	for _, d := range stepDefs() {
		if d.name == name {
			return d
		}
	}
	return nil
}

// planSpec is the whole format.
var planSpec = sync.OnceValue(func() *spec {
	var stepFields []*field
	for _, d := range stepDefs() {
		stepFields = append(stepFields, opt(d.name, d.spec))
	}
	step := object("One step: a mapping with exactly one key, the step's kind.", stepFields...)
	step.oneKey, step.oneWhat, step.typeDoc = stepNames(), "step kind", "a step"

	sink := object("Where and how the result is written. Files are staged and published only when the whole run succeeds.",
		opt("parquet", str("Write Parquet files under this directory, local or s3://.")),
		opt("csv", str("Write CSV files under this directory, local or s3://.")),
		opt("jsonl", str("Write JSON-lines files under this directory, local or s3://.")),
		opt("mode", &spec{kind: kString, doc: "What to do when the destination already has files: overwrite them, fail (error), or add files (append).",
			enum: []string{"overwrite", "error", "append"}, def: "error"}),
		opt("partition_by", columns("Write rows under key=value/ directories of these columns, which are left out of the files.")),
		opt("rows_per_file", integer("Start a new file after this many rows (default: no limit).", 1)),
		opt("compression", &spec{kind: kString, doc: "Parquet only: the codec.", enum: []string{"zstd", "snappy", "gzip", "none"}, def: "zstd"}),
		opt("header", &spec{kind: kBool, doc: "CSV only: write a header line of column names first.", def: true}),
	)
	sink.oneKey, sink.oneWhat = formats, "output format"

	params := &spec{kind: kMap, doc: "Named values for templates ({{ .Params.name }}), overridable with --param name=value. Values may themselves be templates.",
		keys:   &spec{kind: kString, pattern: identPattern, patternDoc: "letters, digits and _, not starting with a digit"},
		values: &spec{kind: kScalar, doc: "The default value."}}
	params.templates = true
	read := sourceSpec("The source of the rows.")
	read.templates = true
	steps := list("The transforms, applied in order.", step, 0)
	steps.templates = true
	sink.templates = true

	return object("A Sluice plan: read a source, apply steps, write the result; optionally on a cron schedule.",
		req("name", &spec{kind: kString, doc: "The plan's name: lower-case letters, digits and '-'.",
			pattern: namePattern, patternDoc: "use lower-case letters, digits and '-' only"}),
		opt("description", str("What the plan does, for people.")),
		opt("schedule", object("When the plan runs on a coordinator.",
			req("cron", str("A 5-field cron expression: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\"; or @hourly, @daily, @weekly, @monthly, @yearly.")),
			opt("timezone", &spec{kind: kString, doc: "The IANA time zone the cron expression is read in, e.g. Europe/Paris.", def: "UTC"}),
			opt("catch_up", &spec{kind: kString, doc: "Runs missed while no coordinator was up: run the latest one only, all of them, or none.",
				enum: []string{"latest", "all", "none"}, def: "latest"}))),
		opt("params", params),
		opt("env_allow", list("Refused: the environment variables templates may read are the operator's to allow (--env-allow on sluice run and on each worker), not the plan's.",
			&spec{kind: kString, pattern: identPattern, patternDoc: "an environment variable name"}, 0)),
		req("read", read),
		opt("steps", steps),
		req("write", sink),
	)
})

// isTemplate reports whether a string holds a template action.
func isTemplate(s string) bool { return strings.Contains(s, "{{") }
