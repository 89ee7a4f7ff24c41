package cuda

// SetAttn sets d's attention kernel choice and forced split count (what
// Config.Attn and Config.Splits set at New) for a test, and returns a
// function that restores the previous ones.
func SetAttn(d *Device, k AttnKernels, splits int) (restore func()) {
	oldK, oldS := d.attn, d.splits
	d.attn, d.splits = k, splits
	return func() { d.attn, d.splits = oldK, oldS }
}

// AttnPaths is how many training attention calls (CausalAttention and
// CausalAttentionBackward) on d took the fused kernels and how many the
// other paths.
func AttnPaths(d *Device) (flash, other int) {
	fa := &d.fn.bwd.attn.flash
	return fa.flash, fa.other
}

// FlashAttn looks d's fused training attention up and reports whether the
// loaded kernels have it for head size hd and its mode
// (SLUICE_CUDA_FLASH_ATTN's: "0" off, "atomic" dQ by atomics, else on with
// the deterministic dQ);
// set, when not nil, sets the mode first (A/B runs in one process).
func FlashAttn(d *Device, hd int, set *string) (has bool, mode string, err error) {
	if err := d.enter(); err != nil {
		return false, "", err
	}
	defer d.leave()
	fa := d.flashLookup()
	if set != nil {
		fa.mode = *set
	}
	for i, h := range flashDims {
		if h == hd {
			has = fa.fwd[i] != 0
		}
	}
	return has, fa.mode, nil
}
