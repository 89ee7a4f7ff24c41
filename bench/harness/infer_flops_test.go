package harness

import (
	"testing"

	"github.com/sluicehq/sluice/infer/model"
)

// TestModelFLOPs checks the estimate against hand-counted work: without
// speculation, projections for every computed token and the LM head per
// output; with n-gram speculation, the head for the rejected drafts' rows
// too; with a draft model, the draft's passes and head as well.
func TestModelFLOPs(t *testing.T) {
	target := model.Config{Layers: 2, Hidden: 8, Heads: 2, KVHeads: 1, HeadDim: 4, Intermediate: 16, Vocab: 10}
	draft := model.Config{Layers: 1, Hidden: 4, Heads: 1, KVHeads: 1, HeadDim: 4, Intermediate: 8, Vocab: 10}
	// Per token: layers·(H·(q+2kv) + q·H + 3·H·I).
	tp := 2.0 * (8*(8+8) + 8*8 + 3*8*16) // 768
	dp := 1.0 * (4*(4+8) + 4*4 + 3*4*8)  // 160
	for _, tc := range []struct {
		name  string
		draft *model.Config
		w     flopWork
		want  float64
	}{
		{"plain", nil, flopWork{computed: 100, outputs: 20}, 2 * (100*tp + 20*80)},
		// 12 drafts, 9 accepted: 23 rows of logits for 20 outputs.
		{"ngram", nil, flopWork{computed: 112, outputs: 20, drafted: 12, accepted: 9, k: 3}, 2 * (112*tp + 23*80)},
		// The draft: 100 target tokens, 12·2/3 = 8 draft passes, 12 heads.
		{"draft", &draft, flopWork{computed: 112, outputs: 20, drafted: 12, accepted: 9, k: 3}, 2 * (112*tp + 23*80 + 108*dp + 12*40)},
	} {
		if got := modelFLOPs(target, tc.draft, tc.w); got != tc.want {
			t.Errorf("%s: %g FLOPs, want %g", tc.name, got, tc.want)
		}
	}
}
