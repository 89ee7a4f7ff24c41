package gpu

// BackwardOps are the gradients of the Ops a decoder's forward pass uses,
// and the two ops only training needs (CrossEntropy and dense causal
// attention's backward), so that train runs its forward and backward passes
// on the same devices as infer. It is optional: detect it with a type
// assertion on Device.Ops (cpu and cuda have it).
//
// Conventions are those of Ops, plus: a gradient named d… that the method
// says is accumulated (+=) must hold the sum so far (zeros at the start);
// one said to be written is overwritten. Backends may take F32 tensors only
// (cpu does): training keeps f32 master weights and gradients. Results do
// not depend on how a backend schedules its threads, so a run on one device
// repeats bit for bit.
type BackwardOps interface {
	// MatMulBackward is the gradient of c = a·bᵀ + bias (MatMul) with dc
	// [m, n] the gradient of c: it writes da = dc·b [m, k] and accumulates
	// db += dcᵀ·a [n, k] and dbias += the column sums of dc [n]. Any of da,
	// db and dbias may be nil to skip it; none may overlap an input.
	MatMulBackward(da, db, dbias, dc, a, b *Tensor) error

	// EmbedBackward accumulates dtable[ids[i]] += dy[i] (dy [t, h], ids
	// [t], dtable [n, h]), the gradient of Embed; a row gathered twice gets
	// both. It also scatters rows back into any [n, h] tensor.
	EmbedBackward(dtable, dy, ids *Tensor) error

	// RMSNormBackward is the gradient of dst = RMSNorm(x) (without the
	// residual): with dy the gradient of dst it writes dx and accumulates
	// dweight += Σ_rows dy·x/rms. The inverse RMS is recomputed from x as the
	// forward computed it. dx may alias dy.
	RMSNormBackward(dx, dweight, dy, x, weight *Tensor, eps float32) error

	// RoPEBackward rotates the gradients dq [t, qHeads, d] and dk (or nil)
	// in place by the opposite angles of RoPE at the same positions: the
	// rotation's transpose.
	RoPEBackward(dq, dk, pos *Tensor, rope Rope) error

	// SiLUMulBackward is the gradient of dst = silu(gate) ⊙ up (both given,
	// not merged): it writes dgate and dup. dgate may alias gate and dup up.
	SiLUMulBackward(dgate, dup, dy, gate, up *Tensor) error

	// CausalAttentionBackward is the gradient of causal attention over
	// batches of equal-length sequences: q and dout [seqs·seqLen, heads,
	// d], k and v [seqs·seqLen, kvHeads, d] (grouped-query heads), query i
	// of a sequence attending to its keys 0..i with scores q·k·scale (0
	// means 1/sqrt(d)). That forward pass is Attention over a cache whose
	// block j is sequence j. The probabilities are recomputed from q and k,
	// so nothing of size seqLen² is kept between the passes. It writes dq,
	// dk and dv.
	CausalAttentionBackward(dq, dk, dv, dout, q, k, v *Tensor, seqLen int, scale float32) error

	// CrossEntropy takes logits [rows, vocab] and targets (I32 [rows]) and
	// writes each row's loss, logsumexp(logits) − logits[target], into loss
	// [rows], and scale·(softmax(logits) − onehot(target)) into dlogits,
	// the gradient of scale·Σ loss. A negative target (padding, prompt
	// tokens) gives a 0 loss and a 0 gradient row. dlogits may alias
	// logits, so a chunk of rows of the LM head needs one [rows, vocab]
	// buffer.
	CrossEntropy(loss, dlogits, logits, targets *Tensor, scale float32) error
}

// MatMulBackwardAccOps is MatMulBackward with da accumulated, for a
// gradient that sums the products of several layers (a norm's input feeding
// q, k and v): da += dc·b in the product's epilogue instead of a product
// into scratch and an Add. Optional: detect it with a type assertion on the
// BackwardOps.
type MatMulBackwardAccOps interface {
	// MatMulBackwardAcc is MatMulBackward with da += dc·b (da holding the
	// sum so far) in place of da = dc·b.
	MatMulBackwardAcc(da, db, dbias, dc, a, b *Tensor) error
}

// EmbedGroupOps is EmbedBackward with the ids grouped by value on the host
// (EmbedGroups), for backends where walking every id per column is slow
// (cuda: a thread per column over all t ids; grouped, a thread per id and
// column). It gives EmbedBackward's result bit for bit: each row of dtable
// adds its dy rows in their order in ids. Optional: detect it with a type
// assertion on the BackwardOps.
type EmbedGroupOps interface {
	// EmbedBackwardGrouped is EmbedBackward(dtable, dy, ids) for the
	// groups g = EmbedGroups(ids) uploaded as order [t], starts [u+1] and
	// uniq [u] (Int32).
	EmbedBackwardGrouped(dtable, dy, order, starts, uniq *Tensor) error
}

// EmbedGroups groups ids by value for EmbedGroupOps: uniq holds each
// distinct id once, in the order of its first occurrence, and the rows of
// dy that id i of uniq gathers are order[starts[i]:starts[i+1]], in their
// order in ids.
func EmbedGroups(ids []int32) (order, starts, uniq []int32) {
	first := make(map[int32]int32, len(ids))
	count := make([]int32, 0, len(ids))
	for _, id := range ids {
		g, ok := first[id]
		if !ok {
			g = int32(len(uniq))
			first[id] = g
			uniq = append(uniq, id)
			count = append(count, 0)
		}
		count[g]++
	}
	starts = make([]int32, len(uniq)+1)
	for g, c := range count {
		starts[g+1] = starts[g] + c
	}
	next := append([]int32(nil), starts[:len(uniq)]...)
	order = make([]int32, len(ids))
	for i, id := range ids {
		g := first[id]
		order[next[g]] = int32(i)
		next[g]++
	}
	return order, starts, uniq
}
