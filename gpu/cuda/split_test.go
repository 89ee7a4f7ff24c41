package cuda

import "testing"

// TestDecodeSplits checks the split choice of the split-context decode
// kernel: one split when the (sequence, kv head) pairs fill the GPU, more
// for few sequences or long contexts, every key covered, chunks whole tiles.
func TestDecodeSplits(t *testing.T) {
	const wave = 6 * 132 // d ≤ 64 on an H200
	for _, c := range []struct {
		pairs, maxCtx, wave int
		mode                AttnKernels
		force               int
		splits, chunk       int
	}{
		{2048, 384, wave, AttnAuto, 0, 1, 384},       // infer/offline-512: 256 seqs × 8 kv heads fill a wave
		{512, 1024, 4 * 132, AttnAuto, 0, 1, 1024},   // 64 × 8 at 1024, d = 128 (BenchmarkAttentionDecode)
		{128, 4096, wave, AttnAuto, 0, 6, 704},       // 16 × 8 at 4096
		{8, 4096, wave, AttnAuto, 0, 64, 64},         // one sequence: splits of the smallest chunk
		{72, 1500, wave, AttnAuto, 0, 10, 160},       // the suite's decode case
		{16, 1, wave, AttnAuto, 0, 1, 32},            // one key
		{16, 0, wave, AttnAuto, 0, 1, 32},            // no bound: still one block
		{16, 1000, wave, AttnSplitMost, 0, 32, 32},   // most splits: one tile each
		{16, 1000, wave, AttnAuto, 3, 3, 352},        // forced
		{16, 1000, wave, AttnAuto, 200, 32, 32},      // forced past one tile each
		{2048, 384, wave, AttnSplitMost, 1, 12, 32},  // the mode wins over a forced count
		{100000, 30000, wave, AttnAuto, 0, 1, 30016}, // many pairs, long contexts
		{1, 100000, wave, AttnAuto, 0, 125, 800},     // at most splitMax
	} {
		s, ch := decodeSplits(c.pairs, c.maxCtx, c.wave, c.mode, c.force)
		if s != c.splits || ch != c.chunk {
			t.Errorf("decodeSplits(%d, %d, %d, %s, %d) = %d, %d; want %d, %d", c.pairs, c.maxCtx, c.wave, c.mode, c.force, s, ch, c.splits, c.chunk)
		}
		if ch%splitTile != 0 || s < 1 || s > max(1, (c.maxCtx+splitTile-1)/splitTile) || (s-1)*ch >= max(1, c.maxCtx) {
			t.Errorf("decodeSplits(%d, %d, ...) = %d splits of %d keys: chunks must be whole tiles, cover the context, none empty", c.pairs, c.maxCtx, s, ch)
		}
	}
}

// TestSplitShared checks attentionSplit's shared memory against the static
// limit the launch relies on (48 KiB without a raised attribute).
func TestSplitShared(t *testing.T) {
	for _, c := range []struct{ g, d, want int }{
		{4, 64, 4*4*64 + 3*2*32*72*2 + 4*4*36},  // cp.async stages of bf16 rows
		{8, 128, 4 * (8*128 + 2*32*132 + 8*36)}, // f32 tiles
		{3, 20, 4*4*20 + 3*2*32*28*2 + 4*4*36},
	} {
		if got := splitShared(c.g, c.d); got != c.want || got > 48<<10 {
			t.Errorf("splitShared(%d, %d) = %d, want %d (≤ 48 KiB)", c.g, c.d, got, c.want)
		}
	}
}
