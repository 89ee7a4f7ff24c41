// Package tokenizer loads Hugging Face tokenizer.json files and encodes text
// to the same token ids as the Python tokenizers library, in pure Go.
//
// It covers the BPE tokenizers of the models Sluice serves: byte-level BPE
// (Llama 3, Qwen2/Qwen3, GPT-2 style) and SentencePiece-style BPE with byte
// fallback (Llama 2, Mistral), with the normalizers, pre-tokenizers,
// post-processors and decoders those files use, and added/special tokens
// matched before the model as tokenizers matches them (leftmost-longest,
// with lstrip, rstrip, single_word and normalized). A tokenizer.json that
// uses anything else fails to load with an *UnsupportedError naming the key,
// such as `pre_tokenizer.type "Foo" is not supported`.
//
// The pipeline of Encode follows tokenizers step by step:
//
//  1. split the text on added tokens that match the raw text;
//  2. normalize each remaining piece and split it on the normalized added tokens;
//  3. pre-tokenize (Split, ByteLevel, Metaspace, Digits, ...) into words;
//  4. run the BPE model on each word (merges by rank over a linked list of
//     symbols with a min-heap, and a word cache);
//  5. with addSpecial, run the post-processor (TemplateProcessing adds BOS).
//
// The Split regexes of Llama 3 and Qwen use `\s+(?!\S)`, a lookahead Go's
// regexp lacks; those patterns are matched by a hand-written scanner that
// the tests check against Go's regexp on the lookahead-free part. Other
// lookahead-free patterns run through Go's regexp.
//
// ApplyChatTemplate renders tokenizer_config.json's Jinja chat template with
// gonja, with transformers' settings and helpers (trim_blocks,
// lstrip_blocks, raise_exception, strftime_now, a Python-style tojson).
// StreamDecoder turns generated ids into text incrementally, holding back
// incomplete UTF-8 as vLLM does.
//
// This package is unstable: its API may change with the engine's needs.
package tokenizer
