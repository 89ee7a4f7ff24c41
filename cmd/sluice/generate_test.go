package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sluice generate reproduces transformers' greedy continuation of a fixture
// model, printed as one JSON object per completion.
func TestGenerateMatchesTransformers(t *testing.T) {
	dir := "../../infer/model/testdata/fixtures/llama3"
	data, err := os.ReadFile(dir + "/expected.json")
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
	ids := make([]string, len(g.Prompt))
	for i, id := range g.Prompt {
		ids[i] = strconv.Itoa(int(id))
	}
	var out, errb bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, []string{
		"generate", "--model", dir, "--prompt-ids", strings.Join(ids, ","),
		"--max-tokens", strconv.Itoa(len(g.Tokens)), "--temperature", "0", "--seed", "1", "--ignore-eos", "--output", "json"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Text         *string `json:"text"`
		TokenIDs     []int32 `json:"token_ids"`
		FinishReason string  `json:"finish_reason"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if !slices.Equal(got.TokenIDs, g.Tokens) || got.FinishReason != "length" || got.Text == nil {
		t.Fatalf("got %+v\nwant tokens %v, finish_reason length", got, g.Tokens)
	}
}
