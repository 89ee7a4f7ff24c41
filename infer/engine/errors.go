package engine

import "errors"

// Errors of the engine, wrapped with the details (the field, the lengths,
// the row); test them with errors.Is.
var (
	// ErrInvalidConfig: an engine or stage Config field is out of range.
	ErrInvalidConfig = errors.New("infer: invalid config")
	// ErrInvalidParams: a SamplingParams field is out of range.
	ErrInvalidParams = errors.New("infer: invalid sampling params")
	// ErrInvalidPrompt: a request's prompt cannot be served: it is empty,
	// gives both text and ids, holds an id outside the vocabulary, or
	// needs a tokenizer or chat template the engine lacks.
	ErrInvalidPrompt = errors.New("infer: invalid prompt")
	// ErrPromptTooLong: the prompt has more tokens than the engine's max
	// model length (the model's context, capped by the KV cache).
	ErrPromptTooLong = errors.New("infer: prompt too long")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("infer: engine closed")
)
