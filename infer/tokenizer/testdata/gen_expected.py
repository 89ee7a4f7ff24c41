#!/usr/bin/env python3
"""Write the reference token ids that tokenizer's Go tests compare against.

Usage (from infer/tokenizer):
    python3 testdata/gen_expected.py --corpus testdata/corpus.json --out testdata \
        qwen3=../../.cache/tokenizers/qwen3 llama3=../../.cache/tokenizers/llama3 \
        llama2=../../.cache/tokenizers/llama2

Each NAME=DIR names a directory holding tokenizer.json; the script writes
OUT/expected_NAME.json with, for every corpus string, the ids from
Tokenizer.encode with and without special tokens and both decodings of the
ids with special tokens. It uses only the `tokenizers` library, never
transformers, so the ids are the library's own.
"""
import argparse
import json
import os
import sys

from tokenizers import Tokenizer, __version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("tokenizers", nargs="+", metavar="NAME=DIR")
    args = ap.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        corpus = json.load(f)

    for spec in args.tokenizers:
        name, _, path = spec.partition("=")
        if not path:
            sys.exit(f"bad argument {spec!r}: want NAME=DIR")
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        cases = []
        for text in corpus:
            plain = tok.encode(text, add_special_tokens=False).ids
            special = tok.encode(text, add_special_tokens=True).ids
            cases.append({
                "text": text,
                "ids": plain,
                "ids_special": special,
                "decoded": tok.decode(special, skip_special_tokens=False),
                "decoded_skip": tok.decode(special, skip_special_tokens=True),
            })
        out = os.path.join(args.out, f"expected_{name}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"tokenizers_version": __version__, "name": name, "cases": cases},
                      f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"wrote {out}: {len(cases)} cases (tokenizers {__version__})")


if __name__ == "__main__":
    main()
