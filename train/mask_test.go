package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/tokenizer"
)

// inferTokenLosses runs ids through infer's forward pass (one prefill,
// logits after every token) and returns each token's loss under the
// model: losses[t] = −log softmax(logits after ids[t−1])[ids[t]], t ≥ 1.
// It is computed apart from train's gradient code.
func inferTokenLosses(t *testing.T, dir string, ids []int32) []float64 {
	t.Helper()
	dev, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m, err := model.Load(dir, dev, model.Options{DType: gpu.F32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	blocks := (len(ids) + model.DefaultBlockSize - 1) / model.DefaultBlockSize
	cache, err := m.NewCache(blocks, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	bt := make([]int32, blocks)
	for i := range bt {
		bt[i] = int32(i)
	}
	out, err := m.Forward(cache, &model.Batch{Seqs: []model.SeqInput{{Tokens: ids, BlockTable: bt, WantLogits: true, NumLogits: len(ids)}}})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config().Vocab
	losses := make([]float64, len(ids))
	for p := 1; p < len(ids); p++ {
		row := out[(p-1)*v : p*v]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		var s float64
		for _, x := range row {
			s += math.Exp(float64(x) - mx)
		}
		losses[p] = mx + math.Log(s) - float64(row[ids[p]])
	}
	return losses
}

// spanGrads is the hand-masked reference of a masked row's loss sum and
// gradient, from train's unmasked path (checked against PyTorch): a row's
// tokens [a, b) that count make Σ(ids[:b]) − Σ(ids[:a]) of the prefixes'
// unmasked loss sums, since a causal model's loss at t sees only ids[:t+1].
func spanGrads(t *testing.T, n *net, ids []int32, mask []bool) (float64, map[string][]float32) {
	t.Helper()
	n.zeroGrad()
	one := func(l int, scale float32) float64 {
		if l < 2 {
			return 0
		}
		sum, _, err := n.lossAndGrad(&batch{ids: [][]int32{ids[:l]}, lens: []int{l}, T: l}, scale)
		if err != nil {
			t.Fatal(err)
		}
		return sum * float64(scale)
	}
	var sum float64
	for a := 1; a < len(ids); {
		if !mask[a] {
			a++
			continue
		}
		b := a
		for b < len(ids) && mask[b] {
			b++
		}
		sum += one(b, 1) + one(a, -1)
		a = b
	}
	g := map[string][]float32{}
	for _, p := range n.params {
		g[p.name] = append([]float32(nil), p.g...)
	}
	return sum, g
}

// checkMasked compares the masked batch of rows with the hand-masked
// reference: the loss sum and every parameter's gradient.
func checkMasked(t *testing.T, n *net, rows []sample) {
	t.Helper()
	var refSum float64
	ref := map[string][]float32{}
	b := &batch{}
	for _, r := range rows {
		s, g := spanGrads(t, n, r.ids, r.mask)
		refSum += s
		for k, v := range g {
			if ref[k] == nil {
				ref[k] = make([]float32, len(v))
			}
			for i := range v {
				ref[k][i] += v[i]
			}
		}
		b.ids, b.lens, b.mask = append(b.ids, r.ids), append(b.lens, len(r.ids)), append(b.mask, r.mask)
		b.T = max(b.T, len(r.ids))
	}
	for i, r := range b.ids {
		b.ids[i] = append(append([]int32(nil), r...), make([]int32, b.T-len(r))...)
	}
	n.zeroGrad()
	sum, cnt, err := n.lossAndGrad(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, r := range rows {
		want += r.targets()
	}
	if cnt != want || cnt == 0 {
		t.Fatalf("%d targets, the masks keep %d", cnt, want)
	}
	if !relClose(sum, refSum, 1e-5) {
		t.Errorf("masked loss sum %.8g, hand-masked reference %.8g", sum, refSum)
	}
	for _, p := range n.params {
		r := ref[p.name]
		var mx, d float64
		for i := range r {
			mx = math.Max(mx, math.Abs(float64(r[i])))
			d = math.Max(d, math.Abs(float64(p.g[i]-r[i])))
		}
		if d > 1e-4*mx+1e-7 {
			t.Errorf("%s: masked gradient differs from the hand-masked reference by %g (largest %g)", p.name, d, mx)
		}
	}
}

func writeParquetPairs(t *testing.T, path string, prompts, completions [][]int64) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	lt := arrow.ListOf(arrow.PrimitiveTypes.Int64)
	sc := arrow.NewSchema([]arrow.Field{{Name: "prompt", Type: lt, Nullable: true}, {Name: "completion", Type: lt, Nullable: true}}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for c, rows := range [][][]int64{prompts, completions} {
		lb := b.Field(c).(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.Int64Builder)
		for _, r := range rows {
			lb.Append(true)
			vb.AppendValues(r, nil)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func collect(t *testing.T, cfg Config, ds *dataset.Dataset, vocab int) []sample {
	t.Helper()
	var tok *tokenizer.Tokenizer
	var out []sample
	for s, err := range tokenRows(context.Background(), cfg, ds, vocab, func() (*tokenizer.Tokenizer, error) {
		if tok == nil {
			var err error
			if tok, err = tokenizer.Load(cfg.Model); err != nil {
				return nil, err
			}
		}
		return tok, nil
	}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// firstLoss runs one step over all rows in file order and returns its loss.
func firstLoss(t *testing.T, c Config, ds *dataset.Dataset, rows int) float64 {
	t.Helper()
	c.Steps, c.BatchSize, c.Shuffle = 1, rows, false
	var ms []Metrics
	c.OnStep = func(m Metrics) error { ms = append(ms, m); return nil }
	if err := Run(context.Background(), c, ds); err != nil {
		t.Fatal(err)
	}
	return ms[0].Loss
}

// TestCompletionOnlyLoss: prompt/completion rows (Parquet token-id lists)
// count only the completion's tokens in the loss: the masked gradient
// equals the hand-masked reference, and the first step's loss is the mean
// of the completion tokens' losses as infer's forward pass gives them.
func TestCompletionOnlyLoss(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pairs.parquet")
	prompts := [][]int64{{1, 17, 300, 42, 9}, {7, 7, 100}, {5, 6, 7, 8, 9, 10, 11}}
	comps := [][]int64{{5, 88, 2}, {31, 400, 12, 12, 3}, {99}}
	writeParquetPairs(t, path, prompts, comps)
	c := baseConfig(t, "llama3")
	c.PromptColumn, c.CompletionColumn = "prompt", "completion"
	rows := collect(t, c, dataset.ReadParquet(path), 512)
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	var sum float64
	count := 0
	for i, r := range rows {
		if len(r.ids) != len(prompts[i])+len(comps[i]) {
			t.Fatalf("row %d: %v", i, r.ids)
		}
		for j := range r.ids {
			if want := j >= len(prompts[i]); r.mask[j] != want {
				t.Fatalf("row %d token %d: mask %v, want %v (prompt %d tokens)", i, j, r.mask[j], want, len(prompts[i]))
			}
		}
		ls := inferTokenLosses(t, c.Model, r.ids)
		for j := len(prompts[i]); j < len(r.ids); j++ {
			sum += ls[j]
			count++
		}
	}
	n, err := loadNet(context.Background(), c.Model, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	checkMasked(t, n, rows)
	if got, want := firstLoss(t, c, dataset.ReadParquet(path), 3), sum/float64(count); !relClose(got, want, 1e-5) {
		t.Errorf("step 1 loss %.8g; mean of the completions' token losses by infer %.8g", got, want)
	}
}

// TestChatAssistantOnlyLoss: --chat rows count only the assistant turns
// (their text and end-of-turn token): the targets decode to the assistant
// messages, the masked gradient equals the hand-masked reference, the step
// loss is infer's mean over those tokens, and --chat-loss all trains on
// every token.
func TestChatAssistantOnlyLoss(t *testing.T) {
	convs := [][]tokenizer.Message{
		{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hello there"},
			{Role: "assistant", Content: "hi"}, {Role: "user", Content: "the quick brown fox"}, {Role: "assistant", Content: "jumps over"}},
		{{Role: "user", Content: "a b c"}, {Role: "assistant", Content: "d e f g"}},
	}
	path := filepath.Join(t.TempDir(), "chat.jsonl")
	var body strings.Builder
	for _, cv := range convs {
		ms := make([]map[string]string, len(cv))
		for i, m := range cv {
			ms[i] = map[string]string{"role": m.Role, "content": m.Content}
		}
		js, _ := json.Marshal(ms)
		row, _ := json.Marshal(map[string]string{"messages": string(js)})
		body.Write(append(row, '\n'))
	}
	if err := os.WriteFile(path, []byte(body.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := baseConfig(t, "llama3")
	c.Chat, c.MaxSeqLen = true, 128
	rows := collect(t, c, dataset.ReadJSONL(path), 512)
	tok, err := tokenizer.Load(c.Model)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	count := 0
	for i, r := range rows {
		// The targets, span by span, are the assistant messages.
		var spans []string
		for a := 0; a < len(r.ids); a++ {
			if !r.mask[a] {
				continue
			}
			b := a
			for b < len(r.ids) && r.mask[b] {
				b++
			}
			spans = append(spans, tok.Decode(r.ids[a:b], false))
			a = b
		}
		var want []string
		for _, m := range convs[i] {
			if m.Role == "assistant" {
				want = append(want, m.Content+"<|eot_id|>")
			}
		}
		if strings.Join(spans, "|") != strings.Join(want, "|") {
			t.Errorf("row %d: targets %q, want the assistant turns %q", i, spans, want)
		}
		full, _ := tok.ApplyChatTemplate(convs[i], false)
		if got := tok.Decode(r.ids, false); got != full {
			t.Errorf("row %d decodes to %q, the template renders %q", i, got, full)
		}
		ls := inferTokenLosses(t, c.Model, r.ids)
		for j := range r.ids {
			if r.mask[j] {
				sum += ls[j]
				count++
			}
		}
	}
	n, err := loadNet(context.Background(), c.Model, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	checkMasked(t, n, rows)
	if got, want := firstLoss(t, c, dataset.ReadJSONL(path), 2), sum/float64(count); !relClose(got, want, 1e-5) {
		t.Errorf("step 1 loss %.8g; mean of the assistant tokens' losses by infer %.8g", got, want)
	}
	all := c
	all.ChatLoss = "all"
	var allSum float64
	allCount := 0
	for _, r := range collect(t, all, dataset.ReadJSONL(path), 512) {
		if r.mask != nil {
			t.Fatal("--chat-loss all masks tokens")
		}
		ls := inferTokenLosses(t, c.Model, r.ids)
		for _, l := range ls[1:] {
			allSum += l
			allCount++
		}
	}
	all.Out = filepath.Join(t.TempDir(), "all")
	if got, want := firstLoss(t, all, dataset.ReadJSONL(path), 2), allSum/float64(allCount); !relClose(got, want, 1e-5) {
		t.Errorf("--chat-loss all: step 1 loss %.8g; mean of every token's loss by infer %.8g", got, want)
	}
}
