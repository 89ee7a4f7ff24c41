package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/infer/model/loratest"
)

const fixtures = "../../infer/model/testdata/fixtures"

// sluice generate --speculative-model DIR --num-speculative-tokens K
// drafts with a second model: the fixture itself and a copy of it with
// one layer give transformers' greedy tokens; a draft of another
// vocabulary or tokenizer, and a draft without K, fail naming both models
// or the flag.
func TestGenerateDraftModel(t *testing.T) {
	target := filepath.Join(fixtures, "llama3")
	data, err := os.ReadFile(filepath.Join(target, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		F32 struct {
			Greedy []struct {
				Prompt []int32 `json:"prompt"`
				Tokens []int32 `json:"tokens"`
			} `json:"greedy"`
		} `json:"f32"`
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	g := want.F32.Greedy[0]
	short := filepath.Join(t.TempDir(), "short")
	if err := loratest.Truncate(target, short, 1); err != nil {
		t.Fatal(err)
	}
	args := []string{"--model", target, "--device", "cpu", "--prompt-ids", joinIDs(g.Prompt), "--max-tokens", strconv.Itoa(len(g.Tokens)),
		"--temperature", "0", "--ignore-eos", "--output", "json"}
	for _, draft := range []string{target, short} {
		got := generateJSON(t, append(args, "--speculative-model", draft, "--num-speculative-tokens", "3")...)
		if !slices.Equal(got.TokenIDs, g.Tokens) {
			t.Errorf("draft %s: %v, want transformers' %v", draft, got.TokenIDs, g.Tokens)
		}
	}

	// A one-layer llama3 with llama2's tokenizer: same vocabulary size in
	// config.json, other tokens.
	otherTok := filepath.Join(t.TempDir(), "othertok")
	if err := loratest.Truncate(target, otherTok, 1); err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(filepath.Join(fixtures, "llama2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(otherTok, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	mistral := filepath.Join(fixtures, "mistral")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--speculative-model", mistral, "--num-speculative-tokens", "3"},
			[]string{"--speculative-model " + mistral, "the draft model " + mistral + " has a vocabulary of 256 tokens and the target " + target + " one of 512"}},
		{[]string{"--speculative-model", otherTok, "--num-speculative-tokens", "3"},
			[]string{"--speculative-model " + otherTok, otherTok + "'s tokenizer", "the target " + target + "'s", "must share the tokenizer"}},
		{[]string{"--speculative-model", short}, []string{"--speculative-model " + short + " needs --num-speculative-tokens of at least 1"}},
		{[]string{"--speculative-model", short, "--num-speculative-tokens", "2", "--ngram-prompt-lookup-max", "3"}, []string{"--ngram-prompt-lookup-max/min are for --speculative-model [ngram]"}},
	} {
		var out, errb bytes.Buffer
		code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, append([]string{"generate"}, append(args, tc.args...)...))
		for _, w := range tc.want {
			if code == 0 || !strings.Contains(errb.String(), w) {
				t.Errorf("%v: exit %d, stderr %q, want it to say %q", tc.args, code, errb.String(), w)
			}
		}
	}
}

// sluice bench infer --workload copy with n-gram speculation and with a
// draft model reports the workload and the acceptance rate, in JSON and
// in text.
func TestBenchInferSpeculative(t *testing.T) {
	target := filepath.Join(fixtures, "llama3")
	base := []string{"bench", "infer", "--model", target, "--device", "cpu", "--prompts", "4", "--min-len", "24", "--max-len", "32",
		"--max-tokens", "12", "--workload", "copy", "--copy-span", "6", "--num-speculative-tokens", "3"}
	for _, spec := range []string{"[ngram]", target} {
		var out, errb bytes.Buffer
		if code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, append(base, "--speculative-model", spec, "--output", "json")); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var res struct {
			Workload     string  `json:"workload"`
			Speculative  string  `json:"speculative"`
			K            int     `json:"num_speculative_tokens"`
			Drafts       int64   `json:"spec_draft_tokens"`
			Accepted     int64   `json:"spec_accepted_tokens"`
			Rate         float64 `json:"spec_acceptance_rate"`
			OutputTokens int     `json:"output_tokens"`
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		wantSpec := "ngram"
		if spec != "[ngram]" {
			wantSpec = "draft_model " + target
		}
		if res.Workload != "copy" || res.Speculative != wantSpec || res.K != 3 || res.Drafts == 0 || res.OutputTokens != 48 ||
			res.Rate != float64(res.Accepted)/float64(res.Drafts) {
			t.Errorf("%s: %+v", spec, res)
		}
		if spec == target && res.Rate != 1 {
			t.Errorf("the target as its own draft: acceptance rate %v, want 1", res.Rate)
		}
		out.Reset()
		if code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, append(base, "--speculative-model", spec)); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(out.String(), "prompt-copying workload") || !strings.Contains(out.String(), "acceptance rate ") {
			t.Errorf("%s: text output without the workload or the acceptance rate:\n%s", spec, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, []string{"bench", "infer", "--model", target, "--workload", "copies"}); code == 0 ||
		!strings.Contains(errb.String(), `--workload "copies": want random or copy`) {
		t.Errorf("--workload copies: exit %d, stderr %q", code, errb.String())
	}
}
