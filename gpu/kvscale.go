package gpu

// ScaledKV is Ops that write an F8E4M3 KV cache with per-tensor scales
// other than 1, as vLLM's --kv-cache-dtype fp8 does with a checkpoint's
// k_scale and v_scale. It is optional: detect it with a type assertion
// (cpu and cuda have it). Threading: as the Device's Ops.
type ScaledKV interface {
	// WriteKVScaled is WriteKV storing k / kScale and v / vScale (float32
	// division, then E4M3 rounding, ties to even, saturating at ±448) into
	// an F8E4M3 cache; read them with AttnBatch.KScale and VScale. Scales
	// are positive and finite; 0 means 1; caches of other dtypes ignore
	// them.
	WriteKVScaled(kCache, vCache, k, v, slots *Tensor, kScale, vScale float32) error
}
