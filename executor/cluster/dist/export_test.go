package dist

// SetMinSplit sets the smallest split target MinTasks makes, for tests
// whose inputs are small; the returned func restores it.
func SetMinSplit(n int64) func() {
	old := minSplit
	minSplit = n
	return func() { minSplit = old }
}
