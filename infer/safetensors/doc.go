// Package safetensors reads and writes the safetensors checkpoint format of
// Hugging Face: an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the tensors' bytes.
//
// [ReadHeader] validates a header completely before anything trusts it:
// known dtypes, sizes equal to the product of the shape times the dtype's
// size, byte ranges inside the file that neither overlap nor leave gaps, no
// duplicate names, string-only "__metadata__". Every error is an [*Error]
// naming the file and, where there is one, the tensor, and it matches
// [ErrHeader] (or [ErrIndex], [ErrNotFound], [ErrNoCheckpoint]) with
// errors.Is.
//
// [Open] opens one file: a local file is memory-mapped read-only, so
// [File.Data] returns the tensor's bytes without copying them; an s3:// URL
// is read through package storage, one ranged read per tensor.
// [OpenDir] opens the checkpoint of a model directory: model.safetensors, or
// the shards listed by model.safetensors.index.json. [Write] writes a file,
// for tests and checkpoints.
//
// This package is young: its API may still change.
package safetensors
