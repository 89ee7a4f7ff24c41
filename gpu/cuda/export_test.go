package cuda

// SetAttnMode sets the attention kernel choice (as SLUICE_CUDA_ATTN does)
// for a test and returns a function that restores the previous one.
func SetAttnMode(m string) (restore func()) {
	old := attnMode
	attnMode = m
	return func() { attnMode = old }
}
