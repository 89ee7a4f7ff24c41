package cuda

// SetAttnMode sets the attention kernel choice (as SLUICE_CUDA_ATTN does)
// for a test and returns a function that restores the previous one.
func SetAttnMode(m string) (restore func()) {
	old := attnMode
	attnMode = m
	return func() { attnMode = old }
}

// SetSplits forces the number of splits of the split-context decode
// kernel (as SLUICE_CUDA_SPLITS does; 0 lets Attention choose) for a test
// and returns a function that restores the previous setting.
func SetSplits(n int) (restore func()) {
	old := splitsForce
	splitsForce = n
	return func() { splitsForce = old }
}
