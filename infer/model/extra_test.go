package model

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/tokenizer"
	"github.com/sluicehq/sluice/storage/miniotest"
)

// TestBF16 loads the float32 checkpoints as bfloat16 (weights, activations
// and cache) and compares with transformers' bfloat16 run of the same
// model. Rounding differs (the ops round once per op, transformers after
// every torch op), so the bound is loose: it catches a broken conversion or
// a dtype mix-up, not the last bit.
func TestBF16(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m := load(t, dev, name, gpu.BF16)
		if m.DType() != gpu.BF16 {
			t.Fatalf("dtype %v", m.DType())
		}
		c := newCache(t, m, 8, 16)
		for i, lc := range e.BF16.Logits {
			table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), 16)
			out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
			if err != nil {
				t.Fatal(err)
			}
			e16, e32 := relErr(out, lc.Last), relErr(out, e.F32.Logits[i].Last)
			t.Logf("prompt %d: relative error %.3g against bf16 transformers, %.3g against f32", i, e16, e32)
			if e16 > 0.05 {
				t.Errorf("prompt %d: relative error %.3g against transformers in bf16", i, e16)
			}
		}
	})
}

// TestLoadS3 loads the sharded fixture and its tokenizer from a real S3
// server and checks they compute what the local copies do.
func TestLoadS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.SetEnv(t)
	srv.MakeBucket("models")
	const name = "llama2"
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
			Bucket: aws.String("models"), Key: aws.String("tiny/" + e.Name()), Body: bytesReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	dev := openCPU(t)
	m, err := Load("s3://models/tiny", dev, Options{DType: gpu.F32, Context: t.Context()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := readExpected(t, name)
	c := newCache(t, m, 8, 16)
	lc := e.F32.Logits[2]
	out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: []int32{3, 1, 6}, WantLogits: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := relErr(out, lc.Last); err > tol {
		t.Errorf("relative error %.3g", err)
	}

	tk, err := tokenizer.LoadContext(t.Context(), "s3://models/tiny")
	if err != nil {
		t.Fatal(err)
	}
	local, err := tokenizer.Load(fixtureDir(name))
	if err != nil {
		t.Fatal(err)
	}
	const text = "Hello world! The sea is blue."
	got, want := tk.Encode(text, true), local.Encode(text, true)
	if len(got) < 2 || !slices.Equal(got, want) {
		t.Errorf("Encode(%q) from S3 = %v, want %v", text, got, want)
	}
	if !tk.HasChatTemplate() {
		t.Error("the tokenizer from S3 has no chat template (tokenizer_config.json not read)")
	}
}

// TestSteadyState checks that decode steps of a repeated shape allocate
// nothing, on the Go heap or the device.
func TestSteadyState(t *testing.T) {
	dev := openCPU(t)
	m := load(t, dev, "qwen3", gpu.F32)
	c := newCache(t, m, 64, 16)
	tables := [][]int32{{5, 9, 2, 11}, {7, 3, 60, 0}, {8, 12, 13, 14}}
	b := &Batch{}
	for i, tb := range tables {
		b.Seqs = append(b.Seqs, SeqInput{Tokens: []int32{int32(i + 1)}, StartPos: 0, BlockTable: tb, WantLogits: i != 1})
	}
	pos := 0
	step := func() {
		for i := range b.Seqs {
			b.Seqs[i].StartPos = pos
		}
		pos++
		if _, err := m.Forward(c, b); err != nil {
			t.Fatal(err)
		}
	}
	step() // sizes the buffers and views
	live := dev.LiveBytes()
	if n := testing.AllocsPerRun(20, step); n != 0 {
		t.Errorf("a decode step allocates %v times on the Go heap", n)
	}
	if got := dev.LiveBytes(); got != live {
		t.Errorf("device live bytes went from %d to %d", live, got)
	}
	// A smaller step reuses the buffers too.
	b.Seqs = b.Seqs[:2]
	step()
	if got := dev.LiveBytes(); got != live {
		t.Errorf("a smaller step changed device live bytes from %d to %d", live, got)
	}
}

// TestCloseFrees checks that Close and Free return every device byte.
func TestCloseFrees(t *testing.T) {
	dev := openCPU(t)
	m, err := Load(fixtureDir("qwen2"), dev, Options{DType: gpu.BF16})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewCache(10, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config()
	if want := int64(2 * cfg.Layers * 16 * cfg.KVHeads * cfg.HeadDim * 2); c.BytesPerBlock() != want {
		t.Errorf("BytesPerBlock %d, want %d", c.BytesPerBlock(), want)
	}
	if _, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: []int32{1, 2, 3}, BlockTable: []int32{4}, WantLogits: true}}}); err != nil {
		t.Fatal(err)
	}
	c.Free()
	c.Free()
	m.Close()
	m.Close()
	if n := dev.LiveBytes(); n != 0 {
		t.Errorf("%d bytes live after Close", n)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
