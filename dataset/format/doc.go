// Package format reads and writes the file formats of dataset sources and
// sinks: Parquet, CSV and JSON Lines, over storage.File and storage.Upload,
// producing and consuming Arrow record batches.
//
// # Reading
//
// A Format plans a file's scan work (Splits) and streams a split's rows as
// batches (Read). Read projects to ReadOptions.Columns, in the order given,
// and decodes nothing else: for Parquet, the column chunks of unrequested
// columns are never even fetched. Before a row group is decoded, the chunks
// it needs are fetched in a few large ranged reads (neighbouring chunks are
// coalesced), so a File on S3 costs a handful of GETs per row group and one
// for the footer.
//
// Parquet row groups can be skipped by their statistics: ReadOptions.Prune
// sees each row group's min/max/null counts (ColumnStats documents the Go
// types) and returns false for row groups that cannot match. Splits applies
// it while planning; Read applies it when given a split without RowGroups.
//
// Types read from Parquet are those stored, with two normalisations:
// dictionary-encoded columns come back as plain columns of the value type
// (a dictionary<int32, utf8> column reads as utf8), and the meaningless
// "PARQUET:field_id": "-1" field metadata is dropped. Timestamps keep their
// stored unit and time zone.
//
// CSV and JSONL take their schema from ReadOptions.Schema, or infer it from
// the first ReadOptions.InferRows rows (default 1000; negative reads them
// all); InferSchema merges a sample of several files into one schema. Every
// inferred column is nullable and one of:
//
//   - int64 (decimal integers that fit), widened to float64 if floats appear;
//     a number written with a leading zero (02134, -007) makes the column
//     utf8, as in DuckDB, so codes keep their zeros;
//   - float64 (decimal or exponent notation, and NaN, +Inf, -Inf as written
//     by this package's writers);
//   - bool (true/false, True/False, TRUE/FALSE);
//   - date32 (2006-01-02);
//   - timestamp[us, tz=UTC] (RFC 3339, or "2006-01-02 15:04:05" and
//     "2006-01-02T15:04:05" with optional fractional seconds; text without
//     an offset is UTC; a column mixing dates and timestamps is a timestamp);
//   - utf8 for anything else, and for columns that are null throughout.
//
// A later row that does not fit the inferred type is an error naming its
// line, and so is a JSONL key (or, across files, a CSV header column) that
// inference never saw: nothing is dropped silently. Pass a Schema to read
// such files; a user's Schema skips the keys and header columns it leaves
// out. A CSV string column holding invalid UTF-8 is an error naming its
// line and column unless ReadOptions.ReplaceInvalidUTF8 is set. In CSV, the empty field is null
// (ReadOptions.NullValues changes that), so an empty string cannot be told
// from a null. In JSONL, JSON strings are never inferred as numbers or
// bools; nested objects and arrays become utf8 columns holding the value's
// JSON text as written; absent keys are null; a repeated key's last value
// wins. With an
// explicit Schema, JSONL accepts numbers and bools written as strings.
//
// # Writing
//
// NewWriter writes one file into an open storage.Upload; Close finishes the
// file and closes the Upload, and the caller then Commits it (or Aborts).
// Parquet files are zstd-compressed by default, with row groups of
// WriteOptions.RowGroupRows rows, statistics on every column, dictionary
// encoding, and the Arrow schema stored so that types such as uint32 and
// timestamp[s] read back exactly. CSV and JSONL write timestamps as RFC 3339
// in UTC, dates as 2006-01-02, and floats so that they read back as floats;
// null is the empty CSV field and JSON null.
//
// # Errors
//
// Every error names the file, and where it can the line (1-based, counting a
// CSV header), the byte column, the Parquet row group and the column:
//
//	format: data/x.csv:17: column "qty": cannot parse "abc" as int64
//	format: data/x.jsonl:4:12: invalid JSON: want a value, found '}'
//	format: data/x.parquet: row group 3, column "price": <cause>
//	format: data/x.parquet: no column "pirce" (have: id, price)
//
// They are *Error values wrapping ErrParse, ErrCorrupt, ErrNoColumn or
// ErrUnsupported. Corrupt or truncated files fail with an error, never a
// panic or a hang; errors returned by emit are returned unchanged.
//
// # Concurrency
//
// Formats are stateless and safe for concurrent use; one File may be read
// by several Reads at once. A Writer is used from one goroutine.
//
// This package is new; its API may change while the executor settles.
package format
