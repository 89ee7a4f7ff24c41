// Package structured is constrained decoding for JSON output: a pushdown
// automaton over bytes, compiled from a JSON schema (Schema) or for any
// JSON object (Object), and a per-step token mask over a tokenizer's
// vocabulary (Constraint, an infer.Constraint), so that a completion's
// text always parses and validates.
//
// The automaton generates compact JSON (no whitespace between tokens),
// objects with their properties in sorted order (optional ones possibly
// left out, no others) and numbers of at most 24 characters (15 integer digits, 2 exponent digits). Each step
// tries every token of the vocabulary from the current state: its cost is
// the vocabulary's size times a token's length (BenchmarkMask measures
// it).
//
// This package is unstable.
package structured
