// Package expr is Sluice's expression language: a small SQL dialect for
// filters and derived columns, evaluated over Arrow record batches.
//
//	ds.Filter("price > 50 AND category IN ('c1','c7')")
//	ds.WithColumn("revenue", "price * qty")
//
// The package is young; its API may still change.
//
// # Pipeline
//
// Parse turns text into a syntax tree (Expr). Bind resolves column and
// function names against an *arrow.Schema, checks types and folds
// constant subexpressions, giving a *Bound; Compile does both. A Bound
// evaluates over any batch that has the columns it reads with the same
// types (Eval, Filter), reports the columns it reads (Columns) for
// projection pushdown, splits into conjuncts for predicate pushdown
// (Conjuncts, And) and answers whether a row group can match from its
// min/max statistics (MayMatch). A Bound is immutable and safe for
// concurrent use.
//
// # Syntax
//
// Column names are identifiers ([A-Za-z_][A-Za-z0-9_]*) or double-quoted
// ("odd name", with "" for a quote) and are case-sensitive. Keywords and
// function names are case-insensitive. Literals: integers (int64), floats
// (float64, "1.5", "2e3", ".5"), single-quoted strings (a quote inside is doubled), TRUE, FALSE, NULL,
// TIMESTAMP 'YYYY-MM-DD[ HH:MM:SS[.fraction]][Z|±HH:MM]' (a UTC instant,
// typed timestamp[us], or timestamp[ns] when the fraction needs it) and
// DATE 'YYYY-MM-DD' (typed date32). TIMESTAMP and DATE are keywords only
// before a string, so columns may be called date.
//
// Operators, loosest first: OR; AND; NOT; comparisons (= == != <> < <= >
// >=), IS [NOT] NULL, [NOT] IN (literals...), [NOT] BETWEEN a AND b; + -;
// * / %; unary -. Also parentheses, CASE WHEN c THEN v [WHEN ...] [ELSE v]
// END and CAST(x AS type).
//
// Functions: length lower upper trim substr (alias substring) concat
// contains starts_with ends_with regexp_match abs round floor ceil
// (alias ceiling) coalesce year month day hour. Strings count characters
// (runes); substr is 1-based as in PostgreSQL (substr('hello', 0, 3) is
// 'he'; a negative length gives the empty string); trim strips Unicode white space;
// concat skips NULLs and converts numbers, booleans, dates and timestamps
// to text; regexp_match takes a literal RE2 pattern and matches anywhere
// (anchor with ^ and $); round rounds half away from zero, with optional
// (possibly negative) literal digits.
//
// More functions: nullif(a, b) (NULL where a = b, else a), if(c, a, b),
// greatest and least (up to 8 arguments; NULLs are skipped, NULL only when
// all are), sqrt ln log10 exp and power (alias pow) in float64 (a value
// outside the domain, such as sqrt(-1) or ln(0), fails with ErrEval as in
// PostgreSQL and DuckDB), replace(s, from, to) (every occurrence; literal
// from and to), and regexp_replace(s, pattern, replacement [, flags]) (the
// first match, every one with flag 'g', 'i' ignores case; \1 in the
// replacement is the first group). x [NOT] LIKE 'pattern' and ILIKE (case
// folded) match the whole string: % is any run of characters, _ one, and a
// backslash escapes the next. date_trunc('unit', t) truncates a timestamp
// or date to the start of its second, minute, hour, day, week (Monday),
// month, quarter or year, giving timestamp[us]; date_diff('unit', a, b)
// (alias datediff) counts the unit boundaries from a to b, as DuckDB does
// (date_diff('day', '2024-01-01 23:00', '2024-01-02 01:00') is 1). Both
// read times as UTC instants, and so does strftime(t, 'format') with the
// C codes %Y %y %m %d %H %I %M %S %f (microseconds) %p %a %A %b %B %j %F
// %T %%. strptime(s, 'format') reads text back with the same codes (%d and
// %m take one or two digits; %f must follow %S.) as a timestamp[us] in
// UTC, and fails with ErrEval naming a value that does not match.
// split(s, 'sep') (alias string_split) gives a list<string> of the parts
// between separators, characters for an empty one.
//
// INTERVAL 'N unit [N unit ...]', INTERVAL 'N' unit and INTERVAL N unit
// (units year, quarter, month, week, day, hour, minute, second,
// millisecond, microsecond, singular or plural) are added to or
// subtracted from a timestamp or date, giving timestamp[us] as DuckDB
// does: months first, the day clamped to the month's last (2024-01-31 +
// INTERVAL '1 month' is 2024-02-29), then days, then the rest. Well-known
// SQL functions the language lacks (to_timestamp, split_part, window and
// aggregate functions...) fail with "is not supported" and the list of
// functions.
//
// CAST types: int8, int16, int32 (int, integer), int64 (bigint), float32
// (real), float64 (float, double), string (varchar, text), bool (boolean),
// timestamp (timestamp[us]) and date (date32), with PostgreSQL's meanings.
// Floats cast to integers round half away from zero, as PostgreSQL's
// numeric and DuckDB do (CAST(472.5 AS int) is 473, CAST(-472.5 AS int)
// is -473; Spark would truncate); values outside the target type, NaN,
// infinities and unparsable strings fail the evaluation with ErrEval.
//
// # Types
//
// Arithmetic computes in int64 when both sides are integers and in float64
// otherwise; / always divides in float64, as DuckDB's / does. Division or
// modulo by zero gives NULL, not an error; integer overflow is an ErrEval
// error. % keeps the sign of the dividend.
//
// Numbers compare with numbers, strings with strings (byte-wise), booleans
// with booleans, and timestamps and dates with each other and with string
// literals, which are read as timestamps (or dates). Comparisons run in the
// column's own type when the literal fits it (int32 = 5 stays int32);
// otherwise integers widen to int64 and anything with a float to float64.
// Timestamps compare as instants in the finer unit of the two sides, so no
// comparison rounds; dates compared with timestamps are midnight UTC.
// Zone-aware timestamps are read in their zone by year, month, day, hour
// and by CAST to date or string.
//
// Dictionary-encoded columns are decoded before any operator or function
// sees them, and large strings are read as strings; a bare column
// reference returns the column unchanged.
//
// NULL follows SQL's three-valued logic: NULL AND FALSE is FALSE, NULL OR
// TRUE is TRUE, comparisons with NULL are NULL, x IN (1, NULL) is NULL
// unless x is 1, and Filter keeps only rows where the predicate is TRUE.
//
// CASE evaluates every branch over the whole batch and then picks per
// row, so a failing CAST in a branch not taken still fails the batch.
//
// # Errors
//
// Every error is an *Error reading "expr: LINE:COL: message", with a
// 1-based line and column (in characters) pointing at the offending token,
// so expressions embedded in YAML can be located. Errors wrap one of the
// sentinels ErrSyntax, ErrUnknownColumn, ErrUnknownFunction, ErrType and
// ErrEval. Unknown names suggest the closest known one.
//
// # Evaluation
//
// Comparisons, arithmetic, boolean logic, casts between numbers and from
// strings, and Filter run on Arrow's compute kernels, with literals passed
// as broadcast scalars. String functions, date parts, CASE, coalesce,
// division, modulo and short IN lists are hand-written loops over the Arrow
// buffers that allocate nothing per row. All memory comes from the
// allocator passed to Eval or Filter.
package expr
