// Package serve is Sluice's OpenAI-compatible HTTP server over one
// engine.Engine, as vLLM's `vllm serve`: every request's completions join
// the engine's continuous batch.
//
// Endpoints, with OpenAI's request and response shapes and vLLM's
// extensions (top_k, min_p, repetition_penalty, stop_token_ids,
// ignore_eos, min_tokens):
//
//   - POST /v1/completions: a prompt (text, texts, token ids, lists of
//     token ids), n, max_tokens, temperature, top_p, seed, stop, penalties,
//     logprobs, echo, stream (server-sent events ending in "data: [DONE]",
//     stream_options.include_usage), response_format;
//   - POST /v1/chat/completions: messages through the model's chat
//     template; max_completion_tokens, logprobs and top_logprobs;
//   - GET /v1/models, POST /tokenize, POST /detokenize, GET /health,
//     GET /metrics (Prometheus, named like vLLM's with a sluice: prefix).
//
// Errors are OpenAI's {"error": {message, type, param, code}} with 400 for
// a bad parameter (param names it), 401 without the API key, 404 for
// another model, 429 when the queue is full (Config.MaxQueue completions
// admitted at once), 503 while draining, 504 past the request timeout. A
// client that disconnects aborts its request, which frees its KV blocks
// at the engine's next step. Run drains in-flight requests on shutdown.
//
// response_format json_object and json_schema are enforced by constrained
// decoding: a token mask per step (infer.Constraint) from a JSON automaton
// over the tokenizer's vocabulary (structured.go).
//
// Subpackage router spreads requests over several servers; subpackage
// deploy runs servers as a deployment of replicas on a Sluice cluster and
// scales them.
//
// This package is unstable: its API may change with the engine's.
package serve
