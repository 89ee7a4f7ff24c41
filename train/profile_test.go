package train

import (
	"bytes"
	"strings"
	"testing"
)

// TestProfileTable runs a pass with SLUICE_TRAIN_PROFILE=1 and reads the
// table: a row per op and shape, the passes' gradients unchanged.
func TestProfileTable(t *testing.T) {
	grads := func(profile bool) ([]float32, string) {
		if profile {
			t.Setenv("SLUICE_TRAIN_PROFILE", "1")
		} else {
			t.Setenv("SLUICE_TRAIN_PROFILE", "")
		}
		n, err := loadNet(t.Context(), fixtureDir("llama2"), "cpu")
		if err != nil {
			t.Fatal(err)
		}
		defer n.close()
		b := &batch{ids: [][]int32{{1, 7, 9, 30, 2}, {5, 6, 0, 0, 0}}, lens: []int{5, 2}, T: 5}
		n.zeroGrad()
		if _, _, err := n.lossAndGrad(b, 1); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		n.prof.write(&out)
		return append([]float32(nil), n.layers[0].q.g...), out.String()
	}
	want, none := grads(false)
	if none != "" {
		t.Errorf("without SLUICE_TRAIN_PROFILE the table is %q, want none", none)
	}
	got, table := grads(true)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("profiled gradient [%d] %g, unprofiled %g", i, got[i], want[i])
		}
	}
	for _, op := range []string{"MatMul ", "MatMulBackward ", "CrossEntropy ", "RMSNormBackward ", "CausalAttentionBackward ", "EmbedBackward ", "all "} {
		if !strings.Contains(table, op) {
			t.Errorf("the table has no %q row:\n%s", op, table)
		}
	}
	t.Logf("\n%s", table)
}
