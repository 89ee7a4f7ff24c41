package infer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/tokenizer"
	"github.com/sluicehq/sluice/storage/miniotest"
)

// TestLoadTokenizer checks that Load finds the tokenizer beside the model,
// in a local directory and under s3:// (a real MinIO), and that a text and
// a chat prompt then generate.
func TestLoadTokenizer(t *testing.T) {
	const name = "llama3"
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("models")
	ents, err := os.ReadDir(fixtureDir(name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(fixtureDir(name), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Client().PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String("models"), Key: aws.String("llama3/" + e.Name()), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	const text = "Hello world!"
	var want []int32
	for _, dir := range []string{fixtureDir(name), "s3://models/llama3"} {
		l, err := Load(dir, LoadOptions{Device: "cpu", Model: model.Options{Context: t.Context()}})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if l.Tokenizer == nil {
			l.Close()
			t.Fatalf("%s: Load found no tokenizer", dir)
		}
		ids := l.Tokenizer.Encode(text, true)
		if want == nil {
			want = ids
		} else if !slices.Equal(ids, want) {
			t.Errorf("%s: Encode(%q) = %v, want %v as from the local copy", dir, text, ids, want)
		}
		e, err := engine.New(l.Runner, l.Tokenizer, engine.DefaultConfig())
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		p := engine.SamplingParams{MaxTokens: 3, N: 1}
		comps, err := e.Generate(t.Context(), []engine.Request{
			{Prompt: text, Params: p},
			{Messages: []tokenizer.Message{{Role: "user", Content: text}}, Params: p},
		})
		if err == nil && comps[0].PromptTokens != len(want) {
			err = fmt.Errorf("text prompt of %d tokens, want %d", comps[0].PromptTokens, len(want))
		}
		if err := errors.Join(err, e.Close(), l.Close()); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	// A model directory without a tokenizer still loads, with none.
	l, err := Load(fixtureDir("mistral"), LoadOptions{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Tokenizer != nil {
		t.Error("mistral has no tokenizer.json but Load gave one")
	}
}
