package cuda

// SetAttn sets d's attention kernel choice and forced split count (what
// Config.Attn and Config.Splits set at New) for a test, and returns a
// function that restores the previous ones.
func SetAttn(d *Device, k AttnKernels, splits int) (restore func()) {
	oldK, oldS := d.attn, d.splits
	d.attn, d.splits = k, splits
	return func() { d.attn, d.splits = oldK, oldS }
}
